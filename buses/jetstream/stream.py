"""The JetStream stream layout, wire-compatible with Argo Events: stream `default` on subjects `default.*.*`,
Argo's `streamConfig`, event subjects, durable consumer names and the dead-letter stream. No connection here."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from sensorium.buses.base import (
    DEAD_LETTERS,
    EventKey,
)
from sensorium.engine.core import yamlread
from sensorium.engine.core.errors import BusError, ConfigError
from sensorium.engine.goport.duration import cast_to_duration
from sensorium.engine.goport.fnv import fnv32a

log = logging.getLogger("buses.jetstream.bus")



STREAM = "default"
STREAM_SUBJECTS = "default.*.*"
_BAD_TOKEN = re.compile(r"[.*>\s]")
_INTEGER = re.compile(r"[+-]?[0-9]+")


def parse_go_duration(value: object) -> float:
    """Seconds in a Go duration as viper reads it: `"72h"`, `"1h30m"`, `"300s"`; bare numbers are ns."""
    try:
        return cast_to_duration(value) / 1e9
    except ValueError:
        raise ValueError(f"not a Go duration: {value!r}") from None


@dataclass(frozen=True)
class StreamSettings:
    """Argo's `streamConfig` over the controller defaults, except `replicas: 1` (one server cannot hold 3)."""

    max_msgs: int = 50000
    max_age: float = 168 * 3600.0
    max_bytes: int = -1
    replicas: int = 1
    duplicates: float = 300.0
    retention: int = 0
    discard: int = 0

    @classmethod
    def from_yaml(cls, text: str | None) -> StreamSettings:
        """Parse the `streamConfig` YAML string; keys are case-insensitive (viper). Raises ConfigError."""
        if not text or not text.strip():
            return cls()
        try:  # the engine's bounded reader: no tags, no recursion, one-line errors
            docs = yamlread.parse(text, "streamConfig")
        except ConfigError as exc:
            raise ConfigError(f"not valid YAML: {exc.message} (line {exc.line} of the value)",
                              field="streamConfig") from None
        doc = docs[0].data if docs else None
        if doc is None:
            return cls()
        if not isinstance(doc, dict):
            raise ConfigError("must be a YAML mapping", field="streamConfig")
        names = {"maxmsgs": "max_msgs", "maxage": "max_age", "maxbytes": "max_bytes", "replicas": "replicas",
                 "duplicates": "duplicates", "retention": "retention", "discard": "discard"}
        values: dict[str, Any] = {}
        for key, raw in doc.items():
            attr = names.get(str(key).lower())
            if attr is None:
                raise ConfigError(f"unknown key (known: {', '.join(sorted(names))})",
                                  field=f"streamConfig.{key}")
            try:
                if attr in ("max_age", "duplicates"):
                    values[attr] = parse_go_duration(raw)
                elif isinstance(raw, bool) or not isinstance(raw, int | str) or not _INTEGER.fullmatch(str(raw)):
                    raise ValueError(f"not an integer: {raw!r}")
                else:
                    values[attr] = int(raw)
            except ValueError as exc:
                raise ConfigError(str(exc), field=f"streamConfig.{key}") from exc
        settings = cls(**values)
        if settings.retention not in (0, 1, 2):
            raise ConfigError("must be 0 (limits), 1 (interest) or 2 (workqueue)",
                              field="streamConfig.retention")
        if settings.discard not in (0, 1):
            raise ConfigError("must be 0 (old) or 1 (new)", field="streamConfig.discard")
        return settings

    def stream_config(self) -> api.StreamConfig:
        return api.StreamConfig(
            name=STREAM, subjects=[STREAM_SUBJECTS], storage=api.StorageType.FILE,
            retention=[api.RetentionPolicy.LIMITS, api.RetentionPolicy.INTEREST,
                       api.RetentionPolicy.WORK_QUEUE][self.retention],
            discard=[api.DiscardPolicy.OLD, api.DiscardPolicy.NEW][self.discard],
            max_msgs=self.max_msgs, max_age=self.max_age, max_bytes=self.max_bytes,
            num_replicas=self.replicas, duplicate_window=self.duplicates)


def subject_for(key: EventKey) -> str:
    for part in (key.source, key.name):
        if not part or _BAD_TOKEN.search(part):
            raise BusError(f"event key {key.dotted()!r}: eventSourceName and eventName must be non-empty and "
                           "contain no '.', '*', '>' or whitespace on a JetStream bus")
    return f"{STREAM}.{key.source}.{key.name}"


# Dead letters (Bus.publish_dead_letter): their own stream, apart from the events, kept a week, at most
# 100,000 messages or 1 GiB, oldest dropped first; 2 minutes of dedup on the dead letter's id.
DLQ_SUBJECTS = f"{DEAD_LETTERS}.>"
DLQ_SETTINGS = {"max_age": 7 * 24 * 3600.0, "max_msgs": 100_000, "max_bytes": 1 << 30, "duplicate_window": 120.0}


def dead_letter_subject(sensor: str) -> str:
    return f"{DEAD_LETTERS}.{re.sub(r'[^A-Za-z0-9_-]', '_', sensor) or '_'}"


async def ensure_dead_letter_stream(js: JetStreamContext) -> None:
    try:
        await js.stream_info(DEAD_LETTERS)
    except NotFoundError:
        await js.add_stream(api.StreamConfig(
            name=DEAD_LETTERS, subjects=[DLQ_SUBJECTS], storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS, discard=api.DiscardPolicy.OLD, num_replicas=1,
            max_age=DLQ_SETTINGS["max_age"], max_msgs=int(DLQ_SETTINGS["max_msgs"]),
            max_bytes=int(DLQ_SETTINGS["max_bytes"]), duplicate_window=DLQ_SETTINGS["duplicate_window"]))
        log.info("created stream %s (dead letters)", DEAD_LETTERS)


def durable_name(consumer_name: str) -> str:
    """The durable consumer for a ConsumerSpec name: the name itself when NATS accepts it, else a sanitized
    form plus the fnv32a hash of the original (as Argo's `group-<fnv32a>`): stable across restarts and
    distinct for distinct names."""
    if re.fullmatch(r"[A-Za-z0-9_-]{1,200}", consumer_name):
        return consumer_name
    clean = re.sub(r"[^A-Za-z0-9_-]", "_", consumer_name)[:180]
    return f"{clean}-{fnv32a(consumer_name):08x}"
