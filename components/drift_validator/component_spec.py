"""ComponentSpec of the DriftValidator: channel and parameter names, types."""

import dataclasses

from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ComponentSpec
from tfx.types.component_spec import ExecutionParameter

from components.drift_validator import drift

# Inputs.
STATISTICS_KEY = "statistics"
PREVIOUS_STATISTICS_KEY = "previous_statistics"
EXAMPLES_KEY = "examples"
# Outputs.
ANOMALIES_KEY = "anomalies"
# Execution properties: one per field of drift.Thresholds.
THRESHOLD_KEYS = tuple(f.name for f in dataclasses.fields(drift.Thresholds))


class DriftValidatorSpec(ComponentSpec):
  """Statistics of the newest span (+ the previous span's) in; ExampleAnomalies out."""

  PARAMETERS = {key: ExecutionParameter(type=float) for key in THRESHOLD_KEYS}
  INPUTS = {
      STATISTICS_KEY: ChannelParameter(type=standard_artifacts.ExampleStatistics),
      PREVIOUS_STATISTICS_KEY: ChannelParameter(
          type=standard_artifacts.ExampleStatistics, optional=True),
      EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
  }
  OUTPUTS = {ANOMALIES_KEY: ChannelParameter(type=standard_artifacts.ExampleAnomalies)}
