"""channels surface."""
