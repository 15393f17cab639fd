"""The blessing decision: which conditions a model's metrics must meet to be pushed."""

import math
from typing import Any, Dict, Optional, Sequence

from components.ranking_evaluator import metrics

DEFAULT_GATING_METRIC = "NDCG@10"


def check_gating_metric(gating_metric: str, ks: Sequence[int]) -> str:
  """``gating_metric`` if it is one of the metrics computed for ``ks``, else ValueError."""
  allowed = metrics.metric_names(metrics.check_ks(ks))
  if gating_metric not in allowed:
    raise ValueError(
        f"gating_metric {gating_metric!r} is not computed with ks={list(ks)}; "
        f"choose one of {allowed}")
  return gating_metric


def check_thresholds(min_value: float, baseline_tolerance: float) -> None:
  if not isinstance(min_value, (int, float)) or isinstance(min_value, bool) or \
      math.isnan(min_value):
    raise ValueError(f"min_value must be a number, got {min_value!r}")
  if not isinstance(baseline_tolerance, (int, float)) or \
      isinstance(baseline_tolerance, bool) or not 0.0 <= baseline_tolerance < 1.0:
    raise ValueError(
        f"baseline_tolerance must be a number in [0, 1), got {baseline_tolerance!r}")


def decide(model: Dict[str, float], popularity: Optional[Dict[str, float]],
           baseline: Optional[Dict[str, float]], gating_metric: str,
           min_value: float, must_beat_popularity: bool,
           baseline_tolerance: float = 0.0) -> Dict[str, Any]:
  """Whether the model is blessed, and every reason why not.

  Blessed iff all hold for ``value = model[gating_metric]``:
    * ``value >= min_value``;
    * if ``must_beat_popularity``: ``value > popularity[gating_metric]`` (strictly);
    * if a baseline model was evaluated:
      ``value >= baseline[gating_metric] * (1 - baseline_tolerance)``.

  Returns:
    ``{"metric", "value", "min_value", "must_beat_popularity",
    "popularity_value", "baseline_value", "baseline_tolerance", "blessed",
    "reasons"}``; ``reasons`` is empty exactly when blessed.
  """
  check_thresholds(min_value, baseline_tolerance)
  if gating_metric not in model:
    raise ValueError(f"gating_metric {gating_metric!r} is not among the model's metrics "
                     f"{sorted(model)}")
  value = float(model[gating_metric])
  reasons = []
  if math.isnan(value):
    reasons.append(f"{gating_metric} of the model is NaN")
  elif value < min_value:
    reasons.append(f"{gating_metric} = {value:.4f} is below min_value {min_value:.4f}")
  popularity_value = None
  if popularity is not None:
    popularity_value = float(popularity[gating_metric])
  if must_beat_popularity:
    if popularity_value is None:
      raise ValueError("must_beat_popularity is set but no popularity metrics were given")
    if not value > popularity_value:
      reasons.append(
          f"{gating_metric} = {value:.4f} does not beat the popularity baseline "
          f"({popularity_value:.4f})")
  baseline_value = None
  if baseline is not None:
    baseline_value = float(baseline[gating_metric])
    required = baseline_value * (1.0 - baseline_tolerance)
    if not value >= required:
      reasons.append(
          f"{gating_metric} = {value:.4f} is below the baseline model's "
          f"{baseline_value:.4f} x (1 - {baseline_tolerance:g}) = {required:.4f}")
  return {
      "metric": gating_metric,
      "value": value,
      "min_value": float(min_value),
      "must_beat_popularity": bool(must_beat_popularity),
      "popularity_value": popularity_value,
      "baseline_value": baseline_value,
      "baseline_tolerance": float(baseline_tolerance),
      "blessed": not reasons,
      "reasons": reasons,
  }
