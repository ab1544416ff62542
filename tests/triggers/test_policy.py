from __future__ import annotations

import pytest

from sensorium.triggers.policy import StatusPolicy, VerdictKind

S, R, T = VerdictKind.SUCCESS, VerdictKind.RETRYABLE, VerdictKind.TERMINAL


@pytest.mark.parametrize("status,kind", [
    (200, S), (201, S), (204, S), (299, S),
    (100, T), (301, T), (304, T), (400, T), (401, T), (403, T), (404, T), (409, T), (422, T),
    (408, R), (429, R), (500, R), (502, R), (503, R), (504, R), (599, R),
])
def test_no_policy(status: int, kind: VerdictKind) -> None:
    verdict = StatusPolicy.from_allow(None).judge(status)
    assert verdict.kind is kind
    assert str(status) in verdict.reason


@pytest.mark.parametrize("allow,status,kind", [
    ([200, 201], 200, S), ([200, 201], 201, S), ([200, 201], 202, T),
    ([200], 404, T), ([200], 503, R), ([200], 429, R), ([200], 408, R),
    ([404], 404, S), ([503], 503, S), ([500], 200, T),
    (["200-299"], 250, S), (["200-299"], 300, T), ([201, "400-404"], 404, S), ([201, "400-404"], 405, T),
    ([], 200, T), ([], 500, R),
])
def test_allow_list(allow: list[int | str], status: int, kind: VerdictKind) -> None:
    verdict = StatusPolicy.from_allow(allow).judge(status)
    assert verdict.kind is kind
    if kind is not S:
        assert verdict.reason == (
            f"policy application resulted in failure. http response status {status} is not allowed")


def test_no_policy_allows_200() -> None:
    assert StatusPolicy.from_allow(None).judge(200).ok


@pytest.mark.parametrize("allow,retry,status,kind", [
    (["200-299"], ["100-599"], 404, R), (["200-299"], ["100-599"], 204, S), (["200-299"], ["100-599"], 302, R),
    (["200-299"], [400], 400, R), (["200-299"], [400], 401, T), (["200-299"], [400], 503, R),
    (None, ["400-499"], 404, R), (None, ["400-499"], 301, T), (None, ["400-499"], 200, S),
])
def test_retry_list_makes_statuses_retryable(allow: list[int | str] | None, retry: list[int | str], status: int,
                                            kind: VerdictKind) -> None:
    """`policy.status.retry` (Sensorium extension; HNS subscriptions retry every non-2xx): the listed statuses
    are retried when not allowed, besides 408, 429 and 5xx."""
    assert StatusPolicy.from_allow(allow, retry).judge(status).kind is kind
