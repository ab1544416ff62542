"""Shared fixtures: real brokers (nats-server, Kafka KRaft) started on free ports, real local HTTP servers."""

pytest_plugins = ["tests.fixtures_nats", "tests.fixtures_kafka", "tests.fixtures_http"]
