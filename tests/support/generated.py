"""Settings and value strategies shared by the property-based tests (hypothesis).

The default run tries a modest number of inputs per property so the suite stays quick;
``MODELSYNC_EXAMPLES=2000`` (say) tries that many instead, for a longer hunt.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("MODELSYNC_EXAMPLES", "60"))

# No deadline: a loaded machine makes one example slow now and then, which says nothing about
# the property.  Examples that spin up a server or a temporary directory are the point, not a
# health problem.
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Scalars as YAML and JSON carry them, with the awkward ones weighted in: names with path
# separators and dots, control characters, huge and negative numbers, empty strings.
tricky_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["", ".", "..", "../..", "/etc/passwd", "a/../../b", "org/m", "main", "*", "~", "\\x"]
    ),
    st.from_regex(r"[a-z0-9./_\-]{0,30}", fullmatch=True),
)
scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    tricky_text,
)


def documents(max_leaves: int = 25) -> st.SearchStrategy[Any]:
    """Nested lists and mappings of scalars: any document YAML or JSON could hold."""
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(tricky_text, inner, max_size=4),
        ),
        max_leaves=max_leaves,
    )
