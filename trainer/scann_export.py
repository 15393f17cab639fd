"""The ScaNN variant of the serving export: approximate top-k for large catalogues.

Stock TF Serving cannot load it (ScaNN's custom ops); see docs/serving.md, "ScaNN variant".
"""

import dataclasses
import os
import shutil
from typing import Optional

import tensorflow as tf

from trainer import export

SCANN_MODEL_NAME = "seqrec_scann"
SCANN_NAMESPACE = "Scann"
SAVE_OPTIONS = tf.saved_model.SaveOptions(namespace_whitelist=[SCANN_NAMESPACE])


@dataclasses.dataclass(frozen=True)
class ScannConfig:
  """ScaNN index parameters (``tfrs.layers.factorized_top_k.ScaNN``).

  The defaults were tuned on the 1M-item benchmark catalogue of
  ``bench.serving.suite`` (clustered synthetic embeddings, untrained encoder
  queries): 1000 leaves (about sqrt(N), ScaNN's usual start), of which 200 are
  searched: searching fewer lost recall against exact search, more gained little
  (bench/serving/results/HISTORY.md). Reordering 250 candidates makes the scores
  exact and leaves room for k + a 50-item history. Leaf search, not reordering,
  limited recall there. Real embeddings need their own tuning (the suite's ``--sweep``).
  """
  num_leaves: int = 1000
  num_leaves_to_search: int = 200
  num_reordering_candidates: Optional[int] = 250
  dimensions_per_block: int = 2
  training_iterations: int = 12

  def __post_init__(self):
    if not 1 <= self.num_leaves_to_search <= self.num_leaves:
      raise ValueError(f"need 1 <= num_leaves_to_search <= num_leaves, got {self}")
    if self.num_reordering_candidates is not None and self.num_reordering_candidates < 1:
      raise ValueError(f"num_reordering_candidates must be >= 1 or None, got {self}")

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


class ScannRecommenderModule(export.RecommenderModule):
  """``RecommenderModule`` whose top-k comes from a ScaNN index over the item embeddings."""

  def __init__(self, model, vocabulary: export.ItemVocabulary, max_seq_len: int,
               config: ScannConfig = ScannConfig()):
    import tensorflow_recommenders as tfrs  # pylint: disable=g-import-not-at-top
    super().__init__(model, vocabulary, max_seq_len)
    if config.num_leaves > self.num_items:
      raise ValueError(f"ScaNN num_leaves={config.num_leaves} exceeds the catalogue "
                       f"size {self.num_items}")
    self.scann_config = config
    self.scann = tfrs.layers.factorized_top_k.ScaNN(
        k=10, distance_measure="dot_product", num_leaves=config.num_leaves,
        num_leaves_to_search=config.num_leaves_to_search,
        training_iterations=config.training_iterations,
        dimensions_per_block=config.dimensions_per_block,
        num_reordering_candidates=config.num_reordering_candidates)
    # No identifiers: the index answers with row numbers = vocabulary indices.
    self.scann.index(tf.cast(model.item_embeddings, tf.float32))

  def _top_k(self, indices: tf.Tensor, inputs: tf.Tensor, k: tf.Tensor):
    query = tf.cast(self.model.query_embedding(inputs), tf.float32)
    history = export.known_values(indices).to_tensor(default_value=-1)   # [B, h]
    wanted = tf.minimum(k + tf.shape(history)[1], self.num_items)
    scores, candidates = self.scann(query, k=wanted)                 # [B, <= wanted]
    candidates = tf.cast(candidates, tf.int64)
    seen = tf.reduce_any(
        tf.equal(candidates[:, :, tf.newaxis], history[:, tf.newaxis, :]), axis=2)
    seen |= ~tf.gather(self.available, candidates)   # availability mask (catalogue refresh)
    scores = tf.where(seen, tf.constant(-float("inf"), scores.dtype), scores)
    # Fewer candidates than k (reordering cap): pad with empty slots.
    width = tf.minimum(k, self.num_items)
    missing = tf.maximum(width - tf.shape(scores)[1], 0)
    scores = tf.pad(scores, [[0, 0], [0, missing]], constant_values=-float("inf"))
    candidates = tf.pad(candidates, [[0, 0], [0, missing]], constant_values=-1)
    top = tf.math.top_k(scores, k=width)
    return (tf.cast(top.values, tf.float32),
            tf.gather(candidates, top.indices, batch_dims=1))


def export_scann_model(model, vocabulary: export.ItemVocabulary, max_seq_len: int,
                       export_dir: str, config: ScannConfig = ScannConfig()) -> str:
  """Builds the ScaNN index and writes the variant's SavedModel to ``export_dir``."""
  module = ScannRecommenderModule(model, vocabulary, max_seq_len, config)
  return export.save_module(module, export_dir, options=SAVE_OPTIONS)


def export_scann_variant(model, vocabulary: export.ItemVocabulary, max_seq_len: int,
                         serving_root: str, version: int,
                         config: ScannConfig = ScannConfig()) -> str:
  """Writes ``<serving_root>/seqrec_scann/<version>/`` atomically; returns its path.

  Like the Pusher: the SavedModel is written to a hidden ``.tmp-<version>`` folder
  and renamed, so a server polling the base path never sees half a version.

  Raises:
    FileExistsError: the version exists already (versions are never rewritten).
  """
  base = os.path.join(serving_root, SCANN_MODEL_NAME)
  final = os.path.join(base, str(version))
  if os.path.exists(final):
    raise FileExistsError(f"{final} exists; ScaNN variant versions are never overwritten")
  staging = os.path.join(base, f".tmp-{version}")
  shutil.rmtree(staging, ignore_errors=True)
  os.makedirs(base, exist_ok=True)
  export_scann_model(model, vocabulary, max_seq_len, staging, config)
  os.rename(staging, final)
  return final
