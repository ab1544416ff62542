"""Tests of engine.goport against outputs of the Go libraries it copies."""
