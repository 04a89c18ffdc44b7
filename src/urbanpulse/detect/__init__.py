"""Streaming anomaly detectors, vectorised across series, and the backtest that reuses them."""
