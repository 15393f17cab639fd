"""Model and training hyper-parameters: one typed object, passed to the Trainer as JSON."""

import dataclasses
import json
import os
from typing import Optional


@dataclasses.dataclass
class ModelConfig:
  """SASRec-style Transformer encoder and its training schedule."""
  max_seq_len: int = 50          # items the encoder sees (most recent kept)
  embedding_dim: int = 64
  num_blocks: int = 2
  num_heads: int = 2
  ff_dim: int = 64               # inner width of the point-wise feed-forward
  dropout: float = 0.2
  learning_rate: float = 1e-3
  batch_size: int = 256
  epochs: int = 20
  seed: int = 42
  early_stopping_patience: int = 0   # 0 = off; else epochs without val-loss gain
  # tf.distribute strategy of the Trainer: "default" (one device), "mirrored"
  # (all local GPUs/CPUs) or "multi_worker_mirrored" (workers from TF_CONFIG).
  distribution_strategy: str = "default"

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), sort_keys=True)

  @classmethod
  def from_json(cls, text: str) -> "ModelConfig":
    return cls.from_dict(json.loads(text))

  @classmethod
  def from_dict(cls, values: dict) -> "ModelConfig":
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
      raise ValueError(f"Unknown ModelConfig field(s) {unknown}; known: {sorted(known)}")
    return cls(**values)


def load_model_config(text_or_path: Optional[str]) -> ModelConfig:
  """A ModelConfig from a JSON object given inline or as a file path (None: defaults)."""
  if not text_or_path:
    return ModelConfig()
  text = text_or_path
  if os.path.exists(text):
    with open(text) as f:
      text = f.read()
  try:
    values = json.loads(text)
  except json.JSONDecodeError as e:
    raise ValueError(f"model config is neither a JSON object nor a JSON file: {e}") from e
  if not isinstance(values, dict):
    raise ValueError(f"model config must be a JSON object, got {type(values).__name__}")
  return ModelConfig.from_dict(values)
