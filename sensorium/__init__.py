"""Sensorium: an Argo Events-style sensor and trigger engine that needs no Kubernetes.

Its packages are `sensorium.engine` (the composition root, with the kernel `engine.core` and the Go library
`engine.goport`), `sensorium.buses`, `sensorium.sensors`, `sensorium.triggers` and `sensorium.sources`. In a
checkout they are the top-level folders, reached through the symlinks beside this file; an installed wheel holds
them here, so nothing but `sensorium` is put into site-packages.
"""
