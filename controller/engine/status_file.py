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
_BaseDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_STR, _INT, _BOOL, _NULL, _MAP, _SEQ = (
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "bool", "null", "map", "seq")
)


class _StatusDumper(_BaseDumper):  # type: ignore[valid-type,misc]
    """The safe dumper with the nodes of plain JSON data built directly.

    libyaml emits, but the representer that turns values into nodes is Python, and its
    generic dispatch (a type lookup and an alias check per value) cost more than the
    emitter for a status of a thousand models.  A status is ``model_dump(mode="json")``:
    fresh containers that never share an object, so no alias is ever due, and each node
    here is the one :class:`yaml.SafeDumper` builds for that value (block style, as
    ``yaml.dump`` asks for); any other type goes to it.
    """

    def represent_data(self, data: Any) -> yaml.Node:
        kind = type(data)
        if kind is str:
            return yaml.ScalarNode(_STR, data)
        if kind is bool:
            return yaml.ScalarNode(_BOOL, "true" if data else "false")
        if kind is int:
            return yaml.ScalarNode(_INT, str(data))
        if data is None:
            return yaml.ScalarNode(_NULL, "null")
        if kind is dict:
            items = [(self.represent_data(k), self.represent_data(v)) for k, v in data.items()]
            return yaml.MappingNode(_MAP, items, flow_style=False)
        if kind is list:
            values = [self.represent_data(v) for v in data]
            return yaml.SequenceNode(_SEQ, values, flow_style=False)
        node: yaml.Node = super().represent_data(data)
        return node


def to_dict(report: StatusReport) -> dict[str, Any]:
    data: dict[str, Any] = report.model_dump(mode="json", by_alias=True)
    if data.get("node") is None:
        del data["node"]  # only a controller's API names the node; the file stays as it was
    return data


def write(path: str | Path, report: StatusReport) -> None:
    text = yaml.dump(to_dict(report), Dumper=_StatusDumper, sort_keys=False, allow_unicode=True)
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
