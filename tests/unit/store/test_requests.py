"""Requests and pauses: what people asked of a model, each kept once until withdrawn."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from controller.store import StateStore
from tests.support.factories import NOW

Ask = Callable[[StateStore, str, datetime], bool]
Withdraw = Callable[[StateStore, str], bool]
Read = Callable[[StateStore], dict[str, datetime]]

KINDS: dict[str, tuple[Ask, Withdraw, Read]] = {
    "request": (StateStore.add_request, StateStore.clear_request, StateStore.requests),
    "pause": (StateStore.pause, StateStore.resume, StateStore.paused),
}


@pytest.mark.parametrize(("ask", "withdraw", "read"), KINDS.values(), ids=KINDS.keys())
def test_kept_once_from_the_first_time_until_withdrawn(
    store: StateStore, ask: Ask, withdraw: Withdraw, read: Read
) -> None:
    earlier, later = NOW - timedelta(days=2), NOW - timedelta(days=1)
    assert ask(store, "m", earlier) is True
    assert ask(store, "m", later) is False  # the first time is kept
    assert ask(store, "a", later) is True
    assert read(store) == {"a": later, "m": earlier}
    assert withdraw(store, "m") is True
    assert withdraw(store, "m") is False
    assert read(store) == {"a": later}


def test_requests_and_pauses_are_separate(store: StateStore) -> None:
    store.pause("m", NOW)
    assert store.requests() == {} and store.clear_request("m") is False
    store.add_request("m", NOW)
    store.resume("m")
    assert (store.requests(), store.paused()) == ({"m": NOW}, {})
