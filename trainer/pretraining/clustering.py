"""User-intent clustering (ICLRec): intent prototypes from k-means, InfoNCE to them."""

import logging
from typing import Optional

import numpy as np
import tensorflow as tf

from trainer.model import INPUTS
from trainer.model import LABELS
from trainer.pretraining import augmentations
from trainer.pretraining import kmeans as kmeans_lib
from trainer.pretraining import objectives
from trainer.pretraining.batch import Objective
from trainer.pretraining.batch import PretrainingBatch

_NEG_INF = -1e9


@objectives.register(objectives.CLUSTERING)
class ClusteringObjective(Objective):
  """InfoNCE between sequence views and their intent prototype.

  Attributes:
    centroids: non-trainable float [K, d] prototypes (unit norm once set).
    valid: non-trainable float [K], 1 for prototypes in use (k-means may find fewer).
    ready: non-trainable float scalar, 1 once ``set_centroids`` ran.
  """

  def __init__(self, num_clusters: int, embedding_dim: int, temperature: float, **kwargs):
    super().__init__(**kwargs)
    if num_clusters < 1:
      raise ValueError(f"num_clusters must be >= 1, got {num_clusters}")
    if temperature <= 0:
      raise ValueError(f"temperature must be > 0, got {temperature}")
    self.num_clusters = num_clusters
    self.embedding_dim = embedding_dim
    self.temperature = temperature
    self.centroids = self.add_weight(
        name="centroids", shape=[num_clusters, embedding_dim], initializer="zeros",
        trainable=False)
    self.valid = self.add_weight(name="valid", shape=[num_clusters], initializer="zeros",
                                 trainable=False)
    self.ready = self.add_weight(name="ready", shape=[], initializer="zeros", trainable=False)

  @classmethod
  def from_pretrain_config(cls, config, embedding_dim, num_items, item_attributes, **kwargs):
    return cls(config.num_clusters, embedding_dim, config.temperature, **kwargs)

  def set_centroids(self, centroids: np.ndarray):
    """Stores k <= K prototypes (float [k, d]); unused slots are masked out."""
    centroids = np.asarray(centroids, np.float32)
    k = centroids.shape[0]
    if centroids.ndim != 2 or centroids.shape[1] != self.embedding_dim or not 1 <= k <= self.num_clusters:
      raise ValueError(f"centroids must be [k <= {self.num_clusters}, {self.embedding_dim}]; "
                       f"got {centroids.shape}")
    norms = np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    padded = np.zeros([self.num_clusters, self.embedding_dim], np.float32)
    padded[:k] = centroids / norms
    valid = np.zeros([self.num_clusters], np.float32)
    valid[:k] = 1.0
    self.centroids.assign(padded)
    self.valid.assign(valid)
    self.ready.assign(1.0)

  def assign(self, representations: tf.Tensor) -> tf.Tensor:
    """int32 [B]: index of the most cosine-similar valid prototype."""
    return tf.argmax(self._logits(representations, 1.0), axis=1, output_type=tf.int32)

  def _logits(self, representations, temperature):
    z = tf.math.l2_normalize(tf.cast(representations, tf.float32), axis=1)
    logits = tf.matmul(z, self.centroids, transpose_b=True) / temperature
    return tf.where(self.valid[tf.newaxis, :] > 0, logits, _NEG_INF)

  def call(self, batch: PretrainingBatch) -> tf.Tensor:
    """float scalar: mean InfoNCE of both views against the intent prototypes."""
    intents = self.assign(batch.sequence_representation())
    losses = []
    for view in batch.view_representations():
      per_row = tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels=intents, logits=self._logits(view, self.temperature))
      losses.append(tf.boolean_mask(per_row, batch.nonempty))
    losses = tf.concat(losses, axis=0)
    mean = tf.math.divide_no_nan(tf.reduce_sum(losses), tf.cast(tf.size(losses), tf.float32))
    return mean * self.ready


def representation_fn(encoder):
  """A traced ``(inputs, labels) -> float [n, d]`` of a batch's non-empty sequences.

  Made once per encoder (``ClusteringCallback`` keeps it), so re-clustering every
  epoch reuses one trace instead of tracing a new function each time.
  """
  @tf.function(reduce_retracing=True, autograph=False)
  def encode(inputs, labels):
    sequence = augmentations.sequences_from_pairs(inputs, labels, encoder.config.max_seq_len)
    nonempty = augmentations.item_counts(sequence) > 0
    return tf.boolean_mask(encoder.last_hidden(sequence, training=False), nonempty)
  return encode


def sequence_representations(encoder, dataset: tf.data.Dataset,
                             max_sequences: int = 0, encode=None) -> np.ndarray:
  """float32 [n, d]: last hidden states (no dropout) of the dataset's sequences,
  read as the query tower reads them (``EncoderConfig.attention``).

  dataset: ``trainer.inputs`` batches; each row's whole sequence is encoded.
  max_sequences: stop after this many rows (0 = all).
  encode: ``representation_fn(encoder)`` to reuse (default: a new one).
  """
  encode = encode or representation_fn(encoder)
  parts, total = [], 0
  for batch in dataset:
    parts.append(encode(batch[INPUTS], batch[LABELS]).numpy())
    total += parts[-1].shape[0]
    if max_sequences and total >= max_sequences:
      break
  if not parts or total == 0:
    raise ValueError("Intent clustering found no non-empty sequence in the dataset")
  result = np.concatenate(parts, axis=0)
  return result[:max_sequences] if max_sequences else result


class ClusteringCallback(tf.keras.callbacks.Callback):
  """Re-clusters the sequence representations at the start of every ``every_epochs``-th epoch."""

  def __init__(self, objective: ClusteringObjective, encoder, dataset: tf.data.Dataset,
               every_epochs: int = 1, iterations: int = 20, max_sequences: int = 0,
               seed: int = 0):
    super().__init__()
    if every_epochs < 1:
      raise ValueError(f"every_epochs must be >= 1, got {every_epochs}")
    self.objective = objective
    self.encoder = encoder
    self.dataset = dataset
    self.every_epochs = every_epochs
    self.iterations = iterations
    self.max_sequences = max_sequences
    self.seed = seed
    self.last_result: Optional[kmeans_lib.KMeansResult] = None
    self._encode = representation_fn(encoder)

  @classmethod
  def for_model(cls, model, dataset: tf.data.Dataset, config) -> list:
    """[the callback] for a model whose ``clustering`` objective is set, else [].

    ``config``: the PretrainConfig of that objective (schedule and seed).
    """
    if getattr(model, "clustering", None) is None:
      return []
    return [cls(model.clustering, model.encoder, dataset,
                every_epochs=config.cluster_every_epochs, iterations=config.kmeans_iterations,
                max_sequences=config.kmeans_max_sequences, seed=config.schedule.seed)]

  def recluster(self, epoch: int = 0) -> kmeans_lib.KMeansResult:
    points = sequence_representations(self.encoder, self.dataset, self.max_sequences,
                                      self._encode)
    result = kmeans_lib.kmeans(points, self.objective.num_clusters, self.iterations,
                               seed=self.seed + epoch, spherical=True)
    self.objective.set_centroids(result.centroids)
    self.last_result = result
    logging.info("Intent clustering (epoch %d): %d sequences, %d clusters, inertia %.4f, "
                 "%d k-means iterations", epoch, points.shape[0], result.centroids.shape[0],
                 result.inertia, result.iterations)
    return result

  def on_epoch_begin(self, epoch, logs=None):
    if epoch % self.every_epochs == 0:
      self.recluster(epoch)
