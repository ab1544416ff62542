"""Other eventing systems' configuration formats, translated at load into Argo documents (composition root).

A format claims a parsed YAML document by its shape (an `apiVersion`, or a top-level key such as HNS-style
`subscriptions:`) and translates it into the Argo documents it means (`EventSource`, `Sensor`, `EventBus` models
of `engine.documents`). It validates the document in its own field names first, so a problem is reported at the
user's file and line in the user's words (`FILE:LINE: field.path: message`, `engine.core.errors.ConfigError`).
Everything downstream (conditions, retries, traces, metrics, dead letters) then runs the one Argo model, written
once. `sensorium convert FILE...` prints what a file translates to.

A format whose documents refer to one another (a Weik.io EventSubscription names an EventChannel that may be in
another file) keeps what it needs in `state` (one dict per format per load) and builds those documents in
`finish(state)`, called once after every file was read.

`finish(state)` also finds, under `state[LOADED_SOURCES]` (engine.formats.shared, which format modules import
instead of this package), every EventSource loaded so far as (document,
origin) pairs: Argo's own and those other formats' `translate` produced (a Kyma Subscription adds the `kyma`
publisher only when none is loaded; a Weik.io EventSubscription checks that its source exists).

Adding a format: a module in this package with `claims(data) -> bool` and `translate(data, origin, state)`
(and `finish(state)` if it needs one), then one `Format(...)` line in `FORMATS` below.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sensorium.engine.formats.shared import LOADED_SOURCES, Translated

if TYPE_CHECKING:
    from sensorium.engine.core.errors import ConfigError
    from sensorium.engine.located import Origin

__all__ = ["LOADED_SOURCES", "Format", "Translated", "claiming", "formats"]


@dataclass(frozen=True)
class Format:
    """One foreign configuration format. `translate` and `finish` raise ConfigError(s) for invalid documents."""

    name: str
    claims: Callable[[Mapping[str, Any]], bool]
    translate: Callable[[Mapping[str, Any], Origin, dict[str, Any]], Translated]
    finish: Callable[[dict[str, Any]], tuple[Translated, Sequence[ConfigError]]] | None = None
    raw_placeholders: re.Pattern[str] | None = None
    """Documents whose text this matches keep their `${...}` through engine.config's environment substitution:
    the format resolves its own placeholders (Weik.io's `${secret-name}`)."""


def _formats() -> tuple[Format, ...]:
    """The formats Sensorium reads besides Argo's own documents (imported on first use: a load of Argo documents
    only never imports a format module)."""
    from sensorium.engine.formats import eventchannels, hns, kyma, weik_sources

    return (
        Format("kyma", kyma.claims, kyma.translate, kyma.finish),
        Format("weikio-channels", eventchannels.claims, eventchannels.translate, eventchannels.finish),
        Format("hns", hns.claims, hns.translate),
        Format("weik-sources", weik_sources.claims, weik_sources.translate,
               raw_placeholders=weik_sources.DOCUMENT_TEXT),
    )


_LOADED: tuple[Format, ...] | None = None


def formats() -> tuple[Format, ...]:
    global _LOADED
    if _LOADED is None:
        _LOADED = _formats()
    return _LOADED


def claiming(data: Any) -> Format | None:
    """The format that claims `data` (a parsed YAML document), None for Argo's own documents and anything else."""
    if not isinstance(data, Mapping):
        return None
    for fmt in formats():
        if fmt.claims(data):
            return fmt
    return None


_DOCUMENT_START = re.compile(r"^---(?=[ \t]|$)", re.MULTILINE)


def raw_spans(text: str) -> list[tuple[int, int]]:
    """The (start, end) offsets of the YAML documents of `text` whose format resolves its own placeholders
    (`Format.raw_placeholders`, searched in each document's text alone); a text scan, made before parsing."""
    patterns = [fmt.raw_placeholders for fmt in formats() if fmt.raw_placeholders is not None]
    if not patterns:
        return []
    starts = [0, *(m.start() for m in _DOCUMENT_START.finditer(text)), len(text)]
    return [(a, b) for a, b in itertools.pairwise(starts) if any(p.search(text[a:b]) for p in patterns)]
