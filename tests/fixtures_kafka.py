"""Fixtures: kafka (being written)."""
