"""RankingEvaluator: full-ranking evaluation that blesses (or not) the trained model.

It takes the standard Evaluator's place (same inputs and outputs); the standard Pusher gates on it.
"""

import json
from typing import Any, Mapping, Optional, Sequence

from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts

from components.ranking_evaluator import component_spec as spec_lib
from components.ranking_evaluator import evaluation
from components.ranking_evaluator import executor
from components.ranking_evaluator import gating
from components.ranking_evaluator import metrics
from components.ranking_evaluator.component_spec import RankingEvaluatorSpec


class RankingEvaluator(base_component.BaseComponent):
  """Ranks each user's held-out item against the catalogue; blesses the model.

  Outputs ``evaluation`` (``metrics.json``: model, popularity and optional
  text-similarity and baseline-model metrics, overall and per slice, and the
  gating decision) and
  ``blessing`` (a ``BLESSED`` or ``NOT_BLESSED`` marker file and the ``blessed``
  custom property, as the standard Evaluator writes them).
  """

  SPEC_CLASS = RankingEvaluatorSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self,
               examples: types.BaseChannel,
               model: types.BaseChannel,
               baseline_model: Optional[types.BaseChannel] = None,
               eval_split: str = spec_lib.DEFAULT_EVAL_SPLIT,
               ks: Sequence[int] = spec_lib.DEFAULT_KS,
               gating_metric: str = spec_lib.DEFAULT_GATING_METRIC,
               min_value: float = spec_lib.DEFAULT_MIN_VALUE,
               must_beat_popularity: int = spec_lib.DEFAULT_MUST_BEAT_POPULARITY,
               baseline_tolerance: float = spec_lib.DEFAULT_BASELINE_TOLERANCE,
               batch_size: int = spec_lib.DEFAULT_BATCH_SIZE,
               slice_gates: Sequence[Mapping[str, Any]] = spec_lib.DEFAULT_SLICE_GATES,
               item_vectors: Optional[str] = None):
    """Builds the component.

    Args:
      examples: Examples with the raw sequence splits (``trainer.features``).
      model: Model whose serving SavedModel is evaluated.
      baseline_model: optional Model the candidate must not fall behind.
      eval_split: split whose targets are ranked.
      ks: cut-offs of HR@k, NDCG@k and coverage@k.
      gating_metric: metric the blessing looks at, e.g. ``NDCG@10``.
      min_value: blessed only if ``gating_metric >= min_value``.
      must_beat_popularity: if true, blessed only if the gating metric is
        strictly above the popularity baseline's.
      baseline_tolerance: with a baseline, blessed only if the gating metric is
        ``>= baseline's * (1 - baseline_tolerance)``.
      batch_size: users scored at a time.
      slice_gates: ``[{"slice", "metric", "max_drop"}]``: blessed only if the
        model's metric on the slice is ``>= reference's - max_drop``, the
        reference being the baseline model if given, else popularity.
      item_vectors: item vectors file (``trainer.item_vectors``): also rank with
        the text-similarity baseline; None skips it. The cold-item slice comes
        from the examples (``cold_items.json`` of the SequenceBuilder).
    """
    ks = metrics.check_ks(ks)
    gating.check_gating_metric(gating_metric, ks)
    gating.check_thresholds(min_value, baseline_tolerance)
    evaluation.check_batch_size(batch_size)
    slice_gates = gating.check_slice_gates(list(slice_gates or ()), ks)
    spec = RankingEvaluatorSpec(
        examples=examples,
        model=model,
        baseline_model=baseline_model,
        eval_split=eval_split,
        ks=json.dumps(list(ks)),
        gating_metric=gating_metric,
        min_value=float(min_value),
        must_beat_popularity=int(bool(must_beat_popularity)),
        baseline_tolerance=float(baseline_tolerance),
        batch_size=int(batch_size),
        slice_gates=json.dumps(slice_gates),
        item_vectors=item_vectors,
        evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
        blessing=types.Channel(type=standard_artifacts.ModelBlessing))
    super().__init__(spec=spec)
