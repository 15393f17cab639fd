"""Pre-training objectives, k-means and PretrainingModel (trainer.pretraining)."""

import dataclasses
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.trainer import batches
from trainer.config import EncoderConfig
from trainer.encoder import SequenceEncoder
from trainer.pretraining import kmeans as kmeans_lib
from trainer.pretraining import objectives
from trainer.pretraining.batch import Objective
from trainer.pretraining.batch import PretrainingBatch
from trainer.pretraining.clustering import ClusteringCallback
from trainer.pretraining.clustering import ClusteringObjective
from trainer.pretraining.config import PretrainConfig
from trainer.pretraining.contrastive import nt_xent
from trainer.pretraining.item_attributes import ItemAttributeTable
from trainer.pretraining.model import PretrainingModel
from trainer.training_schedule import TrainingSchedule

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
V = 24
L = 8
NUM_ATTRIBUTES = 6
TINY = EncoderConfig(max_seq_len=L, embedding_dim=16, num_blocks=1, num_heads=1, ff_dim=16,
                     dropout=0.0)
ALL_OFF = dict.fromkeys(objectives.WEIGHT_FIELDS, 0.0)


def _attributes():
  """Item j has attributes j % 3 and 3 + j % 3: learnable from the item."""
  return ItemAttributeTable([[j % 3, 3 + j % 3] for j in range(V)], NUM_ATTRIBUTES)


def _batch(num_rows=32, seed=0):
  """Runs of consecutive items (next = previous + 1 mod V), 3..L+1 items long."""
  return batches.batch(batches.random_runs(num_rows, V, 3, L + 1, seed), V, L)


def test_the_registry_names_every_weight_field_and_loss_layer():
  weight_fields = {f.name for f in dataclasses.fields(PretrainConfig) if f.name.endswith("_weight")}
  assert set(objectives.WEIGHT_FIELDS) == weight_fields
  for name in objectives.NAMES:
    assert issubclass(objectives.layer_class(name), Objective), name
  with pytest.raises(ValueError, match="Unknown pre-training objective 'cloze'"):
    objectives.register("cloze")


def test_configs_and_the_registry_import_without_tensorflow():
  code = ("import sys; import trainer.config, trainer.pretraining.config; "
          "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'")
  subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


def test_causal_output_ignores_later_items_and_bidirectional_does_not():
  encoder = SequenceEncoder(V, TINY)
  a = tf.constant([[0, 0, 3, 4, 5, 6, 7, 8]])
  b = tf.constant([[0, 0, 3, 4, 5, 6, 7, 20]])      # only the last item differs
  causal_a, causal_b = encoder(a, causal=True), encoder(b, causal=True)
  np.testing.assert_allclose(causal_a[:, :-1], causal_b[:, :-1], atol=1e-6)
  assert not np.allclose(causal_a[:, -1], causal_b[:, -1], atol=1e-4)
  both_a, both_b = encoder(a, causal=False), encoder(b, causal=False)
  for t in range(2, L - 1):
    assert not np.allclose(both_a[:, t], both_b[:, t], atol=1e-4), f"position {t}"
  np.testing.assert_array_equal(both_a[:, :2], 0.0)   # padding rows stay zero


def _train(model, batch, steps):
  step = tf.function(model.train_step)
  for _ in range(steps):
    step(batch)


def _text_model(config: PretrainConfig) -> PretrainingModel:
  """A PretrainingModel whose items are (random) text vectors only."""
  encoder_config = dataclasses.replace(TINY, item_representation="text", adaptor_experts=2,
                                       adaptor_dropout=0.1)
  vectors = np.random.default_rng(0).normal(size=[V, 16]).astype(np.float32)
  return PretrainingModel(V, encoder_config, config, _attributes(), vectors)


@pytest.mark.parametrize("representation", ["id", "text"])
def test_every_objective_loss_decreases_on_a_tiny_synthetic_set(representation):
  # One model with all five objectives (each with its own parameters or
  # gradient path); every loss, evaluated with a fixed seed and fixed intent
  # prototypes, must drop after a few dozen joint steps.
  config = PretrainConfig(**dict.fromkeys(objectives.WEIGHT_FIELDS, 1.0),
                          num_clusters=4, mask_probability=0.3,
                          schedule=TrainingSchedule(seed=1))
  tf.keras.utils.set_random_seed(0)
  model = (PretrainingModel(V, TINY, config, _attributes()) if representation == "id"
           else _text_model(config))
  assert list(model.objectives) == list(objectives.NAMES)
  model.compile(optimizer=tf.keras.optimizers.Adam(1e-2))
  batch = _batch()
  ClusteringCallback(model.clustering, model.encoder, [batch], iterations=10).recluster(0)
  seed = tf.constant([9, 9], tf.int64)
  before = {k: float(v) for k, v in model.compute_losses(batch, seed, training=False).items()}
  _train(model, batch, steps=40)
  after = {k: float(v) for k, v in model.compute_losses(batch, seed, training=False).items()}
  for name in objectives.NAMES:
    assert np.isfinite(before[name]) and before[name] > 0, (name, before)
    assert after[name] < 0.9 * before[name], f"{name}: {before[name]:.4f} -> {after[name]:.4f}"


def test_every_objective_trains_the_text_adaptor_and_none_the_text_vectors():
  config = PretrainConfig(**dict.fromkeys(objectives.WEIGHT_FIELDS, 1.0), num_clusters=4)
  tf.keras.utils.set_random_seed(0)
  model = _text_model(config)
  batch = _batch()
  ClusteringCallback(model.clustering, model.encoder, [batch], iterations=5).recluster(0)
  adaptor = model.encoder.item_text.adaptor.trainable_variables
  for name in objectives.NAMES:
    with tf.GradientTape() as tape:
      loss = model.compute_losses(batch, tf.constant([1, 2], tf.int64), training=True)[name]
    gradients = tape.gradient(loss, adaptor + [model.encoder.item_text.vectors])
    assert gradients[-1] is None, name        # frozen: not even watched
    assert any(g is not None and np.abs(g.numpy()).max() > 0 for g in gradients[:-1]), name


def test_model_reports_every_objective_and_the_weighted_total():
  config = PretrainConfig(masked_item_weight=1.0, next_item_weight=0.5, attribute_weight=0.2,
                          contrastive_weight=0.1, clustering_weight=0.3, num_clusters=4,
                          schedule=TrainingSchedule(epochs=2))
  model = PretrainingModel(V, TINY, config, _attributes())
  model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), run_eagerly=True)
  batch = _batch()
  dataset = tf.data.Dataset.from_tensors(batch)
  callback = ClusteringCallback(model.clustering, model.encoder, dataset, iterations=5)
  history = model.fit(dataset, epochs=2, callbacks=[callback], verbose=0).history
  names = [f"{n}_loss" for n in objectives.NAMES]
  assert set(history) == {"loss", *names}
  weights = {"masked_item": 1.0, "next_item": 0.5, "attribute": 0.2, "contrastive": 0.1,
             "clustering": 0.3}
  for epoch in range(2):
    total = sum(w * history[f"{n}_loss"][epoch] for n, w in weights.items())
    assert history["loss"][epoch] == pytest.approx(total, rel=1e-5)
    assert all(history[n][epoch] > 0 for n in names)   # clustering ran from epoch 0
  assert callback.last_result is not None


def test_zero_weight_objectives_are_not_built():
  model = PretrainingModel(V, TINY, PretrainConfig(**{**ALL_OFF, "next_item_weight": 1.0}))
  assert list(model.objectives) == ["next_item"]
  assert model.attribute_embeddings is None and model.clustering is None


def test_attribute_objective_needs_item_attributes():
  with pytest.raises(ValueError, match="needs item_attributes"):
    PretrainingModel(V, TINY, PretrainConfig(attribute_weight=1.0))
  empty = ItemAttributeTable([[] for _ in range(V)], NUM_ATTRIBUTES)
  with pytest.raises(ValueError, match="no catalogue item has a known attribute"):
    PretrainingModel(V, TINY, PretrainConfig(attribute_weight=1.0), empty)


def test_pretraining_rejects_batches_without_inputs_and_labels():
  model = PretrainingModel(V, TINY, PretrainConfig(**{**ALL_OFF, "masked_item_weight": 1.0}))
  with pytest.raises(ValueError, match="'inputs' and 'labels'"):
    model.compute_losses({"history": tf.zeros([1, 3], tf.int32)}, tf.constant([0, 0]), False)


def test_nt_xent_matches_a_hand_computation():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
  temperature = 0.5
  z = np.concatenate([a, b])
  z = z / np.linalg.norm(z, axis=1, keepdims=True)
  sim = z @ z.T / temperature
  expected = []
  for i in range(6):
    others = [j for j in range(6) if j != i]
    positive = (i + 3) % 6
    expected.append(-sim[i, positive] + np.log(np.sum(np.exp(sim[i, others]))))
  got = nt_xent(tf.constant(a, tf.float32), tf.constant(b, tf.float32), temperature)
  assert float(got) == pytest.approx(np.mean(expected), rel=1e-5)
  # An invalid row is neither scored nor a negative.
  valid = tf.constant([True, True, False])
  keep = [0, 1, 3, 4]
  expected_valid = []
  for i in keep:
    others = [j for j in keep if j != i]
    positive = (i + 3) % 6
    expected_valid.append(-sim[i, positive] + np.log(np.sum(np.exp(sim[i, others]))))
  got = nt_xent(tf.constant(a, tf.float32), tf.constant(b, tf.float32), temperature, valid)
  assert float(got) == pytest.approx(np.mean(expected_valid), rel=1e-5)


def test_kmeans_assigns_every_point_to_its_nearest_centroid():
  rng = np.random.default_rng(0)
  centres = np.array([[5.0, 0.0], [0.0, 5.0], [-5.0, -5.0]])
  points = np.concatenate([c + rng.normal(scale=0.3, size=(50, 2)) for c in centres])
  result = kmeans_lib.kmeans(points, 3, iterations=20, seed=1)
  distances = ((points[:, None, :] - result.centroids[None, :, :]) ** 2).sum(-1)
  np.testing.assert_array_equal(result.assignments, distances.argmin(axis=1))
  # The three blobs are recovered: each blob maps to one cluster, all distinct.
  blob_clusters = [set(result.assignments[i * 50:(i + 1) * 50]) for i in range(3)]
  assert all(len(c) == 1 for c in blob_clusters)
  assert len(set.union(*blob_clusters)) == 3
  np.testing.assert_allclose(sorted(result.centroids.tolist()), sorted(centres.tolist()),
                             atol=0.2)


def test_kmeans_uses_fewer_clusters_than_asked_when_points_repeat():
  points = np.array([[1.0, 0.0]] * 5 + [[0.0, 1.0]] * 5)
  result = kmeans_lib.kmeans(points, 8, seed=0, spherical=True)
  assert result.centroids.shape == (2, 2)
  assert result.inertia == pytest.approx(0.0, abs=1e-9)
  with pytest.raises(ValueError, match="NaN"):
    kmeans_lib.kmeans(np.array([[np.nan, 1.0]]), 2)


def test_clustering_objective_assigns_to_the_most_similar_valid_prototype():
  objective = ClusteringObjective(num_clusters=4, embedding_dim=2, temperature=1.0)
  objective.set_centroids(np.array([[1.0, 0.0], [0.0, 1.0]]))   # slots 2, 3 unused
  points = tf.constant([[2.0, 0.1], [0.1, 3.0], [-1.0, -1.0]])
  np.testing.assert_array_equal(objective.assign(points).numpy(), [0, 1, 0])
  assert float(objective.ready) == 1.0
  with pytest.raises(ValueError, match="centroids must be"):
    objective.set_centroids(np.zeros([5, 2]))


def test_pretrain_config_round_trips_and_rejects_bad_values():
  config = PretrainConfig(mask_probability=0.4, augmentations=("crop", "mask"))
  assert PretrainConfig.from_json(config.to_json()) == config
  with pytest.raises(ValueError, match="Unknown PretrainConfig field"):
    PretrainConfig.from_dict({"mask_prob": 0.2})
  with pytest.raises(ValueError, match="at least one positive objective weight"):
    PretrainConfig(**ALL_OFF)
  with pytest.raises(ValueError, match="augmentations"):
    PretrainConfig(augmentations=("shuffle",))
  with pytest.raises(ValueError, match="mask_random_fraction"):
    PretrainConfig(mask_random_fraction=0.6, mask_keep_fraction=0.6)


def _log_softmax(x):
  x = x - x.max(axis=-1, keepdims=True)
  return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


@pytest.mark.parametrize("name", [objectives.MASKED_ITEM, objectives.NEXT_ITEM])
@pytest.mark.parametrize("exclude", [True, False])
def test_text_pretraining_leaves_untrained_items_out_of_the_catalogue_softmax(name, exclude):
  tf.keras.utils.set_random_seed(0)
  config = dataclasses.replace(TINY, item_representation="text", adaptor_experts=2,
                               adaptor_dropout=0.0)
  untrained = np.arange(V) >= V - 4   # the batch's runs use the first V - 4 items only
  vectors = np.random.default_rng(0).normal(size=[V, 8]).astype(np.float32)
  model = PretrainingModel(V, config, PretrainConfig(**{**ALL_OFF, f"{name}_weight": 1.0}),
                           item_vectors=vectors, untrained=untrained,
                           exclude_untrained_items=exclude)
  batch = batches.batch(batches.random_runs(32, V - 4, 3, L + 1, 1), V, L)
  context = PretrainingBatch(model.encoder, batch, model.pretrain_config,
                             tf.constant([1, 2], tf.int64), True, model.excluded)
  if name == objectives.MASKED_ITEM:
    _, labels, hidden = context.cloze()
  else:
    labels, hidden = context.labels, context.next_item_hidden()
  labels, hidden = labels.numpy(), hidden.numpy()
  queries, targets = hidden[labels >= 0], labels[labels >= 0]
  kept = np.flatnonzero(~untrained) if exclude else np.arange(V)
  log_p = _log_softmax(queries @ model.encoder.catalogue_embeddings().numpy()[kept].T)
  expected = -np.mean(log_p[np.arange(len(targets)), np.searchsorted(kept, targets)])
  assert float(model.objectives[name](context)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("exclude", [True, False])
def test_id_text_pretraining_starts_untrained_items_with_zero_id_rows(exclude):
  # With the exclusion nothing trains their id rows: they would stay random noise.
  tf.keras.utils.set_random_seed(0)
  config = dataclasses.replace(TINY, item_representation="id+text", adaptor_experts=2)
  untrained = np.arange(V) >= V - 4
  vectors = np.random.default_rng(0).normal(size=[V, 8]).astype(np.float32)
  model = PretrainingModel(V, config, PretrainConfig(**{**ALL_OFF, "masked_item_weight": 1.0}),
                           item_vectors=vectors, untrained=untrained,
                           exclude_untrained_items=exclude)
  rows = model.encoder.item_table.embeddings.numpy()[1:V + 1]
  assert np.all(rows[untrained] == 0) == exclude
  assert np.all(np.abs(rows[~untrained]).sum(axis=-1) > 0)
