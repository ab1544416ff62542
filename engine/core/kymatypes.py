"""Kyma's event-type rules (its NATS backend), written once for the legacy publisher and the Subscriptions.

A Kyma event type is `<prefix>.<application>.<event>.<version>` with the prefix `sap.kyma.custom`. The event part
has two or more dot-separated segments; with more than two, all but the last are joined (`Account.Root.Created` ->
`AccountRoot.Created`). Characters other than ASCII letters and digits are removed from the application and from
each segment (`my-app` -> `myapp`). The version is kept as written.
"""

from __future__ import annotations

import re

PREFIX = "sap.kyma.custom"
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")


class KymaTypeError(ValueError):
    """An event name or type that Kyma's rules cannot turn into an event type."""


def clean(name: str) -> str:
    """`name` without the characters Kyma removes (everything but ASCII letters and digits)."""
    return _NOT_ALNUM.sub("", name)


def _event_part(event: str) -> str:
    segments = event.split(".")
    if len(segments) < 2 or not all(segments):
        raise KymaTypeError(f"event {event!r} must have two or more non-empty dot-separated segments "
                            "(e.g. order.created)")
    if len(segments) > 2:
        segments = ["".join(segments[:-1]), segments[-1]]
    cleaned = [clean(s) for s in segments]
    if not all(cleaned):
        raise KymaTypeError(f"event {event!r} has a segment with no letter or digit")
    return ".".join(cleaned)


def legacy_type(application: str, event_type: str, version: str, prefix: str = PREFIX) -> str:
    """The CloudEvent type of a legacy event (`POST /<application>/v1/events` with `event-type` and
    `event-type-version`): `legacy_type("commerce", "order.created", "v1")` is
    `sap.kyma.custom.commerce.order.created.v1`."""
    app = clean(application)
    if not app:
        raise KymaTypeError(f"application {application!r} has no letter or digit")
    if not version or clean(version) != version:
        raise KymaTypeError(f"event-type-version {version!r} must be letters and digits only (e.g. v1)")
    return f"{prefix}.{app}.{_event_part(event_type)}.{version}"


def standard_type(source: str, type_: str, prefix: str = PREFIX) -> str:
    """A v1alpha2 Subscription type under `typeMatching: standard`: `type_` is `<event>.<version>` as the
    application writes it, `source` the application: `standard_type("commerce", "Order.Created.v1")` is
    `sap.kyma.custom.commerce.Order.Created.v1`. A type already carrying the prefix is kept (cleaned)."""
    if type_.startswith(prefix + "."):
        rest = type_[len(prefix) + 1:]
        app, _, tail = rest.partition(".")
        return standard_type(app, tail, prefix)
    event, _, version = type_.rpartition(".")
    if not event:
        raise KymaTypeError(f"type {type_!r} must be <event>.<version>, e.g. order.created.v1")
    return legacy_type(source, event, version, prefix)
