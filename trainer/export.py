"""Export: wraps a trained model in a SavedModel that stock TF Serving loads.

Vocabulary and retrieval are separate pieces so that other exports reuse the serving logic.
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


def compact(history: tf.Tensor) -> tf.RaggedTensor:
  """Raw ids [batch, len] -> each row's non-padding ids, order kept (ragged)."""
  history = tf.convert_to_tensor(history, tf.string)
  return tf.ragged.boolean_mask(history, tf.not_equal(history, contract.PAD))


class ItemVocabulary(tf.Module):
  """The catalogue: vocabulary index <-> raw item id, from a vocabulary file.

  Line j of ``vocabulary_file`` is the raw id of vocabulary index j (the format
  tf.Transform writes); the file ships as an asset of the SavedModel. Subclasses
  say how raw history ids become indices (``history_indices``), the only thing
  in which the exports differ.
  """

  def __init__(self, vocabulary_file: str, num_items: int, name=None):
    """vocabulary_file: ids one per line, index order; num_items: how many it serves."""
    super().__init__(name=name)
    if num_items < 1:
      raise ValueError(f"num_items must be >= 1, got {num_items}")
    self.num_items = num_items
    self.vocab_asset = tf.saved_model.Asset(vocabulary_file)
    self.index_to_id = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(
            self.vocab_asset, key_dtype=tf.int64,
            key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
            value_dtype=tf.string, value_index=tf.lookup.TextFileIndex.WHOLE_LINE),
        default_value=contract.PAD)

  def history_indices(self, history: tf.Tensor) -> tf.RaggedTensor:
    """Raw ids [batch, len] (padded with "" anywhere) -> int64 vocabulary indices.

    Padding and ids outside the catalogue are dropped; the order is kept.
    """
    raise NotImplementedError

  def item_ids(self, indices: tf.Tensor) -> tf.Tensor:
    """Vocabulary indices (any shape) -> raw ids ("" outside the catalogue)."""
    return self.index_to_id.lookup(tf.cast(indices, tf.int64))


class HashTableItemVocabulary(ItemVocabulary):
  """Raw ids -> indices with a ``tf.lookup.StaticHashTable`` over the vocabulary file."""

  def __init__(self, vocabulary_file: str, num_items: int, name=None):
    super().__init__(vocabulary_file, num_items, name=name)
    self.id_to_index = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(
            self.vocab_asset, key_dtype=tf.string,
            key_index=tf.lookup.TextFileIndex.WHOLE_LINE,
            value_dtype=tf.int64, value_index=tf.lookup.TextFileIndex.LINE_NUMBER),
        default_value=-1)

  def history_indices(self, history: tf.Tensor) -> tf.RaggedTensor:
    indices = self.id_to_index.lookup(compact(history))
    return tf.ragged.boolean_mask(indices, (indices >= 0) & (indices < self.num_items))


class TransformItemVocabulary(ItemVocabulary):
  """The pipeline's catalogue: raw ids go through the tf.Transform graph, as in training."""

  def __init__(self, tf_transform_output: tft.TFTransformOutput, name=None):
    super().__init__(tf_transform_output.vocabulary_file_by_name(features.ITEM_VOCAB),
                     tf_transform_output.vocabulary_size_by_name(features.ITEM_VOCAB),
                     name=name)
    self.transform_layer = tf_transform_output.transform_features_layer()

  def history_indices(self, history: tf.Tensor) -> tf.RaggedTensor:
    history = tf.convert_to_tensor(history, tf.string)
    batch = tf.shape(history)[0]
    empty = tf.fill([batch], contract.PAD)
    raw = {
        # Padding may stand anywhere: compact each row (order kept) first.
        features.HISTORY: compact(history).to_sparse(),
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
    ids = tf.cast(ids, tf.int64)
    return tf.ragged.boolean_mask(ids, ids < self.num_items)   # drops the OOV bucket


class FixedCandidates(tf.Module):
  """A model whose candidate tower was evaluated once, at export: ``item_embeddings``
  is a variable, the query tower the model's own.

  With text item representations the candidate tower runs the text adaptor over the
  whole catalogue; done once here, a request costs what it costs with id items.
  """

  def __init__(self, model):
    super().__init__()
    self.model = model
    self.item_embeddings = tf.Variable(model.item_embeddings, trainable=False,
                                       name="item_embeddings")

  def query_embedding(self, item_ids) -> tf.Tensor:
    return self.model.query_embedding(item_ids)

  def score_all(self, item_ids) -> tf.Tensor:
    return tf.matmul(self.query_embedding(item_ids), self.item_embeddings, transpose_b=True)


def servable_model(model):
  """``model``, or ``FixedCandidates(model)`` when its items are represented by text."""
  encoder = getattr(model, "encoder", None)
  if encoder is not None and encoder.config.uses_item_text:
    return FixedCandidates(model)
  return model


class RecommenderModule(tf.Module):
  """Serving wrapper: raw-id histories in, top-k raw item ids and scores out.

  ``model`` offers ``query_embedding``, ``score_all`` (int32 [B, L] model ids,
  left-padded with 0, id = vocabulary index + 1) and ``item_embeddings``, as
  ``trainer.model.NextItemModel`` does. Subclasses change the retrieval by
  overriding ``_top_k``.
  """

  def __init__(self, model, vocabulary: ItemVocabulary, max_seq_len: int, available=None):
    """available: bool [num_items], the items that may be served (default: all)."""
    super().__init__()
    self.model = servable_model(model)
    self.vocabulary = vocabulary
    self.max_seq_len = max_seq_len
    self.num_items = vocabulary.num_items
    # Availability: what the catalogue refresh (pipeline.refresh_catalogue) sets; an
    # unavailable item is never among the top k. A variable, so a refresh can set it.
    self.available = tf.Variable(
        tf.ones([self.num_items], tf.bool) if available is None else available,
        trainable=False, dtype=tf.bool, shape=[self.num_items], name="available")

  def _model_inputs(self, indices: tf.RaggedTensor) -> tf.Tensor:
    return tf.cast(left_pad(indices + 1, self.max_seq_len), tf.int32)

  def _top_k(self, indices: tf.RaggedTensor, inputs: tf.Tensor, k: tf.Tensor):
    """Best ``min(k, num_items)`` available items per row, the row's own ``indices`` excluded.

    Args:
      indices: int64 ragged [batch, None], each row's known history (all of it).
      inputs: int32 [batch, max_seq_len], the encoder's input for those rows.
      k: int32 scalar >= 1.

    Returns:
      (scores float32 [batch, min(k, num_items)] best first, int64 vocabulary
      indices of the same shape). Slots without an item have score -inf.
    """
    scores = self.model.score_all(inputs)
    # Never recommend what the user already has.
    rows = tf.cast(indices.value_rowids(), tf.int64)
    seen = tf.stack([rows, indices.values], axis=1)
    scores = tf.tensor_scatter_nd_update(
        scores, seen, tf.fill(tf.shape(rows), tf.constant(-float("inf"), scores.dtype)))
    # Availability mask (catalogue refresh): unavailable items are never eligible.
    scores = tf.where(self.available[tf.newaxis, :], scores,
                      tf.constant(-float("inf"), scores.dtype))
    top = tf.math.top_k(scores, k=tf.minimum(k, self.num_items))
    return tf.cast(top.values, tf.float32), tf.cast(top.indices, tf.int64)

  @tf.function(input_signature=[
      tf.TensorSpec([None, None], tf.string, name=contract.INPUT_HISTORY),
      tf.TensorSpec([], tf.int32, name=contract.INPUT_K)])
  def recommend(self, history, k):
    tf.debugging.assert_positive(k, message="k must be a positive integer")
    indices = self.vocabulary.history_indices(history)
    scores, top = self._top_k(indices, self._model_inputs(indices), k)
    # Past the recommendable items (k near the catalogue size) only history
    # items remain: those slots come back as "" with score -inf.
    ids = tf.where(tf.math.is_inf(scores), tf.constant(contract.PAD),
                   self.vocabulary.item_ids(top))
    return {
        contract.OUTPUT_ITEM_IDS: ids,
        contract.OUTPUT_SCORES: scores,
    }

  @tf.function(input_signature=[
      tf.TensorSpec([None, None], tf.string, name=contract.INPUT_HISTORY)])
  def query_embedding(self, history):
    inputs = self._model_inputs(self.vocabulary.history_indices(history))
    return {contract.OUTPUT_EMBEDDING: tf.cast(self.model.query_embedding(inputs), tf.float32)}

  @tf.function(input_signature=[])
  def item_embeddings(self):
    ids = self.vocabulary.item_ids(tf.range(self.num_items, dtype=tf.int64))
    return {contract.OUTPUT_ITEM_IDS: ids,
            contract.OUTPUT_EMBEDDINGS: tf.cast(self.model.item_embeddings, tf.float32)}

  def signatures(self) -> dict:
    """The three signatures of ``serving.contract``, by name."""
    return {
        contract.DEFAULT_SIGNATURE: self.recommend.get_concrete_function(),
        contract.QUERY_EMBEDDING_SIGNATURE: self.query_embedding.get_concrete_function(),
        contract.ITEM_EMBEDDINGS_SIGNATURE: self.item_embeddings.get_concrete_function(),
    }


def save_module(module: RecommenderModule, export_dir: str, options=None) -> str:
  """Writes ``module`` as a SavedModel with the signatures of ``serving.contract``."""
  tf.saved_model.save(module, export_dir, signatures=module.signatures(), options=options)
  return export_dir


def export_serving_model(model, tf_transform_output, max_seq_len: int, export_dir: str):
  """Writes the pipeline's SavedModel (tf.Transform id mapping, exact top-k)."""
  module = RecommenderModule(model, TransformItemVocabulary(tf_transform_output), max_seq_len)
  return save_module(module, export_dir)
