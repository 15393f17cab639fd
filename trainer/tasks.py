"""Training objectives on top of the sequence encoder."""

from typing import Optional

import numpy as np
import tensorflow as tf

from trainer.config import EncoderConfig

NO_LABEL = -1


# Below this softmax probability of the target, -log(p) is recomputed from logits
# (p may have underflowed to 0); above it, -log(p) is exact to float32 precision.
_MIN_EXACT_PROBABILITY = 1e-30
# Rows of logits handled at once: a [256, V] block stays in cache between the
# matmul, the softmax and the two gradient matmuls, which is faster than one
# block of all rows (bench/quality/results/HISTORY.md).
CHUNK_ROWS = 256


def _chunk_loss(logits, probabilities, targets, target_logits):
  """Sum of -log p[target] over a chunk's rows (logsumexp where p underflowed)."""
  target_p = tf.gather(probabilities, targets, batch_dims=1)
  exact = target_p > _MIN_EXACT_PROBABILITY
  tiny = tf.where(tf.logical_not(exact))[:, 0]
  tiny_losses = (tf.reduce_logsumexp(tf.gather(logits, tiny), axis=1)
                 - tf.gather(target_logits, tiny))
  return tf.reduce_sum(-tf.math.log(tf.boolean_mask(target_p, exact))) + tf.reduce_sum(
      tiny_losses)


def softmax_cross_entropy_sum(queries: tf.Tensor, item_embeddings: tf.Tensor,
                              targets: tf.Tensor, with_gradients: bool = True,
                              chunk_rows: int = CHUNK_ROWS,
                              matmul_dtype: tf.DType = tf.float32,
                              excluded: Optional[tf.Tensor] = None) -> tf.Tensor:
  """Sum over rows of full-softmax cross-entropy, logits = queries @ item_embeddings^T.

  Same value and gradients as summing
  ``tf.nn.sparse_softmax_cross_entropy_with_logits(targets, queries @ E^T)``,
  and faster on CPU, where that kernel is slow (bench/quality/results/HISTORY.md).
  Rows go through in chunks of ``chunk_rows``; per chunk one softmax serves the loss
  (``-log p[target]``) and, with ``with_gradients``, the gradients
  (``softmax - one_hot`` times the chunk's queries / the item table), which are
  computed right away and only scaled by the upstream gradient later. So the
  [N, V] logits are never materialised, and the work is three matmuls and a
  softmax per chunk.

  Args:
    queries: float32 [N, d].
    item_embeddings: float32 [V, d].
    targets: int32 [N] in [0, V).
    with_gradients: False skips the gradient work (evaluation); the result then
      has no gradient.
    chunk_rows: rows per chunk.
    matmul_dtype: the three matmuls' operands are cast to it (bfloat16: mixed
      precision); their products, the softmax, the loss and the gradients are float32.
    excluded: optional bool [V]: items left out of the softmax (logit -inf), so they
      are no one's negative and get no gradient; no target may be excluded.

  Returns:
    float32 scalar.
  """
  num_rows = tf.shape(queries)[0]
  num_chunks = (num_rows + chunk_rows - 1) // chunk_rows

  def matmul(a, b, **kwargs):
    return tf.cast(tf.matmul(tf.cast(a, matmul_dtype), tf.cast(b, matmul_dtype), **kwargs),
                   tf.float32)

  def chunk(q, e, i):
    start = i * chunk_rows
    q_c, targets_c = q[start:start + chunk_rows], targets[start:start + chunk_rows]
    logits = matmul(q_c, e, transpose_b=True)                        # [C, V]
    if excluded is not None:
      logits = tf.where(excluded[tf.newaxis, :], tf.constant(-np.inf, tf.float32), logits)
    probabilities = tf.nn.softmax(logits)
    target_rows = tf.gather(e, targets_c)                            # [C, d]
    target_logits = tf.reduce_sum(q_c * target_rows, axis=1)
    loss = _chunk_loss(logits, probabilities, targets_c, target_logits)
    return q_c, probabilities, target_rows, loss

  if not with_gradients:
    queries, item_embeddings = tf.stop_gradient(queries), tf.stop_gradient(item_embeddings)
    return tf.while_loop(
        lambda i, total: i < num_chunks,
        lambda i, total: (i + 1, total + chunk(queries, item_embeddings, i)[3]),
        (tf.constant(0), tf.constant(0.0)), parallel_iterations=1)[1]

  @tf.custom_gradient
  def loss_sum(q, e):

    def body(i, total, d_q, d_e_transposed):
      q_c, probabilities, target_rows, loss = chunk(q, e, i)
      # d loss / d logits = softmax - one_hot(target); the one-hot part is
      # applied on [C, d] / [N, d] operands (target_rows here, a scatter below).
      rows = tf.range(i * chunk_rows, i * chunk_rows + tf.shape(q_c)[0])
      d_q = tf.tensor_scatter_nd_update(
          d_q, rows[:, tf.newaxis], matmul(probabilities, e) - target_rows)
      # [d, C] @ [C, V]: faster than [C, V]^T @ [C, d] in TF's CPU matmul.
      d_e_transposed += matmul(q_c, probabilities, transpose_a=True)
      return i + 1, total + loss, d_q, d_e_transposed

    _, total, d_q, d_e_transposed = tf.while_loop(
        lambda i, *unused: i < num_chunks, body,
        (tf.constant(0), tf.constant(0.0), tf.zeros_like(q),
         tf.zeros(tf.stack([tf.shape(e)[1], tf.shape(e)[0]]))),
        parallel_iterations=1)
    d_e = tf.tensor_scatter_nd_sub(tf.transpose(d_e_transposed), targets[:, tf.newaxis], q)

    def grad(upstream):
      return d_q * upstream, d_e * upstream

    return total, grad

  return loss_sum(queries, item_embeddings)


class NextItemTask(tf.keras.layers.Layer):
  """Full-softmax next-item cross-entropy over the whole catalogue.

  Only labelled positions are scored: they are gathered first, so logits are
  computed for the N labelled positions of the batch instead of all B * L, and
  in blocks of ``CHUNK_ROWS`` rows ([CHUNK_ROWS, V] floats) rather than one
  [B, L, V] tensor. ``matmul_dtype`` is the precision of those blocks' matmuls
  (``set_scoring_precision``).
  """

  matmul_dtype: tf.DType = tf.float32

  def call(self, hidden: tf.Tensor, labels: tf.Tensor, item_embeddings: tf.Tensor,
           with_gradients: bool = True, excluded: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Mean cross-entropy over labelled positions.

    Args:
      hidden: float [B, L, d] encoder output.
      labels: int [B, L], vocabulary index 0..V-1 of the item that follows each
        position, or -1 (``NO_LABEL``) where there is none (padding).
      item_embeddings: float [V, d], row j = vocabulary index j.
      with_gradients: False for evaluation only (skips the gradient work; the
        loss then has no gradient).
      excluded: optional bool [V], items left out of the softmax
        (``softmax_cross_entropy_sum``; ``untrained_items``).

    Returns:
      float scalar; 0 if no position is labelled.
    """
    loss_sum, count = self.sum_and_count(hidden, labels, item_embeddings, with_gradients,
                                         excluded)
    return tf.math.divide_no_nan(loss_sum, tf.cast(count, loss_sum.dtype))

  @tf.autograph.experimental.do_not_convert
  def sum_and_count(self, hidden, labels, item_embeddings, with_gradients: bool = True,
                    excluded: Optional[tf.Tensor] = None):
    """(float scalar sum of per-position cross-entropies, int32 number of labelled positions)."""
    labels = tf.cast(labels, tf.int32)
    labelled = tf.greater_equal(labels, 0)
    queries = tf.boolean_mask(hidden, labelled)           # [N, d]
    targets = tf.boolean_mask(labels, labelled)           # [N]
    num_items = tf.shape(item_embeddings, out_type=tf.int32)[0]
    check = tf.debugging.assert_less(
        targets, num_items,
        message="labels must be vocabulary indices < V (catalogue size) or -1")
    with tf.control_dependencies([check]):
      targets = tf.identity(targets)
    loss_sum = softmax_cross_entropy_sum(
        tf.cast(queries, tf.float32), tf.cast(item_embeddings, tf.float32), targets,
        with_gradients=with_gradients, matmul_dtype=self.matmul_dtype, excluded=excluded)
    return loss_sum, tf.size(targets)


def excluded_items(untrained: Optional[np.ndarray], config: EncoderConfig,
                   enabled: bool = True) -> Optional[tf.Tensor]:
  """bool [V] items the training losses leave out of the catalogue softmax, or None.

  Items the training data never shows (``untrained``, see
  ``trainer.retrieval.untrained_items``) would only ever be negatives there: with a
  text item representation that pushes down, through the shared adaptor, exactly the
  new items text is meant to recommend. So text and id+text models leave them out
  (``enabled``: ``RetrievalConfig.exclude_untrained_items``); id models keep them, as an
  item never trained on has an untrained embedding that should rank low. Evaluation and
  serving score every item either way.
  """
  if untrained is None or not enabled or not config.uses_item_text:
    return None
  untrained = np.asarray(untrained, bool)
  return tf.constant(untrained) if untrained.any() else None


def set_scoring_precision(model: tf.Module, precision: str) -> None:
  """Runs every ``NextItemTask`` of ``model`` with matmuls in ``precision``
  ("float32" or "bfloat16"; ``trainer.cpu_features.resolve_precision``)."""
  for module in model.submodules:
    if isinstance(module, NextItemTask):
      module.matmul_dtype = tf.as_dtype(precision)
