"""Named defaults of the pipeline in one place: one config object, nested by concern.

Every runner (local, Kubeflow V2) builds a ``PipelineConfig`` and hands it to
``pipeline.create_pipeline``; nothing else reads flags.
"""

import dataclasses
import os
from typing import Any, Dict, List, Optional, Tuple

from serving.contract import MODEL_NAME
from trainer.config import ModelConfig
from trainer.config import RetrievalConfig
from trainer.config import load_json_object
from trainer.pretraining.config import PretrainConfig

PIPELINE_NAME = "seqrec"


@dataclasses.dataclass
class SequenceConfig:
  """How per-user sequences are built from the log."""
  min_interactions: int = 5      # users with fewer events are dropped (>= 3)
  max_history_length: int = 0    # 0 keeps every event; else the most recent N


@dataclasses.dataclass
class EvaluationConfig:
  """Full-ranking evaluation and the blessing that gates the push."""
  eval_split: str = "test"
  ks: Tuple[int, ...] = (5, 10, 20)
  gating_metric: str = "NDCG@10"
  min_value: float = 0.0             # blessed only at or above this
  must_beat_popularity: bool = True  # and above the popularity baseline
  # With a served (latest blessed) model: blessed only if not worse than it by
  # more than this fraction of its gating metric.
  baseline_tolerance: float = 0.0
  # [{"slice": "popularity:tail", "metric": "NDCG@10", "max_drop": 0.05}]: blessed
  # only if no such slice drops more than that below the baseline (else popularity).
  slice_gates: List[Dict[str, Any]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class PipelineConfig:
  """Everything that varies between runs of the pipeline."""
  data_root: str                     # canonical data: interactions/ [and items/]
  output_root: str = "outputs"       # pipeline root, metadata and serving live below
  pipeline_name: str = PIPELINE_NAME
  model_name: str = MODEL_NAME
  sequence: SequenceConfig = dataclasses.field(default_factory=SequenceConfig)
  model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
  # Self-supervised pre-training step before fine-tuning; None skips it (the
  # fine-tuning then warm-starts from the latest blessed model, if any).
  pretrain: Optional[PretrainConfig] = dataclasses.field(default_factory=PretrainConfig)
  retrieval: RetrievalConfig = dataclasses.field(default_factory=RetrievalConfig)
  evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)
  schema_path: Optional[str] = None  # curated schema for ExampleValidator (else inferred)
  beam_pipeline_args: List[str] = dataclasses.field(default_factory=lambda: [
      "--direct_running_mode=in_memory", "--direct_num_workers=1"])
  enable_cache: bool = False
  # Daily partitions: 0 reads every file under <data_root>/interactions; N > 0
  # reads <data_root>/interactions/span-{SPAN}/ and trains on the last N spans.
  span_window: int = 0
  # Warm-start training from, and compare against, the latest blessed model.
  use_latest_blessed_model: bool = True
  # Whether an item table sits under <data_root>/items. None: look (local roots
  # only); remote roots (gs://, s3://) must say so, as the runner cannot look.
  use_item_table: Optional[bool] = None
  # Folder TF Serving watches (model folders below it); None: <output_root>/serving.
  serving_root: Optional[str] = None

  @property
  def pipeline_root(self) -> str:
    return os.path.join(self.output_root, "tfx", self.pipeline_name)

  @property
  def metadata_path(self) -> str:
    return os.path.join(self.output_root, "metadata", self.pipeline_name, "metadata.db")

  @property
  def serving_model_dir(self) -> str:
    """``<serving_root>/<model_name>``: TF Serving's model base path."""
    return os.path.join(self.serving_root or os.path.join(self.output_root, "serving"),
                        self.model_name)

  @property
  def interactions_root(self) -> str:
    return os.path.join(self.data_root, "interactions")

  @property
  def items_root(self) -> str:
    return os.path.join(self.data_root, "items")

  @property
  def has_item_table(self) -> bool:
    if self.use_item_table is not None:
      return self.use_item_table
    if "://" in self.data_root:
      raise ValueError(f"data_root {self.data_root} is remote: set use_item_table "
                       "to say whether <data_root>/items holds an item table")
    return os.path.isdir(self.items_root) and bool(os.listdir(self.items_root))


NO_PRETRAINING = "off"


def add_training_flags(parser) -> None:
  """The flags every runner takes for the three training configs."""
  parser.add_argument("--model-config", default=None,
                      help="JSON object (or path to a JSON file) overriding ModelConfig fields")
  parser.add_argument("--pretrain-config", default=None,
                      help="JSON object (or file) overriding PretrainConfig fields, or "
                           f"'{NO_PRETRAINING}' to skip self-supervised pre-training")
  parser.add_argument("--retrieval-config", default=None,
                      help="JSON object (or file) overriding RetrievalConfig fields "
                           "(fine-tuning loss, negatives, candidate features)")


def apply_overrides(config: PipelineConfig, *, min_interactions: Optional[int] = None,
                    max_history_length: Optional[int] = None,
                    min_ndcg: Optional[float] = None,
                    beam_pipeline_args: Optional[List[str]] = None,
                    pretrain_config: Optional[str] = None,
                    retrieval_config: Optional[str] = None) -> PipelineConfig:
  """Sets the values a runner's flags gave (None leaves the default)."""
  if pretrain_config == NO_PRETRAINING:
    config.pretrain = None
  elif pretrain_config:
    config.pretrain = PretrainConfig.from_dict(
        load_json_object(pretrain_config, "pretrain config"))
  if retrieval_config:
    config.retrieval = RetrievalConfig.from_dict(
        load_json_object(retrieval_config, "retrieval config"))
  if min_interactions is not None:
    config.sequence.min_interactions = min_interactions
  if max_history_length is not None:
    config.sequence.max_history_length = max_history_length
  if min_ndcg is not None:
    config.evaluation.min_value = min_ndcg
  if beam_pipeline_args:
    config.beam_pipeline_args = list(beam_pipeline_args)
  return config
