"""Model and training hyper-parameters: typed objects, passed to the Trainers as JSON.

Imports no TensorFlow: the pipeline definition reads the ``custom_config`` keys below.
"""

import dataclasses
import json
import os
from typing import Literal, Optional, Tuple

from trainer.json_config import JsonConfig
from trainer.json_config import literal_choices
from trainer.pretraining import objectives
from trainer.pretraining.config import PretrainConfig
from trainer.training_schedule import TrainingSchedule

# custom_config keys of the Trainers (trainer.run_fn, trainer.pretrain_run_fn).
MODEL_CONFIG_KEY = "model_config"          # a ModelConfig dict (both Trainers)
RETRIEVAL_CONFIG_KEY = "retrieval_config"  # a RetrievalConfig dict (fine-tuning)
PRETRAIN_CONFIG_KEY = "pretrain_config"    # a PretrainConfig dict (pre-training)
ITEMS_FILES_KEY = "items_files"            # glob of the transformed items split (pre-training)
ITEM_VECTORS_KEY = "item_vectors"          # item vectors file (both Trainers; text items only)
# Both Trainers' per-epoch Keras history, {metric: [float per epoch]}, in their ModelRun folder.
HISTORY_FILE = "history.json"

CAUSAL = "causal"
BIDIRECTIONAL = "bidirectional"
Attention = Literal["causal", "bidirectional"]
ATTENTIONS: Tuple[str, ...] = literal_choices(Attention)
DistributionStrategy = Literal["default", "mirrored", "multi_worker_mirrored"]
ID = "id"
TEXT = "text"
ID_AND_TEXT = "id+text"
ItemRepresentation = Literal["id", "text", "id+text"]


@dataclasses.dataclass
class EncoderConfig(JsonConfig):
  """Shape of the SASRec-style Transformer encoder (``trainer.encoder``)."""
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
  # once: faster per epoch, lower NDCG@10 on Beauty, see
  # bench/quality/results/HISTORY.md).
  attention: Attention = BIDIRECTIONAL
  # BSARec's frequency-domain inductive bias mixed into every block's attention:
  # filter_weight (alpha, 0 = off) of a filter keeping the frequency_bins lowest
  # frequencies of the sequence and rescaling the rest (trainer.layers.FrequencyFilter).
  filter_weight: float = 0.0
  frequency_bins: int = 3
  # How an item is represented, in the encoder's input and the candidate tower
  # alike: "id" (a learned embedding per item), "text" (UniSRec's mixture-of-experts
  # adaptor over the item's frozen text vector, trainer.text_adaptor) or "id+text"
  # (their sum). Text needs item vectors (custom_config "item_vectors").
  item_representation: ItemRepresentation = ID
  adaptor_experts: int = 8        # experts of the text adaptor
  adaptor_dropout: float = 0.2    # dropout on the text vector inside the adaptor
  # id+text only: in training, each item occurrence (an input position, a catalogue row)
  # loses its id embedding with this probability, so the text part alone must rank it,
  # as an item with no trained id row (a cold item) is ranked at serving.
  id_dropout: float = 0.0

  @property
  def causal_query(self) -> bool:
    """Whether the query tower reads a history causally (``attention``)."""
    return self.attention == CAUSAL

  @property
  def uses_item_ids(self) -> bool:
    """Whether items have a learned id embedding (``item_representation`` id, id+text)."""
    return self.item_representation != TEXT

  @property
  def uses_item_text(self) -> bool:
    """Whether items are represented through their text vectors (text, id+text)."""
    return self.item_representation != ID

  def validate(self) -> None:
    if not 0.0 <= self.filter_weight <= 1.0:
      raise ValueError(f"EncoderConfig.filter_weight must be in [0, 1]; got {self.filter_weight}")
    if not 1 <= self.frequency_bins <= self.max_seq_len // 2 + 1:
      raise ValueError(f"EncoderConfig.frequency_bins must be in [1, max_seq_len // 2 + 1 = "
                       f"{self.max_seq_len // 2 + 1}]; got {self.frequency_bins}")
    if self.adaptor_experts < 1:
      raise ValueError(f"EncoderConfig.adaptor_experts must be >= 1; got {self.adaptor_experts}")
    if not 0.0 <= self.adaptor_dropout < 1.0:
      raise ValueError(f"EncoderConfig.adaptor_dropout must be in [0, 1); "
                       f"got {self.adaptor_dropout}")
    if not 0.0 <= self.id_dropout < 1.0:
      raise ValueError(f"EncoderConfig.id_dropout must be in [0, 1); got {self.id_dropout}")


@dataclasses.dataclass
class WarmStartConfig(JsonConfig):
  """How fine-tuning goes on from an earlier fine-tuned model (a nightly retrain's
  ``base_model``, ``trainer.warm_start``): the learning rate of ``WarmSchedule``, how
  much of the saved weights it starts from and whether Adam's state carries over. Not
  applied when fine-tuning starts from a pre-trained encoder or from nothing. The
  defaults keep the schedule's constant rate, early stopping, the saved weights as they
  are and a fresh Adam."""
  warm_learning_rate: float = 0.0   # 0: the schedule's learning_rate
  # Cosine-decay the rate to zero over this many epochs, then stop (0: constant rate).
  warm_decay_epochs: int = 0
  warm_warmup_steps: int = 0        # linear warm-up over this many batches first
  # Save Adam's moments and step count with the served model (twice the trained
  # weights' size) and, retraining from it, go on from them instead of a fresh Adam.
  carry_optimizer: bool = False
  # Shrink and perturb (Ash & Adams, 2020): start from shrink * the saved weights +
  # (1 - shrink) * a fresh initialisation, so that night after night of warm starts
  # keeps learning (1: the saved weights as they are).
  shrink: float = 1.0

  @property
  def is_set(self) -> bool:
    """Whether a warm start changes the schedule's learning rate at all."""
    return bool(self.warm_learning_rate or self.warm_decay_epochs or self.warm_warmup_steps)

  def rate(self, schedule_learning_rate: float) -> float:
    """The warm run's peak learning rate: ``warm_learning_rate``, else the schedule's."""
    return self.warm_learning_rate or schedule_learning_rate

  def validate(self) -> None:
    if self.warm_learning_rate < 0:
      raise ValueError(f"WarmStartConfig.warm_learning_rate must be >= 0 (0: the "
                       f"schedule's); got {self.warm_learning_rate}")
    for name in ("warm_decay_epochs", "warm_warmup_steps"):
      if getattr(self, name) < 0:
        raise ValueError(f"WarmStartConfig.{name} must be >= 0; got {getattr(self, name)}")
    if not 0 < self.shrink <= 1:
      raise ValueError(f"WarmStartConfig.shrink must be in (0, 1] (1: the saved weights as "
                       f"they are); got {self.shrink}")


@dataclasses.dataclass
class ModelConfig(JsonConfig):
  """The fine-tuning Trainer's model: encoder shape and training schedule."""
  encoder: EncoderConfig = dataclasses.field(default_factory=EncoderConfig)
  schedule: TrainingSchedule = dataclasses.field(default_factory=TrainingSchedule)
  warm_start: WarmStartConfig = dataclasses.field(default_factory=WarmStartConfig)
  early_stopping_patience: int = 0   # 0 = off; else epochs without a validation NDCG@10 gain
  # tf.distribute strategy of the Trainer: "default" (one device), "mirrored"
  # (all local GPUs/CPUs) or "multi_worker_mirrored" (workers from TF_CONFIG).
  distribution_strategy: DistributionStrategy = "default"


FULL_SOFTMAX = "full_softmax"
SAMPLED_SOFTMAX = "sampled_softmax"
IN_BATCH = "in_batch"
UNIFORM = "uniform"
MIXED = "mixed"
ALL_POSITIONS = "all_positions"
LAST_POSITION = "last_position"
PREFIXES = "prefixes"
Loss = Literal["full_softmax", "sampled_softmax"]
Negatives = Literal["in_batch", "uniform", "mixed"]
Targets = Literal["all_positions", "last_position", "prefixes"]


@dataclasses.dataclass
class RetrievalConfig(JsonConfig):
  """Loss and candidate tower of the retrieval fine-tuning model."""
  loss: Loss = FULL_SOFTMAX
  negatives: Negatives = IN_BATCH      # sampled_softmax only
  num_uniform_negatives: int = 1024    # uniform / mixed
  logq_correction: bool = True         # sampled_softmax only
  temperature: float = 1.0
  # Training targets: "prefixes" (every prefix of a training sequence is an
  # example whose last position predicts the item after it: the targets of
  # all_positions, with the history read as the query tower reads it),
  # "all_positions" (every position of a training sequence predicts the next
  # item in one pass; causal attention only) or "last_position" (only the
  # example's target).
  targets: Targets = PREFIXES
  use_item_attributes: bool = True     # add the mean attribute embedding to candidates
  # Text and id+text items only: items with no interaction in the training data take
  # no part in the training losses' catalogue scoring (never a negative), in
  # fine-tuning and in pre-training alike; they stay scorable at evaluation and
  # serving. False scores them as negatives as id models always do
  # (trainer.tasks.excluded_items).
  exclude_untrained_items: bool = True
  # L2-normalise the query and every candidate embedding, so a score is a cosine
  # (divided by ``temperature`` in the training losses), as UniSRec fine-tunes: a
  # candidate cannot outrank others by its norm alone, which items never trained on lack.
  normalize_embeddings: bool = False
  # Text and id+text items only: add a learned text-match term to every score, w times
  # the cosine between the candidate's frozen text vector and the mean of the history's
  # (the text-similarity baseline's score, trainer.text_match), still one dot product:
  # the query is [q ; w * unit mean history text], each candidate [c ; unit text].
  # text_match_weight is w's initial value (the score's units, before the temperature);
  # w = text_match_weight * a learned factor that starts at 1 (text_match_trainable).
  text_match: bool = False
  text_match_weight: float = 1.0
  # False keeps w at text_match_weight instead of learning it.
  text_match_trainable: bool = True
  # Self-supervised objectives optimised jointly with the retrieval loss
  # (multi-task fine-tuning, as CL4SRec / ICLRec train): PretrainConfig fields,
  # objective weights default to 0 here, e.g. {"contrastive_weight": 0.1}.
  auxiliary: dict = dataclasses.field(default_factory=dict)
  seed: int = 42

  def validate(self) -> None:
    if self.num_uniform_negatives < 1:
      raise ValueError(f"RetrievalConfig.num_uniform_negatives must be >= 1; "
                       f"got {self.num_uniform_negatives}")
    if self.temperature <= 0:
      raise ValueError(f"RetrievalConfig.temperature must be > 0; got {self.temperature}")
    if self.text_match_weight <= 0:
      raise ValueError(f"RetrievalConfig.text_match_weight must be > 0; "
                       f"got {self.text_match_weight}")
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
