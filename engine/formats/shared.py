"""What the format modules share with the loader (engine.formats re-exports it; a format module imports it from
here, so that no format module imports the package that imports it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sensorium.engine.located import Origin

LOADED_SOURCES = "sensorium.loaded_sources"
"""The key of `state` under which `finish(state)` finds the EventSources loaded so far, as (document, origin)
pairs: Argo's own and those other formats' `translate` produced."""

Translated = list[tuple[Any, "Origin"]]
"""Argo documents (models) and the origin each one's problems point at (usually the foreign document's)."""
