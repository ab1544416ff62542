"""Setting a value at an sjson path inside JSON text (tidwall/sjson v1.2.5 `SetBytes` / `SetRawBytes`).

There is no Python port of tidwall/sjson (PyPI `sjson` is an unrelated format), and parse-modify-dump would
not give Argo's bytes: sjson edits the text in place, so untouched numbers (`1e3`, `1.0`), string escapes and
key order stay exactly as they were, and new keys are appended as `,"k":v`. This module follows sjson's
algorithm (`parsePath`, `appendRawPaths`, `appendBuild`, `appendStringify`) over the text: missing
intermediate objects are created, a numeric key creates/extends arrays (padding with null), `-1` appends,
`:12` forces an object key, `\\.` escapes a dot, a scalar in the way is replaced by an object or array, an
empty path is an error. Paths with gjson query/wildcard/modifier characters (`|#@*?`), which sjson routes
through a full gjson lookup, are rejected with an error instead.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from sensorium.engine.goport.jsonenc import marshal_string

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_STRUCT = re.compile(r'["\[\]{}]')
_SCALAR_END = re.compile(r"[,\]}\s]")
_COMPLEX = frozenset("|#@*?")


class SjsonError(ValueError):
    pass


@dataclass(frozen=True)
class _Part:
    part: str  # key with escapes removed (what gets written)
    gpart: str  # key as gjson reads it (escapes kept)
    force: bool  # leading ':' forces an object key


def set_string(doc: str, path: str, value: str) -> str:
    """sjson `SetBytes(doc, path, value)` with a Go string: the value is written as a JSON string."""
    return _set(doc, path, value, stringify=True)


def set_raw(doc: str, path: str, raw: str) -> str:
    """sjson `SetRawBytes(doc, path, raw)`: `raw` is inserted verbatim as JSON."""
    return _set(doc, path, raw, stringify=False)


def _set(doc: str, path: str, raw: str, stringify: bool) -> str:
    if path == "":
        raise SjsonError("path cannot be empty")
    try:
        parts = _parse_path(path)
    except _ComplexPath:
        raise SjsonError(f"path '{path}' uses gjson query, wildcard or modifier syntax (|#@*?), "
                         "which is not supported") from None
    return _append_raw_paths(doc, parts, raw, stringify)


def _parse_path(path: str) -> list[_Part]:
    parts: list[_Part] = []
    rest: str | None = path
    while rest is not None:
        part, rest = _parse_one(rest)
        parts.append(part)
    return parts


class _ComplexPath(Exception):
    pass


def _parse_one(path: str) -> tuple[_Part, str | None]:
    force = path.startswith(":")
    if force:
        path = path[1:]
    i = 0
    while i < len(path):
        c = path[i]
        if c == ".":
            return _Part(path[:i], path[:i], force), path[i + 1:]
        if c in _COMPLEX:
            raise _ComplexPath
        if c == "\\":
            epart, gpart = list(path[:i]), list(path[:i + 1])
            i += 1
            if i < len(path):
                epart.append(path[i])
                gpart.append(path[i])
                i += 1
                while i < len(path):
                    c = path[i]
                    if c == "\\":
                        gpart.append("\\")
                        i += 1
                        if i < len(path):
                            epart.append(path[i])
                            gpart.append(path[i])
                        i += 1
                        continue
                    if c == ".":
                        return _Part("".join(epart), "".join(gpart), force), path[i + 1:]
                    if c in _COMPLEX:
                        raise _ComplexPath
                    epart.append(c)
                    gpart.append(c)
                    i += 1
            return _Part("".join(epart), "".join(gpart), force), None
        i += 1
    return _Part(path, path, force), None


def _atoui(part: _Part) -> tuple[int, bool]:
    if part.force or not all("0" <= ch <= "9" for ch in part.part):
        return 0, False
    return (int(part.part) if part.part else 0), True


_ESCAPED = re.compile(r'[\x00-\x1f"\\]')


def _stringify(s: str) -> str:
    """A Go string as JSON: quoted as it is when it is printable ASCII without `"` or `\\`, else Go's encoding."""
    if not s.isascii() or _ESCAPED.search(s):
        return marshal_string(s)
    return '"' + s + '"'


def _build(array: bool, paths: list[_Part], raw: str, stringify: bool) -> str:
    out = "" if array else _stringify(paths[0].part) + ":"
    if len(paths) > 1:
        n, numeric = _atoui(paths[1])
        if numeric or (not paths[1].force and paths[1].part == "-1"):
            return out + "[" + "null," * n + _build(True, paths[1:], raw, stringify) + "]"
        return out + "{" + _build(False, paths[1:], raw, stringify) + "}"
    return out + (_stringify(raw) if stringify else raw)


def _ws(s: str, i: int) -> int:
    while i < len(s) and s[i] <= " ":
        i += 1
    return i


def _value_end(s: str, i: int) -> int:
    c = s[i]
    if c == '"':
        m = _STRING.match(s, i)
        return m.end() if m else len(s)
    if c in "{[":
        depth, j = 0, i
        while True:
            m = _STRUCT.search(s, j)
            if m is None:
                return len(s)
            ch = m.group()
            if ch == '"':
                sm = _STRING.match(s, m.start())
                j = sm.end() if sm else len(s)
                continue
            depth += 1 if ch in "{[" else -1
            j = m.end()
            if depth == 0:
                return j
    m = _SCALAR_END.search(s, i)
    return m.start() if m else len(s)


def _members(s: str, i: int) -> list[tuple[str, int, int]]:
    """(decoded key, value start, value end) of the object opening at s[i]."""
    out: list[tuple[str, int, int]] = []
    j = i + 1
    while True:
        j = _ws(s, j)
        if j >= len(s) or s[j] == "}":
            return out
        if s[j] == ",":
            j += 1
            continue
        if s[j] != '"':
            return out
        kend = _value_end(s, j)
        try:
            key = json.loads(s[j:kend])
        except ValueError:
            key = s[j + 1:kend - 1]
        j = _ws(s, kend)
        if j < len(s) and s[j] == ":":
            j = _ws(s, j + 1)
        if j >= len(s):
            return out
        vend = _value_end(s, j)
        out.append((key, j, vend))
        j = vend


def _elements(s: str, i: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    j = i + 1
    while True:
        j = _ws(s, j)
        if j >= len(s) or s[j] == "]":
            return out
        if s[j] == ",":
            j += 1
            continue
        end = _value_end(s, j)
        out.append((j, end))
        j = end


def _unescape(gpart: str) -> str:
    return re.sub(r"\\(.)", r"\1", gpart, flags=re.S)


def _lookup(s: str, gpart: str) -> tuple[int, int] | None:
    """gjson `Get(s, gpart)` for one simple key: the span of the value, None when it does not exist."""
    i = _ws(s, 0)
    if i >= len(s):
        return None
    if s[i] == "{":
        key = _unescape(gpart)
        return next(((a, b) for k, a, b in _members(s, i) if k == key), None)
    if s[i] == "[":
        if not gpart or not gpart.isascii() or not gpart.isdigit():
            return None
        elements = _elements(s, i)
        index = int(gpart)
        return elements[index] if index < len(elements) else None
    return None


def _append_raw_paths(jstr: str, paths: list[_Part], raw: str, stringify: bool) -> str:
    found = _lookup(jstr, paths[0].gpart)
    if found is not None:
        start, end = found
        if len(paths) > 1:
            return jstr[:start] + _append_raw_paths(jstr[start:end], paths[1:], raw, stringify) + jstr[end:]
        return jstr[:start] + (_stringify(raw) if stringify else raw) + jstr[end:]
    n, numeric = _atoui(paths[0])
    k = _ws(jstr, 0)
    if k >= len(jstr) or jstr[k] not in "{[":
        jstr, k = ("[]" if numeric else "{}"), 0
    body = jstr[k:]
    j = _ws(body, 1)
    comma = j < len(body) and body[j] not in "}]"
    if body[0] == "{":
        end = max(body.rfind("}"), 0)
        return body[:end] + ("," if comma else "") + _build(False, paths, raw, stringify) + "}"
    if not numeric:
        if paths[0].part == "-1" and not paths[0].force:
            trimmed = body.rstrip("".join(chr(c) for c in range(33)))
            if trimmed.endswith("]"):
                trimmed = trimmed[:-1]
            return trimmed + ("," if comma else "") + _build(True, paths, raw, stringify) + "]"
        raise SjsonError(f"cannot set array element for non-numeric key '{paths[0].part}'")
    elements = _elements(body, 0)
    out = "[" + ",".join(body[a:b] for a, b in elements)
    if not elements:
        out += "null," * n
    else:
        out += ",null" * (n - len(elements))
        if comma:
            out += ","
    return out + _build(True, paths, raw, stringify) + "]"


# ---- compiled paths: many sets into a new document, decided once ------------------------------------------
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


class ObjectPlan:
    """The document a sequence of sjson sets builds from nothing, when every path is a chain of plain object
    keys (letters, digits, `_`, `-`; not starting with a digit or `-`) and no path is another's prefix or
    repeats it: then sjson's result is a tree of objects whose members appear in the order of their first set,
    so it can be rendered at once instead of edited set by set. `compile` returns None for any other set of
    paths (callers then use `set_string`/`set_raw` one by one)."""

    def __init__(self, paths: tuple[tuple[str, ...], ...]) -> None:
        self.paths = paths
        self._flat = all(len(p) == 1 for p in paths)
        self._keys = tuple('"' + p[-1] + '":' for p in paths)

    @classmethod
    def compile(cls, paths: list[str]) -> ObjectPlan | None:
        split: list[tuple[str, ...]] = []
        for path in paths:
            parts = tuple(path.split("."))
            if not all(_PLAIN_KEY.match(p) for p in parts):
                return None
            split.append(parts)
        for i, a in enumerate(split):
            for b in split[i + 1:]:
                shorter = min(len(a), len(b))
                if a[:shorter] == b[:shorter]:
                    return None  # the same path twice, or one inside another's value
        return cls(tuple(split))

    def render(self, values: list[tuple[int, str, bool]]) -> str:
        """The document after setting, in order, value `text` at path number `index` for each `(index, text,
        stringify)`: `stringify` as `set_string`, else as `set_raw`. No values: the empty document ""."""
        if not values:
            return ""
        if self._flat:
            keys = self._keys
            return "{" + ",".join(keys[i] + (_stringify(v) if s else v) for i, v, s in values) + "}"
        tree: dict[str, object] = {}
        for index, value, stringify in values:
            node = tree
            path = self.paths[index]
            for part in path[:-1]:
                child = node.get(part)
                if child is None:
                    child = node[part] = {}
                assert isinstance(child, dict)
                node = child
            node[path[-1]] = _stringify(value) if stringify else value
        return _render_tree(tree)


def _render_tree(tree: dict[str, object]) -> str:
    return "{" + ",".join('"' + k + '":' + (v if isinstance(v, str) else _render_tree(v))  # type: ignore[arg-type]
                          for k, v in tree.items()) + "}"
