"""Which sensors an event can affect: the shared intake's dispatch index (engine.intake).

Keyed by the event's `(source, subject)` (a dependency's `eventSourceName`, `eventName`) and then, for a
dependency that has one, by one *necessary condition* its filters impose, in the spirit of AWS EventBridge's rule
matching: an exact context attribute (`filters.context.type`, ...) or the value at a plain gjson path that a
`string` data filter with comparator `=` (or none) tests with literal patterns. Argo's string filters are
unanchored RE2 searches, so a literal `acme` needs the value to *contain* `acme`, `^acme$` to *equal* it, `^acme`
to start with it, `acme$` to end with it; the index answers each of these without trying every sensor (an exact
lookup, a prefix/suffix lookup per distinct length, a substring scan per distinct length or the literals
themselves, whichever is fewer).

The index only narrows: it selects every sensor the stage *might* pass and each selected sensor still runs its full
stage. So a dependency is indexed by a condition only where its failure certainly fails the dependency: filters
combined with `and` (the default), data filters combined with `and` or a single one, no `transform` (it rewrites
the data before the filters run), no `template` on the filter. An event without data passes data filters (Argo),
so it goes to every sensor with a data condition on its key; data that is not JSON goes to them too (the stage
says why it fails). A path missing from the data fails the filter (Argo: an error in `and` mode), so it selects
nobody by that path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.paths import PathExpr
from sensorium.engine.goport.gjson import parse_json
from sensorium.sensors.spec import DataFilter, EventDependency

PLAIN_PATH = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
"""gjson paths indexed: keys separated by dots; no wildcards, escapes, modifiers, queries or `#`."""
_META = set("\\.+*?()|[]{}^$")
NARROW_FROM = 9
"""An event key's listeners are narrowed by their conditions only from this many sensors on: below it every
listener gets the event, so its trace says why it did or did not pass (a sensor the index leaves out has no trace
record of that event). The cost of the full stage for a few sensors is small; at hundreds it dominates."""
MAX_SCAN = 4096  # characters of a value scanned for substrings; a longer value selects every listener of the path

Exact, Prefix, Suffix, Contains = "exact", "prefix", "suffix", "contains"


def literal_pattern(pattern: str) -> tuple[str, str] | None:
    """(mode, literal) when the RE2 `pattern`, searched unanchored, matches exactly the strings that equal /
    start with / end with / contain one literal; None for any other pattern."""
    start = pattern.startswith("^")
    body = pattern[1:] if start else pattern
    end = body.endswith("$") and not body.endswith("\\$")
    if end:
        body = body[:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            if i + 1 >= len(body):
                return None
            nxt = body[i + 1]
            if nxt.isascii() and not nxt.isalnum() and nxt.isprintable() and nxt != " ":
                out.append(nxt)  # an escaped punctuation character is itself
                i += 2
                continue
            return None  # \d, \b, \Q, ... : a class or an assertion
        if ch in _META:
            return None
        out.append(ch)
        i += 1
    literal = "".join(out)
    if start and end:
        return Exact, literal
    if not literal:
        return None  # matches everything
    return (Prefix if start else Suffix if end else Contains), literal


@dataclass(frozen=True)
class Need:
    """A necessary condition of one dependency: the context attribute `name` equals `values[0]`, or the value
    at data path `name` satisfies one of `values` ((mode, literal) pairs)."""

    kind: str  # "context" or "data"
    name: str
    values: tuple[tuple[str, str], ...]


def _data_need(f: DataFilter) -> Need | None:
    if (f.type != "string" or f.comparator not in ("", "=") or f.template or f.json_path or f.jmes_path
            or not f.path or not PLAIN_PATH.fullmatch(f.path) or not f.value):
        return None
    values = [literal_pattern(v) for v in f.value]
    if any(v is None for v in values):
        return None
    return Need("data", f.path, tuple(v for v in values if v is not None))


def need_of(dep: EventDependency) -> Need | None:
    """The condition `dep` is indexed by (see the module), or None: it is selected by its key alone."""
    filters = dep.filters
    if filters is None or dep.transform is not None or dep.filters_logical_operator == "or":
        return None
    data: list[Need] = []
    if filters.data and (filters.data_logical_operator != "or" or len(filters.data) == 1):
        data = [n for n in (_data_need(f) for f in filters.data) if n is not None]
    exact = [n for n in data if all(mode == Exact for mode, _ in n.values)]
    if exact:
        return exact[0]
    ctx = filters.context
    if ctx is not None:
        for name in ("type", "datacontenttype", "source", "subject"):
            value = getattr(ctx, name)
            if value:
                return Need("context", name, ((Exact, value),))
        for name, value in sorted(ctx.extensions.items()):
            if value:
                return Need("context", f"extensions.{name}", ((Exact, value),))
    return data[0] if data else None


def _context_value(event: CloudEvent, name: str) -> str | None:
    if name.startswith("extensions."):
        return event.extensions.get(name[len("extensions."):])
    return str(getattr(event, name))


@dataclass
class _PathIndex:
    expr: PathExpr
    listeners: set[str] = field(default_factory=set)
    exact: dict[str, set[str]] = field(default_factory=dict)
    prefix: dict[int, dict[str, set[str]]] = field(default_factory=dict)
    suffix: dict[int, dict[str, set[str]]] = field(default_factory=dict)
    contains: dict[int, dict[str, set[str]]] = field(default_factory=dict)

    def add(self, sensor: str, values: Iterable[tuple[str, str]]) -> None:
        self.listeners.add(sensor)
        for mode, literal in values:
            if mode == Exact:
                self.exact.setdefault(literal, set()).add(sensor)
            else:
                table = {Prefix: self.prefix, Suffix: self.suffix, Contains: self.contains}[mode]
                table.setdefault(len(literal), {}).setdefault(literal, set()).add(sensor)

    def select(self, value: str, out: set[str]) -> None:
        hit = self.exact.get(value)
        if hit:
            out |= hit
        n = len(value)
        for size, table in self.prefix.items():
            if size <= n and (hit := table.get(value[:size])):
                out |= hit
        for size, table in self.suffix.items():
            if size <= n and (hit := table.get(value[n - size:])):
                out |= hit
        for size, table in self.contains.items():
            if size > n:
                continue
            if n > MAX_SCAN:
                for sensors in table.values():
                    out |= sensors
            elif len(table) < n - size + 1:
                for literal, sensors in table.items():
                    if literal in value:
                        out |= sensors
            else:
                for i in range(n - size + 1):
                    if hit := table.get(value[i:i + size]):
                        out |= hit


@dataclass
class _KeyIndex:
    always: set[str] = field(default_factory=set)
    context: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    paths: dict[str, _PathIndex] = field(default_factory=dict)

    def add(self, sensor: str, need: Need | None) -> None:
        if need is None:
            self.always.add(sensor)
        elif need.kind == "context":
            self.context.setdefault(need.name, {}).setdefault(need.values[0][1], set()).add(sensor)
        else:
            path = self.paths.get(need.name)
            if path is None:
                path = self.paths[need.name] = _PathIndex(PathExpr.compile(path=need.name))
            path.add(sensor, need.values)

    def select(self, event: CloudEvent) -> set[str]:
        out = set(self.always)
        for name, table in self.context.items():
            value = _context_value(event, name)
            if value is not None and (hit := table.get(value)):
                out |= hit
        if not self.paths:
            return out
        doc = None
        if event.data is not None:
            try:
                doc = parse_json(event.data)
            except ValueError:
                doc = None
        for path in self.paths.values():
            if doc is None:  # no data (data filters pass) or not JSON (the stage says why it fails)
                out |= path.listeners
                continue
            result = path.expr.get_value(doc)
            if result.exists:
                path.select(result.string(), out)
        return out


class DispatchIndex:
    """The sensors each event can affect, built from `sensors` (name, dependencies); immutable once built (a
    reload builds a new one)."""

    def __init__(self, sensors: Mapping[str, Sequence[EventDependency]], narrow_from: int = NARROW_FROM) -> None:
        self._keys: dict[tuple[str, str], _KeyIndex] = {}
        self.by_key: dict[str, list[str]] = {}  # `<source>.<name>` -> every sensor listening (dead letters)
        for sensor, deps in sensors.items():
            for dep in deps:
                key = (dep.event_source_name, dep.event_name)
                self._keys.setdefault(key, _KeyIndex()).add(sensor, need_of(dep))
                listening = self.by_key.setdefault(f"{key[0]}.{key[1]}", [])
                if sensor not in listening:
                    listening.append(sensor)

        self._few: dict[tuple[str, str], frozenset[str]] = {
            key: frozenset(listening) for key, listening in
            ((key, self.by_key[f"{key[0]}.{key[1]}"]) for key in self._keys) if len(listening) < narrow_from}

    def select(self, event: CloudEvent) -> set[str]:
        """Every sensor with a dependency `event` may satisfy; a superset of those whose stage passes it (every
        listener of the event's key while there are fewer than NARROW_FROM)."""
        key = (event.source, event.subject)
        few = self._few.get(key)
        if few is not None:
            return set(few)
        index = self._keys.get(key)
        return index.select(event) if index is not None else set()
