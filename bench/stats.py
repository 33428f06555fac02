"""Percentiles by nearest rank, shared by the phases."""


def percentiles(values):
    """{"count", "p50", "p90", "p99", "max"} of values (None when empty)."""
    if not values:
        return None
    v = sorted(values)

    def at(q):
        return v[min(len(v) - 1, max(0, int(round(q * len(v) + 0.5)) - 1))]

    return {"count": len(v), "p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": v[-1]}
