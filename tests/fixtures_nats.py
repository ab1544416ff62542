"""Fixtures: nats (being written)."""
