"""Experiments: a run config (config.py) -> stages (plan.py) -> executed, cached, reported (execute.py)."""

from langshift.experiment.config import Experiment, load_experiment
from langshift.experiment.execute import StageFailed, run_experiment
from langshift.experiment.plan import Stage, plan

__all__ = ["Experiment", "Stage", "StageFailed", "load_experiment", "plan", "run_experiment"]
