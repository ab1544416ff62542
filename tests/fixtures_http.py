"""Fixtures: http (being written)."""
