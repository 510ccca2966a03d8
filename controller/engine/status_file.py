"""The status file on disk: written atomically, so a reader never sees half a status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
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
    if data.get("node") is None:
        del data["node"]  # only a controller's API names the node; the file stays as it was
    return data


def write(path: str | Path, report: StatusReport) -> None:
    text = yaml.dump(to_dict(report), Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    atomic_write_text(path, text)


class UnreadableStatus(ValueError):
    """A status file that is damaged (a disk that filled, a hand edit) or not modelsync's; the
    message says why in one line.  The next pass rewrites it whole."""


def read(path: str | Path) -> StatusReport:
    """The status in ``path``; raises :class:`UnreadableStatus` (``OSError`` for a file that
    cannot be opened at all)."""
    try:
        data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_Loader)
        return StatusReport.model_validate(data)
    except UnicodeDecodeError as e:
        raise UnreadableStatus(f"not UTF-8 text (byte {e.start})") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UnreadableStatus(f"not valid YAML{where}: {e.problem}") from None
    except yaml.YAMLError as e:
        # The reader's own errors (a control character) span lines: the message is one line.
        raise UnreadableStatus(f"not valid YAML: {' '.join(str(e).split())}") from None
    except pydantic.ValidationError as e:
        first = e.errors()[0]
        at = ".".join(str(part) for part in first["loc"]) or "the document"
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise UnreadableStatus(f"{at}: {first['msg']}{more}") from None
