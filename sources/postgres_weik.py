"""Weik.io's `database` EventSource Parameters as the `postgres` kind's spec (`from_weik`), for the Weik.io format.

Weik.io writes every parameter as a string (`Port: "5432"`, `TrackInserts: "true"`, `PollingInterval: "5"` in
seconds). `from_weik(parameters, variables)` checks them in Weik.io's own names and returns what one
`spec.postgres.<eventName>` entry holds (camelCase, as written in YAML), or raises WeikParameterError naming the
parameter (its `parameter` attribute: the key under `Parameters`, or `Variables[i].Field`) so the caller can put
it at that line.

| Weik.io parameter | postgres spec field |
|---|---|
| `DatabaseType` | must be `postgresql` (MySQL, SQL Server, Oracle: an error naming the type) |
| `Host`, `Port`, `Database`, `Username` | `host`, `port`, `database`, `username` |
| `Password` | `password` (a literal; a whole `${NAME}` placeholder: the secret reference below) |
| `Schema`, `Table` | `schema`, `table` |
| `TrackInserts`, `TrackUpdates`, `TrackDeletes` | `trackInserts`, ... (`true`/`false`, any case) |
| `PollingInterval` | `pollingInterval` (seconds: `"5"` -> `5s`, `"0.5"` -> `500ms`) |
| `Variables[].SourceColumn` / `TargetVariable` | `variables[].sourceColumn` / `targetVariable` |

A Password that is exactly one `${NAME}` placeholder becomes the secret reference `secret_ref(NAME)` (by default
`{name: NAME, key: password}`: the file `<secrets dir>/NAME/password` or `$SENSORIUM_SECRET_<NAME>_PASSWORD`), so
the password is read when the source connects and never written into a translated document.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["PARAMETERS", "WeikParameterError", "from_weik"]

PARAMETERS = ("DatabaseType", "Host", "Port", "Database", "Username", "Password", "Schema", "Table", "TrackInserts",
              "TrackUpdates", "TrackDeletes", "PollingInterval")
_REQUIRED = ("DatabaseType", "Database", "Username", "Table")
_FIELDS = {"Host": "host", "Database": "database", "Username": "username", "Schema": "schema", "Table": "table"}
_TRACK = {"TrackInserts": "trackInserts", "TrackUpdates": "trackUpdates", "TrackDeletes": "trackDeletes"}
_PLACEHOLDER = re.compile(r"\$\{([^{}]+)\}")
_SECONDS = re.compile(r"[0-9]{1,9}(\.[0-9]{1,3})?")


class WeikParameterError(ValueError):
    """A Weik.io `database` parameter that cannot be used; `parameter` names it (`Port`,
    `Variables[0].SourceColumn`)."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


def _default_secret_ref(name: str) -> dict[str, str]:
    return {"name": name, "key": "password"}


def _bool(parameter: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise WeikParameterError(parameter, f"want \"true\" or \"false\", got {value[:20]!r}")
    return lowered == "true"


def from_weik(parameters: Mapping[str, str], variables: Sequence[Mapping[str, Any]] | None = None, *,
              secret_ref: Callable[[str], Mapping[str, str]] = _default_secret_ref) -> dict[str, Any]:
    """The `postgres` entry Weik.io's `database` `parameters` and `variables` mean (module docstring)."""
    unknown = [key for key in parameters if key not in PARAMETERS]
    if unknown:
        raise WeikParameterError(unknown[0], f"unknown parameter of a database EventSource (known: "
                                 f"{', '.join(PARAMETERS)})")
    for key, value in parameters.items():
        if not isinstance(value, str):
            raise WeikParameterError(key, f"must be a string (Weik.io parameters are strings), got "
                                     f"{type(value).__name__}")
    for key in _REQUIRED:
        if not parameters.get(key, "").strip():
            raise WeikParameterError(key, "required for a database EventSource")
    kind = parameters["DatabaseType"].strip()
    if kind.lower() != "postgresql":
        raise WeikParameterError("DatabaseType", f"database type {kind[:40]!r} is not supported (Sensorium reads "
                                 "PostgreSQL only: DatabaseType: postgresql)")
    spec: dict[str, Any] = {field: parameters[key] for key, field in _FIELDS.items() if key in parameters}
    if "Port" in parameters:
        port = parameters["Port"].strip()
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise WeikParameterError("Port", f"want a port number 1-65535, got {port[:20]!r}")
        spec["port"] = int(port)
    if "Password" in parameters:
        password = parameters["Password"]
        whole = _PLACEHOLDER.fullmatch(password.strip())
        spec["password"] = dict(secret_ref(whole.group(1))) if whole else password
    for key, field in _TRACK.items():
        if key in parameters:
            spec[field] = _bool(key, parameters[key])
    if "PollingInterval" in parameters:
        seconds = parameters["PollingInterval"].strip()
        if not _SECONDS.fullmatch(seconds) or not 0.1 <= float(seconds) <= 86_400 * 365:
            raise WeikParameterError("PollingInterval", f"want seconds (at least 0.1, e.g. \"5\" or \"0.5\"), got "
                                     f"{seconds[:20]!r}")
        millis = round(float(seconds) * 1000)
        spec["pollingInterval"] = f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"
    lifted: list[dict[str, str]] = []
    for index, variable in enumerate(variables or ()):
        pair: dict[str, str] = {}
        for key, field in (("SourceColumn", "sourceColumn"), ("TargetVariable", "targetVariable")):
            written = variable.get(key) if isinstance(variable, Mapping) else None
            if not isinstance(written, str) or not written:
                raise WeikParameterError(f"Variables[{index}].{key}", "required (a non-empty string)")
            pair[field] = written
        extra = [key for key in (variable if isinstance(variable, Mapping) else {})
                 if key not in ("SourceColumn", "TargetVariable")]
        if extra:
            raise WeikParameterError(f"Variables[{index}].{extra[0]}", "unknown field (SourceColumn, TargetVariable)")
        lifted.append(pair)
    if lifted:
        spec["variables"] = lifted
    return spec
