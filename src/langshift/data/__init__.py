"""data (see its issue)."""
