"""Reading YAML configuration safely: bytes to plain data, one `FILE:LINE: path: message` for any problem.

PyYAML's own loaders are not used to build documents: their composer and constructor recurse (a deeply nested file
raises RecursionError), expand aliases and `<<` merge chains without bound, and construct tags. Here the parser's
event stream (libyaml when available; neither parser recurses) is composed and constructed in one iterative pass
that enforces the limits below and builds `yaml.Node`s, kept to point errors at lines, next to the plain data:
str, int, float, bool, None, list and dict with string keys. No tag is ever constructed: only the YAML core
schema's `!!str !!int !!float !!bool !!null !!map !!seq` are accepted; implicit timestamps stay strings (as Argo
reads them), duplicate keys and keys that are not strings are errors.

Limits (each refusal says which one was hit):

- a file holds at most MAX_FILE_BYTES (4 MiB) and MAX_DOCUMENTS (200) documents;
- lists and mappings nest at most MAX_DEPTH (100) levels, counting what aliases repeat;
- a file has at most MAX_NODES (50,000) values, counting every copy that aliases and `<<` merge keys make
  (this refuses "billion laughs" and long merge chains);
- one list or mapping holds at most MAX_ITEMS (10,000) entries;
- an integer has at most MAX_INT_CHARS (100) characters.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from sensorium.engine.core.errors import ConfigError
from sensorium.engine.core.yamlerrors import explain

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DOCUMENTS = 200
MAX_DEPTH = 100
MAX_NODES = 50_000
MAX_ITEMS = 10_000
MAX_INT_CHARS = 100

_Parser: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when installed
_RESOLVER = yaml.resolver.Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_CORE = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = (_CORE + t for t in ("str", "int", "float", "bool", "null"))
MAP, SEQ, MERGE = _CORE + "map", _CORE + "seq", _CORE + "merge"
_NOT_PRINTABLE = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_KIND = {str: "a string", int: "an integer", float: "a number", bool: "a boolean", type(None): "null",
         list: "a list", dict: "a mapping"}
_CONTROL_NAMES = {0: "NUL", 0x1B: "ESC", 0x7F: "DEL"}


def kind_of(value: Any) -> str:
    """`a string`, `an integer`, `null`, `a list`, ...: how errors name what a YAML value turned out to be."""
    return _KIND.get(type(value), f"a {type(value).__name__}")


def dotted_path(loc: Iterable[str | int]) -> str:
    """`spec.triggers[0].template`: Argo's field names, list indexes in brackets."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def read_file(path: str, file: str) -> str:
    """The file's text: UTF-8 (a BOM is dropped) or UTF-16 with a BOM; anything else is refused with its line."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror or exc}", file, 0) from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB (the limit for one file)",
                          file, 0)
    return decode(data, file)


def decode(data: bytes, file: str) -> str:
    """Bytes to text as `read_file` says; a file without a BOM must be UTF-8 (UTF-16/32 get a hint)."""
    for bom, codec in ((codecs.BOM_UTF32_LE, None), (codecs.BOM_UTF32_BE, None),
                       (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            if codec is None:
                raise ConfigError("file is UTF-32; save it as UTF-8", file, 1)
            try:
                text = data.decode(codec)
            except UnicodeDecodeError as exc:
                line = data[:exc.start].decode(codec, errors="replace").count("\n") + 1
                raise ConfigError(f"not valid UTF-16: {exc.reason}", file, line) from None
            check_text(text, file)
            return text
    if b"\x00" in data[:4096] and (wide := _wide_encoding(data)):
        raise ConfigError(f"file looks like {wide} without a byte-order mark; save it as UTF-8", file, 1)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = data.count(b"\n", 0, exc.start) + 1, exc.start - data.rfind(b"\n", 0, exc.start)
        raise ConfigError(f"not valid UTF-8: byte 0x{data[exc.start]:02x} at column {column} ({exc.reason}); "
                          "save the file as UTF-8", file, line) from None
    text = text.removeprefix("\ufeff")
    check_text(text, file)
    return text


def _wide_encoding(data: bytes) -> str | None:
    """UTF-16/32 text of mostly ASCII has NUL bytes at fixed positions; guesses which (for the message only)."""
    head = data[:4096] + b"\x01" * (-len(data[:4096]) % 4)
    quads = [head[i:i + 4] for i in range(0, len(head), 4)]
    if sum(q[1:] == b"\0\0\0" for q in quads) * 2 > len(quads) or sum(q[:3] == b"\0\0\0" for q in quads) * 2 > \
            len(quads):
        return "UTF-32"
    pairs = [head[i:i + 2] for i in range(0, len(head), 2)]
    if sum(p[1] == 0 for p in pairs) * 2 > len(pairs) or sum(p[0] == 0 for p in pairs) * 2 > len(pairs):
        return "UTF-16"
    return None


def check_text(text: str, file: str) -> None:
    """Refuse what YAML forbids in a file (control characters, lone surrogates), naming line and column."""
    found = _NOT_PRINTABLE.search(text)
    if found is None:
        return
    code = ord(found.group())
    line = text.count("\n", 0, found.start()) + 1
    column = found.start() - text.rfind("\n", 0, found.start())
    name = _CONTROL_NAMES.get(code, "")
    what = "a lone surrogate" if 0xD800 <= code <= 0xDFFF else "control character"
    raise ConfigError(f"{what} U+{code:04X}{' (' + name + ')' if name else ''} at column {column} is not "
                      "allowed in YAML", file, line)


@dataclass(frozen=True)
class Document:
    data: Any
    node: yaml.Node


def parse(text: str, file: str) -> list[Document]:
    """Every document of `text` whose content is not empty/null, composed within the limits."""
    try:
        return list(_Composer(file).documents(_events(text)))
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(f"invalid YAML: {_describe(exc, text)}", file, _mark_line(exc)) from None
    except yaml.YAMLError as exc:  # the reader's errors have a position, not a mark
        raise ConfigError(f"invalid YAML: {' '.join(str(exc).split())}", file, 0) from None
    except UnicodeError as exc:  # text the parser cannot encode (lone surrogates from the environment)
        raise ConfigError(f"invalid text: {exc}", file, 0) from None


def _events(text: str) -> Iterator[yaml.Event]:
    """The parser's events (what `yaml.parse` yields, without its per-event `check_event` call)."""
    parser = _Parser(text)
    try:
        get = parser.get_event
        while (event := get()) is not None:
            yield event
    finally:
        parser.dispose()


def _mark_line(exc: yaml.MarkedYAMLError) -> int:
    mark = exc.problem_mark or exc.context_mark
    return mark.line + 1 if mark else 0


_CLEARER = {"found invalid Unicode character escape code":
            "invalid escape: a surrogate (\\ud800-\\udfff) or a code point above \\U0010FFFF is not a character"}


def _describe(exc: yaml.MarkedYAMLError, text: str) -> str:
    """The parser's error in plain words (`yamlerrors.explain`)."""
    problem = " ".join(str(exc.problem or exc).split())
    if problem in _CLEARER:
        return _CLEARER[problem]
    return explain(exc, text)


Child = tuple[yaml.Node, Any, int, int]
"""A composed value: (node, data, values it stands for with alias copies, nesting levels of lists/mappings in it)."""


class _Frame:
    """An open list or mapping: its node, and the children read so far (for a mapping: key, value, key, ...)."""

    __slots__ = ("anchor", "children", "limit", "mapping", "node")

    def __init__(self, node: yaml.MappingNode | yaml.SequenceNode, anchor: str | None, mapping: bool) -> None:
        self.node, self.anchor, self.mapping = node, anchor, mapping
        self.children: list[Child] = []
        self.limit = MAX_ITEMS * 2 if mapping else MAX_ITEMS

    def path_part(self) -> str | int | None:
        if not self.mapping:
            return len(self.children)
        if len(self.children) % 2 == 1:  # a key was read; its value is being read
            key = self.children[-1][1]
            return key if isinstance(key, str) else None
        return None


_ScalarEvent, _AliasEvent, _DocumentStartEvent = yaml.ScalarEvent, yaml.AliasEvent, yaml.DocumentStartEvent
_MappingStartEvent, _SequenceStartEvent = yaml.MappingStartEvent, yaml.SequenceStartEvent
_ENDS = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
_ScalarNode, _MappingNode, _SequenceNode = yaml.ScalarNode, yaml.MappingNode, yaml.SequenceNode


class _Composer:
    """Events to (node, data) without recursion, within the module's limits."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.stack: list[_Frame] = []
        self.anchors: dict[str, Child] = {}
        self.open_anchors: set[str] = set()
        self.nodes = 0
        self.documents_seen = 0
        self.root: Child | None = None

    def error(self, message: str, mark: Any, extra: str | int | None = None) -> ConfigError:
        loc = [p for p in (f.path_part() for f in self.stack) if p is not None]
        if extra is not None:
            loc.append(extra)
        path = dotted_path(loc)
        if len(path) > 120:  # a path 100 levels deep says less than its two ends
            path = f"{path[:60]}...{path[-50:]}"
        return ConfigError(message, self.file, mark.line + 1 if mark else 0, path)

    def documents(self, events: Iterator[yaml.Event]) -> Iterator[Document]:
        stack = self.stack
        for event in events:
            kind = type(event)
            if kind is _ScalarEvent:
                scalar: Any = event
                self.add(self.scalar(scalar), scalar.anchor)
            elif kind is _MappingStartEvent or kind is _SequenceStartEvent:
                self.start(event)  # type: ignore[arg-type]
            elif kind in _ENDS:
                frame = stack.pop()
                if frame.anchor is not None:
                    self.open_anchors.discard(frame.anchor)
                self.add(self.finish(frame), frame.anchor)
            elif kind is _AliasEvent:
                self.alias(event)  # type: ignore[arg-type]
            elif kind is _DocumentStartEvent:
                self.documents_seen += 1
                if self.documents_seen > MAX_DOCUMENTS:
                    raise self.error(f"more than {MAX_DOCUMENTS} documents in one file (the limit)",
                                     event.start_mark)
                self.anchors = {}
            if not stack and self.root is not None:
                node, data = self.root[0], self.root[1]
                self.root = None
                if data is not None:
                    yield Document(data, node)

    def add(self, child: Child, anchor: str | None) -> None:
        if anchor is not None:
            self.anchors[anchor] = child
        if not self.stack:
            self.root = child
            return
        frame = self.stack[-1]
        if len(frame.children) >= frame.limit:
            raise self.error(f"more than {MAX_ITEMS} entries in one list or mapping (the limit)",
                             child[0].start_mark)
        frame.children.append(child)

    def alias(self, event: yaml.AliasEvent) -> None:
        name = event.anchor or ""
        if name in self.open_anchors:
            raise self.error(f"alias *{name} is inside the value it names (a recursive alias)", event.start_mark)
        found = self.anchors.get(name)
        if found is None:
            raise self.error(f"alias *{name} has no anchor &{name} before it", event.start_mark)
        _, _, size, height = found
        self.nodes += size
        if self.nodes > MAX_NODES:
            raise self.error(f"aliases and merge keys expand this file to more than {MAX_NODES:,} values "
                             "(the limit)",
                             event.start_mark)
        if len(self.stack) + height > MAX_DEPTH:
            raise self.error(f"alias *{name} nests lists and mappings more than {MAX_DEPTH} levels deep "
                             "(the limit)", event.start_mark)
        self.add(found, None)

    def start(self, event: yaml.CollectionStartEvent) -> None:
        if len(self.stack) >= MAX_DEPTH:
            raise self.error(f"lists and mappings nested more than {MAX_DEPTH} levels deep (the limit)",
                             event.start_mark)
        mapping = type(event) is _MappingStartEvent
        want = MAP if mapping else SEQ
        if event.tag is not None and event.tag not in ("!", want):
            raise self.error(_tag_refusal(event.tag, "a mapping" if mapping else "a list"), event.start_mark)
        start: Any = event.start_mark  # libyaml's Mark class is not yaml.Mark, to the stubs
        node: yaml.MappingNode | yaml.SequenceNode = (_MappingNode if mapping else _SequenceNode)(
            want, [], start, start, flow_style=event.flow_style)
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)
        self.stack.append(_Frame(node, event.anchor, mapping))

    def scalar(self, event: yaml.ScalarEvent) -> Child:
        value = event.value
        if not value.isascii() and _SURROGATE.search(value):
            raise self.error("a lone surrogate (such as \\ud800) is not valid text", event.start_mark)
        tag = event.tag
        resolved = _resolve(value, event.implicit)
        if tag is None or tag == "!":
            tag = resolved if tag is None else STR
        elif tag not in (STR, INT, FLOAT, BOOL, NULL):
            raise self.error(_tag_refusal(tag, "a scalar"), event.start_mark)
        elif tag != STR and _resolve(value, (True, False)) not in (
                (INT, FLOAT) if tag == FLOAT else (tag,)):
            raise self.error(f"{_short(tag)} {value[:40]!r}: not a valid {_short(tag)[2:]}", event.start_mark)
        start: Any = event.start_mark
        node = _ScalarNode(tag, value, start, start, style=event.style)
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.error(f"more than {MAX_NODES:,} values in one file (the limit)", event.start_mark)
        return node, (value if tag == STR else self.scalar_value(node)), 1, 0

    def scalar_value(self, node: yaml.ScalarNode) -> Any:
        if node.tag == NULL:
            return None
        if node.tag == BOOL:
            return _CONSTRUCTOR.construct_yaml_bool(node)
        if node.tag == INT:
            if len(node.value) > MAX_INT_CHARS:
                raise self.error(f"integer longer than {MAX_INT_CHARS} characters (the limit)", node.start_mark)
            return _CONSTRUCTOR.construct_yaml_int(node)
        if node.tag == FLOAT:
            return _CONSTRUCTOR.construct_yaml_float(node)
        return node.value  # str, and the implicit timestamp, `=` and `<<` (outside a key) read as text

    def finish(self, frame: _Frame) -> Child:
        node, children = frame.node, frame.children
        size, height = 1, 0
        data: Any
        if not frame.mapping:
            nodes, data = [], []
            for child, value, child_size, child_height in children:
                nodes.append(child)
                data.append(value)
                size += child_size
                if child_height > height:
                    height = child_height
            node.value = nodes
        else:
            pairs = [(children[i], children[i + 1]) for i in range(0, len(children), 2)]
            node.value = [(key[0], value[0]) for key, value in pairs]
            data = self.mapping(pairs)
            for key, value in pairs:
                size += key[2] + value[2]
                below = value[3]
                if key[0].tag == MERGE and type(key[0]) is _ScalarNode:  # the merged mappings sit one level up
                    if type(value[0]) is _SequenceNode:
                        if not value[0].value:
                            continue
                        below -= 1  # the list of merged mappings is no level of its own either
                    below -= 1
                if below > height:
                    height = below
        self.nodes += 1
        return node, data, size, height + 1

    def mapping(self, pairs: list[tuple[Child, Child]]) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        own: dict[str, Any] = {}
        lines: dict[str, int] = {}
        for (key_node, key, _, _), (value_node, value, _, _) in pairs:
            if key_node.tag == MERGE and isinstance(key_node, yaml.ScalarNode):
                merged = {**self.merge_sources(value_node, value), **merged}
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                what = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
                raise self.error(f"a key must be a string, not a {what}", key_node.start_mark)
            if not isinstance(key, str):
                raise self.error(f"key {key_node.value!r} is read by YAML as {kind_of(key)}; "
                                 f"keys must be strings (quote it: \"{key_node.value}\")", key_node.start_mark)
            if key in own:
                raise self.error(f"duplicate key '{key}' (first at line {lines[key]})", key_node.start_mark, key)
            own[key], lines[key] = value, key_node.start_mark.line + 1
        return {**merged, **own} if merged else own

    def merge_sources(self, node: yaml.Node, value: Any) -> dict[str, Any]:
        """`<<: *a` or `<<: [*a, *b]` (the earlier mapping wins), as YAML's merge key type says."""
        sources = list(zip(node.value, value, strict=True)) if isinstance(node, yaml.SequenceNode) else [
            (node, value)]
        out: dict[str, Any] = {}
        for source_node, source in reversed(sources):
            if not isinstance(source_node, yaml.MappingNode):
                raise self.error(f"a merge key wants a mapping or a list of mappings, not {kind_of(source)}",
                                 source_node.start_mark, "<<")
            out.update(source)
        return out


_FIRST_CHARS = frozenset(_RESOLVER.yaml_implicit_resolvers)  # what a plain scalar starts with to be more than text


def _resolve(value: str, implicit: tuple[bool, bool] | None) -> str:
    """The core-schema tag YAML gives a scalar without an explicit one (`5` is !!int, `"5"` is !!str). Only a
    plain scalar starting with a character some implicit resolver starts with (a digit, `-`, `t`, `~`, ...) can
    be more than !!str: the others are answered without the resolver's regular expressions."""
    if not (implicit and implicit[0]) or (value and value[0] not in _FIRST_CHARS):
        return STR
    tag: str = _RESOLVER.resolve(yaml.ScalarNode, value, implicit)  # type: ignore[no-untyped-call]
    return tag


def _short(tag: str | None) -> str:
    return "!!" + tag.removeprefix(_CORE) if tag and tag.startswith(_CORE) else str(tag)


def _tag_refusal(tag: str | None, what: str) -> str:
    return (f"tag {_short(tag)} on {what} is not allowed: Sensorium constructs no tags "
            "(only !!str, !!int, !!float, !!bool, !!null, !!map and !!seq, matching the value)")
