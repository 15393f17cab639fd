"""TrainingSchedule: how one training run optimises (epochs, learning rate, batch size, seed).

Fine-tuning (``ModelConfig.schedule``) and pre-training (``PretrainConfig.schedule``) each
have one; the encoder's shape is ``trainer.config.EncoderConfig``.
"""

import dataclasses

from trainer.json_config import JsonConfig


@dataclasses.dataclass
class TrainingSchedule(JsonConfig):
  """Adam with a constant learning rate for ``epochs`` passes over the training split."""
  epochs: int = 20
  learning_rate: float = 1e-3
  batch_size: int = 256
  seed: int = 42                 # weights, shuffling and augmentations

  def validate(self) -> None:
    for name in ("epochs", "batch_size"):
      if getattr(self, name) < 1:
        raise ValueError(f"TrainingSchedule.{name} must be >= 1; got {getattr(self, name)}")
    if self.learning_rate <= 0:
      raise ValueError(f"TrainingSchedule.learning_rate must be > 0; got {self.learning_rate}")
