"""Weik.io EventSource documents (`apiVersion: weik.io/v1` or `weik.io/v1alpha1`, `kind: EventSource`), translated
at load into Argo EventSources (composition root; the seam is `engine.formats`).

A Weik.io EventSource named X becomes the Argo EventSource X with one event, also named X: a sensor depends on
it as `eventSourceName: X, eventName: X`. `spec.Type` chooses the kind the event is served by:

- `webhook` -> `webhook` with `bodyAsData` (the data is the JSON body, as Weik.io's): `Path` -> `endpoint`,
  `Port` (a Sensorium addition, default 12000), `Method` (default POST), `Secret` + `ValidateSignature: "true"` ->
  `signature: {type: hmac}` (header `X-Signature`: hex HMAC-SHA256 of the body), `AllowedIPs` ->
  `allowedNetworks`, `TransformPayload` -> `transformPayload`;
- `http-poll` -> `httpPoll`: `Url`, `Method`, `Headers` (a JSON object; a value that is exactly `${name}` becomes
  a secure header), `PollingInterval` (seconds), `ResponsePath`, plus Sensorium's `KeyPath`;
- `file-watch` -> `fileWatch`: `Path`, `Pattern`, `IncludeSubdirectories`, `NotifyFilters`;
- `database` -> the PostgreSQL kind, through `sources.postgres.from_weik(parameters, variables)`;
- `custom` -> `python`: `Implementation` (relative to the document's file), every other parameter passed to
  `events(params)` (a value that is exactly `${name}` is read from that secret at start), `Requirements`.

`EventType` becomes the CloudEvent `type`; `EventSource` and `Subject` the extension attributes `originsource`
and `originsubject` (`sources.eventshape`: the CloudEvent `source`/`subject` stay X, which sensors route on).
`Variables` (`SourceColumn` -> `TargetVariable`) become `variables.<TargetVariable>` in the event data.

Placeholders, in Parameters values: `{{sys:NAME}}` is the environment variable NAME, read at load; `${name}` is the
secret `name`, read when the source starts from `<secrets-dir>/<name>/value` or `SENSORIUM_SECRET_<NAME>_VALUE`.
It is kept as a secret reference in the translation (so `sensorium convert` never prints it), which only the
secret-holding parameters can be: `Secret`, `Password`, a `Headers` value, a `custom` parameter, each written as
exactly `${name}`. A `${name}` anywhere else, a literal `Secret`, and an unset `{{sys:NAME}}` are load errors at
their line. Such documents keep their `${...}` through the environment substitution Argo files get.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sensorium.engine.core.errors import ConfigError
from sensorium.engine.documents import EventSource
from sensorium.engine.located import ConfigErrors, Origin, validate_model
from sensorium.engine.suggest import closest

__all__ = ["DEFAULT_WEBHOOK_PORT", "DOCUMENT_TEXT", "SECRET_KEY", "claims", "translate"]

API_VERSIONS = ("weik.io/v1", "weik.io/v1alpha1")
DOCUMENT_TEXT = re.compile(r"\A(?=.*?^apiVersion:[ \t]*[\"']?weik\.io/)"
                           r"(?!.*?^kind:[ \t]*[\"']?Event(?:Channel|Subscription)\b)", re.MULTILINE | re.DOTALL)
"""A document's text that is a Weik.io one other than an EventChannel or EventSubscription (its `${name}` are
secrets, not environment variables; Weik.io's channels and subscriptions keep the environment substitution)."""
DEFAULT_WEBHOOK_PORT = 12000
"""The port of a Weik.io webhook without a `Port` parameter (Weik.io serves every webhook on its one host port)."""
SECRET_KEY = "value"
"""The key of the secret a `${name}` placeholder names: `<secrets-dir>/<name>/value`."""
SIGNATURE_HEADER = "X-Signature"

_SECRET = re.compile(r"^\$\{([A-Za-z0-9_.-]{1,253})\}$")
_ANY_SECRET = re.compile(r"\$\{[^}]*\}")
_SYS = re.compile(r"\{\{sys:([A-Za-z_][A-Za-z0-9_]*)\}\}")


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


class _WeikModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              alias_generator=_pascal)


class WeikVariable(_WeikModel):
    source_column: str = Field(min_length=1)
    target_variable: str = Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


Scalar = str | bool | int | float


class WeikSpec(_WeikModel):
    type: Literal["webhook", "http-poll", "database", "file-watch", "custom"]
    event_type: str = Field(min_length=1)
    event_source: str = Field(min_length=1)
    subject: str | None = None
    parameters: dict[str, Scalar] = Field(default_factory=dict, max_length=1000)
    variables: list[WeikVariable] = Field(default_factory=list, max_length=100)
    requirements: dict[str, str] = Field(default_factory=dict, max_length=100)


class WeikMetadata(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,253}", v):
            raise ValueError(f"metadata.name {v[:60]!r}: letters, digits, '-' and '_' only (it names the "
                             "Argo EventSource and its event; no placeholders)")
        return v


class WeikEventSource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    api_version: Literal["weik.io/v1", "weik.io/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["EventSource"]
    metadata: WeikMetadata
    spec: WeikSpec


def claims(data: Mapping[str, Any]) -> bool:
    return data.get("apiVersion") in API_VERSIONS and data.get("kind") == "EventSource"


PARAMETERS: dict[str, tuple[str, ...]] = {
    "webhook": ("Path", "Port", "Method", "Secret", "ValidateSignature", "AllowedIPs", "TransformPayload"),
    "http-poll": ("Url", "Method", "Headers", "PollingInterval", "ResponsePath", "KeyPath"),
    "file-watch": ("Path", "Pattern", "IncludeSubdirectories", "NotifyFilters", "Polling"),
    "database": ("DatabaseType", "Host", "Port", "Database", "Username", "Password", "Schema", "Table",
                 "TrackInserts", "TrackUpdates", "TrackDeletes", "PollingInterval"),
}
REQUIRED: dict[str, tuple[str, ...]] = {"webhook": ("Path",), "http-poll": ("Url",), "file-watch": ("Path",),
                                        "custom": ("Implementation",)}
SECRET_PARAMETERS = {"Secret", "Password"}


class _Doc:
    """One Weik.io document being translated: its problems, each at its line, in Weik.io's field names."""

    def __init__(self, origin: Origin, params: Mapping[str, Scalar]) -> None:
        self.origin = origin
        self.errors: list[ConfigError] = []
        self.params = {k: _text(v) for k, v in params.items()}

    def error(self, loc: list[str | int], message: str) -> None:
        line, path = self.origin.locate(loc)
        self.errors.append(ConfigError(message, self.origin.file, line, path))

    def param(self, name: str, default: str | None = None) -> str | None:
        """A parameter's value with `{{sys:NAME}}` resolved; a `${...}` in it is an error (not a secret field)."""
        value = self.params.get(name)
        if value is None:
            return default
        if _ANY_SECRET.search(value):
            self.error(["spec", "Parameters", name], "a ${name} secret placeholder can only be the whole value of "
                       "Secret, Password, a Headers value or a custom parameter")
            return default
        before = len(self.errors)
        resolved = self.sys(name, value)
        return default if len(self.errors) > before else resolved

    def sys(self, name: str, value: str) -> str:
        def repl(match: re.Match[str]) -> str:
            env = os.environ.get(match.group(1))
            if env is None:
                self.error(["spec", "Parameters", name], f"environment variable {match.group(1)} of "
                           f"{{{{sys:{match.group(1)}}}}} is not set")
                return ""
            return env
        return _SYS.sub(repl, value)

    def secret(self, name: str) -> dict[str, str] | None:
        """The secret reference a `${name}` parameter names; an error for a literal value."""
        value = self.params.get(name)
        if value is None:
            return None
        found = _SECRET.match(value)
        if found is None:
            self.error(["spec", "Parameters", name], f"{name} must be a secret placeholder ${{name}} (read from "
                       f"<secrets-dir>/<name>/{SECRET_KEY}), not a literal: secrets stay out of files")
            return None
        return {"name": found.group(1), "key": SECRET_KEY}

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.param(name)
        if value is None:
            return default
        if value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        self.error(["spec", "Parameters", name], f"{name} must be \"true\" or \"false\", got {value[:40]!r}")
        return default

    def number(self, name: str) -> float | None:
        value = self.param(name)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not number > 0 or number != number or number > 1e9:
            self.error(["spec", "Parameters", name], f"{name} must be a positive number of seconds, got "
                       f"{value[:40]!r}")
            return None
        return number


def _text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def translate(data: Mapping[str, Any], origin: Origin, state: dict[str, Any]) -> list[tuple[Any, Origin]]:
    """The Argo EventSource a Weik.io EventSource means (ConfigErrors in Weik.io's field names otherwise)."""
    weik: WeikEventSource = validate_model(WeikEventSource, data, origin)
    spec = weik.spec
    doc = _Doc(origin, spec.parameters)
    known = PARAMETERS.get(spec.type)
    if known is not None:
        for name in doc.params:
            if name not in known:
                guess = closest(name, list(known))
                hint = f"; did you mean {guess}?" if guess else f" for Type {spec.type} (known: {', '.join(known)})"
                doc.error(["spec", "Parameters", name], f"unknown parameter{hint}")
    for name in REQUIRED.get(spec.type, ()):
        if name not in doc.params:
            doc.error(["spec", "Parameters"], f"Parameters.{name} is required for Type {spec.type}")
    if spec.requirements and spec.type != "custom":
        doc.error(["spec", "Requirements"], "Requirements apply to Type custom only")
    name = weik.metadata.name
    entry: tuple[str, dict[str, Any]] | None = None
    if not doc.errors:
        entry = _ENTRIES[spec.type](doc, spec, origin)
    if doc.errors or entry is None:
        raise ConfigErrors(doc.errors or [ConfigError("cannot translate this document", origin.file, origin.line)])
    kind, body = entry
    cloud_event: dict[str, str] = {"type": spec.event_type, "source": spec.event_source}
    if spec.subject:
        cloud_event["subject"] = spec.subject
    body["cloudEvent"] = cloud_event
    if spec.variables and kind != "postgres":
        body["variables"] = [{"sourceColumn": v.source_column, "targetVariable": v.target_variable}
                             for v in spec.variables]
    metadata: dict[str, Any] = {"name": name}
    labels = (weik.metadata.model_extra or {}).get("labels")
    if isinstance(labels, dict):
        metadata["labels"] = labels
    argo = {"apiVersion": "argoproj.io/v1alpha1", "kind": "EventSource", "metadata": metadata,
            "spec": {kind: {name: body}}}
    return [(validate_model(EventSource, argo, origin), origin)]


def _webhook(doc: _Doc, spec: WeikSpec, origin: Origin) -> tuple[str, dict[str, Any]]:
    body: dict[str, Any] = {"endpoint": doc.param("Path"), "port": doc.param("Port", str(DEFAULT_WEBHOOK_PORT)),
                            "method": _method(doc, ("GET", "POST", "PUT", "PATCH", "DELETE"), "POST"),
                            "bodyAsData": True}
    path = body["endpoint"]
    if path is not None and not path.startswith("/"):
        doc.error(["spec", "Parameters", "Path"], f"Path must start with '/', got {path[:60]!r}")
    port = body["port"]
    if port is not None and (not port.isdigit() or not 1 <= int(port) <= 65535):
        doc.error(["spec", "Parameters", "Port"], f"Port must be a TCP port 1-65535, got {port[:20]!r}")
    if doc.flag("ValidateSignature"):
        if "Secret" not in doc.params:
            doc.error(["spec", "Parameters", "ValidateSignature"], "ValidateSignature needs Parameters.Secret")
        secret = doc.secret("Secret")
        if secret is not None:
            body["signature"] = {"type": "hmac", "secret": secret, "header": SIGNATURE_HEADER,
                                 "algorithm": "sha256", "encoding": "hex"}
    elif "Secret" in doc.params:
        doc.secret("Secret")  # still never a literal
    networks = doc.param("AllowedIPs")
    if networks is not None:
        body["allowedNetworks"] = [n.strip() for n in networks.split(",") if n.strip()]
        if not body["allowedNetworks"]:
            doc.error(["spec", "Parameters", "AllowedIPs"], "AllowedIPs is empty (it would refuse every client): "
                      "list CIDR networks, or leave it out to allow any")
        _check_networks(doc, body["allowedNetworks"])
    transform = doc.params.get("TransformPayload")
    if transform is not None:
        from sensorium.sources.eventshape import check_transform

        try:
            check_transform(transform, "TransformPayload")
        except ValueError as exc:
            doc.error(["spec", "Parameters", "TransformPayload"], str(exc))
        body["transformPayload"] = transform
    return "webhook", body


def _method(doc: _Doc, allowed: tuple[str, ...], default: str) -> str:
    method = (doc.param("Method") or default).upper()
    if method not in allowed:
        doc.error(["spec", "Parameters", "Method"], f"Method must be one of {', '.join(allowed)}, got {method[:20]!r}")
        return default
    return method


def _check_networks(doc: _Doc, networks: list[str]) -> None:
    import ipaddress

    for net in networks:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            doc.error(["spec", "Parameters", "AllowedIPs"], f"AllowedIPs: {net[:60]!r} is not a CIDR network "
                      "(e.g. 10.0.0.0/8)")


def _http_poll(doc: _Doc, spec: WeikSpec, origin: Origin) -> tuple[str, dict[str, Any]]:
    body: dict[str, Any] = {"url": doc.param("Url"), "method": _method(doc, ("GET", "POST"), "GET")}
    url = body["url"]
    if url is not None and not re.match(r"^https?://[^/?#\s]+", url):
        doc.error(["spec", "Parameters", "Url"], f"Url must be an http:// or https:// URL with a host, got "
                  f"{url.split('?')[0][:80]!r}")
    interval = doc.number("PollingInterval")
    if interval is not None and interval < 0.1:
        doc.error(["spec", "Parameters", "PollingInterval"], f"PollingInterval must be at least 0.1 seconds, got "
                  f"{interval:g}")
    elif interval is not None:
        body["pollingInterval"] = f"{interval:g}s"
    for weik_name, argo_name in (("ResponsePath", "responsePath"), ("KeyPath", "keyPath")):
        value = doc.param(weik_name)
        if value is not None:
            body[argo_name] = value
    raw = doc.params.get("Headers")
    if raw is not None:
        try:
            headers = json.loads(doc.sys("Headers", raw))
        except ValueError:
            headers = None
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            doc.error(["spec", "Parameters", "Headers"], "Headers must be a JSON object of strings, e.g. "
                      "'{\"Accept\": \"application/json\"}'")
        else:
            plain = {k: v for k, v in headers.items() if not _ANY_SECRET.search(v)}
            secure = []
            for key, value in headers.items():
                if key in plain:
                    continue
                found = _SECRET.match(value)
                if found is None:
                    doc.error(["spec", "Parameters", "Headers"], f"Headers.{key}: a ${{name}} secret must be the "
                              "whole header value (put 'Bearer ...' in the secret)")
                    continue
                secure.append({"name": key, "valueFrom": {"secretKeyRef": {"name": found.group(1),
                                                                           "key": SECRET_KEY}}})
            if plain:
                body["headers"] = plain
            if secure:
                body["secureHeaders"] = secure
    return "httpPoll", body


def _file_watch(doc: _Doc, spec: WeikSpec, origin: Origin) -> tuple[str, dict[str, Any]]:
    path = doc.param("Path") or ""
    if not os.path.isabs(path):
        path = str((Path(origin.file).parent / path).resolve())
    body: dict[str, Any] = {"path": path, "includeSubdirectories": doc.flag("IncludeSubdirectories"),
                            "polling": doc.flag("Polling")}
    pattern = doc.param("Pattern")
    if pattern:
        body["pattern"] = pattern
    filters = doc.param("NotifyFilters")
    if filters is not None:
        wanted = [f.strip() for f in filters.split(",") if f.strip()]
        allowed = ("Created", "Modified", "Deleted")
        bad = [f for f in wanted if f not in allowed]
        if bad or not wanted:
            doc.error(["spec", "Parameters", "NotifyFilters"], f"NotifyFilters: {', '.join(bad) or 'empty'}: want "
                      "a comma-separated list of Created, Modified, Deleted")
        body["notifyFilters"] = wanted
    return "fileWatch", body


def _custom(doc: _Doc, spec: WeikSpec, origin: Origin) -> tuple[str, dict[str, Any]]:
    from sensorium.sources.custom import check_implementation, check_requirements

    implementation = doc.param("Implementation") or ""
    if not os.path.isabs(implementation):
        implementation = str((Path(origin.file).parent / implementation).resolve())
    try:
        check_implementation(implementation)
    except ValueError as exc:
        doc.error(["spec", "Parameters", "Implementation"], str(exc))
    for package, wanted in spec.requirements.items():
        try:
            check_requirements({package: wanted})
        except ValueError as exc:
            doc.error(["spec", "Requirements", package], str(exc))
    parameters: dict[str, str] = {}
    secrets: dict[str, dict[str, str]] = {}
    for key, value in doc.params.items():
        if key == "Implementation":
            continue
        found = _SECRET.match(value)
        if found is not None:
            secrets[key] = {"name": found.group(1), "key": SECRET_KEY}
        else:
            resolved = doc.param(key)
            if resolved is not None:
                parameters[key] = resolved
    body: dict[str, Any] = {"implementation": implementation, "parameters": parameters}
    if secrets:
        body["secretParameters"] = secrets
    if spec.requirements:
        body["requirements"] = dict(spec.requirements)
    return "python", body


def _database(doc: _Doc, spec: WeikSpec, origin: Origin) -> tuple[str, dict[str, Any]]:
    from sensorium.sources.postgres import from_weik
    parameters: dict[str, str] = {}
    for key in doc.params:
        if key in SECRET_PARAMETERS:
            parameters[key] = doc.params[key]
            doc.secret(key)
        else:
            parameters[key] = doc.param(key) or ""
    variables = [{"SourceColumn": v.source_column, "TargetVariable": v.target_variable} for v in spec.variables]
    try:
        body = dict(from_weik(parameters, variables, secret_ref=lambda name: {"name": name, "key": SECRET_KEY}))
    except ConfigError as exc:
        doc.error(["spec", "Parameters"], exc.message)
        return "postgres", {}
    except ValueError as exc:
        doc.error(["spec", "Parameters"], str(exc))
        return "postgres", {}
    for key, value in list(body.items()):  # a `${name}` the mapping passed through is a secret reference
        if isinstance(value, str) and _SECRET.match(value):
            found = _SECRET.match(value)
            assert found is not None
            body[key] = {"name": found.group(1), "key": SECRET_KEY}
    return "postgres", body


_ENTRIES: dict[str, Callable[[_Doc, WeikSpec, Origin], tuple[str, dict[str, Any]]]] = {
    "webhook": _webhook, "http-poll": _http_poll, "file-watch": _file_watch, "custom": _custom,
    "database": _database,
}
