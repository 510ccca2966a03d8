"""One module per concern, each with a pure ``plan`` and an ``apply`` for one action."""
