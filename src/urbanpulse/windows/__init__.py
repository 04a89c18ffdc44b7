"""Per-series event-time windows held in numpy arrays, with per-source watermarks."""
