"""report (see its issue)."""
