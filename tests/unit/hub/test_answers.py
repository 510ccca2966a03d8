"""The hub's revision answer is checked field by field: every malformed one is refused with a
message naming the field, never built into a revision (let alone an empty, "complete" one)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from controller.cache.layout import UnsafePathError
from controller.domain import RemoteFile
from controller.hub.answers import MalformedAnswer, parse_revision

SHA = "a" * 40
DIGEST = "b" * 64
BLOB = "c" * 40
GOOD: dict[str, Any] = {
    "sha": SHA,
    "siblings": [
        {"rfilename": "config.json", "size": 12, "blobId": BLOB},
        {
            "rfilename": "model.safetensors",
            "size": 2048,
            "blobId": "d" * 40,
            "lfs": {"sha256": DIGEST, "size": 2048, "pointerSize": 134},
        },
    ],
}


def edited(edit: Callable[[dict[str, Any]], object]) -> object:
    document = copy.deepcopy(GOOD)
    result = edit(document)
    return document if result is None else result


def test_a_well_formed_answer_is_the_revision_it_describes() -> None:
    revision = parse_revision("org/m", "main", GOOD)
    assert revision.commit == SHA
    assert revision.files == (
        RemoteFile("config.json", 12, BLOB, None),
        RemoteFile("model.safetensors", 2048, "d" * 40, DIGEST),
    )


MALFORMED: list[tuple[str, Callable[[dict[str, Any]], object], str]] = [
    ("not an object", lambda d: ["sha"], "JSON array, not an object"),
    ("no sha", lambda d: d.pop("sha") and None, "'sha' is missing"),
    ("short sha", lambda d: d.update(sha="abc123"), "'sha' is 'abc123'"),
    ("sha of a path", lambda d: d.update(sha="../" + "a" * 37), "not a 40-hex commit id"),
    ("sha a number", lambda d: d.update(sha=12), "'sha' is 12"),
    ("no siblings", lambda d: d.pop("siblings") and None, "'siblings' is missing"),
    ("siblings a string", lambda d: d.update(siblings="x"), "'siblings' is 'x', not a list"),
    ("sibling a string", lambda d: d["siblings"].append("x"), "siblings[2] is 'x'"),
    ("rfilename missing", lambda d: d["siblings"][0].pop("rfilename") and None, "rfilename"),
    ("rfilename a number", lambda d: d["siblings"][0].update(rfilename=7), "rfilename is 7"),
    ("size negative", lambda d: d["siblings"][0].update(size=-1), "(config.json).size is -1"),
    ("size a string", lambda d: d["siblings"][0].update(size="12"), "size is '12'"),
    ("size a float", lambda d: d["siblings"][0].update(size=1.5), "size is 1.5"),
    ("size a bool", lambda d: d["siblings"][0].update(size=True), "size is True"),
    ("size missing", lambda d: d["siblings"][0].pop("size") and None, "size is missing"),
    ("lfs not an object", lambda d: d["siblings"][1].update(lfs=[]), "lfs is []"),
    ("sha256 short", lambda d: d["siblings"][1]["lfs"].update(sha256="beef"), "lfs.sha256"),
    ("sha256 upper", lambda d: d["siblings"][1]["lfs"].update(sha256="B" * 64), "not a sha256"),
    ("sha256 missing", lambda d: d["siblings"][1]["lfs"].pop("sha256") and None, "lfs.sha256"),
    ("lfs size negative", lambda d: d["siblings"][1]["lfs"].update(size=-5), "lfs.size is -5"),
    ("sizes disagree", lambda d: d["siblings"][1]["lfs"].update(size=9), "size 2048 but lfs"),
    ("blobId malformed", lambda d: d["siblings"][0].update(blobId="zz"), "blobId is 'zz'"),
    ("nothing to check by", lambda d: d["siblings"][0].pop("blobId") and None, "neither"),
]


@pytest.mark.parametrize(("case", "edit", "says"), MALFORMED, ids=[c[0] for c in MALFORMED])
def test_a_malformed_answer_is_refused_naming_the_field(
    case: str, edit: Callable[[dict[str, Any]], object], says: str
) -> None:
    with pytest.raises(MalformedAnswer) as refused:
        parse_revision("org/m", "main", edited(edit))
    assert says in str(refused.value), case


def test_a_file_name_leaving_the_snapshot_is_refused_as_unsafe() -> None:
    document = edited(lambda d: d["siblings"][0].update(rfilename="../../etc/passwd"))
    with pytest.raises(UnsafePathError):
        parse_revision("org/m", "main", document)


def test_a_hostile_value_is_shown_short() -> None:
    with pytest.raises(MalformedAnswer) as refused:
        parse_revision("org/m", "main", edited(lambda d: d.update(sha="x" * 10_000)))
    assert len(str(refused.value)) < 120
