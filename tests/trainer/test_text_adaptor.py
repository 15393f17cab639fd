"""Text item representations: UniSRec's adaptor, the frozen text table, the encoder's items."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tests.trainer.text_items import clustered_vectors
from trainer.config import EncoderConfig
from trainer.encoder import SequenceEncoder
from trainer.retrieval import RetrievalConfig
from trainer.retrieval import RetrievalModel
from trainer.text_adaptor import MoEAdaptor
from trainer.text_adaptor import text_table
from trainer.model import INPUTS
from trainer.model import LABELS

V = 12
CONFIG = EncoderConfig(max_seq_len=6, embedding_dim=8, num_blocks=1, num_heads=1, ff_dim=8,
                       dropout=0.0, attention="causal", item_representation="text",
                       adaptor_experts=3, adaptor_dropout=0.0)
VECTORS = clustered_vectors(3, 4, dim=5)


def _softmax(x):
  e = np.exp(x - x.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("items, text_dim, experts, dim", [(7, 5, 3, 4), (24, 8, 2, 16)])
def test_adaptor_is_a_gated_mixture_of_whitened_projections(items, text_dim, experts, dim):
  rng = np.random.default_rng(0)
  adaptor = MoEAdaptor(dim, num_experts=experts)
  adaptor.build([None, text_dim])
  shift, projection, gate = (rng.normal(size=[experts, text_dim]),
                             rng.normal(size=[experts, text_dim, dim]),
                             rng.normal(size=[text_dim, experts]))
  adaptor.set_weights([shift, projection, gate])
  x = rng.normal(size=[items, text_dim]).astype(np.float32)
  gates = _softmax(x @ gate)
  expected = sum(gates[:, k:k + 1] * ((x - shift[k]) @ projection[k]) for k in range(experts))
  np.testing.assert_allclose(adaptor(x).numpy(), expected, rtol=1e-4, atol=1e-3)
  # Any leading shape.
  np.testing.assert_allclose(adaptor(x.reshape(1, items, text_dim)).numpy()[0], expected,
                             rtol=1e-4, atol=1e-3)


def test_a_fresh_adaptor_gates_uniformly_and_shifts_nothing():
  adaptor = MoEAdaptor(4, num_experts=3)
  x = np.random.default_rng(1).normal(size=[2, 5]).astype(np.float32)
  out = adaptor(x).numpy()
  projection = adaptor.projection.numpy()
  np.testing.assert_allclose(out, x @ projection.mean(axis=0), rtol=1e-4, atol=1e-6)


def test_text_table_has_zero_padding_and_mask_rows():
  table = text_table(VECTORS)
  assert table.shape == (V + 2, 5)
  np.testing.assert_array_equal(table[0], 0.0)
  np.testing.assert_array_equal(table[-1], 0.0)
  np.testing.assert_array_equal(table[1:-1], VECTORS)
  with pytest.raises(ValueError, match="NaN or infinity"):
    text_table(np.full([2, 3], np.nan))
  with pytest.raises(ValueError, match=r"float \[V, t\]"):
    text_table(np.zeros([3]))


def _encoder(config, vectors):
  tf.keras.utils.set_random_seed(0)
  encoder = SequenceEncoder(V, config, vectors)
  encoder(tf.zeros([1, config.max_seq_len], tf.int32))
  return encoder


@pytest.mark.parametrize("representation", ["text", "id+text"])
def test_the_encoder_input_and_the_catalogue_share_one_item_representation(representation):
  encoder = _encoder(dataclasses.replace(CONFIG, item_representation=representation), VECTORS)
  # The id encoder's weights (less the id table for "text") and the adaptor's three.
  id_weights = _encoder(dataclasses.replace(CONFIG, item_representation="id"), None).weights
  assert len(encoder.trained_weights) == len(id_weights) + 3 - (representation == "text")
  items = encoder.item_embeddings.numpy()
  assert items.shape == (V, 8)
  np.testing.assert_allclose(items, encoder.embed_items(tf.range(1, V + 1)).numpy(), atol=1e-6)
  adapted = encoder.item_text.adaptor(VECTORS).numpy()
  ids = encoder.item_table.embeddings.numpy()[1:V + 1] if representation == "id+text" else 0.0
  np.testing.assert_allclose(items, adapted + ids, atol=1e-6)
  # The input side reads the same vectors: another text for item 3 changes its position only.
  other = VECTORS.copy()
  other[2] = VECTORS[9]
  changed = _encoder(encoder.config, other)
  ids = tf.constant([[1, 2, 3, 4]])
  a, b = encoder(ids, causal=True).numpy(), changed(ids, causal=True).numpy()
  np.testing.assert_allclose(a[:, :2], b[:, :2], atol=1e-6)
  assert not np.allclose(a[:, 2], b[:, 2], atol=1e-4)


def test_frozen_text_vectors_are_not_trained_but_the_adaptor_is():
  tf.keras.utils.set_random_seed(0)
  model = RetrievalModel(V, CONFIG, RetrievalConfig(targets="all_positions"), item_vectors=VECTORS)
  vectors = model.encoder.item_text.vectors
  assert not vectors.trainable
  assert all(w is not vectors for w in model.trainable_variables)
  assert all(w is not vectors for w in model.encoder.trained_weights)
  assert model.encoder.item_table is None      # "text": no id embedding at all
  projection = model.encoder.item_text.adaptor.projection.numpy().copy()
  model.compile(optimizer=tf.keras.optimizers.Adam(1e-2))
  batch = {INPUTS: tf.constant([[0, 1, 2, 3]]), LABELS: tf.constant([[-1, 1, 2, 3]])}
  for _ in range(3):
    model.train_step(batch)
  np.testing.assert_array_equal(vectors.numpy(), text_table(VECTORS))
  assert not np.allclose(model.encoder.item_text.adaptor.projection.numpy(), projection)


def test_text_representations_need_vectors_of_every_catalogue_item():
  with pytest.raises(ValueError, match=r"item_representation='text' needs item_vectors"):
    SequenceEncoder(V, CONFIG)
  with pytest.raises(ValueError, match="item_vectors has 11 rows; the catalogue has 12"):
    SequenceEncoder(V, CONFIG, VECTORS[:-1])
  with pytest.raises(ValueError, match="item_vectors given, but .* is 'id'"):
    SequenceEncoder(V, dataclasses.replace(CONFIG, item_representation="id"), VECTORS)


def test_id_items_have_no_text_part():
  encoder = SequenceEncoder(V, dataclasses.replace(CONFIG, item_representation="id"))
  encoder(tf.zeros([1, 6], tf.int32))
  assert encoder.item_text is None
  assert encoder.trained_weights == encoder.weights


def test_id_dropout_zeroes_whole_id_embeddings_in_training_only():
  config = dataclasses.replace(CONFIG, item_representation="id+text", id_dropout=0.5)
  encoder = _encoder(config, VECTORS)
  ids = tf.constant(np.tile(np.arange(1, V + 1), [50, 1]))            # [50, V]
  text = encoder.item_text(ids).numpy()
  full = encoder.item_table(ids).numpy()
  np.testing.assert_allclose(encoder.embed_items(ids).numpy(), text + full, atol=1e-6)
  id_part = encoder.embed_items(ids, training=True).numpy() - text
  dropped = np.all(np.abs(id_part) < 1e-6, axis=-1)
  kept = np.all(np.abs(id_part - full) < 1e-6, axis=-1)
  assert np.all(dropped | kept)                  # an item's whole id row, or none of it
  assert 0.4 < dropped.mean() < 0.6
  # The catalogue rows of a training pass drop out too; "text" has no id part to drop.
  rows = encoder.catalogue_embeddings(training=True).numpy() - encoder.item_text.adaptor(
      VECTORS).numpy()
  assert np.any(np.all(np.abs(rows) < 1e-6, axis=-1))
  text_only = _encoder(dataclasses.replace(CONFIG, id_dropout=0.5), VECTORS)
  np.testing.assert_allclose(text_only.embed_items(ids, training=True).numpy(),
                             text_only.item_text(ids).numpy(), atol=1e-6)

