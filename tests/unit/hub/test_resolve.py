"""Resolving a revision survives a hub's passing trouble, and reports lasting trouble."""

from __future__ import annotations

from controller.domain import Reason, RemoteProblem, RemoteRevision
from controller.hub import revisions as hub_client
from tests.support.hub import LocalHub


def test_a_reset_connection_and_a_503_are_retried(hub: LocalHub) -> None:
    commit = hub.publish("org/m", {"config.json": b"{}"})
    hub.faults.drop("/api/models/org/m/*", before_headers=True, method="GET", times=1)
    hub.faults.fail("/api/models/org/m/*", status=503, times=1)
    answer = hub_client.resolve("org/m", "main", hub.url)
    assert isinstance(answer, RemoteRevision) and answer.commit == commit
    assert hub.faults.pending == 0


def test_a_missing_repo_is_final_and_asked_once(hub: LocalHub) -> None:
    answer = hub_client.resolve("org/absent", "main", hub.url)
    assert isinstance(answer, RemoteProblem) and answer.reason is Reason.REPO_NOT_FOUND
    assert len(hub.requests_for("/api/models/org/absent*")) == 1


def test_a_hub_that_keeps_failing_is_reported_after_a_few_tries(hub: LocalHub) -> None:
    hub.publish("org/m", {"config.json": b"{}"})
    hub.faults.fail("/api/models/org/m/*", status=503, times=None)
    answer = hub_client.resolve("org/m", "main", hub.url)
    assert isinstance(answer, RemoteProblem) and "503" in answer.message
    assert len(hub.requests_for("/api/models/org/m/*")) == 1 + len(
        hub_client.RESOLVE_RETRY_DELAYS_S
    )
