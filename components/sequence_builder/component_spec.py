"""ComponentSpec of the SequenceBuilder: channel and parameter names, types."""

from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ComponentSpec
from tfx.types.component_spec import ExecutionParameter

# Inputs.
EXAMPLES_KEY = "examples"
ITEMS_KEY = "items"
ANOMALIES_KEY = "anomalies"
DRIFT_ANOMALIES_KEY = "drift_anomalies"
# Outputs.
OUTPUT_EXAMPLES_KEY = "output_examples"
SCHEMA_KEY = "schema"
# Execution properties.
MIN_INTERACTIONS_KEY = "min_interactions"
MAX_HISTORY_LENGTH_KEY = "max_history_length"
FORGOTTEN_USERS_KEY = "forgotten_users"  # path of the forgotten-users ledger
COLD_ITEM_FRACTION_KEY = "cold_item_fraction"  # items held out of training (0: none)
COLD_ITEM_SEED_KEY = "cold_item_seed"

DEFAULT_MIN_INTERACTIONS = 5
DEFAULT_MAX_HISTORY_LENGTH = 0  # 0 keeps the whole history.
DEFAULT_COLD_ITEM_FRACTION = 0.0
DEFAULT_COLD_ITEM_SEED = 0
# Leave-one-out needs one target per train/eval/test split.
MIN_MIN_INTERACTIONS = 3


class SequenceBuilderSpec(ComponentSpec):
  """Interaction log (+ item table, + anomalies) in; sequence examples out."""

  PARAMETERS = {
      MIN_INTERACTIONS_KEY: ExecutionParameter(type=int, optional=True),
      MAX_HISTORY_LENGTH_KEY: ExecutionParameter(type=int, optional=True),
      FORGOTTEN_USERS_KEY: ExecutionParameter(type=str, optional=True),
      COLD_ITEM_FRACTION_KEY: ExecutionParameter(type=float, optional=True),
      COLD_ITEM_SEED_KEY: ExecutionParameter(type=int, optional=True),
  }
  INPUTS = {
      EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
      ITEMS_KEY: ChannelParameter(
          type=standard_artifacts.Examples, optional=True),
      ANOMALIES_KEY: ChannelParameter(
          type=standard_artifacts.ExampleAnomalies, optional=True),
      DRIFT_ANOMALIES_KEY: ChannelParameter(
          type=standard_artifacts.ExampleAnomalies, optional=True),
  }
  OUTPUTS = {
      OUTPUT_EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
      SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema),
  }


def validate_parameters(min_interactions: int, max_history_length: int) -> None:
  """Raises ValueError unless the two execution properties are usable."""
  if isinstance(min_interactions, bool) or not isinstance(
      min_interactions, int):
    raise ValueError(
        f"{MIN_INTERACTIONS_KEY} must be an int, got {min_interactions!r}")
  if isinstance(max_history_length, bool) or not isinstance(
      max_history_length, int):
    raise ValueError(
        f"{MAX_HISTORY_LENGTH_KEY} must be an int, got {max_history_length!r}")
  if min_interactions < MIN_MIN_INTERACTIONS:
    raise ValueError(
        f"{MIN_INTERACTIONS_KEY} must be >= {MIN_MIN_INTERACTIONS} (the "
        "leave-one-out splits take one target each for train, eval and test), "
        f"got {min_interactions}")
  if max_history_length < 0:
    raise ValueError(
        f"{MAX_HISTORY_LENGTH_KEY} must be >= 0 (0 keeps the whole history), "
        f"got {max_history_length}")
