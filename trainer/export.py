"""Export: wraps a trained model in a SavedModel that stock TF Serving loads.

Vocabulary and retrieval are separate pieces so that other exports reuse the serving logic.
"""

from typing import Dict, Optional, Sequence, Tuple

import tensorflow as tf
import tensorflow_transform as tft

from serving import contract
from trainer import explain
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


def left_pad_known(indices: tf.Tensor, length: int) -> tf.Tensor:
  """int64 [batch, n] indices, -1 for none -> [batch, length]: each row's last ``length``
  known ones (>= 0), order kept, right-aligned, -1 before them. ``left_pad`` of the
  known values, without a ragged tensor (fewer ops per request)."""
  known = indices >= 0
  from_end = tf.cumsum(tf.cast(known, tf.int64), axis=1, reverse=True)   # 1 = the last one
  coords = tf.where(known & (from_end <= length))                        # [n, 2] (row, pos)
  cols = tf.cast(length, tf.int64) - tf.gather_nd(from_end, coords)
  shape = tf.stack([tf.shape(indices, out_type=tf.int64)[0], tf.cast(length, tf.int64)])
  return tf.scatter_nd(tf.stack([coords[:, 0], cols], axis=1),
                       tf.gather_nd(indices, coords) + 1, shape) - 1


class ItemVocabulary(tf.Module):
  """The catalogue: vocabulary index <-> raw item id, from a vocabulary file.

  Line j of ``vocabulary_file`` is the raw id of vocabulary index j (the format
  tf.Transform writes); the file ships as an asset of the SavedModel.
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
    self.id_to_index = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(
            self.vocab_asset, key_dtype=tf.string,
            key_index=tf.lookup.TextFileIndex.WHOLE_LINE,
            value_dtype=tf.int64, value_index=tf.lookup.TextFileIndex.LINE_NUMBER),
        default_value=-1)

  def indices(self, ids: tf.Tensor) -> tf.Tensor:
    """Raw ids (any shape) -> int64 vocabulary indices, -1 for padding and unknown ids."""
    indices = self.id_to_index.lookup(tf.convert_to_tensor(ids, tf.string))
    return tf.where(indices < self.num_items, indices, tf.constant(-1, tf.int64))

  def history_indices(self, history: tf.Tensor) -> tf.Tensor:
    """Raw ids [batch, len] (padded with "" anywhere) -> int64 [batch, len] vocabulary
    indices, -1 for padding and ids outside the catalogue (dense: no ragged ops)."""
    return self.indices(history)

  def item_ids(self, indices: tf.Tensor) -> tf.Tensor:
    """Vocabulary indices (any shape) -> raw ids ("" outside the catalogue)."""
    return self.index_to_id.lookup(tf.cast(indices, tf.int64))


class HashTableItemVocabulary(ItemVocabulary):
  """Raw ids -> indices with a ``tf.lookup.StaticHashTable`` over the vocabulary file."""


class TransformItemVocabulary(HashTableItemVocabulary):
  """The pipeline's catalogue: tf.Transform's item vocabulary file and size.

  The transform maps a history id by a whole-line lookup in this same file
  (``trainer.preprocessing``: ``tft.apply_vocabulary``, ids outside it to the OOV
  bucket), so the hash table gives the indices training saw without running the
  transform graph per request; tests/trainer/test_export.py checks both agree.
  """

  def __init__(self, tf_transform_output: tft.TFTransformOutput, name=None):
    super().__init__(tf_transform_output.vocabulary_file_by_name(features.ITEM_VOCAB),
                     tf_transform_output.vocabulary_size_by_name(features.ITEM_VOCAB),
                     name=name)
    # The attribute vocabulary ships too: a catalogue refresh reads the values from it.
    attribute_vocab = tf_transform_output.vocabulary_file_by_name(features.ATTRIBUTE_VOCAB)
    self.attribute_vocab_asset = (tf.saved_model.Asset(attribute_vocab) if attribute_vocab
                                  else None)   # None: the Transform wrote no such file


class FixedCandidates(tf.Module):
  """A model whose candidate tower was evaluated once, at export: ``item_embeddings``
  is a variable, the query tower the model's own.

  A request then scores against a stored matrix instead of recomputing the catalogue's
  embeddings (id table rows plus attribute means, or the text adaptor over every item).
  """

  def __init__(self, model):
    super().__init__()
    self.model = model
    self.item_embeddings = tf.Variable(model.item_embeddings, trainable=False,
                                       name="item_embeddings")
    config = getattr(model, "retrieval_config", None)
    if config is not None and config.normalize_embeddings:
      # Unit-norm rows (RetrievalConfig.normalize_embeddings): a catalogue refresh
      # (trainer.catalogue_refresh) computes the rows of new items the same way.
      self.normalized_candidates = tf.Variable(True, trainable=False,
                                               name="normalized_candidates")
    if config is not None and config.text_match:
      # RetrievalConfig.text_match: each row ends with its item's unit text vector, which
      # a catalogue refresh appends to the rows of new items too.
      self.text_match_candidates = tf.Variable(True, trainable=False,
                                               name="text_match_candidates")

  def query_embedding(self, item_ids) -> tf.Tensor:
    return self.model.query_embedding(item_ids)

  def query_attention(self, item_ids) -> tf.Tensor:
    return self.model.query_attention(item_ids)

  def score_all(self, item_ids) -> tf.Tensor:
    return tf.matmul(self.query_embedding(item_ids), self.item_embeddings, transpose_b=True)


def servable_model(model):
  """``FixedCandidates(model)``, or ``model`` when its candidate matrix already is a
  variable (a catalogue refresh's candidates)."""
  if isinstance(model.item_embeddings, tf.Variable):
    return model
  return FixedCandidates(model)


MMR_MIN_POOL = 100    # MMR re-ranks each row's max(4k, MMR_MIN_POOL) best eligible items
MMR_POOL_PER_K = 4


def known_pairs(indices: tf.Tensor) -> tf.Tensor:
  """int64 [batch, n] indices, -1 for padding or unknown -> int64 [m, 2] (row, index)
  of the known ones."""
  coords = tf.where(indices >= 0)
  return tf.stack([coords[:, 0], tf.gather_nd(indices, coords)], axis=1)


def index_counts(indices: tf.Tensor, width: int, dtype=tf.int32) -> tf.Tensor:
  """[batch, width]: how often each row's known ``indices`` (int64 [batch, n], -1
  ignored) name each column."""
  pairs = known_pairs(indices)
  shape = tf.stack([tf.shape(indices, out_type=tf.int64)[0], tf.constant(width, tf.int64)])
  return tf.scatter_nd(pairs, tf.ones_like(pairs[:, 0], dtype), shape)


def index_mask(indices: tf.Tensor, width: int) -> tf.Tensor:
  """bool [batch, width]: True at each row's known ``indices`` (int64 [batch, n], -1 ignored)."""
  return index_counts(indices, width) > 0


def known_values(indices: tf.Tensor) -> tf.RaggedTensor:
  """int64 [batch, n] indices, -1 for padding or unknown -> each row's known ones."""
  return tf.ragged.boolean_mask(indices, indices >= 0)


def count_unknown(values: tf.Tensor, indices: tf.Tensor) -> tf.Tensor:
  """int32 [batch]: non-padding ``values`` whose lookup ``indices`` is -1."""
  unknown = tf.not_equal(values, contract.PAD) & (indices < 0)
  return tf.reduce_sum(tf.cast(unknown, tf.int32), axis=1)


def mask_scores(scores: tf.Tensor, eligible: tf.Tensor) -> tf.Tensor:
  """``scores`` with -inf where ``eligible`` (same shape, bool) is False."""
  return tf.where(eligible, scores, tf.constant(-float("inf"), scores.dtype))


class ItemAttributes(tf.Module):
  """Attribute values of the catalogue items (categories, brands), for request-time rules.

  Kept inside the SavedModel: the value -> index table and the (item, value) pairs.
  With no values at all, every attribute in a rule is unknown.
  """

  def __init__(self, values: Sequence[str], item_values: Sequence[Sequence[int]], name=None):
    """values: distinct attribute values, index order; item_values: per catalogue item
    (vocabulary order) the indices of its values."""
    super().__init__(name=name)
    values = [v.decode() if isinstance(v, bytes) else v for v in values]
    if contract.PAD in values or len(set(values)) != len(values):
      raise ValueError("attribute values must be distinct and non-empty")
    self.num_values = len(values)
    self.num_items = len(item_values)
    pairs = sorted({(item, int(v)) for item, row in enumerate(item_values) for v in row})
    if any(v < 0 or v >= self.num_values for _, v in pairs):
      raise ValueError(f"attribute indices must be in [0, {self.num_values})")
    keys = values or [contract.PAD]   # a table needs a key; PAD is never looked up as known
    self.value_to_index = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(keys, tf.string),
            tf.constant(list(range(len(values))) or [-1], tf.int64)),
        default_value=-1)
    self.pairs = tf.Variable(tf.constant(pairs, tf.int64, shape=[len(pairs), 2]),
                             trainable=False, name="item_attribute_pairs")

  @classmethod
  def empty(cls, num_items: int) -> "ItemAttributes":
    return cls([], [[] for _ in range(num_items)])

  def indices(self, values: tf.Tensor) -> tf.Tensor:
    """Attribute values (any shape) -> int64 indices, -1 for padding and unknown values."""
    return self.value_to_index.lookup(tf.convert_to_tensor(values, tf.string))

  def match_counts(self, indices: tf.Tensor) -> tf.Tensor:
    """float32 [batch, num_items]: how many of a row's known values (int64 [batch, n],
    -1 ignored) each item has."""
    width = max(self.num_values, 1)
    wanted = index_counts(indices, width, tf.float32)
    has = tf.SparseTensor(self.pairs, tf.ones([tf.shape(self.pairs)[0]], tf.float32),
                          [self.num_items, width])
    return tf.transpose(tf.sparse.sparse_dense_matmul(has, wanted, adjoint_b=True))


def mmr_top_k(scores: tf.Tensor, item_embeddings: tf.Tensor, k: tf.Tensor,
              weight: tf.Tensor, pool_size: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
  """Maximal marginal relevance: k items per row picked greedily from its best ``pool_size``.

  Each pick maximises ``(1 - weight) * relevance - weight * max cosine similarity``
  to the items picked before; relevance is the score min-max scaled over the row's
  eligible pool items. Items scored -inf (ineligible) come last, still -inf.

  Args:
    scores: float [batch, num_items], -inf where not eligible.
    item_embeddings: float [num_items, d].
    k, pool_size: int32 scalars, 1 <= k <= pool_size <= num_items.
    weight: float32 scalar in [0, 1]; 0 gives plain top-k.

  Returns:
    (scores float32 [batch, k] in pick order, int64 item indices [batch, k]).
  """
  pool = tf.math.top_k(scores, k=pool_size)
  values = tf.cast(pool.values, tf.float32)
  valid = tf.math.is_finite(values)
  low = tf.reduce_min(tf.where(valid, values, float("inf")), axis=1, keepdims=True)
  high = tf.reduce_max(tf.where(valid, values, -float("inf")), axis=1, keepdims=True)
  relevance = tf.where(valid, (values - low) / tf.maximum(high - low, 1e-12), 0.0)
  unit = tf.math.l2_normalize(
      tf.gather(tf.cast(item_embeddings, tf.float32), pool.indices), axis=-1)
  similarity = tf.matmul(unit, unit, transpose_b=True)                 # [B, P, P]
  weight = tf.cast(weight, tf.float32)

  def pick(step, free, penalty, picks):
    objective = (1.0 - weight) * relevance - weight * penalty           # in [-2, 1]
    objective = tf.where(valid, objective, -3.0)                        # ineligible last
    objective = tf.where(free, objective, -float("inf"))                # never twice
    chosen = tf.argmax(objective, axis=1, output_type=tf.int32)
    free = free & ~tf.one_hot(chosen, pool_size, on_value=True, off_value=False)
    chosen_similarity = tf.gather(similarity, chosen, axis=1, batch_dims=1)
    penalty = tf.where(step > 0, tf.maximum(penalty, chosen_similarity), chosen_similarity)
    return step + 1, free, penalty, picks.write(step, chosen)

  _, _, _, picks = tf.while_loop(
      lambda step, *_: step < k, pick,
      (tf.constant(0), tf.ones_like(valid), tf.zeros_like(relevance),
       tf.TensorArray(tf.int32, size=k)))
  chosen = tf.transpose(picks.stack())                                  # [B, k]
  return (tf.gather(values, chosen, batch_dims=1),
          tf.cast(tf.gather(pool.indices, chosen, batch_dims=1), tf.int64))


class RecommenderModule(tf.Module):
  """Serving wrapper: raw-id histories in, top-k raw item ids and scores out.

  ``model`` offers ``query_embedding``, ``score_all`` (int32 [B, L] model ids,
  left-padded with 0, id = vocabulary index + 1) and ``item_embeddings``, as
  ``trainer.model.NextItemModel`` does. Subclasses change the retrieval by
  overriding ``_top_k``.
  """

  def __init__(self, model, vocabulary: ItemVocabulary, max_seq_len: int,
               attributes: Optional[ItemAttributes] = None, available=None):
    """attributes: the catalogue's attribute values for rules (none: every one unknown);
    available: bool [num_items], the items that may be served (default: all)."""
    super().__init__()
    self.model = servable_model(model)
    self.vocabulary = vocabulary
    self.max_seq_len = max_seq_len
    self.num_items = vocabulary.num_items
    self.attributes = attributes or ItemAttributes.empty(self.num_items)
    if self.attributes.num_items != self.num_items:
      raise ValueError(f"attributes cover {self.attributes.num_items} items, the catalogue "
                       f"has {self.num_items}")
    # Availability: what the catalogue refresh (pipeline.refresh_catalogue) sets; an
    # unavailable item is never among the top k. A variable, so a refresh can set it.
    self.available = tf.Variable(
        tf.ones([self.num_items], tf.bool) if available is None else available,
        trainable=False, dtype=tf.bool, shape=[self.num_items], name="available")

  def _model_inputs(self, indices: tf.Tensor) -> tf.Tensor:
    """int64 [batch, n] history indices (-1 for none) -> the encoder's int32 input."""
    return tf.cast(left_pad_known(indices, self.max_seq_len) + 1, tf.int32)

  def _ragged_model_inputs(self, indices: tf.RaggedTensor) -> tf.Tensor:
    """``_model_inputs`` of ragged known indices (``trainer.explain``'s occluded rows)."""
    return tf.cast(left_pad(indices + 1, self.max_seq_len), tf.int32)

  def _top_k(self, indices: tf.Tensor, inputs: tf.Tensor, k: tf.Tensor):
    """Best ``min(k, num_items)`` available items per row, the row's own ``indices`` excluded.

    Args:
      indices: int64 [batch, n], each row's history (all of it), -1 for none.
      inputs: int32 [batch, max_seq_len], the encoder's input for those rows.
      k: int32 scalar >= 1.

    Returns:
      (scores float32 [batch, min(k, num_items)] best first, int64 vocabulary
      indices of the same shape). Slots without an item have score -inf.
    """
    # Never recommend what the user already has.
    scores = mask_scores(self.model.score_all(inputs), self.eligible(indices))
    top = tf.math.top_k(scores, k=tf.minimum(k, self.num_items))
    return tf.cast(top.values, tf.float32), tf.cast(top.indices, tf.int64)

  def eligible(self, indices: tf.Tensor, exclude_history=True,
               rules: Optional[tf.Tensor] = None) -> tf.Tensor:
    """bool [batch, num_items]: the items each row may get; every signature asks here.

    Args:
      indices: int64 [batch, n], each row's history, -1 for none.
      exclude_history: Python or bool scalar tensor: leave the history items out.
      rules: bool [batch, num_items] from ``rule_mask``, or None.
    """
    mask = ~(index_mask(indices, self.num_items) & exclude_history)
    if rules is not None:
      mask &= rules
    # Availability (catalogue refresh): an unavailable item is never eligible.
    return mask & self.available[tf.newaxis, :]

  def rule_mask(self, rules: Dict[str, tf.Tensor]) -> Tuple[tf.Tensor, tf.Tensor]:
    """The request's item and attribute rules (``contract.RULE_LIST_INPUTS``, string
    [batch, n] padded with PAD) -> (bool [batch, num_items] eligible, int32 [batch]
    rule values unknown to the catalogue). Unknown values match no item."""
    ids = {name: self.vocabulary.indices(rules[name])
           for name in (contract.INPUT_EXCLUDE_IDS, contract.INPUT_ALLOW_IDS)}
    attributes = {name: self.attributes.indices(rules[name])
                  for name in (contract.INPUT_REQUIRE_ATTRIBUTES,
                               contract.INPUT_EXCLUDE_ATTRIBUTES)}
    excluded = index_mask(ids[contract.INPUT_EXCLUDE_IDS], self.num_items)
    allow_ids = rules[contract.INPUT_ALLOW_IDS]
    allows_all = ~tf.reduce_any(tf.not_equal(allow_ids, contract.PAD), axis=1)
    allowed = index_mask(ids[contract.INPUT_ALLOW_IDS], self.num_items)
    required = rules[contract.INPUT_REQUIRE_ATTRIBUTES]
    num_required = tf.reduce_sum(
        tf.cast(tf.not_equal(required, contract.PAD), tf.float32), axis=1)
    has_required = tf.equal(
        self.attributes.match_counts(attributes[contract.INPUT_REQUIRE_ATTRIBUTES]),
        num_required[:, tf.newaxis])
    has_excluded = self.attributes.match_counts(
        attributes[contract.INPUT_EXCLUDE_ATTRIBUTES]) > 0
    mask = (~excluded & (allowed | allows_all[:, tf.newaxis]) & has_required
            & ~has_excluded)
    unknown = tf.add_n([count_unknown(rules[name], found)
                        for name, found in {**ids, **attributes}.items()])
    return mask, unknown

  def _ranked(self, history: tf.Tensor, k: tf.Tensor):
    """serving_default's work: (indices, encoder inputs, scores, top) as in ``_top_k``."""
    tf.debugging.assert_positive(k, message="k must be a positive integer")
    indices = self.vocabulary.history_indices(history)
    inputs = self._model_inputs(indices)
    scores, top = self._top_k(indices, inputs, k)
    return indices, inputs, scores, top

  @tf.function(input_signature=[
      tf.TensorSpec([None, None], tf.string, name=contract.INPUT_HISTORY),
      tf.TensorSpec([], tf.int32, name=contract.INPUT_K),
      *[tf.TensorSpec([None, None], tf.string, name=name)
        for name in contract.RULE_LIST_INPUTS],
      tf.TensorSpec([], tf.bool, name=contract.INPUT_KEEP_HISTORY),
      tf.TensorSpec([], tf.float32, name=contract.INPUT_DIVERSITY)])
  def recommend_with_rules(self, history, k, exclude_ids, allow_ids, require_attributes,
                           exclude_attributes, keep_history, diversity):
    """``recommend`` with request-time rules, filtered before top-k (docs/serving.md)."""
    tf.debugging.assert_positive(k, message="k must be a positive integer")
    tf.debugging.Assert((diversity >= 0.0) & (diversity <= 1.0),
                        ["diversity must be between 0 and 1, got", diversity])
    rules = {}
    for name, values in zip(contract.RULE_LIST_INPUTS, (exclude_ids, allow_ids,
                                                        require_attributes, exclude_attributes)):
      with tf.control_dependencies([tf.debugging.assert_equal(
          tf.shape(values)[0], tf.shape(history)[0],
          message=f"{name} must have one row per history row")]):
        rules[name] = tf.identity(values)
    indices = self.vocabulary.history_indices(history)
    rule_mask, num_unknown_rules = self.rule_mask(rules)
    scores = mask_scores(self.model.score_all(self._model_inputs(indices)),
                         self.eligible(indices, ~keep_history, rule_mask))
    width = tf.minimum(k, self.num_items)
    pool_size = tf.minimum(tf.maximum(MMR_POOL_PER_K * width, MMR_MIN_POOL), self.num_items)

    def diverse():
      return mmr_top_k(scores, self.model.item_embeddings, width, diversity, pool_size)

    def plain():
      top = tf.math.top_k(scores, k=width)
      return tf.cast(top.values, tf.float32), tf.cast(top.indices, tf.int64)

    scores, top = tf.cond(diversity > 0.0, diverse, plain)
    return {**self._answer(scores, top),
            contract.OUTPUT_NUM_UNKNOWN_RULES: num_unknown_rules}

  def _answer(self, scores: tf.Tensor, top: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Item ids and scores; slots without an eligible item are "" with score -inf."""
    ids = tf.where(tf.math.is_inf(scores), tf.constant(contract.PAD),
                   self.vocabulary.item_ids(top))
    return {contract.OUTPUT_ITEM_IDS: ids, contract.OUTPUT_SCORES: scores}

  @tf.function(input_signature=[
      tf.TensorSpec([None, None], tf.string, name=contract.INPUT_HISTORY),
      tf.TensorSpec([], tf.int32, name=contract.INPUT_K)])
  def recommend(self, history, k):
    _, _, scores, top = self._ranked(history, k)
    return self._answer(scores, top)

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
    """The signatures of ``serving.contract``, by name (``explain``: trainer.explain).

    ``explain`` needs the encoder's attention (``model.query_attention``); a model
    without it (a catalogue refresh's wrapper over a loaded version) is exported without.
    """
    signatures = {
        contract.DEFAULT_SIGNATURE: self.recommend.get_concrete_function(),
        contract.RULES_SIGNATURE: self.recommend_with_rules.get_concrete_function(),
        contract.QUERY_EMBEDDING_SIGNATURE: self.query_embedding.get_concrete_function(),
        contract.ITEM_EMBEDDINGS_SIGNATURE: self.item_embeddings.get_concrete_function(),
    }
    if hasattr(self.model, "query_attention"):
      signatures[contract.EXPLAIN_SIGNATURE] = (
          explain.explain_function(self).get_concrete_function())
    return signatures


def save_module(module: RecommenderModule, export_dir: str, options=None) -> str:
  """Writes ``module`` as a SavedModel with the signatures of ``serving.contract``."""
  tf.saved_model.save(module, export_dir, signatures=module.signatures(), options=options)
  return export_dir


def export_serving_model(model, tf_transform_output, max_seq_len: int, export_dir: str,
                         attributes: Optional[ItemAttributes] = None):
  """Writes the pipeline's SavedModel (tf.Transform id mapping, exact top-k)."""
  module = RecommenderModule(model, TransformItemVocabulary(tf_transform_output), max_seq_len,
                             attributes)
  return save_module(module, export_dir)
