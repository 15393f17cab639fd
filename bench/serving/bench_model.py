"""Benchmark models: the real serving export (Transformer encoder) over a synthetic catalogue.

Untrained weights (latency does not depend on them) and clustered item embeddings.
"""

import math
import os
import tempfile
from typing import List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from serving.testing import toy_model
from trainer import export
from trainer.config import EncoderConfig
from trainer.model import NextItemModel

DEFAULT_ITEMS_PER_CLUSTER = 100
DEFAULT_SPREAD = 0.5          # within-cluster std / between-centre std
EMBEDDING_SCALE = 0.1         # std of a cluster centre's coordinates
VOCABULARY_FILE = "items.txt"


def item_ids(num_items: int) -> List[str]:
  """Catalogue ids ``item_0 .. item_{n-1}`` in vocabulary order."""
  return toy_model.toy_item_ids(num_items)


def _assignments(num_items: int, seed: int, items_per_cluster: int) -> np.ndarray:
  if num_items < 1 or items_per_cluster < 1:
    raise ValueError("num_items and items_per_cluster must be >= 1")
  num_clusters = math.ceil(num_items / items_per_cluster)
  return np.random.default_rng([seed, 1]).integers(0, num_clusters, size=num_items)


def _mixture(num_items: int, dim: int, seed: int, items_per_cluster: int,
             spread: float) -> np.ndarray:
  if dim < 1 or spread < 0:
    raise ValueError("dim must be >= 1 and spread >= 0")
  cluster = _assignments(num_items, seed, items_per_cluster)
  num_clusters = math.ceil(num_items / items_per_cluster)
  centres = np.random.default_rng([seed, 0]).normal(
      scale=EMBEDDING_SCALE, size=(num_clusters, dim)).astype(np.float32)
  noise = np.random.default_rng([seed, 2]).normal(
      scale=spread * EMBEDDING_SCALE, size=(num_items, dim)).astype(np.float32)
  return centres[cluster] + noise


def clustered_embeddings(num_items: int, dim: int, seed: int = 0,
                         items_per_cluster: int = DEFAULT_ITEMS_PER_CLUSTER,
                         spread: float = DEFAULT_SPREAD) -> np.ndarray:
  """float32 [num_items, dim]: a mixture of Gaussians.

  ``ceil(num_items / items_per_cluster)`` centres ~ N(0, s^2 I) with
  s = ``EMBEDDING_SCALE``; each item picks a centre uniformly at random and adds
  N(0, (spread * s)^2 I).
  """
  return _mixture(num_items, dim, seed, items_per_cluster, spread)


def item_clusters(num_items: int, seed: int = 0,
                  items_per_cluster: int = DEFAULT_ITEMS_PER_CLUSTER) -> np.ndarray:
  """int [num_items]: the mixture component of each item in ``clustered_embeddings``."""
  return _assignments(num_items, seed, items_per_cluster)


def interest_histories(num_items: int, count: int, seed: int = 0,
                       min_length: int = 5, max_length: int = 50,
                       max_interests: int = 3,
                       items_per_cluster: int = DEFAULT_ITEMS_PER_CLUSTER) -> List[List[str]]:
  """``count`` synthetic histories of users with a few interests.

  Each history picks 1..``max_interests`` clusters of the catalogue (as in
  ``clustered_embeddings`` with the same ``seed`` and ``items_per_cluster``) and a
  length in [min_length, max_length], then draws distinct items from those
  clusters, in random order.
  """
  clusters = item_clusters(num_items, seed, items_per_cluster)
  order = np.argsort(clusters, kind="stable")
  starts = np.searchsorted(clusters[order], np.arange(clusters.max() + 2))
  members = [order[starts[c]:starts[c + 1]] for c in range(clusters.max() + 1)]
  non_empty = [c for c, m in enumerate(members) if len(m)]
  ids = item_ids(num_items)
  rng = np.random.default_rng([seed, 3])
  histories = []
  for _ in range(count):
    chosen = rng.choice(non_empty, size=rng.integers(1, max_interests + 1))
    pool = np.unique(np.concatenate([members[c] for c in chosen]))
    length = min(int(rng.integers(min_length, max_length + 1)), len(pool))
    histories.append([ids[i] for i in rng.choice(pool, size=length, replace=False)])
  return histories


def build_model(num_items: int, config: Optional[EncoderConfig] = None, seed: int = 0,
                items_per_cluster: int = DEFAULT_ITEMS_PER_CLUSTER,
                spread: float = DEFAULT_SPREAD) -> NextItemModel:
  """An untrained ``NextItemModel`` whose item embeddings are ``clustered_embeddings``."""
  config = config or EncoderConfig()
  tf.keras.utils.set_random_seed(seed)
  model = NextItemModel(num_items, config)
  table = model.encoder.item_table.embeddings   # [V + 2, d]: padding, items, [MASK]
  items = clustered_embeddings(num_items, config.embedding_dim, seed, items_per_cluster,
                               spread)
  value = table.numpy()
  value[1:num_items + 1] = items
  table.assign(value)
  return model


def write_vocabulary(num_items: int, directory: str) -> str:
  """Writes ``item_ids(num_items)``, one per line, to ``directory/items.txt``."""
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, VOCABULARY_FILE)
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(item_ids(num_items)) + "\n")
  return path


def vocabulary(num_items: int, directory: str) -> export.HashTableItemVocabulary:
  """The benchmark catalogue (vocabulary file written into ``directory``)."""
  return export.HashTableItemVocabulary(write_vocabulary(num_items, directory), num_items)


def export_bench_model(export_dir: str, num_items: int,
                       config: Optional[EncoderConfig] = None, seed: int = 0,
                       model: Optional[NextItemModel] = None) -> str:
  """Writes the exact (brute-force top-k) benchmark SavedModel; returns ``export_dir``.

  ``model`` (from ``build_model``) is built here when not given.
  """
  config = config or (model.encoder_config if model is not None else EncoderConfig())
  model = model or build_model(num_items, config, seed)
  with tempfile.TemporaryDirectory(prefix="bench-vocab-") as scratch:
    module = export.RecommenderModule(model, vocabulary(num_items, scratch),
                                      config.max_seq_len)
    return export.save_module(module, export_dir)


def model_inputs(histories: Sequence[Sequence[str]], num_items: int,
                 max_seq_len: int) -> Tuple[np.ndarray, List[List[int]]]:
  """NumPy version of the export's input path.

  Returns:
    (int32 [batch, max_seq_len] model ids, left-padded with 0, the last
    ``max_seq_len`` known items of each row; each row's known vocabulary indices).
  """
  index = {item: i for i, item in enumerate(item_ids(num_items))}
  known = [[index[item] for item in history if item in index] for history in histories]
  inputs = np.zeros((len(known), max_seq_len), np.int32)
  for row, indices in enumerate(known):
    tail = indices[-max_seq_len:]
    if tail:
      inputs[row, -len(tail):] = np.asarray(tail) + 1
  return inputs, known


def expected_recommendations(model: NextItemModel, histories: Sequence[Sequence[str]],
                             k: int) -> List[List[Tuple[str, float]]]:
  """Top-k (item_id, score) per history by brute force in NumPy (ties: lower index first).

  The query embedding comes from ``model.query_embedding`` (the encoder); the
  scoring, history exclusion and ranking are NumPy. History items are left out,
  so a row has fewer than k pairs when fewer items remain.
  """
  num_items = model.num_items
  inputs, known = model_inputs(histories, num_items, model.encoder_config.max_seq_len)
  queries = model.query_embedding(tf.constant(inputs)).numpy().astype(np.float32)
  items = model.item_embeddings.numpy().astype(np.float32)
  ids = item_ids(num_items)
  results = []
  for query, seen in zip(queries, known):
    scores = items @ query
    scores[seen] = -np.inf
    order = np.argsort(-scores, kind="stable")[:min(k, num_items)]
    results.append([(ids[i], float(scores[i])) for i in order if np.isfinite(scores[i])])
  return results
