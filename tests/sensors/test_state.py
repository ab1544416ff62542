"""Condition state: storage, clearing and JSON snapshots."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from sensorium.sensors.state import ConditionState
from tests.sensors.builders import event

T0 = datetime(2024, 7, 15, 10, 0, tzinfo=UTC)


def test_latest_event_replaces_the_older_one() -> None:
    state = ConditionState()
    state.store("t", "a", event({"n": 1}, event_id="1"), T0)
    state.store("t", "a", event({"n": 2}, event_id="2"), T0 + timedelta(seconds=1))
    assert {d: e.id for d, e in state.held("t").items()} == {"a": "2"}
    assert state.held_since("t") == {"a": T0 + timedelta(seconds=1)}


def test_clear_and_clear_before() -> None:
    state = ConditionState()
    state.store("t", "a", event(event_id="1"), T0)
    state.store("t", "b", event(event_id="2"), T0 + timedelta(hours=1))
    state.clear_before("t", T0 + timedelta(minutes=30))
    assert list(state.held("t")) == ["b"]
    state.clear("t")
    assert state.held("t") == {}


def test_snapshot_is_plain_json_and_round_trips_exactly() -> None:
    state = ConditionState()
    original = event(raw=b'{"a": 1.50,  "b": "x"}', event_id="1", time="2024-07-15T10:00:00Z",
                     extensions={"tenant": "acme"})
    state.store("t", "a", original, T0)
    state.store("u", "b", event(event_id="2"), T0)
    snapshot = json.loads(json.dumps(state.snapshot()))
    assert snapshot["triggers"]["t"]["a"]["storedAt"] == "2024-07-15T10:00:00+00:00"
    restored = ConditionState()
    restored.restore(snapshot)
    assert restored.held("t") == {"a": original}
    assert restored.held("u") == {"b": event(event_id="2")}
    assert restored.held_since("t") == {"a": T0}


def test_restore_rejects_malformed_snapshots() -> None:
    with pytest.raises(ValueError, match="snapshot version 7 is not supported"):
        ConditionState().restore({"version": 7, "triggers": {}})
    with pytest.raises(ValueError, match="malformed condition state snapshot"):
        ConditionState().restore({"version": 1, "triggers": {"t": {"a": {"event": {}}}}})
