"""The blessing decision: which conditions a model's metrics must meet to be pushed."""

import json
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from components.ranking_evaluator import metrics
from components.ranking_evaluator import slices

DEFAULT_GATING_METRIC = "NDCG@10"
# Keys of one slice gate: {"slice": "popularity:tail", "metric": "NDCG@10", "max_drop": 0.05}.
SLICE, METRIC, MAX_DROP = "slice", "metric", "max_drop"


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


def check_slice_gates(gates: Union[str, Sequence[Mapping[str, Any]], None],
                      ks: Sequence[int]) -> List[Dict[str, Any]]:
  """Slice gates (a JSON list or a list of mappings) checked, or ValueError saying why.

  Each gate is ``{"slice": one of slices.slice_names(), "metric": HR@k, NDCG@k
  or MRR of an evaluated k, "max_drop": number >= 0}``.
  """
  if gates is None or gates == "":
    return []
  if isinstance(gates, str):
    try:
      gates = json.loads(gates)
    except json.JSONDecodeError as e:
      raise ValueError(f"slice_gates must be a JSON list, got {gates!r}") from e
  if isinstance(gates, (str, bytes, Mapping)) or not isinstance(gates, Sequence):
    raise ValueError(f"slice_gates must be a list of gates, got {gates!r}")
  names = slices.slice_names()
  allowed = metrics.metric_names(metrics.check_ks(ks), with_coverage=False)
  checked = []
  for gate in gates:
    if not isinstance(gate, Mapping) or set(gate) != {SLICE, METRIC, MAX_DROP}:
      raise ValueError(f"a slice gate needs exactly the keys {SLICE!r}, {METRIC!r}, "
                       f"{MAX_DROP!r}, got {gate!r}")
    if gate[SLICE] not in names:
      raise ValueError(f"slice gate {gate!r}: unknown slice; choose one of {names}")
    if gate[METRIC] not in allowed:
      raise ValueError(f"slice gate {gate!r}: metric not computed per slice with "
                       f"ks={list(ks)}; choose one of {allowed}")
    drop = gate[MAX_DROP]
    if not isinstance(drop, (int, float)) or isinstance(drop, bool) or not drop >= 0:
      raise ValueError(f"slice gate {gate!r}: max_drop must be a number >= 0")
    checked.append({SLICE: gate[SLICE], METRIC: gate[METRIC], MAX_DROP: float(drop)})
  return checked


def _slice_check(gate: Mapping[str, Any], model: Mapping[str, Mapping[str, float]],
                 reference: Mapping[str, Mapping[str, float]],
                 reference_name: str) -> Dict[str, Any]:
  """One slice gate: the model's slice metric >= the reference's - max_drop."""
  name, metric = gate[SLICE], gate[METRIC]
  if name not in model or name not in reference:
    raise ValueError(f"slice gate on {name!r}: the slice was not evaluated")
  check = {**gate, "reference": reference_name, "value": None, "reference_value": None,
           "passed": True, "reason": None}
  if metric not in model[name] or metric not in reference[name]:
    check["reason"] = "skipped: no users in the slice"
    return check
  value, reference_value = float(model[name][metric]), float(reference[name][metric])
  check.update(value=value, reference_value=reference_value,
               passed=value >= reference_value - gate[MAX_DROP])
  if not check["passed"]:
    check["reason"] = (
        f"slice {name}: {metric} = {value:.4f} is more than {gate[MAX_DROP]:g} below "
        f"the {reference_name}'s {reference_value:.4f}")
  return check


def decide(model: Dict[str, float], popularity: Optional[Dict[str, float]],
           baseline: Optional[Dict[str, float]], gating_metric: str,
           min_value: float, must_beat_popularity: bool,
           baseline_tolerance: float = 0.0,
           slice_gates: Sequence[Mapping[str, Any]] = (),
           slice_metrics: Optional[Mapping[str, Mapping]] = None) -> Dict[str, Any]:
  """Whether the model is blessed, and every reason why not.

  Blessed iff all hold for ``value = model[gating_metric]``:
    * ``value >= min_value``;
    * if ``must_beat_popularity``: ``value > popularity[gating_metric]`` (strictly);
    * if a baseline model was evaluated:
      ``value >= baseline[gating_metric] * (1 - baseline_tolerance)``;
    * for each of ``slice_gates`` (``check_slice_gates``): the model's metric on
      the slice is ``>= reference's - max_drop``, the reference being the
      baseline model if one was evaluated, else popularity. A gate on a slice
      without users passes (its check says it was skipped).

  Args:
    slice_metrics: with ``slice_gates``: ``{"model", "popularity", "baseline"
      (with a baseline): {slice: {metric: value}}}``.

  Returns:
    ``{"metric", "value", "min_value", "must_beat_popularity",
    "popularity_value", "baseline_value", "baseline_tolerance", "slice_gates":
    [{"slice", "metric", "max_drop", "reference", "value", "reference_value",
    "passed", "reason"}], "blessed", "reasons"}``; ``reasons`` is empty exactly
    when blessed.
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
  checks = []
  if slice_gates:
    if slice_metrics is None:
      raise ValueError("slice_gates are set but no slice metrics were given")
    reference = "baseline" if baseline is not None else "popularity"
    label = "baseline model" if baseline is not None else "popularity baseline"
    checks = [_slice_check(gate, slice_metrics["model"], slice_metrics[reference], label)
              for gate in slice_gates]
    reasons += [check["reason"] for check in checks if not check["passed"]]
  return {
      "metric": gating_metric,
      "value": value,
      "min_value": float(min_value),
      "must_beat_popularity": bool(must_beat_popularity),
      "popularity_value": popularity_value,
      "baseline_value": baseline_value,
      "baseline_tolerance": float(baseline_tolerance),
      "slice_gates": checks,
      "blessed": not reasons,
      "reasons": reasons,
  }
