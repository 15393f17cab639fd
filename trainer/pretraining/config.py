"""Self-supervised pre-training hyper-parameters: one typed object, passed as JSON."""

import dataclasses
from typing import Literal, Tuple

from trainer.json_config import JsonConfig
from trainer.json_config import literal_choices
from trainer.training_schedule import TrainingSchedule
from trainer.pretraining import objectives

Augmentation = Literal["crop", "mask", "reorder"]
AUGMENTATIONS: Tuple[str, ...] = literal_choices(Augmentation)


@dataclasses.dataclass
class PretrainConfig(JsonConfig):
  """Weights and settings of the pre-training objectives (see ``trainer.pretraining``)."""
  # Objective weights (total loss = sum of weight * objective loss).
  masked_item_weight: float = 1.0     # Cloze / BERT4Rec, bidirectional encoder
  next_item_weight: float = 0.0       # SASRec full softmax, causal encoder
  attribute_weight: float = 0.2       # S3-Rec AAP + MAP
  contrastive_weight: float = 0.1     # CL4SRec InfoNCE between two views
  clustering_weight: float = 0.1      # ICLRec InfoNCE sequence <-> intent prototype

  # Cloze masking (BERT4Rec): each item is chosen with mask_probability; of the
  # chosen ones, mask_random_fraction become a random item, mask_keep_fraction
  # stay unchanged and the rest become [MASK].
  mask_probability: float = 0.2
  mask_random_fraction: float = 0.1
  mask_keep_fraction: float = 0.1

  # Contrastive views (CL4SRec): each view applies one augmentation, drawn
  # uniformly per sequence from `augmentations`.
  augmentations: Tuple[Augmentation, ...] = AUGMENTATIONS
  crop_ratio: float = 0.6             # eta: kept fraction of the items
  item_mask_ratio: float = 0.3        # gamma: fraction of items set to [MASK]
  reorder_ratio: float = 0.3          # beta: fraction of items in the shuffled span
  temperature: float = 0.5            # softmax temperature on cosine similarities

  # Intent clustering (ICLRec): spherical k-means over the sequence
  # representations, recomputed at the start of every `cluster_every_epochs`-th epoch.
  num_clusters: int = 64
  kmeans_iterations: int = 20
  kmeans_max_sequences: int = 0       # 0 = cluster every training sequence
  cluster_every_epochs: int = 1

  # Schedule of the pre-training run.
  schedule: TrainingSchedule = dataclasses.field(
      default_factory=lambda: TrainingSchedule(epochs=10))

  def validate(self) -> None:
    self.augmentations = tuple(self.augmentations)
    weights = {f: getattr(self, f) for f in objectives.WEIGHT_FIELDS}
    negative = {k: v for k, v in weights.items() if v < 0}
    if negative:
      raise ValueError(f"PretrainConfig weights must be >= 0; got {negative}")
    if not any(v > 0 for v in weights.values()):
      raise ValueError(f"PretrainConfig needs at least one positive objective weight; got {weights}")
    for name in ("mask_probability", "mask_random_fraction", "mask_keep_fraction",
                 "item_mask_ratio", "reorder_ratio"):
      value = getattr(self, name)
      if not 0.0 <= value <= 1.0:
        raise ValueError(f"PretrainConfig.{name} must be in [0, 1]; got {value}")
    if not 0.0 < self.mask_probability:
      raise ValueError(f"PretrainConfig.mask_probability must be > 0; got {self.mask_probability}")
    if self.mask_random_fraction + self.mask_keep_fraction > 1.0:
      raise ValueError(
          "PretrainConfig.mask_random_fraction + mask_keep_fraction must be <= 1; got "
          f"{self.mask_random_fraction} + {self.mask_keep_fraction}")
    if not 0.0 < self.crop_ratio <= 1.0:
      raise ValueError(f"PretrainConfig.crop_ratio must be in (0, 1]; got {self.crop_ratio}")
    if not self.augmentations:
      raise ValueError(f"PretrainConfig.augmentations must be a non-empty subset of "
                       f"{AUGMENTATIONS}; got []")
    if self.temperature <= 0:
      raise ValueError(f"PretrainConfig.temperature must be > 0; got {self.temperature}")
    for name in ("num_clusters", "kmeans_iterations", "cluster_every_epochs"):
      if getattr(self, name) < 1:
        raise ValueError(f"PretrainConfig.{name} must be >= 1; got {getattr(self, name)}")
    if self.kmeans_max_sequences < 0:
      raise ValueError(
          f"PretrainConfig.kmeans_max_sequences must be >= 0; got {self.kmeans_max_sequences}")

  def to_dict(self) -> dict:
    values = dataclasses.asdict(self)
    values["augmentations"] = list(self.augmentations)
    return values

