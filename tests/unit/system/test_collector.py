"""Pausing the cyclic collector: off inside the block, as it was after, however the block ends."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from controller.system import collector


@pytest.fixture(autouse=True)
def _restore_collector() -> Iterator[None]:
    was_enabled = gc.isenabled()
    yield
    if was_enabled:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.parametrize("enabled_before", [True, False])
def test_the_collector_is_off_inside_and_as_it_was_after(enabled_before: bool) -> None:
    if enabled_before:
        gc.enable()
    else:
        gc.disable()
    with collector.paused():
        assert not gc.isenabled()
        with collector.paused():  # nested: the inner pause must not turn it back on
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled() is enabled_before


def test_a_block_that_raises_still_turns_the_collector_back_on() -> None:
    gc.enable()
    with pytest.raises(KeyError), collector.paused():
        raise KeyError("boom")
    assert gc.isenabled()
