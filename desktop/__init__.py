"""desktop surface."""
