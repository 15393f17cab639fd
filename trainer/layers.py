"""Transformer building blocks for the sequence encoder: attention masks and blocks.

Shapes: ``B`` batch, ``L`` sequence length, ``d`` model width.
"""

import numpy as np
import tensorflow as tf


def attention_mask(padding_mask: tf.Tensor, causal: bool) -> tf.Tensor:
  """Self-attention mask from a key-padding mask, optionally causal.

  ``mask[b, t, s]`` is True when query position ``t`` may attend to key position
  ``s``: ``s`` holds an item (``padding_mask[b, s]``) and, if ``causal``, ``s <= t``.
  A query row that would attend to nothing (a padding position of a left-padded
  sequence under the causal mask, or any row of an all-padding sequence) is
  allowed to attend to itself alone, so its softmax stays well defined (no NaN)
  and never mixes in other positions. Non-padding queries never see padding keys,
  so padding positions cannot affect item positions.

  Args:
    padding_mask: bool [B, L], True where the position holds an item.
    causal: if True, position ``t`` attends to positions ``<= t`` only.

  Returns:
    bool [B, L, L] (query, key), as ``tf.keras.layers.MultiHeadAttention`` expects.
  """
  padding_mask = tf.cast(padding_mask, tf.bool)
  length = tf.shape(padding_mask)[1]
  mask = tf.broadcast_to(padding_mask[:, tf.newaxis, :],
                         tf.stack([tf.shape(padding_mask)[0], length, length]))
  positions = tf.range(length)
  if causal:
    mask = tf.logical_and(mask, positions[:, tf.newaxis] >= positions[tf.newaxis, :])
  empty_row = tf.logical_not(tf.reduce_any(mask, axis=-1, keepdims=True))
  diagonal = tf.equal(positions[:, tf.newaxis], positions[tf.newaxis, :])
  return tf.logical_or(mask, tf.logical_and(empty_row, diagonal[tf.newaxis]))


def slice_axis(x: tf.Tensor, start, stop, axis: int) -> tf.Tensor:
  """``x[start:stop]`` along ``axis`` (``0 <= start <= stop <=`` its size; ints or int32
  scalars) whose gradient is the upstream gradient zero-padded back to ``x``'s shape.

  The same values and gradient as plain slicing; TF's CPU ``StridedSliceGrad`` fills
  the padded gradient many times slower than ``tf.pad`` (bench/quality/results/README.md,
  "Training speed"), and the catalogue table's slice takes that gradient every step.
  """
  index = (slice(None),) * axis + (slice(start, stop),)

  @tf.custom_gradient
  def sliced(value):
    def grad(upstream):
      size = tf.shape(value, out_type=tf.int32)[axis]
      paddings = tf.scatter_nd([[axis]], tf.stack([[start, size - stop]]),
                               tf.stack([tf.rank(value), 2]))
      return tf.pad(upstream, paddings)
    return value[index], grad

  return sliced(tf.convert_to_tensor(x))


def last_position(x: tf.Tensor) -> tf.Tensor:
  """``x[:, -1:]`` of a [B, L, ...] tensor, through ``slice_axis``."""
  length = tf.shape(x, out_type=tf.int32)[1]
  return slice_axis(x, length - 1, length, axis=1)


def low_pass_matrix(length: int, frequency_bins: int) -> np.ndarray:
  """float32 [length, length] ``P``: ``P @ x`` keeps the ``frequency_bins`` lowest
  frequencies of ``x`` along its first axis (rfft, zero the rest, irfft).

  ``P[t, s]`` depends only on ``(t - s) mod length`` (the filter is circular).
  """
  if not 1 <= frequency_bins <= length // 2 + 1:
    raise ValueError(f"frequency_bins must be in [1, {length // 2 + 1}] for length {length}; "
                     f"got {frequency_bins}")
  spectrum = np.fft.rfft(np.eye(length), axis=0, norm="ortho")
  spectrum[frequency_bins:] = 0
  return np.fft.irfft(spectrum, n=length, axis=0, norm="ortho").astype(np.float32)


def causal_low_pass_matrix(length: int, frequency_bins: int) -> np.ndarray:
  """float32 [length, length] lower-triangular ``C``: row ``t`` of ``C @ x`` is the
  low-pass filter's output at the LAST position of a ``length`` window holding
  ``x[:t+1]`` right-aligned (zeros before it), so position ``t`` sees no later one.

  ``C[t, k] = P[length-1, length-1-(t-k)]`` for ``k <= t``, 0 above the diagonal.
  """
  last_row = low_pass_matrix(length, frequency_bins)[length - 1]
  lags = np.arange(length)[:, np.newaxis] - np.arange(length)[np.newaxis, :]
  return np.where(lags >= 0, last_row[length - 1 - np.clip(lags, 0, None)],
                  0.0).astype(np.float32)


class FrequencyFilter(tf.keras.layers.Layer):
  """BSARec's frequency-domain inductive bias: ``low + beta * (x - low)``.

  ``low`` is ``x`` with only its ``frequency_bins`` lowest frequencies along the
  sequence (the items' shared, slowly varying interest); ``beta`` [d] (learned,
  ``sqrt_beta ** 2``) rescales the high-frequency rest. Sequences are LEFT-padded
  with zero rows (``trainer.encoder``) and filtered as a ``max_seq_len`` window,
  so a batch trimmed to its longest row gives the same output.

  Bidirectional (``causal=False``): ``low = P @ x`` (``low_pass_matrix``).
  Causal: ``low = C @ x`` (``causal_low_pass_matrix``): position t gets the
  filter's last-position output of its own prefix, so training every position on
  its next item leaks nothing.
  """

  def __init__(self, max_seq_len: int, frequency_bins: int, **kwargs):
    super().__init__(**kwargs)
    self.max_seq_len = max_seq_len
    self.frequency_bins = frequency_bins
    self._full = tf.constant(low_pass_matrix(max_seq_len, frequency_bins))
    self._causal = tf.constant(causal_low_pass_matrix(max_seq_len, frequency_bins))

  def build(self, input_shape):
    self.sqrt_beta = self.add_weight(
        name="sqrt_beta", shape=[int(input_shape[-1])],
        initializer=tf.keras.initializers.RandomNormal(stddev=1.0))
    super().build(input_shape)

  def call(self, x: tf.Tensor, causal: bool, last_only: bool = False) -> tf.Tensor:
    """x float [B, L, d], L <= max_seq_len, padding rows zero -> float [B, L, d]
    (the last row alone, [B, 1, d], with ``last_only``)."""
    length = tf.shape(x)[1]
    matrix = (self._causal if causal else self._full)[-length:, -length:]
    if last_only:
      matrix, x_out = matrix[-1:], last_position(x)
    else:
      x_out = x
    low = tf.einsum("ts,bsd->btd", tf.cast(matrix, x.dtype), x)
    return low + tf.square(self.sqrt_beta) * (x_out - low)

  def get_config(self) -> dict:
    config = super().get_config()
    config.update(max_seq_len=self.max_seq_len, frequency_bins=self.frequency_bins)
    return config


class TransformerBlock(tf.keras.layers.Layer):
  """Pre-LN Transformer block: self-attention and point-wise feed-forward.

  ``x = x + Dropout(MHA(LN(x)))``; ``x = x + Dropout(FFN(LN(x)))`` with
  ``FFN = Dense(d) . Dropout . act . Dense(ff_dim)``. Normalising before each
  sub-layer follows SASRec's reference implementation (which also normalises the
  attention query first and ends the stack with a LayerNorm; the encoder applies
  that final LayerNorm). Pre-LN trains stably at lr 1e-3 without warm-up.

  With ``filter_weight`` alpha > 0 the token mixer is BSARec's:
  ``x = x + Dropout(alpha * FrequencyFilter(LN(x)) + (1 - alpha) * MHA(LN(x)))``.
  """

  def __init__(self, embedding_dim: int, num_heads: int, ff_dim: int,
               dropout: float, activation: str = "gelu",
               layer_norm_epsilon: float = 1e-6, filter_weight: float = 0.0,
               frequency_bins: int = 3, max_seq_len: int = 0, **kwargs):
    super().__init__(**kwargs)
    if not 0.0 <= filter_weight <= 1.0:
      raise ValueError(f"filter_weight must be in [0, 1]; got {filter_weight}")
    if filter_weight > 0 and max_seq_len < 1:
      raise ValueError("a frequency filter (filter_weight > 0) needs max_seq_len >= 1")
    self.filter_weight = filter_weight
    self.frequency_bins = frequency_bins
    self.max_seq_len = max_seq_len
    self.frequency_filter = (FrequencyFilter(max_seq_len, frequency_bins, name="frequency_filter")
                             if filter_weight > 0 else None)
    if embedding_dim % num_heads:
      raise ValueError(
          f"embedding_dim ({embedding_dim}) must be divisible by num_heads ({num_heads})")
    self.embedding_dim = embedding_dim
    self.num_heads = num_heads
    self.ff_dim = ff_dim
    self.dropout = dropout
    self.activation = activation
    self.layer_norm_epsilon = layer_norm_epsilon
    self.attention_norm = tf.keras.layers.LayerNormalization(
        epsilon=layer_norm_epsilon, name="attention_norm")
    self.attention = tf.keras.layers.MultiHeadAttention(
        num_heads=num_heads, key_dim=embedding_dim // num_heads, dropout=dropout,
        name="attention")
    self.attention_dropout = tf.keras.layers.Dropout(dropout)
    self.ff_norm = tf.keras.layers.LayerNormalization(
        epsilon=layer_norm_epsilon, name="ff_norm")
    self.ff_inner = tf.keras.layers.Dense(ff_dim, activation=activation, name="ff_inner")
    self.ff_inner_dropout = tf.keras.layers.Dropout(dropout)
    self.ff_outer = tf.keras.layers.Dense(embedding_dim, name="ff_outer")
    self.ff_dropout = tf.keras.layers.Dropout(dropout)

  @tf.autograph.experimental.do_not_convert
  def call(self, x: tf.Tensor, attention_mask: tf.Tensor, training=False,
           causal: bool = True, last_only: bool = False, return_attention: bool = False):
    """x: float [B, L, d], padding rows zero; attention_mask: bool [B, L, L] (see
    ``attention_mask``); causal: how the frequency filter (if any) reads the
    sequence, matching the mask; last_only: compute the output of the last
    position alone (keys and values still span the whole sequence), the same
    numbers as ``[:, -1:]`` of the full output for a fraction of the work;
    return_attention: also return the attention probabilities.

    Returns float [B, L, d], or [B, 1, d] with ``last_only``; with
    ``return_attention`` also float [B, heads, L or 1 (queries), L (keys)].
    """
    normed = self.attention_norm(x)
    query = last_position(normed) if last_only else normed
    if last_only:
      attention_mask = attention_mask[:, -1:]
      x = last_position(x)
    h = self.attention(query, normed, attention_mask=attention_mask, training=training,
                       return_attention_scores=return_attention)
    h, scores = h if return_attention else (h, None)
    if self.frequency_filter is not None:
      alpha = self.filter_weight
      h = alpha * self.frequency_filter(normed, causal=causal, last_only=last_only) + (
          1.0 - alpha) * h
    x = x + self.attention_dropout(h, training=training)
    h = self.ff_inner(self.ff_norm(x))
    h = self.ff_outer(self.ff_inner_dropout(h, training=training))
    x = x + self.ff_dropout(h, training=training)
    return (x, scores) if return_attention else x

  def get_config(self) -> dict:
    config = super().get_config()
    config.update(embedding_dim=self.embedding_dim, num_heads=self.num_heads,
                  ff_dim=self.ff_dim, dropout=self.dropout, activation=self.activation,
                  layer_norm_epsilon=self.layer_norm_epsilon,
                  filter_weight=self.filter_weight, frequency_bins=self.frequency_bins,
                  max_seq_len=self.max_seq_len)
    return config
