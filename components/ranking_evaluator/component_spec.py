"""ComponentSpec of the RankingEvaluator: channel and parameter names, types, defaults."""

from tfx.types import standard_artifacts
from tfx.types import standard_component_specs
from tfx.types import system_executions
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ComponentSpec
from tfx.types.component_spec import ExecutionParameter

from components.ranking_evaluator import evaluation
from components.ranking_evaluator import gating
from trainer import features

# Channels: the standard Evaluator's keys.
EXAMPLES_KEY = standard_component_specs.EXAMPLES_KEY            # "examples"
MODEL_KEY = standard_component_specs.MODEL_KEY                  # "model"
BASELINE_MODEL_KEY = standard_component_specs.BASELINE_MODEL_KEY  # "baseline_model"
EVALUATION_KEY = standard_component_specs.EVALUATION_KEY        # "evaluation"
BLESSING_KEY = standard_component_specs.BLESSING_KEY            # "blessing"
# Execution properties.
EVAL_SPLIT_KEY = "eval_split"
KS_KEY = "ks"                                  # JSON list of ints
GATING_METRIC_KEY = "gating_metric"
MIN_VALUE_KEY = "min_value"
MUST_BEAT_POPULARITY_KEY = "must_beat_popularity"
BASELINE_TOLERANCE_KEY = "baseline_tolerance"
BATCH_SIZE_KEY = "batch_size"
SLICE_GATES_KEY = "slice_gates"                # JSON list of gating.check_slice_gates
ITEM_VECTORS_KEY = "item_vectors"              # item vectors file: the text-similarity baseline

DEFAULT_EVAL_SPLIT = features.TEST_SPLIT
DEFAULT_KS = evaluation.DEFAULT_KS
DEFAULT_GATING_METRIC = gating.DEFAULT_GATING_METRIC
DEFAULT_MIN_VALUE = 0.0
DEFAULT_MUST_BEAT_POPULARITY = 1
DEFAULT_BASELINE_TOLERANCE = 0.0
DEFAULT_BATCH_SIZE = evaluation.DEFAULT_BATCH_SIZE
DEFAULT_SLICE_GATES = ()


class RankingEvaluatorSpec(ComponentSpec):
  """Sequence examples + model (+ baseline model) in; evaluation and blessing out."""

  PARAMETERS = {
      EVAL_SPLIT_KEY: ExecutionParameter(type=str, optional=True),
      KS_KEY: ExecutionParameter(type=str, optional=True),
      GATING_METRIC_KEY: ExecutionParameter(type=str, optional=True),
      MIN_VALUE_KEY: ExecutionParameter(type=float, optional=True),
      MUST_BEAT_POPULARITY_KEY: ExecutionParameter(type=int, optional=True),
      BASELINE_TOLERANCE_KEY: ExecutionParameter(type=float, optional=True),
      BATCH_SIZE_KEY: ExecutionParameter(type=int, optional=True),
      SLICE_GATES_KEY: ExecutionParameter(type=str, optional=True),
      ITEM_VECTORS_KEY: ExecutionParameter(type=str, optional=True),
  }
  INPUTS = {
      EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
      MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
      BASELINE_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model, optional=True),
  }
  OUTPUTS = {
      EVALUATION_KEY: ChannelParameter(type=standard_artifacts.ModelEvaluation),
      BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing),
  }
  TYPE_ANNOTATION = system_executions.Evaluate
