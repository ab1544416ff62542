"""The Go-compatibility library: ports of Go rules Argo Events relies on. Imports nothing else from the project."""
