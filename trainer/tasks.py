"""Training objectives on top of the sequence encoder."""

import tensorflow as tf

NO_LABEL = -1


class NextItemTask(tf.keras.layers.Layer):
  """Full-softmax next-item cross-entropy over the whole catalogue.

  Only labelled positions are scored: they are gathered first, so logits are
  [N, V] for the N labelled positions of the batch instead of [B, L, V] (on
  Beauty ~1.5k of 12.8k positions per batch of 256, and ~100 MB instead of
  600 MB of logits).
  """

  def call(self, hidden: tf.Tensor, labels: tf.Tensor,
           item_embeddings: tf.Tensor) -> tf.Tensor:
    """Mean cross-entropy over labelled positions.

    Args:
      hidden: float [B, L, d] encoder output.
      labels: int [B, L], vocabulary index 0..V-1 of the item that follows each
        position, or -1 (``NO_LABEL``) where there is none (padding).
      item_embeddings: float [V, d], row j = vocabulary index j.

    Returns:
      float scalar; 0 if no position is labelled.
    """
    loss_sum, count = self.sum_and_count(hidden, labels, item_embeddings)
    return tf.math.divide_no_nan(loss_sum, tf.cast(count, loss_sum.dtype))

  def sum_and_count(self, hidden, labels, item_embeddings):
    """(sum of per-position cross-entropies, number of labelled positions)."""
    labels = tf.cast(labels, tf.int32)
    labelled = tf.greater_equal(labels, 0)
    queries = tf.boolean_mask(hidden, labelled)           # [N, d]
    targets = tf.boolean_mask(labels, labelled)           # [N]
    num_items = tf.shape(item_embeddings, out_type=tf.int32)[0]
    check = tf.debugging.assert_less(
        targets, num_items,
        message="labels must be vocabulary indices < V (catalogue size) or -1")
    with tf.control_dependencies([check]):
      logits = tf.matmul(queries, item_embeddings, transpose_b=True)  # [N, V]
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=targets, logits=tf.cast(logits, tf.float32))
    return tf.reduce_sum(losses), tf.size(targets)
