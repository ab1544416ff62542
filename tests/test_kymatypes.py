"""Kyma's event-type rules, as its documentation states them (seed-systems.md section 3)."""

from __future__ import annotations

import pytest

from sensorium.engine.core.kymatypes import KymaTypeError, legacy_type, standard_type


@pytest.mark.parametrize(("app", "event", "version", "want"), [
    ("commerce", "order.created", "v1", "sap.kyma.custom.commerce.order.created.v1"),
    ("commerce", "Account.Root.Created", "v1", "sap.kyma.custom.commerce.AccountRoot.Created.v1"),
    ("my-app", "order-x.created_now", "v2", "sap.kyma.custom.myapp.orderx.creatednow.v2"),
    ("a", "w.x.y.z", "v1", "sap.kyma.custom.a.wxy.z.v1"),
])
def test_legacy_types(app: str, event: str, version: str, want: str) -> None:
    assert legacy_type(app, event, version) == want


@pytest.mark.parametrize(("source", "type_", "want"), [
    ("commerce", "order.created.v1", "sap.kyma.custom.commerce.order.created.v1"),
    ("my-app", "Account.Root.Created.v1", "sap.kyma.custom.myapp.AccountRoot.Created.v1"),
    ("ignored", "sap.kyma.custom.commerce.order.created.v1", "sap.kyma.custom.commerce.order.created.v1"),
])
def test_standard_types(source: str, type_: str, want: str) -> None:
    assert standard_type(source, type_) == want


@pytest.mark.parametrize(("app", "event", "version"), [
    ("commerce", "created", "v1"), ("commerce", "order..created", "v1"), ("--", "order.created", "v1"),
    ("commerce", "order.created", ""), ("commerce", "order.created", "v-1"), ("c", "!.created", "v1"),
])
def test_what_the_rules_cannot_name_is_an_error(app: str, event: str, version: str) -> None:
    with pytest.raises(KymaTypeError):
        legacy_type(app, event, version)
