"""Exceptions shared across stages (kernel).

    SensoriumError
    ├── ConfigError          a document is invalid; carries file, line and field path (exit code 2)
    │   └── ConfigWarning    likely a mistake, but it runs (`sensorium validate` prints it and exits 0)
    ├── BusError             the bus could not be reached or refused an operation
    └── TriggerError         a firing failed; `retryable` says whether the retry strategy may try again
"""

from __future__ import annotations


class SensoriumError(Exception):
    pass


class ConfigError(SensoriumError):
    severity = "error"

    def __init__(self, message: str, file: str = "", line: int = 0, field: str = "") -> None:
        self.file, self.line, self.field, self.message = file, line, field, message
        super().__init__(self.render())

    def with_field(self, field: str) -> ConfigError:
        return type(self)(self.message, self.file, self.line, field)

    def render(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file else ""
        what = f"{self.field}: " if self.field else ""
        mark = "warning: " if self.severity == "warning" else ""
        return f"{where}{mark}{what}{self.message}"


class ConfigWarning(ConfigError):
    severity = "warning"


class BusError(SensoriumError):
    pass


class EventTooLarge(BusError):
    """The bus can never store this event (larger than its message limit): retrying cannot help."""


class TriggerError(SensoriumError):
    def __init__(self, message: str, retryable: bool = False) -> None:
        self.retryable = retryable
        super().__init__(message)
