"""Unit tests: a package, so that their module names cannot collide with the end-to-end
tests of the same name (tests/e2e/test_lock.py and tests/unit/test_lock.py)."""
