"""The status file on disk: written atomically, so a reader never sees half a status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from controller.domain.status import StatusReport
from controller.system.atomic import atomic_write_text

# libyaml's emitter and parser when PyYAML was built with them (its wheels are): a pass
# rewrites the status after every model, and the pure-Python emitter made that the dominant
# cost of a first sync of a few hundred models.  Both produce the same text.
_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def to_dict(report: StatusReport) -> dict[str, Any]:
    data: dict[str, Any] = report.model_dump(mode="json", by_alias=True)
    return data


def write(path: str | Path, report: StatusReport) -> None:
    text = yaml.dump(to_dict(report), Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    atomic_write_text(path, text)


def read(path: str | Path) -> StatusReport:
    data = yaml.load(Path(path).read_text(), Loader=_Loader)
    return StatusReport.model_validate(data)
