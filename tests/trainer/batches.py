"""Item sequences and model batches for trainer tests: runs of consecutive items, easy to learn."""

from typing import Callable, Dict, List, Sequence, Union

import numpy as np
import tensorflow as tf

from trainer import inputs
from trainer import optimizers
from trainer.model import INPUTS
from trainer.model import LABELS


def run(start: int, length: int, num_items: int) -> List[int]:
  """``length`` consecutive item indices from ``start``: next = (previous + 1) mod num_items."""
  return [int((start + i) % num_items) for i in range(length)]


def random_runs(count: int, num_items: int, min_length: int, max_length: int,
                seed: Union[int, np.random.Generator] = 0) -> List[List[int]]:
  """``count`` runs, each of a random start and a random length in [min_length, max_length]."""
  rng = np.random.default_rng(seed)   # a Generator is used as it is, continuing its draws
  return [run(rng.integers(num_items), rng.integers(min_length, max_length + 1), num_items)
          for _ in range(count)]


def batch(sequences: Sequence[Sequence[int]], num_items: int, max_seq_len: int,
          pairs: Callable = inputs.batch_training_pairs) -> Dict[str, tf.Tensor]:
  """The model batch {INPUTS, LABELS} of ``sequences`` (each one's last item is its target)."""
  history = tf.ragged.constant([s[:-1] for s in sequences], dtype=tf.int64)
  target = tf.constant([s[-1] for s in sequences], tf.int64)
  x, y = pairs(history, target, num_items, max_seq_len)
  return {INPUTS: x, LABELS: y}


def stepped(model, seeds: Sequence[int], optimizer: str = "adam"):
  """``model`` compiled with Adam (``trainer.optimizers.make``) unless it has an optimizer,
  after one train step per seed on random runs over 3 items."""
  if model.optimizer is None:
    model.compile(optimizer=optimizers.make(optimizer, 0.01))
  for seed in seeds:
    model.train_step(batch(random_runs(8, 3, 2, 5, seed), 3, 5))
  return model
