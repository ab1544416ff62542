"""`python -m sensorium`: the `sensorium` command."""

from sensorium.engine.cli import main

raise SystemExit(main())
