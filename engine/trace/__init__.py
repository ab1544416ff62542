"""Tracing: records, the in-memory hub, step expansion, text format and bus trace streams (composition root)."""
