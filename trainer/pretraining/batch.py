"""One pre-training batch, the encoder passes its objectives share, and their base class."""

from typing import Mapping, Optional, Tuple

import tensorflow as tf

from trainer.encoder import SequenceEncoder
from trainer.model import INPUTS
from trainer.model import LABELS
from trainer.pretraining import augmentations
from trainer.pretraining.config import PretrainConfig
from trainer.pretraining.item_attributes import ItemAttributeTable


def step_seed(seed: int, optimizer) -> tf.Tensor:
  """int64 [2] stateless seed of a training step: ``(seed, optimizer step)``."""
  return tf.stack([tf.constant(seed, tf.int64), tf.cast(optimizer.iterations, tf.int64)])


def share_of_global(count: tf.Tensor) -> tf.Tensor:
  """This replica's ``count`` over the sum of all replicas' (exactly 1 on one device).

  Under a distribution strategy the replicas' gradients and metric states are
  summed: a replica's mean weighted by its share makes the sum one device's mean.
  When no replica counts anything, each gets an equal share.
  """
  count = tf.cast(tf.stop_gradient(count), tf.float32)
  context = tf.distribute.get_replica_context()
  total = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
  equal = 1.0 / tf.cast(context.num_replicas_in_sync, tf.float32)
  return tf.where(total > 0, tf.math.divide_no_nan(count, total), equal)


class PretrainingBatch:
  """A ``trainer.inputs`` batch (``inputs``/``labels`` int [B, L]) plus shared passes.

  Attributes:
    encoder: the SequenceEncoder being trained.
    inputs, labels: int32 [B, L] next-item pairs as given.
    sequence: int32 [B, L'] the whole sequences (``s``, see
      ``augmentations.sequences_from_pairs``), L' <= max_seq_len.
    nonempty: bool [B], rows of ``sequence`` holding at least one item.
    excluded: bool [V] items the catalogue-scoring objectives leave out of their
      softmax when training (``trainer.tasks.excluded_items``), or None.
  """

  def __init__(self, encoder: SequenceEncoder, batch: Mapping[str, tf.Tensor],
               config: PretrainConfig, seed: tf.Tensor, training: bool,
               excluded: Optional[tf.Tensor] = None):
    if not isinstance(batch, Mapping) or INPUTS not in batch or LABELS not in batch:
      got = sorted(batch) if isinstance(batch, Mapping) else type(batch).__name__
      raise ValueError(f"Pre-training expects batches as dicts with '{INPUTS}' and "
                       f"'{LABELS}' (int32 [B, L], see trainer.inputs); got {got}")
    self.encoder = encoder
    self.config = config
    self.training = training
    self.excluded = excluded if training else None
    self.inputs = tf.cast(batch[INPUTS], tf.int32)
    self.labels = tf.cast(batch[LABELS], tf.int32)
    self.sequence = augmentations.sequences_from_pairs(
        self.inputs, self.labels, encoder.config.max_seq_len)
    self.nonempty = augmentations.item_counts(self.sequence) > 0
    self._cloze_seed, self._view_a_seed, self._view_b_seed = tf.unstack(
        tf.random.split(tf.cast(seed, tf.int64), 3))
    self._cache = {}

  def _cached(self, key: str, compute):
    if key not in self._cache:
      self._cache[key] = compute()
    return self._cache[key]

  def item_embeddings(self) -> tf.Tensor:
    """float [V, d]: the catalogue's item representations the objectives score against
    (``encoder.catalogue_embeddings``), computed once per step."""
    return self._cached("items", lambda: self.encoder.catalogue_embeddings(
        training=self.training))

  def next_item_hidden(self) -> tf.Tensor:
    """float [B, L, d]: causal encoder output on ``inputs`` (SASRec pass)."""
    return self._cached("next_item", lambda: self.encoder(
        self.inputs, training=self.training, causal=True))

  def cloze(self) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(masked ids int32 [B, L'], labels int32 [B, L'], bidirectional hidden [B, L', d]).

    Labels hold the original vocabulary index at the masked positions, -1 elsewhere.
    """
    def compute():
      masked, labels = augmentations.cloze_mask(
          self.sequence, self._cloze_seed, mask_id=self.encoder.mask_id,
          num_items=self.encoder.num_items, probability=self.config.mask_probability,
          random_fraction=self.config.mask_random_fraction,
          keep_fraction=self.config.mask_keep_fraction)
      hidden = self.encoder(masked, training=self.training, causal=False)
      return masked, labels, hidden
    return self._cached("cloze", compute)

  def views(self) -> Tuple[tf.Tensor, tf.Tensor]:
    """Two independently augmented copies of ``sequence``, int32 [B, L'] each."""
    def compute():
      def view(seed):
        return augmentations.random_augmentation(
            self.sequence, seed, mask_id=self.encoder.mask_id,
            augmentations=self.config.augmentations, crop_ratio=self.config.crop_ratio,
            item_mask_ratio=self.config.item_mask_ratio,
            reorder_ratio=self.config.reorder_ratio)
      return view(self._view_a_seed), view(self._view_b_seed)
    return self._cached("views", compute)

  def view_representations(self) -> Tuple[tf.Tensor, tf.Tensor]:
    """Query embeddings (``encoder.last_hidden``) of the two views, float [B, d] each."""
    def compute():
      view_a, view_b = self.views()
      both = self.encoder.last_hidden(tf.concat([view_a, view_b], axis=0),
                                      training=self.training)
      return tuple(tf.split(both, 2, axis=0))
    return self._cached("view_representations", compute)

  def sequence_representation(self) -> tf.Tensor:
    """float [B, d]: query embedding of ``sequence`` (``encoder.last_hidden``), no dropout, no gradient."""
    return self._cached("sequence_representation", lambda: tf.stop_gradient(
        self.encoder.last_hidden(self.sequence, training=False)))


class Objective(tf.keras.layers.Layer):
  """A pre-training loss: ``call(PretrainingBatch)`` -> float scalar.

  Each subclass is registered under its name (``objectives.register``); models build
  the enabled ones with ``from_pretrain_config``.
  """

  @classmethod
  def from_pretrain_config(cls, config: PretrainConfig, embedding_dim: int, num_items: int,
                           item_attributes: Optional[ItemAttributeTable],
                           **kwargs) -> "Objective":
    """The objective for these settings (``kwargs``: Keras layer arguments, e.g. ``name``).

    This default takes no settings; objectives with some override it.
    """
    del config, embedding_dim, num_items, item_attributes
    return cls(**kwargs)

  def terms(self, batch: PretrainingBatch) -> tf.Tensor:
    """How many terms the loss of ``call`` averages: its weight in a global batch
    split across replicas (``share_of_global``). This default: the non-empty rows."""
    return tf.reduce_sum(tf.cast(batch.nonempty, tf.float32))
