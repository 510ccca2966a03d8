"""Validating a document against the schema, with messages people can act on.

pydantic's own messages name Python types and internal error codes; each error is re-worded
here from what the schema expects at its place: ``expected a list of strings, got str``, a
did-you-mean for a misspelt key, the allowed values of a choice.
"""

from __future__ import annotations

import types
from datetime import date
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from controller.manifest.document import Document
from controller.manifest.problems import Loc, show, suggest, type_name
from controller.manifest.schema import ModelSetManifest


def validate(doc: Document) -> None:
    """Sets ``doc.manifest`` when its data fits the schema; reports every misfit otherwise."""
    try:
        doc.manifest = ModelSetManifest.model_validate(doc.data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc: Loc = tuple(p for p in error["loc"] if p != "[key]")
            if any(loc[: len(u)] == u for u in doc.unreadable):
                continue
            at_key = error["type"] == "extra_forbidden" or error["loc"][-1:] == ("[key]",)
            doc.report(doc.line(loc, at_key=at_key), loc, _error_message(error, loc))


_BOUNDS = {
    "greater_than_equal": ("ge", "at least"),
    "less_than_equal": ("le", "at most"),
    "greater_than": ("gt", "more than"),
    "less_than": ("lt", "less than"),
}


def _error_message(error: ErrorDetails, loc: Loc) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "extra_forbidden":
        return _unknown_field(loc)
    if kind == "missing":
        return f"missing required field '{loc[-1]}'"
    if kind in ("literal_error", "enum"):
        return _bad_choice(loc, value)
    if kind in _BOUNDS:
        name, words = _BOUNDS[kind]
        return f"must be {words} {ctx.get(name)}, got {show(value)}"
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    if kind == "finite_number":
        return "must be a finite number"
    if kind.endswith("_type") or kind == "int_from_float":
        return _type_mismatch(loc, value)
    return str(error["msg"])


def _unknown_field(loc: Loc) -> str:
    key = str(loc[-1])
    parent = _annotation_at(loc[:-1])
    allowed = _field_names(parent) if _is_model(parent) else []
    message = f"unknown field '{key}'"
    suggestion = suggest(key, allowed)
    if suggestion:
        return f"{message}; did you mean '{suggestion}'?"
    return f"{message}; allowed: {', '.join(allowed)}" if allowed else message


def _type_mismatch(loc: Loc, value: object) -> str:
    expected = _annotation_at(loc)
    message = f"expected {_describe(expected)}, got {type_name(value)}"
    if expected is str and isinstance(value, (int, float, bool, date)):
        message += "; quote it to make it a string"
    return message


def _bad_choice(loc: Loc, value: object) -> str:
    allowed = ", ".join(_allowed_values(_annotation_at(loc)))
    if not isinstance(value, str):
        return f"expected one of: {allowed}, got {type_name(value)}"
    if loc == ("apiVersion",):
        return f"unsupported apiVersion {show(value)}; supported: {allowed}"
    if loc == ("kind",):
        return f"unsupported kind {show(value)}; supported: {allowed}"
    return f"invalid value {show(value)}; expected one of: {allowed}"


# What the schema expects at a place, read from the pydantic models themselves so that the
# messages cannot drift from the schema.


def _strip(annotation: Any) -> Any:
    """The type under Annotated[...] and Optional[...]."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
            continue
        args = [a for a in get_args(annotation) if a is not type(None)]
        if get_origin(annotation) in (Union, types.UnionType) and len(args) == 1:
            annotation = args[0]
            continue
        return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _annotation_at(loc: Loc) -> Any:
    """The schema type expected at ``loc``, or None where the schema says nothing."""
    annotation: Any = ModelSetManifest
    for part in loc:
        annotation = _strip(annotation)
        origin = get_origin(annotation)
        if isinstance(part, int):
            annotation = get_args(annotation)[0] if origin is list else None
        elif _is_model(annotation):
            fields = {f.alias or n: f for n, f in annotation.model_fields.items()}
            annotation = fields[part].annotation if part in fields else None
        elif origin is dict:
            annotation = get_args(annotation)[1]
        else:
            return None
    return _strip(annotation)


def _allowed_values(annotation: Any) -> list[str]:
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return [str(member.value) for member in annotation]
    return [str(arg) for arg in get_args(annotation)]


def _describe(annotation: Any, plural: bool = False) -> str:
    """How a type reads in "expected ..." messages."""
    annotation = _strip(annotation)
    origin = get_origin(annotation)
    if origin is list:
        return "lists" if plural else "a list of " + _describe(get_args(annotation)[0], plural=True)
    if origin is dict:
        return "mappings" if plural else "a mapping of strings to strings"
    if origin is Literal or (isinstance(annotation, type) and issubclass(annotation, Enum)):
        return "one of: " + ", ".join(_allowed_values(annotation))
    if _is_model(annotation):
        return "mappings" if plural else "a mapping"
    names = {
        str: ("a string", "strings"),
        bool: ("true or false", "booleans"),
        int: ("an integer", "integers"),
        float: ("a number", "numbers"),
    }
    if annotation in names:
        return names[annotation][1 if plural else 0]
    return "a valid value"
