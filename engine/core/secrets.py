"""Secret and ConfigMap values for `secretKeyRef`/`configMapKeyRef`, without Kubernetes (kernel).

Lookup order for `{name, key}`: the file `<secrets_dir>/<name>/<key>` (Argo's mounted layout, trailing newline
trimmed), then the environment variable `SENSORIUM_SECRET_<NAME>_<KEY>` (upper-cased, every character outside
A-Z0-9 turned into `_`). Values never appear in error messages.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from sensorium.engine.core.errors import SensoriumError


class SecretNotFound(SensoriumError):
    pass


def env_name(name: str, key: str) -> str:
    return "SENSORIUM_SECRET_" + re.sub(r"[^A-Z0-9]", "_", f"{name}_{key}".upper())


class Secrets:
    def __init__(self, directory: Path | None = None, environ: Mapping[str, str] | None = None) -> None:
        self.directory = directory
        self.environ = os.environ if environ is None else environ

    def get(self, name: str, key: str) -> str:
        if self.directory is not None:
            path = self.directory / name / key
            if path.is_file():
                return path.read_text().rstrip("\n")
        value = self.environ.get(env_name(name, key))
        if value is not None:
            return value
        where = f"{self.directory}/{name}/{key} or " if self.directory else ""
        raise SecretNotFound(f"secret '{name}/{key}' not found (looked in {where}${env_name(name, key)})")
