"""The ``explain`` signature: serving_default's top-k, each item's most contributing history
items by occlusion (score drop when the item is removed), and the query's attention.

What the weights mean: docs/serving.md, "Explanations".
"""

import tensorflow as tf

from serving import contract

MAX_BECAUSE = 3   # history items named per recommendation (fewer if the history has fewer)


def latest_occurrences(window: tf.Tensor) -> tf.Tensor:
  """window int [B, W] model ids (0 = padding) -> bool [B, W]: the position holds an
  item that no later position repeats (each distinct item once, at its last position)."""
  width = tf.shape(window)[1]
  positions = tf.range(width)
  later = positions[tf.newaxis, :] > positions[:, tf.newaxis]          # [p, q]: q after p
  same = tf.equal(window[:, :, tf.newaxis], window[:, tf.newaxis, :])  # [B, p, q]
  repeated = tf.reduce_any(same & later[tf.newaxis], axis=2)
  return tf.not_equal(window, 0) & ~repeated


def without_each(indices: tf.RaggedTensor, candidates: tf.Tensor) -> tf.RaggedTensor:
  """Row ``b * W + p`` is row ``b`` of ``indices`` without any ``candidates[b, p]``.

  Args:
    indices: int64 ragged [B, None], vocabulary indices.
    candidates: int64 [B, W]; a value not in the row (e.g. -1) removes nothing.

  Returns:
    int64 ragged [B * W, None], order kept.
  """
  width = tf.shape(candidates, out_type=tf.int64)[1]
  copies = tf.gather(indices, tf.repeat(tf.range(indices.nrows()), width))
  drop = tf.gather(tf.reshape(candidates, [-1]), copies.value_rowids())
  return tf.ragged.boolean_mask(copies, copies.with_flat_values(
      tf.not_equal(copies.flat_values, drop)))


def occlusion_weights(module, indices: tf.Tensor, inputs: tf.Tensor,
                      top: tf.Tensor) -> tf.Tensor:
  """float32 [B, k, W]: for recommended item ``top[b, j]`` and window position ``p``,
  its score for the history minus its score for the history without item ``inputs[b, p]``.

  The item is removed everywhere in the history and the window refilled from older
  items (read from the last ``2 W``, so exact unless the item fills more than ``W`` of
  them). One query-tower pass per window position, a row at a time (bounded memory).

  Args:
    module: a ``trainer.export.RecommenderModule``.
    indices: int64 [B, n], each row's history, -1 for none.
    inputs: int32 [B, W], the encoder's input for those rows (``W = max_seq_len``).
    top: int64 [B, k], the recommended vocabulary indices.
  """
  width = module.max_seq_len
  candidates = tf.cast(inputs, tf.int64) - 1
  known = tf.ragged.boolean_mask(indices, indices >= 0)
  occluded = module._ragged_model_inputs(   # pylint: disable=protected-access
      without_each(known[:, -2 * width:], candidates))
  occluded = tf.reshape(occluded, [-1, width, width])
  model = module.model

  def query(item_ids):
    return tf.cast(model.query_embedding(item_ids), tf.float32)

  without = tf.map_fn(query, occluded, fn_output_signature=tf.float32)   # [B, W, d]
  items = tf.gather(tf.cast(model.item_embeddings, tf.float32), top)     # [B, k, d]
  full = tf.einsum("bd,bkd->bk", query(inputs), items)
  return full[:, :, tf.newaxis] - tf.einsum("bwd,bkd->bkw", without, items)


def strongest(weights: tf.Tensor, valid: tf.Tensor, max_because: int):
  """The ``m = min(max_because, most valid positions of a row)`` largest weights.

  Args:
    weights: float32 [B, k, W]; valid: bool [B, W], positions that may be named.

  Returns:
    (weights float32 [B, k, m] largest first, -inf where a row has fewer valid
    positions; positions int32 [B, k, m]).
  """
  counts = tf.reduce_sum(tf.cast(valid, tf.int32), axis=1)
  most = tf.reduce_max(tf.concat([[0], counts], axis=0))   # 0 for an empty batch
  masked = tf.where(valid[:, tf.newaxis, :], weights, tf.constant(-float("inf")))
  best = tf.math.top_k(masked, k=tf.minimum(max_because, most))
  return best.values, best.indices


def explain_function(module, max_because: int = MAX_BECAUSE):
  """The ``explain`` tf.function of ``module`` (a ``trainer.export.RecommenderModule``).

  Inputs as serving_default; outputs its ``item_ids`` and ``scores`` plus
  ``because_ids`` / ``because_weights`` [B, k, m] (the history items whose removal
  lowers each recommendation's score most, largest drop first; "" and 0 in empty
  slots), ``attention`` [B, blocks, heads, max_seq_len] (the query position's
  attention over the window the model reads) and ``attention_ids`` [B, max_seq_len]
  (the items at those positions, "" for padding).
  """
  if max_because < 1:
    raise ValueError(f"max_because must be >= 1, got {max_because}")

  @tf.function(input_signature=[
      tf.TensorSpec([None, None], tf.string, name=contract.INPUT_HISTORY),
      tf.TensorSpec([], tf.int32, name=contract.INPUT_K)], autograph=False)
  def explain(history, k):
    # pylint: disable=protected-access
    indices, inputs, scores, top = module._ranked(history, k)
    outputs = module._answer(scores, top)
    candidates = tf.cast(inputs, tf.int64) - 1
    weights, positions = strongest(occlusion_weights(module, indices, inputs, top),
                                   latest_occurrences(inputs), max_because)
    empty = tf.math.is_inf(weights) | tf.math.is_inf(scores)[:, :, tf.newaxis]
    because = module.vocabulary.item_ids(tf.gather(candidates, positions, batch_dims=1))
    is_item = tf.not_equal(inputs, 0)
    attention = tf.cast(module.model.query_attention(inputs), tf.float32)
    outputs.update({
        contract.OUTPUT_BECAUSE_IDS: tf.where(empty, tf.constant(contract.PAD), because),
        contract.OUTPUT_BECAUSE_WEIGHTS: tf.where(empty, 0.0, weights),
        contract.OUTPUT_ATTENTION: attention * tf.cast(is_item, tf.float32)[:, None, None],
        contract.OUTPUT_ATTENTION_IDS: tf.where(
            is_item, module.vocabulary.item_ids(candidates), tf.constant(contract.PAD)),
    })
    return outputs

  return explain
