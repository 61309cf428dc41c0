"""gateway surface."""
