"""tf.Transform preprocessing: item and attribute vocabularies (analyzers only here)."""

import tensorflow as tf
import tensorflow_transform as tft

from trainer import features

NUM_OOV_BUCKETS = 1


def _non_empty(values: tf.RaggedTensor) -> tf.RaggedTensor:
  return tf.ragged.boolean_mask(values, tf.not_equal(values, b""))


def _as_ragged(tensor) -> tf.RaggedTensor:
  if isinstance(tensor, tf.SparseTensor):
    return tf.RaggedTensor.from_sparse(tensor)
  if isinstance(tensor, tf.RaggedTensor):
    return tensor
  return tf.RaggedTensor.from_tensor(tf.reshape(tensor, [tf.shape(tensor)[0], -1]))


def _apply(tensor, vocab):
  return tft.apply_vocabulary(tensor, vocab, num_oov_buckets=NUM_OOV_BUCKETS)


def preprocessing_fn(inputs):
  """Maps raw sequence examples (see ``trainer.features``) to vocabulary indices.

  Args:
    inputs: ``history`` and ``item_attributes`` (sparse/ragged bytes [batch, None]),
      ``target``, ``item_id``, ``user_id``, ``title`` (bytes [batch]).
  Returns:
    ``history_ids`` (sparse int64 [batch, None]), ``target_id`` and ``item_index``
    (int64 [batch]), ``item_attribute_ids`` (sparse int64 [batch, None]) and the
    raw ``user_id`` passed through.
  """
  history = _as_ragged(inputs[features.HISTORY])
  target = tf.reshape(inputs[features.TARGET], [-1])
  item_id = tf.reshape(inputs[features.ITEM_ID], [-1])
  attributes = _as_ragged(inputs[features.ITEM_ATTRIBUTES])

  every_item = _non_empty(tf.concat(
      [history, _as_ragged(target[:, None]), _as_ragged(item_id[:, None])], axis=1))
  item_vocab = tft.vocabulary(every_item, vocab_filename=features.ITEM_VOCAB)
  attribute_vocab = tft.vocabulary(
      _non_empty(attributes), vocab_filename=features.ATTRIBUTE_VOCAB)

  return {
      features.USER_ID: tf.reshape(inputs[features.USER_ID], [-1]),
      # Variable-length outputs are sparse so they land in the transformed
      # tf.Examples as plain int64 lists (VarLenFeature in the transformed spec).
      features.HISTORY_IDS: _apply(history, item_vocab).to_sparse(),
      features.TARGET_ID: _apply(target, item_vocab),
      features.ITEM_INDEX: _apply(item_id, item_vocab),
      features.ITEM_ATTRIBUTE_IDS: _apply(attributes, attribute_vocab).to_sparse(),
  }
