"""eval (see its issue)."""
