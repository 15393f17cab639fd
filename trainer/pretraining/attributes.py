"""Item-attribute association objectives of S3-Rec: AAP and MAP."""

import tensorflow as tf

from trainer.pretraining import objectives
from trainer.pretraining.batch import Objective
from trainer.pretraining.batch import PretrainingBatch
from trainer.pretraining.item_attributes import ItemAttributeTable


def _attribute_bce(hidden, items, projection, attribute_embeddings,
                   table: ItemAttributeTable) -> tf.Tensor:
  """Mean multi-label BCE of the scored positions; 0 if there is none.

  hidden: float [N, d]; items: int [N] vocabulary index of each position's item.
  """
  keep = table.has_attributes(items)
  hidden, items = tf.boolean_mask(hidden, keep), tf.boolean_mask(items, keep)
  logits = tf.matmul(projection(hidden), attribute_embeddings, transpose_b=True)  # [N, A]
  per_position = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
      labels=table.multi_hot(items), logits=tf.cast(logits, tf.float32)), axis=1)
  return tf.math.divide_no_nan(tf.reduce_sum(per_position),
                               tf.cast(tf.size(per_position), tf.float32))


@objectives.register(objectives.ATTRIBUTE)
class AttributeObjective(Objective):
  """S3-Rec AAP + MAP on the Cloze pass, with its own attribute embedding table.

  Attributes:
    attribute_table: Embedding [A, d]; row a = attribute vocabulary index a.
  """

  def __init__(self, item_attributes: ItemAttributeTable, embedding_dim: int, **kwargs):
    super().__init__(**kwargs)
    self.item_attributes = item_attributes
    self.attribute_table = tf.keras.layers.Embedding(
        item_attributes.num_attributes, embedding_dim,
        embeddings_initializer=tf.keras.initializers.TruncatedNormal(stddev=0.02),
        name="attribute_embedding")
    self.aap_projection = tf.keras.layers.Dense(embedding_dim, use_bias=False,
                                                name="aap_projection")
    self.map_projection = tf.keras.layers.Dense(embedding_dim, use_bias=False,
                                                name="map_projection")
    self.attribute_table.build(None)
    self.aap_projection.build([None, embedding_dim])
    self.map_projection.build([None, embedding_dim])

  @classmethod
  def from_pretrain_config(cls, config, embedding_dim, num_items, item_attributes, **kwargs):
    if item_attributes is None:
      raise ValueError("PretrainConfig.attribute_weight > 0 needs item_attributes "
                       "(the transformed items split); set attribute_weight=0 otherwise")
    if item_attributes.num_items != num_items:
      raise ValueError(f"item_attributes covers {item_attributes.num_items} items; "
                       f"the catalogue has {num_items}")
    if item_attributes.num_items_with_attributes == 0:
      raise ValueError("PretrainConfig.attribute_weight > 0 but no catalogue item has a "
                       "known attribute; provide an item table or set attribute_weight=0")
    return cls(item_attributes, embedding_dim, **kwargs)

  def call(self, batch: PretrainingBatch) -> tf.Tensor:
    """float scalar: AAP loss + MAP loss."""
    if batch.encoder.num_items != self.item_attributes.num_items:
      raise ValueError(f"Item attribute table has {self.item_attributes.num_items} items, "
                       f"the encoder {batch.encoder.num_items}")
    _, labels, hidden = batch.cloze()
    attributes = self.attribute_table.embeddings
    original = batch.sequence
    unmasked = tf.logical_and(labels < 0, original > 0)
    aap = _attribute_bce(tf.boolean_mask(hidden, unmasked),
                         tf.boolean_mask(original, unmasked) - 1,
                         self.aap_projection, attributes, self.item_attributes)
    is_masked = labels >= 0
    map_loss = _attribute_bce(tf.boolean_mask(hidden, is_masked),
                              tf.boolean_mask(labels, is_masked),
                              self.map_projection, attributes, self.item_attributes)
    return aap + map_loss
