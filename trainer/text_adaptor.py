"""Items represented through their frozen text vectors: UniSRec's mixture-of-experts adaptor.

Used by ``trainer.encoder`` when ``EncoderConfig.item_representation`` is "text" or "id+text".
"""

import numpy as np
import tensorflow as tf


class MoEAdaptor(tf.keras.layers.Layer):
  """UniSRec's adaptor: ``sum_k g_k(x) * (dropout(x) - b_k) W_k``, ``g = softmax(x W_gate)``.

  Each of the ``num_experts`` experts is a parametric whitening of the text vector
  ``x`` [t]: a learned shift ``b_k`` [t] (zeros at first) and projection ``W_k`` [t, d];
  the gate, computed from ``x``, mixes them per item (uniformly at first). Unlike
  UniSRec, the gate has no training noise and the experts share one dropout mask.
  """

  def __init__(self, output_dim: int, num_experts: int, dropout: float = 0.0, **kwargs):
    super().__init__(**kwargs)
    if output_dim < 1 or num_experts < 1:
      raise ValueError(f"output_dim and num_experts must be >= 1; got {output_dim}, "
                       f"{num_experts}")
    self.output_dim = output_dim
    self.num_experts = num_experts
    self.dropout_rate = dropout
    self.dropout = tf.keras.layers.Dropout(dropout)

  def build(self, input_shape):
    text_dim = int(input_shape[-1])
    self.shift = self.add_weight(name="shift", shape=[self.num_experts, text_dim],
                                 initializer="zeros")
    self.projection = self.add_weight(
        name="projection", shape=[self.num_experts, text_dim, self.output_dim],
        initializer=tf.keras.initializers.RandomNormal(stddev=0.02))
    self.gate = self.add_weight(name="gate", shape=[text_dim, self.num_experts],
                                initializer="zeros")
    super().build(input_shape)

  def call(self, x: tf.Tensor, training=False) -> tf.Tensor:
    """x float [..., t] -> float [..., d]."""
    x = tf.cast(x, self.compute_dtype)
    text_dim = tf.shape(self.shift)[1]
    flat = tf.reshape(x, [-1, text_dim])                                   # [N, t]
    gates = tf.nn.softmax(tf.matmul(flat, self.gate))                      # [N, K]
    # All experts in one matmul: [N, t] @ [t, K * d]. (Plain matmuls: tf.einsum with
    # "..." and a 2-D operand gave wrong numbers here.)
    projection = tf.reshape(tf.transpose(self.projection, [1, 0, 2]),
                            [text_dim, self.num_experts * self.output_dim])
    projected = tf.reshape(tf.matmul(self.dropout(flat, training=training), projection),
                           [-1, self.num_experts, self.output_dim])        # [N, K, d]
    shifts = tf.reduce_sum(self.shift[:, :, tf.newaxis] * self.projection, axis=1)  # [K, d]
    out = tf.reduce_sum(gates[:, :, tf.newaxis] * (projected - shifts), axis=1)     # [N, d]
    return tf.reshape(out, tf.concat([tf.shape(x)[:-1], [self.output_dim]], axis=0))

  def get_config(self) -> dict:
    config = super().get_config()
    config.update(output_dim=self.output_dim, num_experts=self.num_experts,
                  dropout=self.dropout_rate)
    return config


def text_table(item_vectors: np.ndarray) -> np.ndarray:
  """float32 [V + 2, t]: rows in model-id order (``trainer.encoder``), padding and [MASK] zero.

  ``item_vectors`` float [V, t]: row j is the text vector of vocabulary index j.
  """
  item_vectors = np.asarray(item_vectors, np.float32)
  if item_vectors.ndim != 2 or item_vectors.shape[0] < 1 or item_vectors.shape[1] < 1:
    raise ValueError(f"item vectors must be float [V, t] with V, t >= 1; got shape "
                     f"{item_vectors.shape}")
  if not np.all(np.isfinite(item_vectors)):
    raise ValueError("item vectors contain NaN or infinity")
  zero = np.zeros([1, item_vectors.shape[1]], np.float32)
  return np.concatenate([zero, item_vectors, zero])


class TextItemEmbedding(tf.keras.layers.Layer):
  """Model ids -> ``MoEAdaptor`` of the items' frozen text vectors, float [..., d].

  Attributes:
    vectors: non-trainable float [V + 2, t], row = model id (``text_table``): the
      text vectors are data of the run, aligned to its vocabulary, never trained.
    adaptor: the ``MoEAdaptor`` (trainable).
  """

  def __init__(self, item_vectors: np.ndarray, output_dim: int, num_experts: int,
               dropout: float = 0.0, **kwargs):
    super().__init__(**kwargs)
    table = text_table(item_vectors)
    self.num_items = table.shape[0] - 2
    self.text_dim = table.shape[1]
    self.vectors = self.add_weight(name="text_vectors", shape=table.shape,
                                   initializer=tf.constant_initializer(table), trainable=False)
    self.adaptor = MoEAdaptor(output_dim, num_experts, dropout, name="adaptor")
    self.adaptor.build([None, self.text_dim])

  def call(self, model_ids, training=False) -> tf.Tensor:
    """model_ids int [...] (0 padding, 1..V items, V + 1 [MASK]) -> float [..., d]."""
    return self.adaptor(tf.gather(self.vectors, model_ids), training=training)
