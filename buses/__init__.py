"""buses."""
