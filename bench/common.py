"""Shared printing for benchmarks: every benchmark prints a ratio against a bare baseline
run side by side, and whether it meets its target."""

from __future__ import annotations


def report(
    name: str,
    *,
    baseline: float,
    candidate: float,
    unit: str,
    target: float,
    higher_is_better: bool = True,
) -> bool:
    """Print one comparison line; returns whether the ratio meets the target."""
    ratio = candidate / baseline if baseline else float("inf")
    ok = ratio >= target if higher_is_better else ratio <= target
    sign = ">=" if higher_is_better else "<="
    print(
        f"{name}: agenthub {candidate:,.2f} {unit} vs baseline {baseline:,.2f} {unit}"
        f" -> ratio {ratio:.2f} (target {sign} {target}) {'OK' if ok else 'MISSED'}"
    )
    return ok
