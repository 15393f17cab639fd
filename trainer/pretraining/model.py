"""PretrainingModel: a SequenceEncoder trained on a weighted sum of SSL objectives."""

from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from trainer.config import EncoderConfig
from trainer.encoder import SequenceEncoder
from trainer.model import INPUTS
from trainer.model import LABELS
from trainer.pretraining import attributes  # pylint: disable=unused-import  (registers its objective)
from trainer.pretraining import contrastive  # pylint: disable=unused-import  (registers its objective)
from trainer.pretraining import masked_item  # pylint: disable=unused-import  (registers its objective)
from trainer.pretraining import next_item  # pylint: disable=unused-import  (registers its objective)
from trainer.pretraining import objectives
from trainer.pretraining.batch import PretrainingBatch
from trainer.pretraining.batch import share_of_global
from trainer.pretraining.batch import step_seed
from trainer.pretraining.clustering import ClusteringObjective
from trainer.pretraining.config import PretrainConfig
from trainer.pretraining.item_attributes import ItemAttributeTable
from trainer.pretraining.objectives import ATTRIBUTE
from trainer.pretraining.objectives import CLUSTERING
from trainer.tasks import excluded_items

class PretrainingModel(tf.keras.Model):
  """Encoder + weighted SSL objectives; ``model(item_ids)`` is the [B, d] last hidden state.

  Attributes:
    encoder: the SequenceEncoder being pre-trained (save it with
      ``trainer.warm_start.save``).
    objectives: dict name -> objective layer, only those with a positive weight.
    weights_by_objective: dict name -> weight.
  """

  def __init__(self, num_items: int, encoder_config: EncoderConfig,
               pretrain_config: PretrainConfig,
               item_attributes: Optional[ItemAttributeTable] = None,
               item_vectors: Optional[np.ndarray] = None,
               untrained: Optional[np.ndarray] = None,
               exclude_untrained_items: bool = True, **kwargs):
    """Builds the encoder and the enabled objectives.

    Args:
      num_items: catalogue size V.
      encoder_config: encoder shape (``max_seq_len``, width, depth, dropout).
      pretrain_config: objective weights and settings.
      item_attributes: needed iff ``attribute_weight > 0``.
      item_vectors: float [V, t] item text vectors, for text item representations.
      untrained: bool [V], items with no interaction in the training data
        (``trainer.retrieval.untrained_items``).
      exclude_untrained_items: with a text item representation, leave ``untrained``
        out of the objectives' catalogue scoring (``trainer.tasks.excluded_items``).
    """
    super().__init__(**kwargs)
    self.num_items = num_items
    self.encoder_config = encoder_config
    self.pretrain_config = pretrain_config
    self.encoder = SequenceEncoder(num_items, encoder_config, item_vectors, name="encoder")
    self.excluded = excluded_items(untrained, encoder_config, exclude_untrained_items)
    self.weights_by_objective, self.objectives = build_objectives(
        pretrain_config, encoder_config.embedding_dim, num_items, item_attributes)
    self.loss_tracker = tf.keras.metrics.Mean(name="loss")
    self.objective_trackers = {
        name: tf.keras.metrics.Mean(name=f"{name}_loss") for name in self.objectives}
    # Create every variable now, outside any traced function.
    self(tf.zeros([1, encoder_config.max_seq_len], tf.int32))
    if self.excluded is not None:   # no trained id row: the text part alone represents them
      self.encoder.zero_item_ids(self.excluded.numpy())
    probe = tf.constant([[0, 1]], tf.int32)
    self.compute_losses({INPUTS: probe, LABELS: tf.constant([[-1, 0]], tf.int32)},
                        seed=tf.constant([0, 0], tf.int64), training=False)

  def call(self, item_ids, training=False) -> tf.Tensor:
    """item_ids int [B, L] model ids -> float [B, d] query embedding (``encoder.last_hidden``)."""
    return self.encoder.last_hidden(item_ids, training=training)

  @property
  def attribute_embeddings(self) -> Optional[tf.Variable]:
    """The attribute table [A, d] of the attribute objective, if it runs."""
    objective = self.objectives.get(ATTRIBUTE)
    return objective.attribute_table.embeddings if objective is not None else None

  @property
  def clustering(self) -> Optional[ClusteringObjective]:
    return self.objectives.get(CLUSTERING)

  @property
  def metrics(self):
    return [self.loss_tracker] + list(self.objective_trackers.values())

  def compute_losses(self, batch, seed, training: bool) -> Dict[str, tf.Tensor]:
    """dict name -> float scalar loss of each enabled objective on ``batch``."""
    return self._losses_and_shares(batch, seed, training, with_shares=False)[0]

  def _losses_and_shares(self, batch, seed, training: bool, with_shares: bool = True):
    """(name -> loss, name -> this replica's share of the objective's terms, or None).

    Shares need a replica context (a train or test step); they are 1 on one device.
    """
    context = PretrainingBatch(self.encoder, batch, self.pretrain_config, seed, training,
                               self.excluded)
    losses = {name: objective(context) for name, objective in self.objectives.items()}
    if not with_shares:
      return losses, None
    shares = {name: share_of_global(objective.terms(context))
              for name, objective in self.objectives.items()}
    return losses, shares

  def _total(self, losses: Dict[str, tf.Tensor], shares: Dict[str, tf.Tensor]) -> tf.Tensor:
    """This replica's part of the global batch's weighted loss (all of it on one device)."""
    return tf.add_n([self.weights_by_objective[name] * loss * shares[name]
                     for name, loss in losses.items()])

  def _report(self, losses, shares, total):
    # Metric states are summed over replicas: share-weighted, each step adds one
    # device's value of the whole global batch.
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    self.loss_tracker.update_state(total * replicas, sample_weight=1.0 / replicas)
    for name, loss in losses.items():
      self.objective_trackers[name].update_state(loss, sample_weight=shares[name])
    return {m.name: m.result() for m in self.metrics}

  @tf.autograph.experimental.do_not_convert
  def train_step(self, data):
    seed = step_seed(self.pretrain_config.schedule.seed, self.optimizer)
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    with tf.GradientTape() as tape:
      losses, shares = self._losses_and_shares(data, seed, training=True)
      # The replicas' gradients are summed: weighted by their shares, the sum is
      # the gradient of one device's loss on the global batch.
      total = self._total(losses, shares)
      regularised = total + tf.add_n(self.losses) / replicas if self.losses else total
    variables = self.trainable_variables
    gradients = tape.gradient(regularised, variables)
    self.optimizer.apply_gradients(
        [(g, v) for g, v in zip(gradients, variables) if g is not None])
    return self._report(losses, shares, total)

  @tf.autograph.experimental.do_not_convert
  def test_step(self, data):
    seed = tf.constant([self.pretrain_config.schedule.seed, -1], tf.int64)
    losses, shares = self._losses_and_shares(data, seed, training=False)
    return self._report(losses, shares, self._total(losses, shares))


def build_objectives(pretrain_config: PretrainConfig, dim: int, num_items: int,
                     item_attributes: Optional[ItemAttributeTable] = None):
  """(weights, objectives): dicts name -> weight / objective layer, positive weights only.

  Iterates the registry (``trainer.pretraining.objectives``), in its order. Shared by
  ``PretrainingModel`` and by the fine-tuning model's auxiliary objectives
  (``trainer.retrieval.RetrievalModel``).
  """
  weights = {name: float(getattr(pretrain_config, objectives.weight_field(name)))
             for name in objectives.NAMES}
  weights = {name: weight for name, weight in weights.items() if weight > 0}
  layers = {name: objectives.layer_class(name).from_pretrain_config(
                pretrain_config, dim, num_items, item_attributes, name=name)
            for name in weights}
  return weights, layers
