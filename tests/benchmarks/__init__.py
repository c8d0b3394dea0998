"""Benchmarks: scripts run as ``python -m tests.benchmarks.<name>`` (not pytest tests)."""
