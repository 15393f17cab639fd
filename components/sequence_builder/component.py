"""SequenceBuilder: the custom Beam component between ExampleValidator and Transform."""

from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts

from components.sequence_builder import cold_items
from components.sequence_builder import component_spec
from components.sequence_builder import executor


class SequenceBuilder(base_beam_component.BaseBeamComponent):
  """Turns an interaction log into per-user, leave-one-out sequence examples.

  ## Example
  ```
    sequence_builder = SequenceBuilder(
        examples=example_gen.outputs["examples"],
        items=item_gen.outputs["examples"],
        anomalies=example_validator.outputs["anomalies"],
        min_interactions=5)
    transform = Transform(
        examples=sequence_builder.outputs["output_examples"],
        schema=sequence_builder.outputs["schema"], ...)
  ```

  Component `outputs` contains:
   - `output_examples`: Examples with splits train, eval, test (one example
     per user: user_id, history, target) and items (one example per catalogue
     item: item_id, item_attributes, title), plus `stats.json` (and
     `cold_items.json` when items are held out).
   - `schema`: Schema (`schema.pbtxt`) of those examples, for Transform.
  """

  SPEC_CLASS = component_spec.SequenceBuilderSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

  def __init__(
      self,
      examples: types.BaseChannel,
      items: Optional[types.BaseChannel] = None,
      anomalies: Optional[types.BaseChannel] = None,
      drift_anomalies: Optional[types.BaseChannel] = None,
      min_interactions: int = component_spec.DEFAULT_MIN_INTERACTIONS,
      max_history_length: int = component_spec.DEFAULT_MAX_HISTORY_LENGTH,
      forgotten_users: Optional[str] = None,
      cold_item_fraction: float = component_spec.DEFAULT_COLD_ITEM_FRACTION,
      cold_item_seed: int = component_spec.DEFAULT_COLD_ITEM_SEED):
    """Constructs a SequenceBuilder.

    Args:
      examples: Examples channel of the interaction log (``user_id``,
        ``item_id`` BYTES, ``timestamp`` INT64; see ``trainer.features``), as
        ``pipeline.ingest.example_gen`` writes it. Every split is read.
      items: optional Examples channel of the item table (``item_id``,
        ``title``, ``|``-separated ``attributes``).
      anomalies: optional ExampleAnomalies channel from ExampleValidator; the
        run fails, listing them, if any split has anomalies.
      drift_anomalies: optional ExampleAnomalies channel from the DriftValidator
        (nightly runs); the run fails on them the same way.
      min_interactions: users with fewer interactions are dropped; >= 3.
      max_history_length: keep only the most recent this many history items
        per example; 0 keeps all.
      forgotten_users: path of the forgotten-users ledger
        (``forgotten_users.LEDGER_FILE``); the events of its users are dropped
        from every input span. A missing file forgets no one.
      cold_item_fraction: hold this fraction of the items out of training
        entirely, for the cold-item slice of the evaluation
        (``cold_items.ColdItemSelector``); 0 holds none out.
      cold_item_seed: which items that fraction is.
    """
    if isinstance(min_interactions, int) and isinstance(max_history_length,
                                                        int):
      component_spec.validate_parameters(min_interactions, max_history_length)
    if isinstance(cold_item_fraction, (int, float)) and isinstance(cold_item_seed, int):
      cold_items.validate(cold_item_fraction, cold_item_seed)
    spec = component_spec.SequenceBuilderSpec(
        examples=examples,
        items=items,
        anomalies=anomalies,
        drift_anomalies=drift_anomalies,
        min_interactions=min_interactions,
        max_history_length=max_history_length,
        forgotten_users=forgotten_users,
        cold_item_fraction=(float(cold_item_fraction) if isinstance(cold_item_fraction, int)
                            else cold_item_fraction),
        cold_item_seed=cold_item_seed,
        output_examples=types.Channel(type=standard_artifacts.Examples),
        schema=types.Channel(type=standard_artifacts.Schema))
    super().__init__(spec=spec)
