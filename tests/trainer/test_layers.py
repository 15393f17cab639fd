"""The encoder's masks: causal output at t ignores later items; bidirectional does not; padding is inert.
slice_axis: plain slicing's values and gradients."""

import numpy as np
import pytest
import tensorflow as tf

from trainer.config import EncoderConfig
from trainer.encoder import SequenceEncoder
from trainer.layers import slice_axis

CONFIG = EncoderConfig(embedding_dim=16, ff_dim=16, num_blocks=2, num_heads=2, max_seq_len=8,
                       dropout=0.0)


def _encoder():
  tf.keras.utils.set_random_seed(0)
  encoder = SequenceEncoder(20, CONFIG)
  encoder(tf.zeros([1, CONFIG.max_seq_len], tf.int32))
  return encoder


def test_causal_output_at_t_does_not_change_when_later_items_change():
  encoder = _encoder()
  a = tf.constant([[0, 0, 3, 5, 7, 9, 11, 13]])
  b = tf.constant([[0, 0, 3, 5, 7, 2, 4, 6]])  # positions 5.. differ
  out_a, out_b = encoder(a, causal=True).numpy(), encoder(b, causal=True).numpy()
  np.testing.assert_allclose(out_a[:, :5], out_b[:, :5], atol=1e-5)
  assert not np.allclose(out_a[:, 5:], out_b[:, 5:], atol=1e-3)


def test_bidirectional_output_at_t_sees_later_items():
  encoder = _encoder()
  a = tf.constant([[0, 0, 3, 5, 7, 9, 11, 13]])
  b = tf.constant([[0, 0, 3, 5, 7, 2, 4, 6]])
  out_a, out_b = encoder(a, causal=False).numpy(), encoder(b, causal=False).numpy()
  assert not np.allclose(out_a[:, 2:5], out_b[:, 2:5], atol=1e-3)


def test_left_padding_does_not_change_the_last_position_and_gives_no_nan():
  encoder = _encoder()
  short = tf.constant([[0, 0, 0, 0, 0, 3, 5, 7]])
  out = encoder(short, causal=True).numpy()
  assert np.isfinite(out).all()
  # Same items, fewer pad columns: positions are counted from the end.
  trimmed = encoder(tf.constant([[0, 3, 5, 7]]), causal=True).numpy()
  np.testing.assert_allclose(out[:, -1], trimmed[:, -1], atol=1e-5)


@pytest.mark.parametrize("axis, start, stop", [(0, 1, 4), (1, 6, 7), (1, 0, 7), (0, 2, 2)])
def test_slice_axis_has_plain_slicing_values_and_gradients(axis, start, stop):
  x = tf.Variable(tf.random.stateless_normal([5, 7, 3], seed=[0, 1]))
  index = (slice(None),) * axis + (slice(start, stop),)
  weights = tf.random.stateless_normal([5, 7, 3], seed=[0, 2])[index]
  with tf.GradientTape(persistent=True) as tape:
    ours = slice_axis(x, tf.constant(start), stop, axis)
    plain = x[index]
    ours_loss, plain_loss = tf.reduce_sum(ours * weights), tf.reduce_sum(plain * weights)
  np.testing.assert_array_equal(ours.numpy(), plain.numpy())
  np.testing.assert_array_equal(tape.gradient(ours_loss, x).numpy(),
                                tape.gradient(plain_loss, x).numpy())
