"""The text-match score term: cosine between a candidate's frozen text vector and the mean of
the history's; shared by the evaluator's text-similarity baseline and the retrieval model's
``RetrievalConfig.text_match`` (one dot product: ``[q ; w * history_query] . [c ; unit_rows]``).
"""

import tensorflow as tf


def unit_rows(vectors) -> tf.Tensor:
  """float [..., t] rows scaled to length 1; zero rows stay zero."""
  return tf.math.l2_normalize(tf.cast(vectors, tf.float32), axis=-1)


def history_query(text_table, item_ids, cumulative: bool = False) -> tf.Tensor:
  """The unit-length mean text vector of each history.

  Args:
    text_table: float [N, t]; rows that stand for no item (padding, [MASK], an item
      without a vector) are zero, so they take no part in the mean's direction.
    item_ids: int [B, L] rows of ``text_table``, dense or ragged.
    cumulative: per position instead: row b, position i gets the mean over positions
      <= i (the query of a causal tower trained on every position; dense only).

  Returns:
    float [B, t], or [B, L, t] with ``cumulative``; zero for a history with no vector.
  """
  vectors = tf.gather(tf.cast(text_table, tf.float32), item_ids)
  summed = tf.cumsum(vectors, axis=1) if cumulative else tf.reduce_sum(vectors, axis=1)
  return unit_rows(summed)   # the mean's direction: the sum's
