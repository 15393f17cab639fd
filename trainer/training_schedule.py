"""TrainingSchedule: how one training run optimises (epochs, learning rate, batch size, seed).

Fine-tuning (``ModelConfig.schedule``) and pre-training (``PretrainConfig.schedule``) each
have one; the encoder's shape is ``trainer.config.EncoderConfig``.
"""

import dataclasses
from typing import Literal

from trainer.json_config import JsonConfig

Precision = Literal["float32", "bfloat16", "auto"]
Optimizer = Literal["adam", "fused_adam"]


@dataclasses.dataclass
class TrainingSchedule(JsonConfig):
  """Adam with a constant learning rate for ``epochs`` passes over the training split."""
  epochs: int = 20
  learning_rate: float = 1e-3
  batch_size: int = 256
  seed: int = 42                 # weights, shuffling and augmentations
  # Precision of the full-softmax losses' matrix multiplies over the catalogue (their
  # inputs are rounded to it; logits, softmax, loss and weights stay float32; the
  # encoder and the exported model are float32 either way): "float32", "bfloat16",
  # or "auto" (bfloat16 where the CPU multiplies it natively, trainer.cpu_features).
  mixed_precision: Precision = "float32"
  # XLA-compile the whole train step (Keras ``compile(jit_compile=...)``). Off by
  # default: the chunked full-softmax loop has data-dependent shapes that XLA does not
  # compile (docs/architecture.md, "Training speed").
  jit_compile: bool = False
  # Adam's implementation, one update rule either way: "fused_adam" is TF's fused
  # ResourceApplyAdam (tf_keras's legacy optimizer, one kernel per weight), "adam" the
  # current tf_keras optimizer (a few element-wise ops per weight).
  optimizer: Optimizer = "fused_adam"

  def validate(self) -> None:
    for name in ("epochs", "batch_size"):
      if getattr(self, name) < 1:
        raise ValueError(f"TrainingSchedule.{name} must be >= 1; got {getattr(self, name)}")
    if self.learning_rate <= 0:
      raise ValueError(f"TrainingSchedule.learning_rate must be > 0; got {self.learning_rate}")
