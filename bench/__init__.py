"""Benchmarks (not tests): `python -m bench.engine`, `python bench/http_clients.py`."""
