"""Benchmarks: throughput and accuracy of the analysis (``python -m benchmarks.run``)."""
