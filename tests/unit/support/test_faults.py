"""tests.support.faults: a corrupt fault spoils one byte of the file, whatever range is asked.

Tests that claim "no client ever receives the right byte there" (a mirror or node that could
assemble a good file from ranges would otherwise pass them by luck) rest on this.
"""

from __future__ import annotations

import httpx2

from tests.support.hub import LocalHub

REPO = "org/model"
CONTENT = bytes(range(256)) * 8
SPOILED = 1000  # the file offset the fault flips


def _get(hub: LocalHub, span: str | None = None) -> bytes:
    headers = {"Range": f"bytes={span}"} if span is not None else {}
    url = f"{hub.url}/{REPO}/resolve/main/weights.bin"
    response = httpx2.get(url, headers=headers, timeout=30)
    assert response.status_code == (206 if span is not None else 200)
    return response.content


def test_every_response_covering_the_offset_carries_the_flipped_byte(hub: LocalHub) -> None:
    hub.publish(REPO, {"weights.bin": CONTENT})
    hub.faults.corrupt("*/weights.bin", offset=SPOILED, times=None)

    whole = _get(hub)
    assert whole[SPOILED] == CONTENT[SPOILED] ^ 0xFF
    assert whole[:SPOILED] + whole[SPOILED + 1 :] == CONTENT[:SPOILED] + CONTENT[SPOILED + 1 :]
    for start, end in ((900, 1099), (SPOILED, SPOILED), (0, SPOILED)):
        part = _get(hub, f"{start}-{end}")
        assert part[SPOILED - start] == CONTENT[SPOILED] ^ 0xFF, (start, end)
    # A range that does not reach the offset goes out intact.
    assert _get(hub, "0-999") == CONTENT[:SPOILED]
    assert _get(hub, "1001-") == CONTENT[SPOILED + 1 :]
