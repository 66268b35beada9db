"""Summary statistics shared by every benchmark.

The paper reports each score as `mean ± standard error` over items (Tables 1-2):

    mean   = (1/n) Σ x_i
    stderr = s / √n,   s² = (1/(n-1)) Σ (x_i - mean)²      (sample standard deviation, ddof = 1)

For a 0/1 score this is ≈ √(p(1-p)/n); e.g. a 50% win rate over 805 AlpacaEval items gives 1.76 points.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def mean_stderr(values: Iterable[float]) -> tuple[float, float]:
    """(mean, standard error of the mean). One value has no spread to estimate: its stderr is 0."""
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        raise ValueError("mean_stderr of an empty list")
    mean = sum(xs) / n
    if n == 1:
        return mean, 0.0
    var = sum((x - mean) ** 2 for x in xs) / (n - 1)
    return mean, math.sqrt(var / n)


def metric_value(values: Iterable[float]) -> dict:
    """`{"value", "stderr", "n"}`: the shape every metric takes in results.json (value None when n = 0)."""
    xs = [float(v) for v in values]
    if not xs:
        return {"value": None, "stderr": None, "n": 0}
    mean, se = mean_stderr(xs)
    return {"value": mean, "stderr": se, "n": len(xs)}
