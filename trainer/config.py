"""Model and training hyper-parameters: one typed object, passed to the Trainer as JSON."""

import dataclasses
import json
import os
from typing import Optional

from trainer.json_config import JsonConfig
from trainer.pretraining import objectives
from trainer.pretraining.config import PretrainConfig


CAUSAL = "causal"
BIDIRECTIONAL = "bidirectional"
ATTENTIONS = (CAUSAL, BIDIRECTIONAL)


@dataclasses.dataclass
class ModelConfig(JsonConfig):
  """SASRec-style Transformer encoder and its training schedule."""
  max_seq_len: int = 50          # items the encoder sees (most recent kept)
  embedding_dim: int = 64
  num_blocks: int = 2
  num_heads: int = 2
  ff_dim: int = 64               # inner width of the point-wise feed-forward
  dropout: float = 0.2
  # How the query tower reads a history: "bidirectional" (every history item
  # sees every other; only the last position is a query, so it needs prefix or
  # last-position training targets, see RetrievalConfig.targets) or "causal"
  # (SASRec: each position sees the ones before it; trains on all positions at
  # once, about 3x faster per epoch, 10% lower NDCG@10 on Beauty).
  attention: str = "bidirectional"
  # BSARec's frequency-domain inductive bias mixed into every block's attention:
  # filter_weight (alpha, 0 = off) of a filter keeping the frequency_bins lowest
  # frequencies of the sequence and rescaling the rest (trainer.layers.FrequencyFilter).
  filter_weight: float = 0.0
  frequency_bins: int = 3
  learning_rate: float = 1e-3
  batch_size: int = 256
  epochs: int = 20
  seed: int = 42
  early_stopping_patience: int = 0   # 0 = off; else epochs without a validation NDCG@10 gain
  # tf.distribute strategy of the Trainer: "default" (one device), "mirrored"
  # (all local GPUs/CPUs) or "multi_worker_mirrored" (workers from TF_CONFIG).
  distribution_strategy: str = "default"

  @property
  def causal_query(self) -> bool:
    """Whether the query tower reads a history causally (``attention``)."""
    return self.attention == CAUSAL

  def __post_init__(self):
    if self.attention not in ATTENTIONS:
      raise ValueError(f"ModelConfig.attention must be one of {ATTENTIONS}; "
                       f"got {self.attention!r}")
    if not 0.0 <= self.filter_weight <= 1.0:
      raise ValueError(f"ModelConfig.filter_weight must be in [0, 1]; got {self.filter_weight}")
    if not 1 <= self.frequency_bins <= self.max_seq_len // 2 + 1:
      raise ValueError(f"ModelConfig.frequency_bins must be in [1, max_seq_len // 2 + 1 = "
                       f"{self.max_seq_len // 2 + 1}]; got {self.frequency_bins}")


RETRIEVAL_CONFIG_KEY = "retrieval_config"   # custom_config key of a RetrievalConfig dict

FULL_SOFTMAX = "full_softmax"
SAMPLED_SOFTMAX = "sampled_softmax"
IN_BATCH = "in_batch"
UNIFORM = "uniform"
MIXED = "mixed"
ALL_POSITIONS = "all_positions"
LAST_POSITION = "last_position"
PREFIXES = "prefixes"


@dataclasses.dataclass
class RetrievalConfig(JsonConfig):
  """Loss and candidate tower of the retrieval fine-tuning model."""
  loss: str = FULL_SOFTMAX             # full_softmax | sampled_softmax
  negatives: str = IN_BATCH            # sampled_softmax only: in_batch | uniform | mixed
  num_uniform_negatives: int = 1024    # uniform / mixed
  logq_correction: bool = True         # sampled_softmax only
  temperature: float = 1.0
  # Training targets: "prefixes" (every prefix of a training sequence is an
  # example whose last position predicts the item after it: the targets of
  # all_positions, with the history read as the query tower reads it),
  # "all_positions" (every position of a training sequence predicts the next
  # item in one pass; causal attention only) or "last_position" (only the
  # example's target).
  targets: str = PREFIXES
  use_item_attributes: bool = True     # add the mean attribute embedding to candidates
  # Self-supervised objectives optimised jointly with the retrieval loss
  # (multi-task fine-tuning, as CL4SRec / ICLRec train): PretrainConfig fields,
  # objective weights default to 0 here, e.g. {"contrastive_weight": 0.1}.
  auxiliary: dict = dataclasses.field(default_factory=dict)
  seed: int = 42

  def __post_init__(self):
    choices = {"loss": (FULL_SOFTMAX, SAMPLED_SOFTMAX), "negatives": (IN_BATCH, UNIFORM, MIXED),
               "targets": (ALL_POSITIONS, LAST_POSITION, PREFIXES)}
    for name, allowed in choices.items():
      if getattr(self, name) not in allowed:
        raise ValueError(f"RetrievalConfig.{name} must be one of {allowed}; "
                         f"got {getattr(self, name)!r}")
    if self.num_uniform_negatives < 1:
      raise ValueError(f"RetrievalConfig.num_uniform_negatives must be >= 1; "
                       f"got {self.num_uniform_negatives}")
    if self.temperature <= 0:
      raise ValueError(f"RetrievalConfig.temperature must be > 0; got {self.temperature}")
    self.auxiliary_config()   # validates the auxiliary objectives' settings

  def auxiliary_config(self) -> Optional[PretrainConfig]:
    """The auxiliary objectives as a ``PretrainConfig``, or None when there are none."""
    if not self.auxiliary:
      return None
    no_objectives = dict.fromkeys(objectives.WEIGHT_FIELDS, 0.0)
    return PretrainConfig.from_dict({**no_objectives, **self.auxiliary})

  @property
  def trains_on_prefixes(self) -> bool:
    """Whether the training split is expanded into prefixes (``trainer.inputs``)."""
    return self.targets == PREFIXES

  @property
  def needs_item_probabilities(self) -> bool:
    return (self.loss == SAMPLED_SOFTMAX and self.logq_correction
            and self.negatives in (IN_BATCH, MIXED))


def load_json_object(text_or_path: Optional[str], what: str = "model config") -> dict:
  """A JSON object given inline or as a file path ({} for None or "")."""
  if not text_or_path:
    return {}
  text = text_or_path
  if os.path.exists(text):
    with open(text) as f:
      text = f.read()
  try:
    values = json.loads(text)
  except json.JSONDecodeError as e:
    raise ValueError(f"{what} is neither a JSON object nor a JSON file: {e}") from e
  if not isinstance(values, dict):
    raise ValueError(f"{what} must be a JSON object, got {type(values).__name__}")
  return values


def load_model_config(text_or_path: Optional[str]) -> ModelConfig:
  """A ModelConfig from a JSON object given inline or as a file path (None: defaults)."""
  return ModelConfig.from_dict(load_json_object(text_or_path, "model config"))
