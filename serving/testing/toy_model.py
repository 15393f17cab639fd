"""A small SavedModel that honours ``serving.contract``, for server tests and benchmarks."""

from typing import List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from serving import contract


def toy_item_ids(num_items: int, prefix: str = "item_") -> List[str]:
  """Catalogue ids ``item_0 .. item_{n-1}`` in vocabulary order."""
  return [f"{prefix}{i}" for i in range(num_items)]


def toy_embeddings(num_items: int, dim: int, seed: int) -> np.ndarray:
  """float32 [num_items, dim]: the embeddings ``ToyRecommender`` holds for ``seed``."""
  return np.random.default_rng(seed).normal(size=(num_items, dim)).astype(np.float32)


class ToyRecommender(tf.Module):
  """Raw-id histories in, top-k raw ids and dot-product scores out."""

  def __init__(self, item_ids: Sequence[str], embeddings: np.ndarray):
    """item_ids: V distinct non-empty ids; embeddings: float32 [V, dim]."""
    super().__init__()
    if len(set(item_ids)) != len(item_ids) or contract.PAD in item_ids:
      raise ValueError("toy catalogue ids must be distinct and non-empty")
    if embeddings.shape[0] != len(item_ids):
      raise ValueError(f"embeddings has {embeddings.shape[0]} rows for "
                       f"{len(item_ids)} item ids")
    self.num_items = len(item_ids)
    self.ids = tf.constant(list(item_ids), tf.string)
    self.embeddings = tf.Variable(embeddings, dtype=tf.float32, trainable=False)
    self.table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            self.ids, tf.range(self.num_items, dtype=tf.int64)),
        default_value=tf.constant(self.num_items, tf.int64))

  def _indices(self, history: tf.Tensor) -> tf.RaggedTensor:
    """Raw ids [batch, len] -> catalogue indices per row, unknown ids and "" dropped."""
    indices = self.table.lookup(history)
    return tf.ragged.boolean_mask(indices, indices < self.num_items)

  def _query(self, indices: tf.RaggedTensor) -> tf.Tensor:
    """float32 [batch, dim]: mean embedding of each row's known items (0 if none)."""
    summed = tf.reduce_sum(tf.gather(self.embeddings, indices), axis=1)
    counts = tf.cast(tf.maximum(indices.row_lengths(), 1), tf.float32)
    return summed / counts[:, tf.newaxis]

  @tf.function(input_signature=[
      tf.TensorSpec([None, None], tf.string, name=contract.INPUT_HISTORY),
      tf.TensorSpec([], tf.int32, name=contract.INPUT_K)])
  def recommend(self, history, k):
    tf.debugging.assert_positive(k, message="k must be a positive integer")
    indices = self._indices(history)
    scores = tf.matmul(self._query(indices), self.embeddings, transpose_b=True)
    rows = tf.cast(indices.value_rowids(), tf.int64)
    seen = tf.stack([rows, indices.values], axis=1)
    scores = tf.tensor_scatter_nd_update(
        scores, seen, tf.fill(tf.shape(rows), tf.constant(-np.inf, tf.float32)))
    top = tf.math.top_k(scores, k=tf.minimum(k, self.num_items))
    return {contract.OUTPUT_ITEM_IDS: tf.gather(self.ids, top.indices),
            contract.OUTPUT_SCORES: top.values}

  @tf.function(input_signature=[
      tf.TensorSpec([None, None], tf.string, name=contract.INPUT_HISTORY)])
  def query_embedding(self, history):
    return {contract.OUTPUT_EMBEDDING: self._query(self._indices(history))}

  @tf.function(input_signature=[])
  def item_embeddings(self):
    return {contract.OUTPUT_ITEM_IDS: tf.identity(self.ids),
            contract.OUTPUT_EMBEDDINGS: tf.identity(self.embeddings)}


def export_toy_model(export_dir: str, num_items: int = 50, dim: int = 8,
                     seed: int = 0) -> str:
  """Writes a ``ToyRecommender`` SavedModel with the contract's three signatures."""
  module = ToyRecommender(toy_item_ids(num_items), toy_embeddings(num_items, dim, seed))
  tf.saved_model.save(module, export_dir, signatures={
      contract.DEFAULT_SIGNATURE: module.recommend.get_concrete_function(),
      contract.QUERY_EMBEDDING_SIGNATURE: module.query_embedding.get_concrete_function(),
      contract.ITEM_EMBEDDINGS_SIGNATURE: module.item_embeddings.get_concrete_function(),
  })
  return export_dir


def expected_recommendations(histories: Sequence[Sequence[str]], k: int,
                             num_items: int = 50, dim: int = 8,
                             seed: int = 0) -> List[List[Tuple[str, float]]]:
  """The toy model's top-k per history, computed in NumPy (ties: lower index first)."""
  ids = toy_item_ids(num_items)
  index = {item: i for i, item in enumerate(ids)}
  embeddings = toy_embeddings(num_items, dim, seed)
  results = []
  for history in histories:
    known = [index[item] for item in history if item in index]
    query = embeddings[known].sum(axis=0) / max(len(known), 1) if known else np.zeros(dim)
    scores = embeddings @ query.astype(np.float32)
    scores[known] = -np.inf
    order = np.argsort(-scores, kind="stable")[:min(k, num_items)]
    results.append([(ids[i], float(scores[i])) for i in order])
  return results
