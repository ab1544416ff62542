"""Status policy: turn one attempt's HTTP status (or transport error) into a verdict. Pure; no I/O.

Sensorium's rule (reference section 8):
* no `policy.status.allow`: 2xx success; 408, 429 and 5xx retryable; any other status a terminal failure;
  transport errors and timeouts retryable.
* with `allow`: exactly the listed codes and ranges succeed (Argo-compatible, ranges are an extension); a
  status that is not allowed fails with Argo's text. It stays retryable when it is 408, 429 or 5xx (the server
  may recover, and retrying is what `retryStrategy` is for); any other non-allowed status is terminal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import msgspec

RETRYABLE_STATUSES = frozenset({408, 429})


class VerdictKind(StrEnum):
    SUCCESS = "success"
    RETRYABLE = "retryable"
    TERMINAL = "terminal"


class Verdict(msgspec.Struct, frozen=True, gc=False):
    kind: VerdictKind
    reason: str

    @property
    def ok(self) -> bool:
        return self.kind is VerdictKind.SUCCESS

    @property
    def retryable(self) -> bool:
        return self.kind is VerdictKind.RETRYABLE


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or 500 <= status <= 599


def not_allowed(status: int) -> str:
    """Argo's policy failure text."""
    return f"policy application resulted in failure. http response status {status} is not allowed"


@dataclass(frozen=True)
class StatusPolicy:
    """`allow` None: no policy (Sensorium default); else single codes plus inclusive (low, high) ranges."""

    allow: frozenset[int] | None = None
    ranges: tuple[tuple[int, int], ...] = ()
    retry: tuple[tuple[int, int], ...] = ()  # `policy.status.retry`: also retryable when not allowed (inclusive)

    @classmethod
    def from_allow(cls, allow: Sequence[int | str] | None,
                   retry: Sequence[int | str] | None = None) -> StatusPolicy:
        """From `policy.status.allow` (and `retry`) entries: ints and "NNN-NNN" strings (validated by the spec)."""
        retried = tuple(_span(entry) for entry in retry or ())
        if allow is None:
            return cls(retry=retried)
        codes = frozenset(entry for entry in allow if isinstance(entry, int))
        ranges = tuple(_span(entry) for entry in allow if not isinstance(entry, int))
        return cls(codes, ranges, retried)

    def allows(self, status: int) -> bool:
        if self.allow is None:
            return 200 <= status <= 299
        return status in self.allow or any(low <= status <= high for low, high in self.ranges)

    def judge(self, status: int) -> Verdict:
        if self.allow is None:
            if 200 <= status <= 299:
                return Verdict(VerdictKind.SUCCESS, f"http response status {status} is 2xx (no policy)")
            if is_retryable_status(status):
                return Verdict(VerdictKind.RETRYABLE,
                               f"http response status {status} is retryable (no policy: 408, 429, 5xx)")
            if self._retried(status):
                return Verdict(VerdictKind.RETRYABLE, f"http response status {status} is not 2xx (retried)")
            return Verdict(VerdictKind.TERMINAL, f"http response status {status} is not 2xx (no policy)")
        if self.allows(status):
            return Verdict(VerdictKind.SUCCESS, f"http response status {status} is allowed")
        retryable = is_retryable_status(status) or self._retried(status)
        return Verdict(VerdictKind.RETRYABLE if retryable else VerdictKind.TERMINAL, not_allowed(status))

    def _retried(self, status: int) -> bool:
        return any(low <= status <= high for low, high in self.retry)


def _span(entry: int | str) -> tuple[int, int]:
    """A status code or "NNN-NNN" range as an inclusive (low, high)."""
    if isinstance(entry, int):
        return entry, entry
    low, _, high = entry.partition("-")
    return int(low), int(high)
