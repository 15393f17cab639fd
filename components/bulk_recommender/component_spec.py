"""ComponentSpec of the BulkRecommender: channel and parameter names, types, defaults."""

from tfx.types import standard_artifacts
from tfx.types import standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ComponentSpec
from tfx.types.component_spec import ExecutionParameter
from tfx.types.experimental import simple_artifacts

from components.bulk_recommender import recommend

# Inputs: the standard keys.
EXAMPLES_KEY = standard_component_specs.EXAMPLES_KEY            # "examples"
PUSHED_MODEL_KEY = standard_component_specs.PUSHED_MODEL_KEY    # "pushed_model"
# Output: a Dataset artifact holding the sharded files.
RECOMMENDATIONS_KEY = "recommendations"
# Execution properties.
K_KEY = "k"
OUTPUT_FORMAT_KEY = "output_format"
NUM_SHARDS_KEY = "num_shards"
SIGNATURE_KEY = "signature"
EXTRA_INPUTS_KEY = "extra_inputs"    # JSON object: input name -> value, for every user
BATCH_SIZE_KEY = "batch_size"
RULES_FILE_KEY = "rules_file"        # per-user rules, JSON Lines (user_rules)


class BulkRecommenderSpec(ComponentSpec):
  """Sequence examples + the pushed model in; a Dataset of top-k rows per user out."""

  PARAMETERS = {
      K_KEY: ExecutionParameter(type=int, optional=True),
      OUTPUT_FORMAT_KEY: ExecutionParameter(type=str, optional=True),
      NUM_SHARDS_KEY: ExecutionParameter(type=int, optional=True),
      SIGNATURE_KEY: ExecutionParameter(type=str, optional=True),
      EXTRA_INPUTS_KEY: ExecutionParameter(type=str, optional=True),
      BATCH_SIZE_KEY: ExecutionParameter(type=int, optional=True),
      RULES_FILE_KEY: ExecutionParameter(type=str, optional=True),
  }
  INPUTS = {
      EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
      PUSHED_MODEL_KEY: ChannelParameter(type=standard_artifacts.PushedModel),
  }
  OUTPUTS = {RECOMMENDATIONS_KEY: ChannelParameter(type=simple_artifacts.Dataset)}


DEFAULTS = {K_KEY: recommend.DEFAULT_K, OUTPUT_FORMAT_KEY: recommend.FORMATS[0],
            NUM_SHARDS_KEY: 0, BATCH_SIZE_KEY: recommend.DEFAULT_BATCH_SIZE}
