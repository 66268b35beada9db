"""Evaluation: the task table (tasks.py) and each task's module (fidelity, belebele, mmmlu, alpaca),
generation (generate.py, decode.py), the suite that runs a model through its tasks (suite.py), its
options (config.py) and statistics (stats.py)."""
