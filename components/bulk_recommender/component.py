"""BulkRecommender: the optional pipeline step after the Pusher, top-k for every user as files."""

import json
from typing import Any, Mapping, Optional

from tfx import types
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import executor_spec
from tfx.types.experimental import simple_artifacts

from components.bulk_recommender import component_spec as spec
from components.bulk_recommender import executor


class BulkRecommender(base_beam_component.BaseBeamComponent):
  """Top-k recommendations for every user of the sequence examples, from the pushed model.

  ## Example
  ```
    bulk = BulkRecommender(
        examples=sequence_builder.outputs["output_examples"],
        pushed_model=pusher.outputs["pushed_model"], k=10, output_format="parquet")
  ```

  Component `outputs` contains:
   - `recommendations`: Dataset of ``recommendations-SSSSS-of-NNNNN.<format>``
     files, one row per (user_id, rank, item_id, score); custom properties
     ``format``, ``k``, ``users``, ``rows``. Empty when the model was not pushed.
  """

  SPEC_CLASS = spec.BulkRecommenderSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

  def __init__(self, examples: types.BaseChannel, pushed_model: types.BaseChannel,
               k: Optional[int] = None, output_format: Optional[str] = None,
               num_shards: Optional[int] = None, signature: Optional[str] = None,
               extra_inputs: Optional[Mapping[str, Any]] = None,
               batch_size: Optional[int] = None, rules_file: Optional[str] = None):
    """Constructs a BulkRecommender.

    Args:
      examples: the SequenceBuilder's Examples; the test split's history +
        target is each user's full history.
      pushed_model: the Pusher's PushedModel (a copy of the served SavedModel).
      k: recommendations per user (default 10).
      output_format: "parquet" (default) or "csv".
      num_shards: output files; 0 or None lets the runner decide.
      signature: the signature to call (default ``serving_default``).
      extra_inputs: the signature's other inputs, the same for every user (the
        global rules; for the ``recommend`` signature those not given mean no rule).
      batch_size: histories per model call (default 256).
      rules_file: per-user rules, JSON Lines keyed by user id (docs/serving.md,
        "Per-user rules in bulk runs"); the signature then defaults to ``recommend``.
    """
    spec_ = spec.BulkRecommenderSpec(
        examples=examples, pushed_model=pushed_model, k=k, output_format=output_format,
        num_shards=num_shards, signature=signature,
        extra_inputs=json.dumps(dict(extra_inputs)) if extra_inputs else None,
        batch_size=batch_size, rules_file=rules_file,
        recommendations=types.Channel(type=simple_artifacts.Dataset))
    super().__init__(spec=spec_)
