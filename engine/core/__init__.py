"""The kernel every package needs (CloudEvent, errors, secrets, spec base). Imports only engine.goport."""
