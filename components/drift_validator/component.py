"""DriftValidator: compares the newest span's statistics with the previous span's."""

import dataclasses
from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts

from components.drift_validator import component_spec as spec
from components.drift_validator import drift
from components.drift_validator import executor


class DriftValidator(base_component.BaseComponent):
  """Writes drift anomalies of the newest span, as ExampleValidator writes its anomalies.

  The SequenceBuilder stops the run on them (its ``drift_anomalies`` input), so a
  drifted span trains and pushes nothing. See ``drift`` for the checks.

  ## Example
  ```
    previous = tfx.dsl.Resolver(
        strategy_class=PreviousSpanStrategy,
        statistics=tfx.dsl.Channel(type=standard_artifacts.ExampleStatistics,
                                   producer_component_id=statistics_gen.id))
    previous.add_upstream_node(statistics_gen)
    drift_validator = DriftValidator(
        statistics=statistics_gen.outputs["statistics"],
        previous_statistics=previous.outputs["statistics"],
        examples=example_gen.outputs["examples"])
  ```
  """

  SPEC_CLASS = spec.DriftValidatorSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, statistics: types.BaseChannel, examples: types.BaseChannel,
               previous_statistics: Optional[types.BaseChannel] = None, *,
               max_item_distance: float, max_events_per_user_ratio: float,
               day_tolerance_hours: float):
    """Constructs a DriftValidator.

    Args:
      statistics: StatisticsGen's statistics of the newest span.
      examples: that span's Examples (ExampleGen's), read only for its span number.
      previous_statistics: the previous span's statistics (``PreviousSpanStrategy``);
        none on the first span, which only gets the day check.
      max_item_distance, max_events_per_user_ratio, day_tolerance_hours: how far
        the span may move (``drift.Thresholds``).
    """
    thresholds = drift.Thresholds(max_item_distance, max_events_per_user_ratio,
                                  day_tolerance_hours)
    super().__init__(spec=spec.DriftValidatorSpec(
        statistics=statistics, previous_statistics=previous_statistics, examples=examples,
        anomalies=types.Channel(type=standard_artifacts.ExampleAnomalies),
        **{key: float(value) for key, value in dataclasses.asdict(thresholds).items()}))
