"""What a source entry may say about the events it publishes, beyond its kind (parts layer): the CloudEvent
attributes it declares (`cloudEvent: {type, source, subject}`), the values lifted from the payload into the event
(`variables`), and a Python `transform(payload)` that reshapes the payload (`transformPayload`).

Weik.io's EventSource documents translate into these (`EventType`, `EventSource`, `Subject`, `Variables`,
`TransformPayload`); Argo-style files may write them too.

Routing stays Argo's: a sensor selects events by the CloudEvent `source` (eventSourceName) and `subject`
(eventName), on the bus and in the sensor stage. So `cloudEvent.type` replaces the event's `type`, while the
declared `source` and `subject` travel as the CloudEvent extension attributes `originsource` and
`originsubject` (filter them with `filters.context.extensions`), as engine.core.origin says: a declared subject
alone keeps the EventSource name as `originsource`.

Variables: each `{sourceColumn, targetVariable}` copies the event data's value at `sourceColumn` (a gjson path; a
plain name is a top-level key; a webhook's data without `bodyAsData` is Argo's `{header, body}`, so `body.id`)
into `variables.<targetVariable>` of the data (the data must be a JSON object; a missing value leaves the key out).
One rule for every kind (`with_variables`; the `postgres` kind reads its values from the changed row): the lifted
values live under one key, so a variable never overwrites the payload's own fields (`row`, `body`, `total`...);
a payload's own `variables` object keeps its other keys. A sensor filters on a variable
(`filters.data: [{path: variables.OrderId, ...}]`) and a trigger parameter reads it (`dataKey: variables.OrderId`).

A transform is trusted code, like the configuration itself. It runs in a thread of its own per entry, within
`TRANSFORM_TIMEOUT` seconds; an exception, a result that is not JSON-serialisable, or the timeout fails that one
event (the caller decides: a webhook answers 500). A transform still running at its timeout keeps its thread until
it returns (Python cannot stop a thread), and the calls behind it time out meanwhile.
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
from pydantic import Field, field_validator

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.origin import declare
from sensorium.engine.core.specbase import ArgoModel
from sensorium.engine.goport import gjson

__all__ = ["TRANSFORM_TIMEOUT", "VARIABLES", "CloudEventAttributes", "EventShape", "Transform", "TransformError",
           "Variable", "check_transform", "compile_transform", "dress", "lift_variables", "with_variables"]

TRANSFORM_TIMEOUT = 2.0
"""Seconds a `transform(payload)` may take for one event."""
MAX_TRANSFORM_SOURCE = 100_000
"""Longest transform source accepted, in characters."""

class CloudEventAttributes(ArgoModel):
    """`cloudEvent`: the attributes an entry declares for its events (Sensorium extension)."""

    type: str | None = Field(default=None, min_length=1, description="The CloudEvent `type` (e.g. "
                             "com.example.orders.created), instead of the kind's name.")
    source: str | None = Field(default=None, min_length=1, description="Declared source, carried as the extension "
                               "attribute `originsource` (`source` stays the eventSourceName sensors route on).")
    subject: str | None = Field(default=None, min_length=1, description="Declared subject, carried as the "
                                "extension attribute `originsubject` (`subject` stays the eventName).")


class Variable(ArgoModel):
    """One value lifted from the payload into the event data."""

    source_column: str = Field(min_length=1, description="gjson path of the value in the payload (a plain name "
                               "is a top-level key).")
    target_variable: str = Field(min_length=1, description="Key under the event data's `variables` that receives "
                                 "it (`variables.<targetVariable>`).")

    @field_validator("target_variable")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
            raise ValueError(f"targetVariable {v[:40]!r} must be a name (letters, digits, _)")
        return v


VARIABLES = "variables"
"""The key of the event data holding the lifted variables (every kind)."""


def with_variables(data: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """`data` (a copy) with `values` under `data["variables"]`, merged into an object already there (a
    non-object there is replaced)."""
    own = data.get(VARIABLES)
    return {**data, VARIABLES: {**own, **values} if isinstance(own, dict) else dict(values)}


def lift_variables(payload: Any, variables: Sequence[Variable]) -> Any:
    """`payload` with each variable's value under `variables.<targetVariable>` (a copy; a non-object is returned
    as is)."""
    if not variables or not isinstance(payload, dict):
        return payload
    text = json.dumps(payload, separators=(",", ":"))
    values = {}
    for var in variables:
        found = gjson.gjson_get(text, var.source_column)
        if found.exists:
            values[var.target_variable] = json.loads(found.raw)
    return with_variables(payload, values)


class EventShape(ArgoModel):
    """The fields any source entry may write to shape its events (Sensorium extension): `cloudEvent` and
    `variables`. Entry models that offer them inherit them from here, so their rule and description are one."""

    cloud_event: CloudEventAttributes | None = Field(default=None, description="Sensorium extension: the "
                                                     "CloudEvent type (and declared source, subject) of its events.")
    variables: list[Variable] | None = Field(default=None, max_length=100, description="Sensorium extension: "
                                             "values of the event data (gjson paths) copied under its "
                                             "`variables` key (`variables.<targetVariable>`).")


def dress(event: CloudEvent, attrs: CloudEventAttributes | None, variables: Sequence[Variable] = ()) -> CloudEvent:
    """`event` with the declared attributes and, when its data is a JSON object, the variables lifted."""
    changes: dict[str, Any] = {}
    if attrs is not None and attrs.type is not None:
        changes["type"] = attrs.type
    if attrs is not None and (attrs.source is not None or attrs.subject is not None):
        # the declared producer (engine.core.origin's rule); routing stays the EventSource's
        changes["extensions"] = declare(event, attrs.source or event.source, attrs.subject).extensions
    if variables and event.data is not None:
        try:
            payload = json.loads(event.data)
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            lifted = lift_variables(payload, variables)
            changes["data"] = json.dumps(lifted, separators=(",", ":"), ensure_ascii=False).encode()
    return msgspec.structs.replace(event, **changes) if changes else event


class TransformError(Exception):
    """A transform failed for one event (the message says how, cut to `MAX_REASON` characters)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split())[:MAX_REASON])


MAX_REASON = 300


def check_transform(source: str, where: str = "transformPayload") -> None:
    """ValueError unless Python `source` compiles and defines `transform` at its top level; runs nothing (load
    and `sensorium validate` execute no user code)."""
    if len(source) > MAX_TRANSFORM_SOURCE:
        raise ValueError(f"{where}: longer than {MAX_TRANSFORM_SOURCE} characters")
    try:
        tree = ast.parse(source, f"<{where}>")
    except SyntaxError as exc:
        raise ValueError(f"{where}: line {exc.lineno}: {exc.msg}") from None
    if not any(isinstance(node, ast.FunctionDef) and node.name == "transform" for node in tree.body):
        raise ValueError(f"{where}: defines no function transform(payload)")


def compile_transform(source: str, where: str = "transformPayload") -> Callable[[Any], Any]:
    """The `transform` function defined by Python `source` (checked as `check_transform` does); runs the
    module's top level once (trusted code). ValueError when that raises."""
    check_transform(source, where)
    code = compile(source, f"<{where}>", "exec")
    namespace: dict[str, Any] = {"__name__": f"sensorium_{where}"}
    try:
        exec(code, namespace)
    except Exception as exc:
        raise ValueError(f"{where}: running its top level raised {type(exc).__name__}: {exc}") from None
    func = namespace.get("transform")
    if not callable(func):
        raise ValueError(f"{where}: defines no function transform(payload)")
    return func  # type: ignore[no-any-return]


class Transform:
    """A compiled `transform(payload)`, run off the event loop in its own thread, bounded by `timeout`."""

    def __init__(self, source: str, timeout: float = TRANSFORM_TIMEOUT, where: str = "transformPayload") -> None:
        self.func = compile_transform(source, where)
        self.timeout = timeout
        self._pool: ThreadPoolExecutor | None = None

    def _run(self, payload: Any) -> bytes:
        result = self.func(payload)
        return json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode()

    async def __call__(self, payload: Any) -> bytes:
        """The transformed payload as JSON bytes; TransformError when it raised, timed out or is not JSON."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sensorium-transform")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                return await loop.run_in_executor(self._pool, self._run, payload)
        except TimeoutError:
            raise TransformError(f"transform did not return within {self.timeout:g}s") from None
        except (TypeError, ValueError) as exc:
            if "JSON serializable" in str(exc) or "Circular" in str(exc):
                raise TransformError(f"transform returned a value that is not JSON: {exc}") from None
            raise TransformError(f"transform raised {type(exc).__name__}: {exc}") from None
        except Exception as exc:
            raise TransformError(f"transform raised {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
