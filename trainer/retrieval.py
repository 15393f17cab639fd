"""Two-tower retrieval fine-tuning as a Keras model (TFRS), full or sampled softmax."""

import logging
from typing import Callable, Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from trainer import features
from trainer import text_match
from trainer.config import ALL_POSITIONS
from trainer.config import FULL_SOFTMAX
from trainer.config import IN_BATCH
from trainer.config import LAST_POSITION
from trainer.config import MIXED
from trainer.config import PREFIXES
from trainer.config import EncoderConfig
from trainer.config import RetrievalConfig
from trainer.config import SAMPLED_SOFTMAX
from trainer.config import UNIFORM
from trainer.encoder import SequenceEncoder
from trainer.model import INPUTS
from trainer.model import LABELS
from trainer.pretraining import item_attributes as item_attributes_lib
from trainer.pretraining.batch import PretrainingBatch
from trainer.pretraining.batch import share_of_global
from trainer.pretraining.batch import step_seed
from trainer.pretraining.item_attributes import ItemAttributeTable
from trainer.pretraining.model import build_objectives
from trainer.pretraining.objectives import CLUSTERING
from trainer.tasks import NextItemTask
from trainer.tasks import excluded_items


def item_probabilities(dataset: tf.data.Dataset, num_items: int,
                       targets: str = ALL_POSITIONS, smoothing: float = 1.0) -> np.ndarray:
  """float64 [V]: how often each item is a training target, add-``smoothing``, normalised.

  This is the probability that an in-batch candidate is item j (log-Q correction).

  Args:
    dataset: ``trainer.inputs`` training batches.
    targets: which labels count (``all_positions`` or ``last_position``).
  """
  if targets not in (ALL_POSITIONS, LAST_POSITION, PREFIXES):
    raise ValueError(f"targets must be {ALL_POSITIONS!r}, {LAST_POSITION!r} or {PREFIXES!r}; "
                     f"got {targets!r}")
  counts = np.zeros([num_items], np.float64)
  for batch in dataset:
    labels = batch[LABELS].numpy()
    labels = labels.reshape(-1) if targets == ALL_POSITIONS else labels[:, -1]
    labels = labels[labels >= 0]
    if labels.size and labels.max() >= num_items:
      raise ValueError(f"training labels must be vocabulary indices < {num_items}; "
                       f"found {labels.max()}")
    counts += np.bincount(labels, minlength=num_items)
  counts += smoothing
  return counts / counts.sum()


def untrained_items(dataset: tf.data.Dataset, num_items: int) -> np.ndarray:
  """bool [V]: the items no training batch shows, as an input or as a label.

  Args:
    dataset: ``trainer.inputs`` training batches (inputs are model ids, index + 1).
  """
  seen = np.zeros([num_items], bool)
  for batch in dataset:
    labels = batch[LABELS].numpy().reshape(-1)
    items = batch[INPUTS].numpy().reshape(-1) - 1
    for indices in (labels, items):
      seen[indices[(indices >= 0) & (indices < num_items)]] = True
  return ~seen


def untrained_to_exclude(dataset: Callable[[], tf.data.Dataset], num_items: int,
                         config: EncoderConfig,
                         exclude_untrained_items: bool) -> Optional[np.ndarray]:
  """``untrained_items`` of the training batches ``dataset()`` when the training losses
  leave them out (text item representations, ``exclude_untrained_items``;
  ``trainer.tasks.excluded_items``), else None without making or reading the data.
  Both Trainers and the quality benchmark use it."""
  if not (config.uses_item_text and exclude_untrained_items):
    return None
  untrained = untrained_items(dataset(), num_items)
  logging.info("%d of %d catalogue items have no training interaction: left out of the "
               "training losses' catalogue scoring", untrained.sum(), num_items)
  return untrained


@tf.autograph.experimental.do_not_convert
def _encode(encoder: SequenceEncoder, item_ids, training) -> tf.Tensor:
  """Causal encoder pass, kept out of AutoGraph conversion.

  ``tfrs.tasks.Retrieval`` needs AutoGraph (it calls ``len`` on a shape tensor),
  so the train step is converted; the encoder needs no conversion, and skipping
  it makes the first trace several times faster.
  """
  return encoder(item_ids, training=training, causal=True)


@tf.autograph.experimental.do_not_convert
def _last_hidden(encoder: SequenceEncoder, item_ids, training) -> tf.Tensor:
  """The query tower's [B, d] output, kept out of AutoGraph conversion (see ``_encode``)."""
  return encoder.last_hidden(item_ids, training=training)


@tf.autograph.experimental.do_not_convert
def _apply_gradients(optimizer, gradients, variables):
  """Optimizer update, kept out of AutoGraph conversion (see ``_encode``)."""
  optimizer.apply_gradients([(g, v) for g, v in zip(gradients, variables) if g is not None])


class RetrievalModel(tf.keras.Model):
  """Sequence-encoder query tower + item(+attribute) candidate tower, ``tfrs.tasks.Retrieval``.

  Batches are ``trainer.inputs`` dicts (``inputs`` / ``labels`` int32 [B, L]).
  ``model(item_ids)`` is the [B, d] query embedding. ``train_step`` / ``test_step``
  are its own (per-target mean losses, auxiliary objectives, stateless step
  seeds); TFRS contributes the sampled-softmax task only.
  """

  def __init__(self, num_items: int, config: EncoderConfig,
               retrieval_config: Optional[RetrievalConfig] = None,
               item_attributes: Optional[ItemAttributeTable] = None,
               item_probabilities: Optional[np.ndarray] = None,
               item_vectors: Optional[np.ndarray] = None,
               untrained: Optional[np.ndarray] = None, **kwargs):
    """Builds both towers.

    Args:
      num_items: catalogue size V.
      config: encoder shape and dropout.
      retrieval_config: loss settings (defaults: full softmax, prefixes).
      item_attributes: attribute sets of the V items; used when
        ``use_item_attributes`` is True (ignored otherwise).
      item_probabilities: float [V] in-batch sampling probabilities (see
        ``item_probabilities``); required for log-Q with in_batch/mixed negatives.
      item_vectors: float [V, t] item text vectors, for text item representations
        (``EncoderConfig.item_representation``).
      untrained: bool [V], items with no interaction in the training data
        (``untrained_items``); text models leave them out of the training losses'
        catalogue scoring (``trainer.tasks.excluded_items``).
    """
    super().__init__(**kwargs)
    self.retrieval_config = retrieval_config or RetrievalConfig()
    self.excluded = excluded_items(untrained, config,
                                   self.retrieval_config.exclude_untrained_items)
    if not config.causal_query and self.retrieval_config.targets == ALL_POSITIONS:
      raise ValueError(
          f"EncoderConfig.attention={config.attention!r} lets every position see the items "
          f"after it, which all_positions targets would then predict; use "
          f"RetrievalConfig.targets={PREFIXES!r} (or {LAST_POSITION!r})")
    if self.retrieval_config.text_match and not config.uses_item_text:
      raise ValueError(
          f"RetrievalConfig.text_match needs item text: EncoderConfig.item_representation "
          f"'text' or 'id+text' with item vectors, got {config.item_representation!r}")
    self.num_items = num_items
    self.encoder_config = config
    self.encoder = SequenceEncoder(num_items, config, item_vectors, name="encoder")
    self.item_attributes = None
    self.attribute_table = None
    if self.retrieval_config.use_item_attributes and item_attributes is not None:
      if item_attributes.num_items != num_items:
        raise ValueError(f"item_attributes covers {item_attributes.num_items} items; "
                         f"the catalogue has {num_items}")
      self.item_attributes = item_attributes
      self.attribute_table = tf.keras.layers.Embedding(
          item_attributes.num_attributes, config.embedding_dim,
          embeddings_initializer=tf.keras.initializers.TruncatedNormal(stddev=0.02),
          name="attribute_embedding")
      self.attribute_table.build(None)
    self._probabilities = None
    if self.retrieval_config.needs_item_probabilities:
      if item_probabilities is None:
        raise ValueError("sampled_softmax with log-Q correction and in_batch/mixed negatives "
                         "needs item_probabilities (see retrieval.item_probabilities)")
      probabilities = np.asarray(item_probabilities, np.float64)
      if probabilities.shape != (num_items,) or np.any(probabilities <= 0):
        raise ValueError(f"item_probabilities must be [{num_items}] and positive; got shape "
                         f"{probabilities.shape}, min {probabilities.min():.3g}")
      self._probabilities = tf.constant(probabilities / probabilities.sum(), tf.float32)
    self.task = tfrs.tasks.Retrieval(
        loss=tf.keras.losses.CategoricalCrossentropy(
            from_logits=True, reduction=tf.keras.losses.Reduction.SUM),
        temperature=self.retrieval_config.temperature,
        remove_accidental_hits=True, name="retrieval")
    self.softmax = NextItemTask(name="full_softmax")
    self.loss_tracker = tf.keras.metrics.Mean(name="loss")
    # Auxiliary self-supervised objectives trained jointly with the retrieval loss.
    self.auxiliary_config = self.retrieval_config.auxiliary_config()
    self.auxiliary_weights, self.auxiliary = {}, {}
    if self.auxiliary_config is not None:
      self.auxiliary_weights, self.auxiliary = build_objectives(
          self.auxiliary_config, config.embedding_dim, num_items, item_attributes)
    self.auxiliary_trackers = {name: tf.keras.metrics.Mean(name=f"{name}_loss")
                               for name in self.auxiliary}
    self.text_match_factor = None
    if self.retrieval_config.text_match:   # w = text_match_weight * this learned factor
      self.text_match_factor = self.add_weight(
          name="text_match_factor", shape=[], initializer="ones",
          trainable=self.retrieval_config.text_match_trainable)
    self(tf.zeros([1, config.max_seq_len], tf.int32))
    if self.excluded is not None:   # no trained id row: the text part alone represents them
      self.encoder.zero_item_ids(self.excluded.numpy())
    if self.auxiliary:   # create the objectives' variables now, outside any trace
      self._auxiliary_losses({INPUTS: tf.constant([[0, 1]], tf.int32),
                              LABELS: tf.constant([[-1, 0]], tf.int32)},
                             seed=tf.constant([0, 0], tf.int64), training=False)

  # Inference API (same as trainer.model.NextItemModel).

  def call(self, item_ids, training=False) -> tf.Tensor:
    """item_ids int [B, L] model ids -> float [B, d] query embedding ([B, d + t] with
    ``text_match``)."""
    return self._query(self.encoder.last_hidden(item_ids, training=training), item_ids)

  def _query(self, hidden: tf.Tensor, item_ids, per_position: bool = False) -> tf.Tensor:
    """The query tower's output for ``hidden`` (float [B, d], or [B, L, d] with
    ``per_position``, the encoder's output for ``item_ids``): normalised when
    ``normalize_embeddings``, with ``text_match`` followed by ``w`` times the unit mean
    text vector of the history (of each prefix with ``per_position``)."""
    hidden = self._normalized(hidden)
    if self.text_match_factor is None:
      return hidden
    text = text_match.history_query(self.encoder.item_text.vectors, item_ids,
                                    cumulative=per_position)
    return tf.concat([hidden, tf.cast(self.text_match_weight * text, hidden.dtype)], axis=-1)

  @property
  def text_match_weight(self) -> Optional[tf.Tensor]:
    """float scalar ``w`` of the text-match term (None without ``text_match``)."""
    if self.text_match_factor is None:
      return None
    return self.retrieval_config.text_match_weight * self.text_match_factor

  def _normalized(self, embeddings: tf.Tensor) -> tf.Tensor:
    """``embeddings`` [..., d], L2-normalised when ``normalize_embeddings`` is set."""
    if not self.retrieval_config.normalize_embeddings:
      return embeddings
    return tf.math.l2_normalize(embeddings, axis=-1)

  def query_embedding(self, item_ids) -> tf.Tensor:
    """float [B, d] user/query embedding; dot it with ``item_embeddings`` rows to score."""
    return self(item_ids, training=False)

  def query_attention(self, item_ids) -> tf.Tensor:
    """float [B, blocks, heads, L]: the query tower's attention from its last position."""
    return self.encoder.last_attention(item_ids, causal=self.encoder_config.causal_query)

  @property
  def item_embeddings(self) -> tf.Tensor:
    """float [V, d] candidate tower output; row j is the item with vocabulary index j."""
    return self.candidate_embeddings(training=False)

  def candidate_embeddings(self, training=False) -> tf.Tensor:
    """float [V, d] candidate tower: the encoder's item representations (+ attributes);
    with ``text_match`` [V, d + t], each row followed by its item's unit text vector."""
    embeddings = self.encoder.catalogue_embeddings(training=training)
    if self.item_attributes is not None:
      embeddings = embeddings + tf.cast(
          self.item_attributes.mean_embeddings(self.attribute_table.embeddings),
          embeddings.dtype)
    embeddings = self._normalized(embeddings)
    if self.text_match_factor is None:
      return embeddings
    text = text_match.unit_rows(self.encoder.item_text.vectors[1:self.num_items + 1])
    return tf.concat([embeddings, tf.cast(text, embeddings.dtype)], axis=-1)

  def score_all(self, item_ids) -> tf.Tensor:
    """float [B, V] scores; column j = vocabulary index j."""
    return tf.matmul(self.query_embedding(item_ids), self.item_embeddings, transpose_b=True)

  # Training.

  def _hidden_and_labels(self, data, training: bool) -> Tuple[tf.Tensor, tf.Tensor]:
    """(hidden float [B, L', d], labels int32 [B, L']) of the training targets.

    L' = L for ``all_positions``, 1 (the last position) for ``last_position``
    and ``prefixes``;
    labels are vocabulary indices, -1 where there is no target.
    """
    if not isinstance(data, dict) or INPUTS not in data or LABELS not in data:
      got = sorted(data) if isinstance(data, dict) else type(data).__name__
      raise ValueError(f"RetrievalModel expects batches as dicts with '{INPUTS}' and "
                       f"'{LABELS}' (int32 [B, L]); got {got}")
    labels = tf.cast(data[LABELS], tf.int32)
    if self.retrieval_config.targets == ALL_POSITIONS:
      return self._query(_encode(self.encoder, data[INPUTS], training), data[INPUTS],
                         per_position=True), labels
    hidden = self._query(_last_hidden(self.encoder, data[INPUTS], training), data[INPUTS])
    return tf.expand_dims(hidden, 1), labels[:, -1:]

  def _queries_and_positives(self, data, training: bool) -> Tuple[tf.Tensor, tf.Tensor]:
    """(queries float [N, d], positives int32 [N]) of the batch's N training targets."""
    hidden, labels = self._hidden_and_labels(data, training)
    labelled = labels >= 0
    positives = tf.boolean_mask(labels, labelled)
    check = tf.debugging.assert_less(
        positives, self.num_items,
        message="labels must be vocabulary indices < V (catalogue size) or -1")
    with tf.control_dependencies([check]):
      return tf.boolean_mask(hidden, labelled), tf.identity(positives)

  def sampled_softmax_loss_sum(self, queries, positives, candidates, seed) -> tf.Tensor:
    """Sum over rows of the sampled-softmax cross-entropy (see module docstring)."""
    config = self.retrieval_config
    n = tf.shape(queries)[0]
    candidate_ids = positives
    score_mask = None
    if config.negatives in (UNIFORM, MIXED):
      negatives = tf.random.stateless_uniform(
          [config.num_uniform_negatives], seed, minval=0, maxval=self.num_items,
          dtype=tf.int32)
      candidate_ids = tf.concat([positives, negatives], axis=0)
      if config.negatives == UNIFORM:
        score_mask = tf.concat([tf.eye(n, dtype=tf.bool),
                                tf.ones([n, config.num_uniform_negatives], tf.bool)], axis=1)
      if self.excluded is not None:   # in-batch candidates are positives: all trained
        kept = tf.broadcast_to(tf.logical_not(tf.gather(self.excluded, candidate_ids)),
                               tf.stack([n, tf.size(candidate_ids)]))
        score_mask = kept if score_mask is None else tf.logical_and(score_mask, kept)
    probabilities = None
    if config.logq_correction and config.negatives != UNIFORM:
      in_batch = tf.gather(self._probabilities, candidate_ids)
      if config.negatives == MIXED:
        m = float(config.num_uniform_negatives)
        n_f = tf.cast(n, tf.float32)
        in_batch = (n_f * in_batch + m / self.num_items) / (n_f + m)
      probabilities = in_batch
    return self.task(queries, tf.gather(candidates, candidate_ids),
                     candidate_sampling_probability=probabilities,
                     candidate_ids=candidate_ids, score_mask=score_mask,
                     compute_metrics=False, compute_batch_metrics=False)

  def _loss(self, data, training: bool, full: bool, seed=None):
    """(mean loss per target, number of targets) of a batch."""
    if full:
      hidden, labels = self._hidden_and_labels(data, training)
      scale = tf.constant(1.0 / self.retrieval_config.temperature, hidden.dtype)
      loss_sum, count = self.softmax.sum_and_count(
          hidden * scale, labels, self.candidate_embeddings(training),
          excluded=self.excluded if training else None)
      count = tf.cast(count, tf.float32)
    else:
      queries, positives = self._queries_and_positives(data, training)
      loss_sum = self.sampled_softmax_loss_sum(queries, positives,
                                               self.candidate_embeddings(training), seed)
      count = tf.cast(tf.size(positives), tf.float32)
    return tf.math.divide_no_nan(tf.cast(loss_sum, tf.float32), count), count

  @property
  def metrics(self):
    return [self.loss_tracker] + list(self.auxiliary_trackers.values())

  @property
  def clustering(self):
    """The auxiliary intent-clustering objective, if any (needs a ClusteringCallback)."""
    return self.auxiliary.get(CLUSTERING)

  def _auxiliary_losses(self, data, seed, training: bool) -> dict:
    context = PretrainingBatch(self.encoder, data, self.auxiliary_config, seed, training,
                               self.excluded)
    return {name: objective(context) for name, objective in self.auxiliary.items()}

  def train_step(self, data):
    full = self.retrieval_config.loss == FULL_SOFTMAX
    seed = step_seed(self.retrieval_config.seed, self.optimizer)
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    with tf.GradientTape() as tape:
      loss, count = self._loss(data, training=True, full=full, seed=seed)
      # The replicas' gradients are summed: each replica's mean counts by its share of
      # the global batch's targets, so the sum is the gradient of one device's mean.
      total = loss * share_of_global(count)
      if self.losses:
        total += tf.add_n(self.losses) / replicas
      auxiliary = self._auxiliary_losses(data, seed, training=True) if self.auxiliary else {}
      for name, value in auxiliary.items():
        total += self.auxiliary_weights[name] * value / replicas
    variables = self.trainable_variables
    gradients = tape.gradient(total, variables)
    _apply_gradients(self.optimizer, gradients, variables)
    # Weighted by targets: the epoch loss is the per-target mean.
    self.loss_tracker.update_state(loss, sample_weight=count)
    for name, value in auxiliary.items():
      self.auxiliary_trackers[name].update_state(value)
    return {m.name: m.result() for m in self.metrics}

  def test_step(self, data):
    loss, count = self._loss(data, training=False, full=True)
    self.loss_tracker.update_state(loss, sample_weight=count)
    return {"loss": self.loss_tracker.result()}


def build_for_run(tf_transform_output, train_files, train_dataset: tf.data.Dataset,
                  config: EncoderConfig, retrieval_config: RetrievalConfig,
                  items_files: Optional[str] = None,
                  item_vectors: Optional[np.ndarray] = None) -> RetrievalModel:
  """A RetrievalModel wired from a Trainer's inputs (for a fine-tuning run_fn).

  Reads the transformed items split (``items_files``, default derived from
  ``train_files``) when ``use_item_attributes`` is set and some item has an
  attribute, counts training targets for log-Q when the loss needs them, and finds
  the items the training data never shows when the model leaves them out of its losses.

  Args:
    tf_transform_output: ``tft.TFTransformOutput`` of the Transform.
    train_files: ``fn_args.train_files``.
    train_dataset: ``trainer.inputs.make_dataset(..., training=True)`` batches.
    config, retrieval_config: model and loss settings.
    item_vectors: float [V, t] item text vectors (text item representations).
  """
  num_items = tf_transform_output.vocabulary_size_by_name(features.ITEM_VOCAB)
  attributes = None
  if retrieval_config.use_item_attributes:
    num_attributes = tf_transform_output.vocabulary_size_by_name(features.ATTRIBUTE_VOCAB)
    attributes = item_attributes_lib.read_item_attributes(
        items_files or item_attributes_lib.items_split_pattern(train_files),
        num_items, num_attributes)
    if attributes.num_items_with_attributes == 0:
      logging.info("No catalogue item has an attribute: candidates are item embeddings only")
      attributes = None
  probabilities = None
  if retrieval_config.needs_item_probabilities:
    probabilities = item_probabilities(train_dataset, num_items, retrieval_config.targets)
  untrained = untrained_to_exclude(lambda: train_dataset, num_items, config,
                                   retrieval_config.exclude_untrained_items)
  return RetrievalModel(num_items, config, retrieval_config, attributes, probabilities,
                        item_vectors, untrained)
