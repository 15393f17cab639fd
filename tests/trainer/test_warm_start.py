"""Warm start: known items keep their embeddings by raw id, other weights carry over."""

import dataclasses
import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.trainer import batches
from trainer import optimizers
from trainer import warm_start
from trainer.config import EncoderConfig
from trainer.config import RetrievalConfig
from trainer.pretraining.config import PretrainConfig
from trainer.pretraining.item_attributes import ItemAttributeTable
from trainer.pretraining.model import PretrainingModel
from trainer.retrieval import RetrievalModel

CONFIG = EncoderConfig(embedding_dim=8, ff_dim=8, num_blocks=1, num_heads=1, max_seq_len=5)
PRETRAIN = PretrainConfig(masked_item_weight=1.0, attribute_weight=0.2, contrastive_weight=0.0,
                          clustering_weight=0.0)


def _attributes(num_items):
  return ItemAttributeTable([[j % 2] for j in range(num_items)], num_attributes=2)


def _retrieval(num_items, config=CONFIG):
  return RetrievalModel(num_items, config, RetrievalConfig(), _attributes(num_items))


def _pretraining(num_items, config=CONFIG):
  return PretrainingModel(num_items, config, PRETRAIN, _attributes(num_items))


def _table(model):
  """Rows [pad, item 0..V-1, MASK] of the model's item table."""
  return model.encoder.item_table.embeddings.numpy()


def _save(model, vocab, tmp_path):
  """Saves as a Trainer does; returns the serving folder a later run gets as base_model."""
  serving = str(tmp_path / "Format-Serving")
  warm_start.save(model, vocab, serving)
  assert os.path.isdir(tmp_path / warm_start.WARM_START_DIR)
  return serving


def test_retrain_on_a_changed_vocabulary_matches_items_by_raw_id(tmp_path):
  old = _retrieval(3)
  base = _save(old, ["a", "b", "c"], tmp_path)
  new = _retrieval(3)
  fresh_d = _table(new)[3].copy()
  stats = warm_start.restore(new, ["c", "a", "d"], base)
  assert stats == {"weights": len(new.encoder.weights), "items_kept": 2, "items_new": 1,
                   "attributes_kept": 0}
  old_rows, new_rows = _table(old), _table(new)
  np.testing.assert_array_equal(new_rows[1], old_rows[3])  # c
  np.testing.assert_array_equal(new_rows[2], old_rows[1])  # a
  np.testing.assert_array_equal(new_rows[3], fresh_d)      # d: new item
  np.testing.assert_array_equal(new_rows[[0, 4]], old_rows[[0, 4]])  # pad and [MASK]
  table = new.encoder.item_table.embeddings
  for w_new, w_old in zip(new.encoder.weights, old.encoder.weights):
    if w_new is not table:
      np.testing.assert_array_equal(w_new.numpy(), w_old.numpy())


def test_grown_catalogue_keeps_old_rows(tmp_path):
  old = _retrieval(2)
  base = _save(old, ["a", "b"], tmp_path)
  new = _retrieval(4)
  stats = warm_start.restore(new, ["a", "b", "x", "y"], base)
  assert stats["items_kept"] == 2 and stats["items_new"] == 2
  np.testing.assert_array_equal(_table(new)[1:3], _table(old)[1:3])
  np.testing.assert_array_equal(_table(new)[-1], _table(old)[-1])  # [MASK]


@pytest.mark.parametrize("change,reason", [
    ({"ff_dim": 16}, "has shape"),
    ({"embedding_dim": 16, "ff_dim": 16}, "has shape"),
    ({"num_blocks": 2}, "architecture changed"),
])
def test_changed_architecture_trains_from_scratch_and_logs_why(tmp_path, caplog, change, reason):
  base = _save(_retrieval(3), ["a", "b", "c"], tmp_path)
  new = _retrieval(3, dataclasses.replace(CONFIG, **change))
  before = [w.numpy().copy() for w in new.weights]
  with caplog.at_level(logging.WARNING):
    assert warm_start.restore(new, ["a", "b", "c"], base)["weights"] == 0
  assert reason in caplog.text and "training from scratch" in caplog.text
  for w, b in zip(new.weights, before):
    np.testing.assert_array_equal(w.numpy(), b)


@pytest.mark.parametrize("source,target", [(_pretraining, _retrieval),
                                           (_retrieval, _pretraining)])
def test_encoder_carries_over_between_pretraining_and_fine_tuning(tmp_path, source, target):
  """Pre-training hands its encoder to fine-tuning; a nightly pre-training run
  starts from the served (fine-tuned) model's. Without an attribute vocabulary
  nothing else is copied (attribute tables and objective weights keep their
  initialisation)."""
  old = source(3)
  base = _save(old, ["a", "b", "c"], tmp_path)
  new = target(3)
  others = {id(w): w.numpy().copy() for w in new.weights}
  for w in new.encoder.weights:
    others.pop(id(w))
  assert others, "the target model has weights outside its encoder"
  stats = warm_start.restore(new, ["a", "b", "c"], base)
  assert stats["weights"] == len(old.encoder.weights) and stats["items_kept"] == 3
  for w_new, w_old in zip(new.encoder.weights, old.encoder.weights):
    np.testing.assert_array_equal(w_new.numpy(), w_old.numpy())
  for w in new.weights:
    if id(w) in others:
      np.testing.assert_array_equal(w.numpy(), others[id(w)])


def _attribute_rows(model):
  return warm_start._attribute_table(model).numpy()


@pytest.mark.parametrize("source,target", [(_pretraining, _retrieval),
                                           (_retrieval, _pretraining),
                                           (_retrieval, _retrieval)])
def test_attribute_embeddings_carry_over_by_value(tmp_path, source, target):
  """The attribute objective's table becomes the candidate tower's, and a nightly run
  keeps it: rows follow the attribute value, a new value keeps its initialisation."""
  old = source(3)
  base = str(tmp_path / "Format-Serving")
  warm_start.save(old, ["a", "b", "c"], base, attribute_vocab=["red", "blue"])
  new = target(3)
  fresh = _attribute_rows(new).copy()
  stats = warm_start.restore(new, ["a", "b", "c"], base, attribute_vocab=["blue", "green"])
  assert stats["attributes_kept"] == 1
  np.testing.assert_array_equal(_attribute_rows(new)[0], _attribute_rows(old)[1])  # blue
  np.testing.assert_array_equal(_attribute_rows(new)[1], fresh[1])                 # green


def test_attribute_embeddings_stay_when_the_encoder_cannot_warm_start(tmp_path):
  base = str(tmp_path / "Format-Serving")
  warm_start.save(_retrieval(3), ["a", "b", "c"], base, attribute_vocab=["red", "blue"])
  new = _retrieval(3, dataclasses.replace(CONFIG, num_blocks=2))
  fresh = _attribute_rows(new).copy()
  stats = warm_start.restore(new, ["a", "b", "c"], base, attribute_vocab=["red", "blue"])
  assert stats["weights"] == 0 and stats["attributes_kept"] == 0
  np.testing.assert_array_equal(_attribute_rows(new), fresh)


def test_an_attribute_vocabulary_of_another_size_is_refused(tmp_path):
  with pytest.raises(ValueError, match="attribute_vocab has 3 values"):
    warm_start.save(_retrieval(3), ["a", "b", "c"], str(tmp_path / "s"), ["x", "y", "z"])


def _text_retrieval(vocab, representation):
  """A text model of ``vocab``: each item's text vector is derived from its raw id."""
  config = dataclasses.replace(CONFIG, item_representation=representation, adaptor_experts=2)
  vectors = np.stack([np.random.default_rng(ord(item)).normal(size=4) for item in vocab])
  return RetrievalModel(len(vocab), config, RetrievalConfig(), _attributes(len(vocab)),
                        item_vectors=vectors.astype(np.float32))


@pytest.mark.parametrize("representation", ["text", "id+text"])
def test_text_models_carry_the_adaptor_over_and_keep_their_own_text_vectors(
    tmp_path, representation):
  old = _text_retrieval(["a", "b", "c"], representation)
  base = _save(old, ["a", "b", "c"], tmp_path)
  new = _text_retrieval(["c", "a", "d", "e"], representation)   # another vocabulary
  vectors = new.encoder.item_text.vectors.numpy().copy()
  stats = warm_start.restore(new, ["c", "a", "d", "e"], base)
  assert stats["weights"] == len(new.encoder.trained_weights)
  np.testing.assert_array_equal(new.encoder.item_text.vectors.numpy(), vectors)
  for w_new, w_old in zip(new.encoder.item_text.adaptor.weights,
                          old.encoder.item_text.adaptor.weights):
    np.testing.assert_array_equal(w_new.numpy(), w_old.numpy())
  if representation == "id+text":   # id rows still follow the raw ids
    np.testing.assert_array_equal(_table(new)[1:3], _table(old)[[3, 1]])


def test_switching_between_id_and_text_items_trains_from_scratch(tmp_path, caplog):
  base = _save(_retrieval(3), ["a", "b", "c"], tmp_path)
  with caplog.at_level(logging.WARNING):
    assert warm_start.restore(_text_retrieval(["a", "b", "c"], "text"), ["a", "b", "c"],
                              base)["weights"] == 0
  assert "training from scratch" in caplog.text


def test_shrink_mixes_the_fresh_initialisation_into_every_copied_value(tmp_path):
  old = _retrieval(3)
  base = str(tmp_path / "Format-Serving")
  warm_start.save(old, ["a", "b", "c"], base, attribute_vocab=["red", "blue"])
  new = _retrieval(3)
  fresh_weights = [w.numpy().copy() for w in new.encoder.trained_weights]
  fresh_attributes = _attribute_rows(new).copy()
  warm_start.restore(new, ["c", "a", "d"], base, attribute_vocab=["blue", "green"], shrink=0.25)
  table = next(i for i, w in enumerate(new.encoder.trained_weights)
               if w is new.encoder.item_table.embeddings)
  for i, (w, saved, fresh) in enumerate(zip(new.encoder.trained_weights,
                                            old.encoder.trained_weights, fresh_weights)):
    if i != table:
      np.testing.assert_allclose(w.numpy(), 0.25 * saved.numpy() + 0.75 * fresh, rtol=1e-6)
  rows = _table(new)
  np.testing.assert_allclose(rows[1], 0.25 * _table(old)[3] + 0.75 * fresh_weights[table][1],
                             rtol=1e-6)                                   # c, by raw id
  np.testing.assert_array_equal(rows[3], fresh_weights[table][3])         # d: new, fresh
  np.testing.assert_allclose(_attribute_rows(new)[0],                     # blue, by value
                             0.25 * _attribute_rows(old)[1] + 0.75 * fresh_attributes[0],
                             rtol=1e-6)
  np.testing.assert_array_equal(_attribute_rows(new)[1], fresh_attributes[1])  # green
  with pytest.raises(ValueError):
    warm_start.restore(new, ["a"], base, shrink=0.0)


def test_keep_items_copies_only_the_item_and_attribute_embeddings(tmp_path):
  old = _retrieval(3)
  base = str(tmp_path / "Format-Serving")
  warm_start.save(old, ["a", "b", "c"], base, attribute_vocab=["red", "blue"])
  new = _retrieval(3)
  fresh_weights = [w.numpy().copy() for w in new.encoder.trained_weights]
  stats = warm_start.restore(new, ["c", "a", "d"], base, attribute_vocab=["blue", "green"],
                             keep=warm_start.KEEP_ITEMS)
  assert stats == {"weights": 1, "items_kept": 2, "items_new": 1, "attributes_kept": 1}
  table = new.encoder.item_table.embeddings
  for w, fresh in zip(new.encoder.trained_weights, fresh_weights):
    if w is not table:   # positions, blocks and norms: the fresh initialisation
      np.testing.assert_array_equal(w.numpy(), fresh)
  np.testing.assert_array_equal(_table(new)[1:3], _table(old)[[3, 1]])   # c, a by raw id
  np.testing.assert_array_equal(_attribute_rows(new)[0], _attribute_rows(old)[1])  # blue
  with pytest.raises(ValueError, match="keep must be one of"):
    warm_start.restore(new, ["a"], base, keep="blocks")


def _moments(model):
  slots = warm_start._adam_moments(model, model.encoder.trained_weights)
  return [(m.numpy(), v.numpy()) for m, v in slots]


@pytest.mark.parametrize("saved_by, restored_into", [
    ("adam", "adam"), ("fused_adam", "fused_adam"), ("adam", "fused_adam")])
def test_optimizer_state_carries_over_so_training_resumes_where_it_stopped(
    tmp_path, saved_by, restored_into):
  """A nightly run with ``optimizer=True`` steps exactly as the saved run's next step
  would have: same weights, Adam moments and step count, from either Adam to either."""
  config = dataclasses.replace(CONFIG, dropout=0.0)
  old = batches.stepped(_retrieval(3, config), seeds=[0, 1], optimizer=saved_by)
  base = str(tmp_path / "Format-Serving")
  warm_start.save(old, ["a", "b", "c"], base, attribute_vocab=["red", "blue"], optimizer=True)
  new = _retrieval(3, config)
  new.compile(optimizer=optimizers.make(restored_into, 0.01))
  stats = warm_start.restore(new, ["a", "b", "c"], base, attribute_vocab=["red", "blue"],
                             optimizer=True)
  assert stats["moments_kept"] == len(new.trainable_variables)   # encoder + attribute table
  assert int(new.optimizer.iterations) == 2
  batches.stepped(old, seeds=[2])
  batches.stepped(new, seeds=[2])
  assert len(new.trainable_variables) == len(new.encoder.trained_weights) + 1
  for w_new, w_old in zip(new.trainable_variables, old.trainable_variables):
    np.testing.assert_allclose(w_new.numpy(), w_old.numpy(), rtol=1e-5, atol=1e-7)


def test_optimizer_state_follows_items_by_raw_id_and_new_items_start_at_zero(tmp_path):
  old = batches.stepped(_retrieval(3), seeds=[0, 1])
  base = str(tmp_path / "Format-Serving")
  warm_start.save(old, ["a", "b", "c"], base, attribute_vocab=["red", "blue"], optimizer=True)
  new = _retrieval(3)
  new.compile(optimizer=tf.keras.optimizers.Adam(0.01))
  warm_start.restore(new, ["c", "a", "d"], base, attribute_vocab=["blue", "green"],
                     optimizer=True)
  table = next(i for i, w in enumerate(new.encoder.trained_weights)
               if w is new.encoder.item_table.embeddings)
  for i, ((m_new, v_new), (m_old, v_old)) in enumerate(zip(_moments(new), _moments(old))):
    if i != table:
      np.testing.assert_array_equal(m_new, m_old)
      np.testing.assert_array_equal(v_new, v_old)
  (m_new, v_new), (m_old, v_old) = _moments(new)[table], _moments(old)[table]
  np.testing.assert_array_equal(m_new[1:3], m_old[[3, 1]])   # c, a by raw id
  np.testing.assert_array_equal(v_new[1:3], v_old[[3, 1]])
  assert not m_new[3].any() and not v_new[3].any()            # d: new, a fresh Adam's zeros
  assert m_old[1:4].any()
  attributes = [(m.numpy(), v.numpy()) for model in (new, old) for m, v in
                warm_start._adam_moments(model, [warm_start._attribute_table(model)])]
  (m_new, v_new), (m_old, v_old) = attributes
  np.testing.assert_array_equal(m_new[0], m_old[1])           # blue, by value
  np.testing.assert_array_equal(v_new[0], v_old[1])
  assert not m_new[1].any() and m_old[1].any()                # green: new


def test_optimizer_state_is_saved_on_request_and_taken_only_from_the_same_kind_of_model(
    tmp_path, caplog):
  """Pre-training's moments belong to its objectives, not fine-tuning's; a Trainer's
  artifact holds no moments unless asked (ModelConfig.warm_start.carry_optimizer)."""
  base = str(tmp_path / "Format-Serving")
  warm_start.save(batches.stepped(_pretraining(3), seeds=[0]), ["a", "b", "c"], base,
                  optimizer=True)
  new = _retrieval(3)
  new.compile(optimizer=tf.keras.optimizers.Adam(0.01))
  with caplog.at_level(logging.WARNING):
    stats = warm_start.restore(new, ["a", "b", "c"], base, optimizer=True)
  assert stats["weights"] > 0 and stats["moments_kept"] == 0
  assert "saved by PretrainingModel, restoring into RetrievalModel" in caplog.text
  assert int(new.optimizer.iterations) == 0
  plain = _retrieval(3)   # by default a warm start restarts Adam
  plain.compile(optimizer=tf.keras.optimizers.Adam(0.01))
  same_kind = _save(batches.stepped(_retrieval(3), [0]), ["a", "b", "c"], tmp_path / "r")
  assert "moments_kept" not in warm_start.restore(plain, ["a", "b", "c"], same_kind)
  assert int(plain.optimizer.iterations) == 0
  assert not os.path.exists(tmp_path / "r" / warm_start.WARM_START_DIR / "optimizer.npz")
  with caplog.at_level(logging.WARNING):   # nor are there moments to restore
    assert warm_start.restore(plain, ["a", "b", "c"], same_kind, optimizer=True)[
        "moments_kept"] == 0
  assert "saved by no optimizer" in caplog.text
  assert int(plain.optimizer.iterations) == 0


@pytest.mark.parametrize("optimizer", sorted(optimizers.ADAMS))
def test_warm_schedule_warms_up_per_batch_then_decays_per_epoch_and_stops(optimizer):
  schedule = warm_start.WarmSchedule(1e-3, warmup_steps=4, decay_epochs=2)
  # Warm-up: 1/4, 2/4, ... of the rate, times the first epoch's cosine (midpoint 0.25).
  first = 0.5 * (1 + np.cos(np.pi * 0.25))
  assert schedule.rate(0, 0) == pytest.approx(1e-3 * 0.25 * first)
  assert schedule.rate(3, 0) == pytest.approx(1e-3 * first)
  assert schedule.rate(10, 1) == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi * 0.75)))
  assert warm_start.WarmSchedule(1e-3).rate(0, 7) == 1e-3   # neither: constant

  inputs = np.ones((12, 2), np.float32)
  model = tf.keras.Sequential([tf.keras.layers.Dense(1)])
  model.compile(optimizer=optimizers.make(optimizer, 1e-3), loss="mse")
  seen = []
  record = tf.keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(
      float(model.optimizer.learning_rate.numpy())))
  history = model.fit(inputs, inputs[:, :1], batch_size=4, epochs=5, verbose=0,
                      callbacks=[schedule, record])
  assert len(history.history["loss"]) == 2   # stopped after the decay epochs
  expected = [schedule.rate(step, step // 3) for step in range(6)]
  np.testing.assert_allclose(seen, expected, rtol=1e-6)
  with pytest.raises(ValueError):
    warm_start.WarmSchedule(1e-3, warmup_steps=-1)


def test_the_saved_folder_names_the_kind_of_model_that_wrote_it(tmp_path):
  """run_fn applies ModelConfig.warm_start only over a fine-tuned model's folder."""
  assert warm_start.saved_by(_save(_retrieval(3), ["a", "b", "c"], tmp_path / "r")
                             ) == "RetrievalModel"
  assert warm_start.saved_by(_save(_pretraining(3), ["a", "b", "c"], tmp_path / "p")
                             ) == "PretrainingModel"
