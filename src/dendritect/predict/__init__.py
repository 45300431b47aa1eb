"""Predict: when the cracks span the electrolyte, and when the cycler data shows the short."""

from dendritect.predict.forecast import SpanForecast, forecast_span
from dendritect.predict.short import ShortCircuit, detect_short

__all__ = ["ShortCircuit", "SpanForecast", "detect_short", "forecast_span"]
