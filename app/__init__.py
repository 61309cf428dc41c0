"""Composition root and command line: the one place that knows every surface."""
