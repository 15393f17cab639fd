"""Retrieval fine-tuning model (trainer.retrieval)."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from tests.trainer import batches
from tests.trainer import fake_transform
from tests.trainer.text_items import clustered_vectors
from trainer import export
from trainer import features
from trainer import inputs
from trainer import retrieval
from trainer.config import EncoderConfig
from trainer.model import INPUTS
from trainer.model import LABELS
from trainer.model import NextItemModel
from trainer.pretraining.clustering import ClusteringCallback
from trainer.pretraining.item_attributes import ItemAttributeTable

V = 12
L = 6
CONFIG = EncoderConfig(max_seq_len=L, embedding_dim=16, num_blocks=1, num_heads=1, ff_dim=16,
                       attention="causal",
                       dropout=0.0)
ATTRIBUTES = ItemAttributeTable([[j % 2, 2 + j % 3] for j in range(V - 1)] + [[]], 5)


def _batch(sequences, pairs=inputs.batch_training_pairs):
  return batches.batch(sequences, V, L, pairs)


def _cycle_batch(num_rows=48, seed=0):
  """Runs of consecutive items, 2..L+1 items long."""
  return _batch(batches.random_runs(num_rows, V, 2, L + 1, seed))


def _validation_loss(model, batch) -> float:
  """The loss ``model.evaluate`` reports for this one batch (full softmax, per target)."""
  model.reset_metrics()
  return float(model.test_step(batch)["loss"])


def _log_softmax(x):
  x = x - x.max(axis=-1, keepdims=True)
  return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


@pytest.mark.parametrize("targets", [retrieval.ALL_POSITIONS, retrieval.LAST_POSITION])
def test_full_softmax_loss_matches_a_hand_computation(targets):
  config = retrieval.RetrievalConfig(temperature=0.5, targets=targets)
  model = retrieval.RetrievalModel(V, CONFIG, config, ATTRIBUTES)
  batch = _batch([[1, 2, 3, 4], [7, 3], [5, 0, 11, 2, 9]])
  hidden = model.encoder(batch[INPUTS], causal=True).numpy()
  labels = batch[LABELS].numpy()
  if targets == retrieval.LAST_POSITION:
    hidden, labels = hidden[:, -1:], labels[:, -1:]
  queries, positives = hidden[labels >= 0], labels[labels >= 0]
  assert len(positives) == (8 if targets == retrieval.ALL_POSITIONS else 3)
  # Candidate tower by hand: item row + mean of its attribute rows.
  table = model.encoder.item_table.embeddings.numpy()[1:V + 1]
  attributes = model.attribute_table.embeddings.numpy()
  candidates = np.stack([table[j] + (attributes[ATTRIBUTES.attribute_ids[j].numpy()].mean(0)
                                     if len(ATTRIBUTES.attribute_ids[j]) else 0.0)
                         for j in range(V)])
  np.testing.assert_allclose(model.item_embeddings, candidates, atol=1e-6)
  log_p = _log_softmax(queries @ candidates.T / 0.5)
  expected = -np.mean(log_p[np.arange(len(positives)), positives])
  assert _validation_loss(model, batch) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("loss", [retrieval.FULL_SOFTMAX, retrieval.SAMPLED_SOFTMAX])
def test_normalized_embeddings_score_cosines_over_the_temperature(loss):
  config = retrieval.RetrievalConfig(temperature=0.1, targets=retrieval.ALL_POSITIONS,
                                     normalize_embeddings=True, loss=loss,
                                     logq_correction=False)
  model = retrieval.RetrievalModel(V, CONFIG, config, ATTRIBUTES)
  plain = retrieval.RetrievalModel(V, CONFIG, dataclasses.replace(
      config, normalize_embeddings=False), ATTRIBUTES)
  plain.set_weights(model.get_weights())
  batch = _batch([[1, 2, 3, 4], [7, 3], [5, 0, 11, 2, 9]])
  unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)
  candidates = model.item_embeddings.numpy()
  np.testing.assert_allclose(candidates, unit(plain.item_embeddings.numpy()), atol=1e-6)
  queries = model.query_embedding(batch[INPUTS]).numpy()
  np.testing.assert_allclose(queries, unit(plain.query_embedding(batch[INPUTS]).numpy()),
                             atol=1e-6)
  np.testing.assert_allclose(model.score_all(batch[INPUTS]), queries @ candidates.T, atol=1e-5)
  # The training loss reads the same cosines, divided by the temperature.
  hidden = model.encoder(batch[INPUTS], causal=True).numpy()
  labels = batch[LABELS].numpy()
  hidden, positives = unit(hidden[labels >= 0]), labels[labels >= 0]
  logits = hidden @ candidates.T / 0.1
  if loss == retrieval.SAMPLED_SOFTMAX:   # in-batch: the batch's positives are the candidates
    logits = logits[:, positives]
    same = positives[:, None] == positives[None, :]
    logits = np.where(same & ~np.eye(len(positives), dtype=bool), -np.inf, logits)
    targets = np.arange(len(positives))
  else:
    targets = positives
  expected = -np.mean(_log_softmax(logits)[np.arange(len(positives)), targets])
  assert _train_loss(model, batch, full=loss == retrieval.FULL_SOFTMAX) == pytest.approx(
      expected, rel=1e-4)


def test_evaluate_reports_the_mean_over_every_target_of_the_epoch():
  model = retrieval.RetrievalModel(V, CONFIG, retrieval.RetrievalConfig(), ATTRIBUTES)
  model.compile(optimizer=tf.keras.optimizers.Adam())
  epoch = [_cycle_batch(num_rows=8, seed=1), _cycle_batch(num_rows=2, seed=2)]
  losses = [_validation_loss(model, b) for b in epoch]
  counts = [int(np.sum(b[LABELS].numpy()[:, -1] >= 0)) for b in epoch]   # prefixes: last one
  dataset = tf.data.Dataset.from_tensors(epoch[0]).concatenate(
      tf.data.Dataset.from_tensors(epoch[1]))
  got = model.evaluate(dataset, verbose=0, return_dict=True)
  assert got == {"loss": pytest.approx(np.dot(losses, counts) / sum(counts), rel=1e-5)}


def test_full_softmax_without_attributes_is_next_item_model_loss():
  next_item = NextItemModel(V, CONFIG)
  model = retrieval.RetrievalModel(V, CONFIG, retrieval.RetrievalConfig(
      use_item_attributes=False, targets=retrieval.ALL_POSITIONS))
  model.encoder.set_weights(next_item.encoder.get_weights())
  batch = _cycle_batch(num_rows=8)
  expected = next_item.task(next_item.encoder(batch[INPUTS], causal=True), batch[LABELS],
                            next_item.item_embeddings)
  assert _validation_loss(model, batch) == pytest.approx(float(expected), rel=1e-6)
  np.testing.assert_allclose(model.score_all(batch[INPUTS]), next_item.score_all(batch[INPUTS]),
                             atol=1e-6)


def test_in_batch_sampled_softmax_applies_log_q_and_removes_accidental_hits():
  probabilities = np.linspace(1.0, 2.0, V)
  probabilities /= probabilities.sum()
  config = retrieval.RetrievalConfig(loss=retrieval.SAMPLED_SOFTMAX, negatives=retrieval.IN_BATCH,
                                     temperature=0.5)
  model = retrieval.RetrievalModel(V, CONFIG, config, item_probabilities=probabilities)
  rng = np.random.default_rng(0)
  queries = rng.normal(size=(4, 16)).astype(np.float32)
  candidates = rng.normal(size=(V, 16)).astype(np.float32)
  positives = np.array([3, 5, 3, 8])                       # rows 0 and 2 share a positive
  got = model.sampled_softmax_loss_sum(tf.constant(queries), tf.constant(positives, tf.int32),
                                       tf.constant(candidates), tf.constant([0, 0], tf.int64))
  logits = queries @ candidates[positives].T / 0.5 - np.log(probabilities[positives])[None, :]
  expected = 0.0
  for i in range(4):
    keep = [j for j in range(4) if j == i or positives[j] != positives[i]]
    expected -= _log_softmax(logits[i, keep])[keep.index(i)]
  assert float(got) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("loss,negatives", [
    (retrieval.FULL_SOFTMAX, retrieval.IN_BATCH),
    (retrieval.SAMPLED_SOFTMAX, retrieval.MIXED),
])
def test_retrieval_model_learns_a_tiny_next_item_pattern(loss, negatives):
  tf.keras.utils.set_random_seed(0)
  batch = _cycle_batch()
  probabilities = retrieval.item_probabilities([batch], V)
  config = retrieval.RetrievalConfig(loss=loss, negatives=negatives, num_uniform_negatives=8)
  model = retrieval.RetrievalModel(V, CONFIG, config, ATTRIBUTES, probabilities)
  model.compile(optimizer=tf.keras.optimizers.Adam(2e-2))
  before = _validation_loss(model, batch)
  for _ in range(40):   # eager: cheaper than tracing for a few tiny steps
    model.train_step(batch)
  assert _validation_loss(model, batch) < 0.5 * before
  test = _batch([batches.run(s, 4, V) for s in range(V)], inputs.batch_eval_pairs)
  top1 = np.argmax(model.score_all(test[INPUTS]).numpy(), axis=1)
  accuracy = np.mean(top1 == test[LABELS].numpy()[:, -1])
  assert accuracy >= 0.9, accuracy


def test_inference_api_is_exportable_like_next_item_model(tmp_path):
  model = retrieval.RetrievalModel(V, CONFIG, retrieval.RetrievalConfig(), ATTRIBUTES)
  ids = tf.constant([[0, 0, 1, 2, 3, 4], [0, 0, 0, 0, 0, 9]], tf.int32)
  scores = model.score_all(ids)
  assert scores.shape == (2, V) and model.item_embeddings.shape == (V, 16)
  np.testing.assert_allclose(
      scores, model.query_embedding(ids).numpy() @ model.item_embeddings.numpy().T, atol=1e-5)
  # Served the way trainer.export.RecommenderModule serves NextItemModel.
  module = tf.Module()
  module.model = model
  module.score_all = tf.function(model.score_all, autograph=False,
                                 input_signature=[tf.TensorSpec([None, None], tf.int32)])
  tf.saved_model.save(module, str(tmp_path / "m"))
  loaded = tf.saved_model.load(str(tmp_path / "m"))
  np.testing.assert_allclose(loaded.score_all(ids[:, 2:]), model.score_all(ids[:, 2:]), atol=1e-5)


def test_without_attributes_the_candidates_are_the_encoder_item_rows():
  config = retrieval.RetrievalConfig(use_item_attributes=False)
  model = retrieval.RetrievalModel(V, CONFIG, config, ATTRIBUTES)
  assert model.attribute_table is None
  np.testing.assert_array_equal(model.item_embeddings, model.encoder.item_embeddings)


def test_config_errors_are_explicit():
  with pytest.raises(ValueError, match="RetrievalConfig.loss must be one of"):
    retrieval.RetrievalConfig(loss="bpr")
  with pytest.raises(ValueError, match="needs item_probabilities"):
    retrieval.RetrievalModel(V, CONFIG, retrieval.RetrievalConfig(loss=retrieval.SAMPLED_SOFTMAX))
  assert retrieval.RetrievalConfig.from_json(retrieval.RetrievalConfig().to_json()) == \
      retrieval.RetrievalConfig()


def test_bidirectional_query_tower_trains_on_prefixes_only():
  bidirectional = dataclasses.replace(CONFIG, attention="bidirectional", filter_weight=0.5)
  with pytest.raises(ValueError, match="prefixes"):
    retrieval.RetrievalModel(V, bidirectional,
                             retrieval.RetrievalConfig(targets=retrieval.ALL_POSITIONS), ATTRIBUTES)
  tf.keras.utils.set_random_seed(0)
  config = retrieval.RetrievalConfig()   # prefixes by default
  model = retrieval.RetrievalModel(V, bidirectional, config, ATTRIBUTES)
  model.compile(optimizer=tf.keras.optimizers.Adam(2e-2))
  batch = _batch(batches.random_runs(32, V, 2, L + 1), inputs.batch_prefix_pairs)
  # The query is the bidirectional encoding's last position.
  np.testing.assert_allclose(
      model.query_embedding(batch[INPUTS]),
      model.encoder(batch[INPUTS], causal=False)[:, -1, :], atol=1e-5)
  before = _validation_loss(model, batch)
  for _ in range(40):
    model.train_step(batch)
  assert _validation_loss(model, batch) < 0.5 * before
  test = _batch([batches.run(s, 4, V) for s in range(V)], inputs.batch_eval_pairs)
  top1 = np.argmax(model.score_all(test[INPUTS]).numpy(), axis=1)
  assert np.mean(top1 == test[LABELS].numpy()[:, -1]) >= 0.9


def test_item_probabilities_count_training_targets():
  batch = _batch([[1, 2, 3], [2, 3]])
  p_all = retrieval.item_probabilities([batch], V, smoothing=0.0)
  np.testing.assert_allclose(p_all[[2, 3]], [1 / 3, 2 / 3])
  p_last = retrieval.item_probabilities([batch], V, targets=retrieval.LAST_POSITION,
                                        smoothing=1.0)
  assert p_last[3] == pytest.approx(3 / (2 + V))


def test_build_for_run_reads_attributes_and_target_frequencies(tmp_path):
  transform_dir, examples = fake_transform.write(tmp_path)
  output = tft.TFTransformOutput(transform_dir)
  train_files = fake_transform.split_files(examples, features.TRAIN_SPLIT)
  num_items = fake_transform.V
  dataset = inputs.make_dataset(train_files, output.transformed_feature_spec(), num_items,
                                CONFIG.max_seq_len, 256, training=True, shuffle_seed=0)
  config = retrieval.RetrievalConfig(loss=retrieval.SAMPLED_SOFTMAX)
  model = retrieval.build_for_run(output, train_files, dataset, CONFIG, config)
  # fake_transform gives item j the attribute j % NUM_ATTRIBUTES (plus an OOV one, dropped).
  assert model.item_attributes.attribute_ids.to_list() == [
      [j % fake_transform.NUM_ATTRIBUTES] for j in range(num_items)]
  probabilities = model._probabilities.numpy()  # pylint: disable=protected-access
  assert probabilities.shape == (num_items,) and probabilities.sum() == pytest.approx(1.0)
  assert len(set(np.round(probabilities, 6))) > 1, "frequencies must come from the data"


def test_auxiliary_objectives_train_jointly_and_report_their_losses():
  config = retrieval.RetrievalConfig(auxiliary={"contrastive_weight": 0.1,
                                                "clustering_weight": 0.1, "num_clusters": 4})
  model = retrieval.RetrievalModel(V, CONFIG, config, ATTRIBUTES)
  assert set(model.auxiliary) == {"contrastive", "clustering"}
  assert model.clustering is model.auxiliary["clustering"]
  model.compile(optimizer=tf.keras.optimizers.Adam(0.01))
  dataset = tf.data.Dataset.from_tensors(_cycle_batch()).repeat(4)
  callbacks = ClusteringCallback.for_model(model, dataset, model.auxiliary_config)
  assert len(callbacks) == 1
  history = model.fit(dataset, epochs=5, callbacks=callbacks, verbose=0).history
  assert set(history) == {"loss", "contrastive_loss", "clustering_loss"}
  for name in ("loss", "contrastive_loss", "clustering_loss"):
    assert history[name][-1] < history[name][0], (name, history[name])
  # Without auxiliary objectives nothing extra is built or reported.
  plain = retrieval.RetrievalModel(V, CONFIG, retrieval.RetrievalConfig(), ATTRIBUTES)
  assert not plain.auxiliary and plain.clustering is None
  assert ClusteringCallback.for_model(plain, dataset, plain.auxiliary_config) == []


def test_auxiliary_settings_are_validated_when_configured():
  with pytest.raises(ValueError, match="Unknown PretrainConfig field"):
    retrieval.RetrievalConfig(auxiliary={"contrastive_wieght": 0.1})
  with pytest.raises(ValueError, match="at least one positive objective weight"):
    retrieval.RetrievalConfig(auxiliary={"temperature": 0.2})


# Text items: 4 clusters of 6 items whose text vectors are close within a cluster.
# Users stay within one cluster; the last item of each cluster is never in training.
CLUSTERS, PER_CLUSTER = 4, 6
COLD = [c * PER_CLUSTER + PER_CLUSTER - 1 for c in range(CLUSTERS)]
TEXT_CONFIG = dataclasses.replace(CONFIG, adaptor_experts=2, adaptor_dropout=0.0)


def _cluster_batch(num_rows=64, seed=0):
  rng = np.random.default_rng(seed)
  sequences = []
  for _ in range(num_rows):
    cluster = rng.integers(CLUSTERS)
    warm = cluster * PER_CLUSTER + np.arange(PER_CLUSTER - 1)
    sequences.append(list(rng.choice(warm, size=rng.integers(3, L + 2))))
  history = tf.ragged.constant([s[:-1] for s in sequences], dtype=tf.int64)
  target = tf.constant([s[-1] for s in sequences], tf.int64)
  x, y = inputs.batch_training_pairs(history, target, CLUSTERS * PER_CLUSTER, L)
  return {INPUTS: x, LABELS: y}


def _train_on_clusters(representation: str) -> retrieval.RetrievalModel:
  tf.keras.utils.set_random_seed(0)
  config = dataclasses.replace(TEXT_CONFIG, item_representation=representation)
  model = retrieval.RetrievalModel(
      CLUSTERS * PER_CLUSTER, config, retrieval.RetrievalConfig(targets=retrieval.ALL_POSITIONS),
      item_vectors=clustered_vectors(CLUSTERS, PER_CLUSTER))
  model.compile(optimizer=tf.keras.optimizers.Adam(2e-2))
  for step in range(40):
    model.train_step(_cluster_batch(seed=step % 4))
  return model


def _cluster_histories():
  """One history of three warm items per cluster, as model ids: int32 [CLUSTERS, 3]."""
  return tf.constant([[c * PER_CLUSTER + i + 1 for i in range(3)] for c in range(CLUSTERS)],
                     tf.int32)


@pytest.mark.parametrize("representation", ["text", "id+text"])
def test_text_items_learn_what_their_vectors_share(representation):
  model = _train_on_clusters(representation)
  scores = model.score_all(_cluster_histories()).numpy()
  top = np.argsort(-scores, axis=1)[:, :3] // PER_CLUSTER
  # Chance: a quarter of the catalogue is in the history's cluster.
  assert np.mean(top == np.arange(CLUSTERS)[:, None]) >= 0.9


def test_a_cold_item_scores_with_its_cluster_through_its_text():
  model = _train_on_clusters("text")
  scores = model.score_all(_cluster_histories()).numpy()
  for cluster in range(CLUSTERS):
    others = [j for j in range(CLUSTERS * PER_CLUSTER) if j // PER_CLUSTER != cluster]
    assert scores[cluster, COLD[cluster]] > scores[cluster, others].max(), cluster


def test_untrained_items_are_those_no_training_batch_shows():
  batch = _batch([[1, 2, 3], [3, 4], [7, 8, 2]])
  dataset = tf.data.Dataset.from_tensors(batch)
  expected = np.ones([V], bool)
  expected[[1, 2, 3, 4, 7, 8]] = False
  np.testing.assert_array_equal(retrieval.untrained_items(dataset, V), expected)


def _train_loss(model, batch, full: bool = True) -> float:
  return float(model._loss(batch, training=True, full=full,  # pylint: disable=protected-access
                           seed=tf.constant([1, 2], tf.int64))[0])


def _softmax_loss(model, batch, kept) -> float:
  """The full-softmax training loss by hand, over the ``kept`` catalogue items only."""
  hidden = model.encoder(batch[INPUTS], causal=True).numpy()
  labels = batch[LABELS].numpy()
  queries, positives = hidden[labels >= 0], labels[labels >= 0]
  log_p = _log_softmax(queries @ model.item_embeddings.numpy()[kept].T)
  return -np.mean(log_p[np.arange(len(positives)), np.searchsorted(kept, positives)])


def _cold_text_model(representation="text", **retrieval_values):
  tf.keras.utils.set_random_seed(0)
  config = dataclasses.replace(TEXT_CONFIG, item_representation=representation)
  untrained = np.isin(np.arange(CLUSTERS * PER_CLUSTER), COLD)
  return retrieval.RetrievalModel(
      CLUSTERS * PER_CLUSTER, config,
      retrieval.RetrievalConfig(targets=retrieval.ALL_POSITIONS, use_item_attributes=False,
                                **retrieval_values),
      item_vectors=clustered_vectors(CLUSTERS, PER_CLUSTER), untrained=untrained)


@pytest.mark.parametrize("representation", ["text", "id+text"])
def test_text_models_leave_untrained_items_out_of_the_training_softmax(representation):
  model = _cold_text_model(representation)
  batch = _cluster_batch()
  warm = np.flatnonzero(~np.isin(np.arange(CLUSTERS * PER_CLUSTER), COLD))
  assert _train_loss(model, batch) == pytest.approx(_softmax_loss(model, batch, warm), rel=1e-5)
  # Validation still scores the whole catalogue, as evaluation and serving do.
  every = np.arange(CLUSTERS * PER_CLUSTER)
  assert _validation_loss(model, batch) == pytest.approx(_softmax_loss(model, batch, every),
                                                         rel=1e-5)
  # Switched off, the untrained items are negatives again.
  model = _cold_text_model(representation, exclude_untrained_items=False)
  assert model.excluded is None
  assert _train_loss(model, batch) == pytest.approx(_softmax_loss(model, batch, every), rel=1e-5)


def test_untrained_items_of_an_id_text_model_are_their_text_part_alone():
  # Their id rows are never trained: left at their random start they would add noise
  # to exactly the items only the text part can rank, in the model and its export.
  model = _cold_text_model("id+text")
  model.compile(optimizer=tf.keras.optimizers.Adam(2e-2))
  for step in range(5):
    model.train_step(_cluster_batch(seed=step))
  ids = model.encoder.item_table.embeddings.numpy()[1:CLUSTERS * PER_CLUSTER + 1]
  np.testing.assert_array_equal(ids[COLD], 0.0)
  warm = np.setdiff1d(np.arange(CLUSTERS * PER_CLUSTER), COLD)
  assert np.all(np.abs(ids[warm]).sum(axis=-1) > 0)
  text = model.encoder.item_text.adaptor(clustered_vectors(CLUSTERS, PER_CLUSTER)).numpy()
  np.testing.assert_allclose(model.item_embeddings.numpy()[COLD], text[COLD], atol=1e-6)
  stored = export.FixedCandidates(model).item_embeddings.numpy()
  np.testing.assert_allclose(stored[COLD], text[COLD], atol=1e-6)


def test_id_models_keep_untrained_items_as_negatives():
  tf.keras.utils.set_random_seed(0)
  untrained = np.zeros([V], bool)
  untrained[[4, 9]] = True
  model = retrieval.RetrievalModel(V, CONFIG, retrieval.RetrievalConfig(
      targets=retrieval.ALL_POSITIONS), ATTRIBUTES, untrained=untrained)
  assert model.excluded is None
  batch = _cycle_batch()
  assert _train_loss(model, batch) == pytest.approx(
      _softmax_loss(model, batch, np.arange(V)), rel=1e-5)


def test_uniform_negatives_skip_untrained_items_for_text_models():
  # Every target is item 0 and every other item is untrained: no negative is left.
  batch = _batch([[1, 2, 0], [3, 0], [5, 4, 0]], pairs=inputs.batch_prefix_pairs)
  batch[LABELS] = tf.where(batch[LABELS] >= 0, 0, -1)
  losses = {}
  for exclude in (True, False):
    model = _cold_text_model(loss=retrieval.SAMPLED_SOFTMAX, negatives=retrieval.UNIFORM,
                             num_uniform_negatives=64, exclude_untrained_items=exclude)
    if exclude:
      model.excluded = tf.range(CLUSTERS * PER_CLUSTER) > 0
    queries, positives = model._queries_and_positives(batch, training=True)  # pylint: disable=protected-access
    losses[exclude] = float(model.sampled_softmax_loss_sum(
        queries, positives, model.candidate_embeddings(), tf.constant([1, 2], tf.int64)))
  assert losses[True] == pytest.approx(0.0, abs=1e-6)
  assert losses[False] > 1.0


def _text_match_models(**retrieval_values):
  """(text_match model with w = 0.5 * 3, the same model without the term, item vectors)."""
  config = dataclasses.replace(CONFIG, item_representation="id+text", adaptor_experts=2,
                               adaptor_dropout=0.0)
  vectors = clustered_vectors(3, 4)
  values = dict(temperature=0.5, targets=retrieval.ALL_POSITIONS, use_item_attributes=True,
                **retrieval_values)
  model = retrieval.RetrievalModel(V, config, retrieval.RetrievalConfig(
      text_match=True, text_match_weight=0.5, **values), ATTRIBUTES, item_vectors=vectors)
  model.text_match_factor.assign(3.0)
  plain = retrieval.RetrievalModel(V, config, retrieval.RetrievalConfig(**values), ATTRIBUTES,
                                   item_vectors=vectors)
  plain.encoder.set_weights(model.encoder.get_weights())
  plain.attribute_table.set_weights(model.attribute_table.get_weights())
  return model, plain, vectors


def _history_cosines(inputs, vectors, cumulative=False):
  """float [B, V] (or [B, L, V]): cosine of each item's vector to the mean over the
  history's (each prefix's) vectors, by hand."""
  unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
  padded = np.concatenate([np.zeros([1, vectors.shape[1]], np.float32), vectors])
  per_position = padded[inputs]                                     # [B, L, t], padding 0
  counts = np.cumsum(inputs > 0, axis=1)[..., None]
  means = np.cumsum(per_position, axis=1) / np.maximum(counts, 1)
  means = means if cumulative else means[:, -1]
  return unit(means) @ unit(vectors).T


@pytest.mark.parametrize("normalize", [False, True])
def test_text_match_adds_w_times_the_history_text_cosine_to_the_model_score(normalize):
  model, plain, vectors = _text_match_models(normalize_embeddings=normalize)
  batch = _batch([[1, 2, 3, 4], [7, 3], [5, 0, 11, 2, 9]])
  inputs = batch[INPUTS].numpy()
  assert float(model.text_match_weight) == pytest.approx(1.5)
  expected = plain.score_all(inputs).numpy() + 1.5 * _history_cosines(inputs, vectors)
  np.testing.assert_allclose(model.score_all(inputs), expected, atol=1e-5)
  # One dot product: the query tower's output against the candidate matrix.
  np.testing.assert_allclose(
      model.query_embedding(inputs).numpy() @ model.item_embeddings.numpy().T, expected,
      atol=1e-5)
  # Training (every position a target): each position's query reads its own prefix.
  hidden = plain._query(plain.encoder(inputs, causal=True), inputs).numpy()  # pylint: disable=protected-access
  logits = (hidden @ plain.item_embeddings.numpy().T
            + 1.5 * _history_cosines(inputs, vectors, cumulative=True)) / 0.5
  labels = batch[LABELS].numpy()
  positives = labels[labels >= 0]
  expected_loss = -np.mean(_log_softmax(logits[labels >= 0])[np.arange(len(positives)),
                                                             positives])
  assert _train_loss(model, batch) == pytest.approx(expected_loss, rel=1e-4)


@pytest.mark.parametrize("trainable", [True, False])
def test_text_match_weight_is_trained_unless_fixed(trainable):
  model, _, _ = _text_match_models(text_match_trainable=trainable)
  model.compile(optimizer=tf.keras.optimizers.Adam(0.05))
  batch = _cycle_batch(num_rows=16)
  model.fit(tf.data.Dataset.from_tensors(batch).repeat(3), verbose=0)
  assert (float(model.text_match_factor) != pytest.approx(3.0)) == trainable


def test_text_match_without_item_text_is_a_one_line_error():
  with pytest.raises(ValueError, match=r"^RetrievalConfig.text_match needs item text: "
                                       r"EncoderConfig.item_representation .*'id'$"):
    retrieval.RetrievalModel(V, CONFIG, retrieval.RetrievalConfig(text_match=True))


def _op_types(graph: tf.Graph) -> set:
  """Every op type in ``graph`` and the functions it calls (loop bodies included)."""
  graph_def = graph.as_graph_def()
  types = {node.op for node in graph_def.node}
  for function in graph_def.library.function:
    types |= {node.op for node in function.node_def}
  return types


def test_the_train_step_takes_no_strided_slice_gradient():
  # The recipe's query tower (bidirectional, frequency filter, last position) and catalogue
  # slice their inputs with trainer.layers.slice_axis: TF's CPU StridedSliceGrad was the
  # costliest kernel of a Beauty training step after the catalogue softmax's matmuls.
  recipe_like = dataclasses.replace(CONFIG, attention="bidirectional", filter_weight=0.5,
                                    num_blocks=2)
  model = retrieval.RetrievalModel(V, recipe_like, retrieval.RetrievalConfig(), ATTRIBUTES)
  model.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
  batch = _batch(batches.random_runs(8, V, 2, L + 1), inputs.batch_prefix_pairs)
  types = _op_types(tf.function(model.train_step).get_concrete_function(batch).graph)
  assert "Pad" in types   # slice_axis's gradient: the check below sees the whole step
  assert "StridedSliceGrad" not in types
