"""langshift: Cross-Lingual Optimization (CLO) and its baselines, data and evaluations."""

__version__ = "0.1.0"
