"""The other systems' examples as the seed page (a copy of shared/reference/seed-systems.md) has them."""

from __future__ import annotations

import re
from pathlib import Path

SEED = Path(__file__).resolve().parent / "upstream" / "seed-systems.md"


def yaml_blocks() -> list[str]:
    """Every ```yaml block of the seed page, in order."""
    return re.findall(r"```yaml\n(.*?)```", SEED.read_text(), re.S)


ORDERS_DB = next(block for block in yaml_blocks() if "name: orders-db" in block)
"""Section 1's Weik.io `database` EventSource (`orders-db`), unchanged."""
