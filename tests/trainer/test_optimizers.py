"""Either Adam of a TrainingSchedule trains the same: the fused kernel changes speed only."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tests.trainer import batches
from trainer import optimizers
from trainer import run_fn
from trainer.config import EncoderConfig
from trainer.config import RetrievalConfig
from trainer.model import NextItemModel
from trainer.pretraining.item_attributes import ItemAttributeTable
from trainer.retrieval import RetrievalModel
from trainer.training_schedule import TrainingSchedule

CONFIG = EncoderConfig(embedding_dim=8, ff_dim=8, num_blocks=1, num_heads=2, max_seq_len=5,
                       dropout=0.0)
NUM_ITEMS = 6


def _trained(optimizer: str, steps: int = 4) -> RetrievalModel:
  """A small retrieval model (items with attributes, so one gradient is sparse) after
  ``steps`` compiled train steps with ``optimizer``."""
  tf.keras.utils.set_random_seed(3)
  attributes = ItemAttributeTable([[j % 3] for j in range(NUM_ITEMS)], num_attributes=3)
  model = RetrievalModel(NUM_ITEMS, CONFIG, RetrievalConfig(), attributes)
  run_fn.compile_model(model, TrainingSchedule(learning_rate=0.02, optimizer=optimizer))
  assert type(model.optimizer) is optimizers.ADAMS[optimizer]
  data = [batches.batch(batches.random_runs(8, NUM_ITEMS, 2, 5, seed), NUM_ITEMS, 5)
          for seed in range(steps)]
  if data:   # through fit, the compiled train step training uses
    signature = {k: tf.TensorSpec([None, *v.shape[1:]], v.dtype) for k, v in data[0].items()}
    model.fit(tf.data.Dataset.from_generator(lambda: iter(data), output_signature=signature),
              epochs=1, verbose=0)
  return model


def test_fused_adam_takes_the_same_steps_and_keeps_the_same_moments():
  fused, plain = _trained("fused_adam"), _trained("adam")
  assert int(fused.optimizer.iterations) == 4   # (tf_keras's Adam built in a trace counts 5)
  start = _trained("adam", steps=0)
  moved = 0
  for w_fused, w_plain, w_start in zip(fused.trainable_variables, plain.trainable_variables,
                                       start.trainable_variables):
    np.testing.assert_allclose(w_fused.numpy(), w_plain.numpy(), rtol=1e-4, atol=1e-5)
    moved += not np.allclose(w_plain.numpy(), w_start.numpy())
  assert moved == len(plain.trainable_variables)   # every weight took the steps
  pairs = zip(optimizers.moments(fused.optimizer, fused.trainable_variables),
              optimizers.moments(plain.optimizer, plain.trainable_variables))
  for (m_fused, v_fused), (m_plain, v_plain) in pairs:
    for fused_slot, plain_slot in ((m_fused.numpy(), m_plain.numpy()),
                                   (v_fused.numpy(), v_plain.numpy())):
      np.testing.assert_allclose(fused_slot, plain_slot, rtol=1e-3,
                                 atol=1e-4 * max(np.abs(plain_slot).max(), 1e-6))


@pytest.mark.parametrize("name", sorted(optimizers.ADAMS))
def test_build_creates_every_slot_before_the_first_step(name):
  model = NextItemModel(NUM_ITEMS, dataclasses.replace(CONFIG, num_heads=1))
  optimizer = optimizers.make(name, 1e-3)
  assert optimizers.is_adam(optimizer) and not optimizers.is_built(optimizer)
  model.compile(optimizer=optimizer)   # builds (trainer.model.NextItemModel.compile)
  assert optimizers.is_built(optimizer) and int(optimizer.iterations) == 0
  slots = optimizers.moments(optimizer, model.trainable_variables)
  assert all(pair is not None and pair[0].shape == w.shape
             for pair, w in zip(slots, model.trainable_variables))
  assert optimizers.moments(optimizer, [tf.Variable(1.0)]) == [None]
  assert not optimizers.is_adam(tf.keras.optimizers.SGD())
