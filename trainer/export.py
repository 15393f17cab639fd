"""Export: wraps a trained model in a SavedModel that stock TF Serving loads.

The module holds the tf.Transform graph (raw item id -> vocabulary index) and the
item vocabulary file as assets, so clients send raw item ids and get raw item ids
back. Signature and tensor names are the contract in ``serving.contract``.
"""

import tensorflow as tf
import tensorflow_transform as tft

from serving import contract
from trainer import features


def left_pad(ids: tf.RaggedTensor, length: int, pad_value=0) -> tf.Tensor:
  """Keeps the last ``length`` values of each row, right-aligned: [batch, length]."""
  ids = ids[:, -length:]
  row_lengths = ids.row_lengths()
  rows = tf.cast(ids.value_rowids(), tf.int64)
  cols = tf.cast(length, tf.int64) - tf.gather(row_lengths, rows) + (
      tf.range(tf.size(ids.values, out_type=tf.int64)) - tf.gather(ids.row_starts(), rows))
  batch = tf.cast(ids.nrows(), tf.int64)
  dense = tf.scatter_nd(tf.stack([rows, cols], axis=1), ids.values - pad_value,
                        tf.stack([batch, tf.cast(length, tf.int64)]))
  return dense + tf.cast(pad_value, ids.dtype)


class RecommenderModule(tf.Module):
  """Serving wrapper: raw-id histories in, top-k raw item ids and scores out."""

  def __init__(self, model, tf_transform_output: tft.TFTransformOutput,
               max_seq_len: int):
    super().__init__()
    self.model = model
    self.max_seq_len = max_seq_len
    self.transform_layer = tf_transform_output.transform_features_layer()
    self.num_items = tf_transform_output.vocabulary_size_by_name(features.ITEM_VOCAB)
    vocab_file = tf_transform_output.vocabulary_file_by_name(features.ITEM_VOCAB)
    self.vocab_asset = tf.saved_model.Asset(vocab_file)
    self.index_to_id = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(
            self.vocab_asset, key_dtype=tf.int64,
            key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
            value_dtype=tf.string, value_index=tf.lookup.TextFileIndex.WHOLE_LINE),
        default_value=contract.PAD)

  def _history_indices(self, history: tf.Tensor) -> tf.RaggedTensor:
    """Raw ids [batch, len] (padded with "") -> vocabulary indices, OOV dropped."""
    history = tf.convert_to_tensor(history, tf.string)
    batch = tf.shape(history)[0]
    empty = tf.fill([batch], contract.PAD)
    raw = {
        # Padding may stand anywhere: compact each row (order kept) first.
        features.HISTORY: tf.ragged.boolean_mask(
            history, tf.not_equal(history, contract.PAD)).to_sparse(),
        features.ITEM_ATTRIBUTES: tf.SparseTensor(
            tf.zeros([0, 2], tf.int64), tf.zeros([0], tf.string),
            tf.stack([tf.cast(batch, tf.int64), 0])),
        features.TARGET: empty,
        features.ITEM_ID: empty,
        features.USER_ID: empty,
        features.TITLE: empty,
    }
    ids = self.transform_layer(raw)[features.HISTORY_IDS]
    if isinstance(ids, tf.SparseTensor):
      ids = tf.RaggedTensor.from_sparse(ids)
    return tf.ragged.boolean_mask(ids, ids < self.num_items)

  def _model_inputs(self, indices: tf.RaggedTensor) -> tf.Tensor:
    return tf.cast(left_pad(indices + 1, self.max_seq_len), tf.int32)

  @tf.function(input_signature=[
      tf.TensorSpec([None, None], tf.string, name=contract.INPUT_HISTORY),
      tf.TensorSpec([], tf.int32, name=contract.INPUT_K)])
  def recommend(self, history, k):
    tf.debugging.assert_positive(k, message="k must be a positive integer")
    indices = self._history_indices(history)
    scores = self.model.score_all(self._model_inputs(indices))
    # Never recommend what the user already has.
    rows = tf.cast(indices.value_rowids(), tf.int64)
    seen = tf.stack([rows, tf.cast(indices.values, tf.int64)], axis=1)
    scores = tf.tensor_scatter_nd_update(
        scores, seen, tf.fill(tf.shape(rows), tf.constant(-float("inf"), scores.dtype)))
    top = tf.math.top_k(scores, k=tf.minimum(k, self.num_items))
    ids = self.index_to_id.lookup(tf.cast(top.indices, tf.int64))
    # Past the recommendable items (k near the catalogue size) only history
    # items remain: those slots come back as "" with score -inf.
    ids = tf.where(tf.math.is_inf(top.values), tf.constant(contract.PAD), ids)
    return {
        contract.OUTPUT_ITEM_IDS: ids,
        contract.OUTPUT_SCORES: tf.cast(top.values, tf.float32),
    }

  @tf.function(input_signature=[
      tf.TensorSpec([None, None], tf.string, name=contract.INPUT_HISTORY)])
  def query_embedding(self, history):
    inputs = self._model_inputs(self._history_indices(history))
    return {contract.OUTPUT_EMBEDDING: tf.cast(self.model.query_embedding(inputs), tf.float32)}

  @tf.function(input_signature=[])
  def item_embeddings(self):
    ids = self.index_to_id.lookup(tf.range(self.num_items, dtype=tf.int64))
    return {contract.OUTPUT_ITEM_IDS: ids,
            contract.OUTPUT_EMBEDDINGS: tf.cast(self.model.item_embeddings, tf.float32)}


def export_serving_model(model, tf_transform_output, max_seq_len: int, export_dir: str):
  """Writes the SavedModel with the three signatures of ``serving.contract``."""
  module = RecommenderModule(model, tf_transform_output, max_seq_len)
  signatures = {
      contract.DEFAULT_SIGNATURE: module.recommend.get_concrete_function(),
      contract.QUERY_EMBEDDING_SIGNATURE: module.query_embedding.get_concrete_function(),
      contract.ITEM_EMBEDDINGS_SIGNATURE: module.item_embeddings.get_concrete_function(),
  }
  tf.saved_model.save(module, export_dir, signatures=signatures)
  return export_dir
