"""Reading a manifest file: YAML to plain data, with the line of every part.

YAML dialect
    Documents are read with PyYAML's safe loader, except that booleans follow YAML 1.2: only
    ``true``/``false`` are booleans.  Under YAML 1.1 ``updates: off`` would silently become
    ``false``; here it is the string ``off``, and ``suspend: yes`` is reported instead of being
    guessed.  Values are not coerced: ``revision: 2024`` is an integer and is reported (quote it).
    Duplicate keys, which PyYAML silently resolves to the last one, are reported.

Token keys and token-like values are reported here, as they are read, so that no later stage
ever holds them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from controller.manifest.document import Document, Where
from controller.manifest.problems import Loc, type_name
from controller.manifest.schema import KIND
from controller.manifest.tokens import TOKEN_MESSAGE, is_token_key, looks_like_token

# A document with more nodes than this is rejected: aliases can make a few lines of YAML expand
# exponentially ("billion laughs"), and `--plan` runs in CI on pull requests from anyone.
MAX_NODES = 100_000

_BOOL_TAG = "tag:yaml.org,2002:bool"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _ManifestLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans, so that ``updates: off`` stays the string ``off``."""


# libyaml's parser when PyYAML was built with it (its wheels are); otherwise the pure-Python
# one, and the fast path below is simply the slow one.
_FastBase: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _FastManifestLoader(_FastBase):  # type: ignore[valid-type,misc]
    """The same loader on libyaml's parser: reading a manifest of a thousand models with the
    pure-Python parser took a tenth of a second per hundred models.  libyaml's nodes carry
    the same line marks; its error messages are worded differently, so a document it
    rejects is read again by :class:`_ManifestLoader` for the report."""


for _loader in (_ManifestLoader, _FastManifestLoader):
    _loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    _loader.add_implicit_resolver(
        _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )

# Either loader: they share the resolver and constructor, and differ only in their parser.
_Loader = _ManifestLoader | _FastManifestLoader


class _TooLarge(Exception):
    pass


def _node_line(node: Node) -> int:
    return int(node.start_mark.line) + 1


class _TreeReader:
    """Turns a composed node tree into plain data, recording the line of every part.

    PyYAML's constructor would give the same data but forgets positions and silently drops
    duplicate keys; walking the nodes ourselves keeps both.
    """

    def __init__(self, loader: _Loader, doc: Document) -> None:
        self._loader = loader
        self._doc = doc
        self._budget = MAX_NODES
        self._active: set[int] = set()  # nodes being read, to detect recursive aliases

    def read(self, node: Node, loc: Loc, key_line: int | None) -> Any:
        self._budget -= 1
        if self._budget < 0:
            raise _TooLarge
        self._doc.where[loc] = Where(key_line, _node_line(node))
        if isinstance(node, ScalarNode):
            return self._scalar(node, loc)
        if id(node) in self._active:
            return self._unreadable(node, loc, "recursive YAML alias")
        if node.tag not in (_MAP_TAG, _SEQ_TAG):
            return self._unreadable(node, loc, f"unsupported YAML tag '{node.tag}'")
        self._active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, loc)
            assert isinstance(node, SequenceNode)
            return [self.read(item, (*loc, i), None) for i, item in enumerate(node.value)]
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: ScalarNode, loc: Loc) -> Any:
        try:
            value = self._loader.construct_object(node)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            return self._unreadable(node, loc, f"cannot read value: {problem}")
        if isinstance(value, str) and looks_like_token(value):
            self._doc.report(
                _node_line(node), loc, f"this looks like a Hugging Face token; {TOKEN_MESSAGE}"
            )
        return value

    def _unreadable(self, node: Node, loc: Loc, message: str) -> None:
        self._doc.report(_node_line(node), loc, message)
        self._doc.unreadable.add(loc)

    def _mapping(self, node: MappingNode, loc: Loc) -> dict[str, Any]:
        own = self._doc.where[loc]
        result = self._merged(node, loc, own.key_line)
        first_seen: dict[str, int] = {}  # key -> its first line, to report duplicates
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE_TAG:
                self._entry(key_node, value_node, loc, first_seen, result)
        # Merge sources were read at this same place and recorded their own lines over ours.
        self._doc.where[loc] = own
        return result

    def _merged(self, node: MappingNode, loc: Loc, key_line: int | None) -> dict[str, Any]:
        """What ``<<: *defaults`` merges bring into the mapping ``node``."""
        result: dict[str, Any] = {}
        # Applied before the explicit keys so that those override them, and in reverse so that
        # earlier merge sources win, as the YAML merge-key spec says.
        merges = [v for k, v in node.value if k.tag == _MERGE_TAG]
        for source in reversed(self._merge_sources(merges, loc)):
            merged = self.read(source, loc, key_line)
            if isinstance(merged, dict):
                result.update(merged)
        return result

    def _entry(
        self,
        key_node: Node,
        value_node: Node,
        loc: Loc,
        first_seen: dict[str, int],
        result: dict[str, Any],
    ) -> None:
        """Reads one ``key: value`` of the mapping at ``loc`` into ``result``."""
        key = self._key(key_node, loc)
        if key is None:
            return
        key_line = _node_line(key_node)
        if key in first_seen:
            self._doc.report(
                key_line,
                (*loc, key),
                f"duplicate key '{key}' (first at line {first_seen[key]}); "
                "YAML would silently keep only the last one",
            )
        else:
            first_seen[key] = key_line
        if is_token_key(key):
            self._doc.report(key_line, (*loc, key), TOKEN_MESSAGE)
            return
        result[key] = self.read(value_node, (*loc, key), key_line)

    def _merge_sources(self, merges: list[Node], loc: Loc) -> list[Node]:
        sources: list[Node] = []
        for value in merges:
            items = value.value if isinstance(value, SequenceNode) else [value]
            for item in items:
                if isinstance(item, MappingNode):
                    sources.append(item)
                else:
                    self._doc.report(_node_line(item), loc, "'<<' must merge mappings")
        return sources

    def _key(self, node: Node, loc: Loc) -> str | None:
        key = self._scalar(node, loc) if isinstance(node, ScalarNode) else None
        if isinstance(key, str):
            return key
        got = type_name(key) if isinstance(node, ScalarNode) else "a collection"
        self._doc.report(_node_line(node), loc, f"keys must be strings, got {got}")
        return None


def _read_text(path: Path, doc: Document) -> str | None:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        doc.report(0, "-", f"cannot read: {exc.strerror or exc}")
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        doc.report(raw.count(b"\n", 0, exc.start) + 1, "(document)", "not UTF-8 text")
        return None


def _yaml_error_line(exc: yaml.YAMLError, text: str) -> int:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return int(mark.line) + 1
    position = getattr(exc, "position", None)  # ReaderError: a character offset
    return text.count("\n", 0, position) + 1 if isinstance(position, int) else 1


def _yaml_error_message(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        parts = [p for p in (exc.context, exc.problem) if p]
        return "invalid YAML: " + ("; ".join(parts) if parts else "syntax error")
    if isinstance(exc, yaml.reader.ReaderError):
        return f"invalid YAML: character #x{exc.character:04x} is not allowed"
    return f"invalid YAML: {exc}"


def _read_root(root: Node | None, loader: _Loader, doc: Document) -> None:
    if root is None:
        doc.report(1, "(document)", f"empty file; expected a {KIND} manifest")
    elif not isinstance(root, MappingNode):
        got = "a list" if isinstance(root, SequenceNode) else "a scalar"
        doc.report(
            _node_line(root),
            "(document)",
            f"expected a mapping (apiVersion, kind, metadata, spec) at the top, got {got}",
        )
    else:
        doc.data = _TreeReader(loader, doc).read(root, (), None)


def read_document(path: Path, display: str) -> Document:
    """The file at ``path``, shown as ``display`` in messages, read into a :class:`Document`.

    What cannot be read is reported among the document's problems; its ``data`` is then None,
    or holds None where a value was unreadable.
    """
    doc = Document(file=display, base_dir=path.absolute().parent)
    text = _read_text(path, doc)
    if text is None:
        return doc
    try:
        fast = _FastManifestLoader(text)  # the pure-Python base may reject the text here
    except yaml.YAMLError:
        return _read_slowly(text, doc)
    try:
        root = fast.get_single_node()
    except yaml.YAMLError:
        fast.dispose()
        return _read_slowly(text, doc)
    try:
        _read_root(root, fast, doc)
    except _TooLarge:
        _report_too_large(doc)
    finally:
        fast.dispose()
    return doc


def _report_too_large(doc: Document) -> None:
    doc.report(1, "(document)", f"document has more than {MAX_NODES} nodes (alias bomb?)")


def _read_slowly(text: str, doc: Document) -> Document:
    """A document libyaml rejected, read by the pure-Python parser for its wording."""
    try:
        loader = _ManifestLoader(text)  # already rejects control characters
    except yaml.YAMLError as exc:
        doc.report(_yaml_error_line(exc, text), "(document)", _yaml_error_message(exc))
        return doc
    try:
        _read_root(loader.get_single_node(), loader, doc)
    except yaml.YAMLError as exc:
        doc.report(_yaml_error_line(exc, text), "(document)", _yaml_error_message(exc))
    except _TooLarge:
        _report_too_large(doc)
    finally:
        loader.dispose()
    return doc
