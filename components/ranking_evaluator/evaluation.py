"""Full-ranking evaluation of an exported model and of a popularity baseline.

Usable without TFX; the model is read through the ``serving.contract`` signatures only.
"""

import abc
import collections
import os
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf

from components.ranking_evaluator import metrics
from serving import contract
from trainer import features

DEFAULT_KS = (5, 10, 20)
DEFAULT_BATCH_SIZE = 512
SPLIT_PLACEHOLDER = "{split}"
_GZIP_MAGIC = b"\x1f\x8b"


def check_batch_size(batch_size: int) -> int:
  if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
    raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
  return batch_size


class SequenceRow(NamedTuple):
  """One sequence example: history oldest first, most recent last; "" dropped."""
  user_id: bytes
  history: tuple
  target: bytes


def files_in(pattern_or_directory: str, split: str) -> List[str]:
  """Data files of a folder (hidden and ``_``-prefixed names skipped) or a glob."""
  pattern = pattern_or_directory
  if tf.io.gfile.isdir(pattern):
    pattern = os.path.join(pattern, "*")
  files = sorted(path for path in tf.io.gfile.glob(pattern)
                 if not tf.io.gfile.isdir(path)
                 and not os.path.basename(path).startswith((".", "_")))
  if not files:
    raise FileNotFoundError(f"No files for split '{split}' match {pattern}")
  return files


def split_files(examples: str, split: str) -> List[str]:
  """The files of one split.

  Args:
    examples: an Examples artifact uri (a folder holding ``Split-<name>/``), or a
      file pattern containing ``{split}``, e.g. ``/data/seq/{split}/*.gz``.
    split: split name, e.g. ``test``.
  """
  if SPLIT_PLACEHOLDER in examples:
    return files_in(examples.replace(SPLIT_PLACEHOLDER, split), split)
  directory = os.path.join(examples, f"Split-{split}")
  if not tf.io.gfile.isdir(directory):
    found = sorted(name.rstrip("/") for name in tf.io.gfile.listdir(examples)
                   if name.startswith("Split-")) if tf.io.gfile.isdir(examples) else []
    raise FileNotFoundError(
        f"No split '{split}' under {examples}: expected the folder {directory}; "
        f"split folders found: {found}")
  return files_in(directory, split)


def _compression(path: str) -> str:
  with tf.io.gfile.GFile(path, "rb") as f:
    return "GZIP" if f.read(2) == _GZIP_MAGIC else ""


def _bytes_values(example: tf.train.Example, name: str, where: str) -> list:
  feature = example.features.feature.get(name)
  if feature is None:
    return []
  kind = feature.WhichOneof("kind")
  if kind is None:
    return []
  if kind != "bytes_list":
    raise ValueError(f"{where}: feature '{name}' must hold bytes (item ids as strings), "
                     f"got {kind}")
  return list(feature.bytes_list.value)


def read_sequences(files: Sequence[str]) -> List[SequenceRow]:
  """Parses the sequence rows (tf.Example, GZIP or plain TFRecords) of ``files``."""
  rows = []
  for path in files:
    dataset = tf.data.TFRecordDataset(path, compression_type=_compression(path))
    for number, record in enumerate(dataset.as_numpy_iterator()):
      where = f"{path}, record {number}"
      try:
        example = tf.train.Example.FromString(record)
      except Exception as e:  # pylint: disable=broad-except
        raise ValueError(f"{where}: not a tf.train.Example ({e})") from e
      user = _bytes_values(example, features.USER_ID, where)
      user_id = user[0] if user else b""
      where = f"{where} (user_id {user_id.decode('utf-8', 'replace')!r})"
      history = tuple(v for v in _bytes_values(example, features.HISTORY, where) if v)
      target = _bytes_values(example, features.TARGET, where)
      if len(target) != 1 or not target[0]:
        raise ValueError(
            f"{where}: feature '{features.TARGET}' must hold exactly one non-empty "
            f"item id, got {target!r}")
      rows.append(SequenceRow(user_id, history, target[0]))
  return rows


def load_split(examples: str, split: str) -> List[SequenceRow]:
  """``read_sequences`` of one split; an empty split is an error."""
  files = split_files(examples, split)
  rows = read_sequences(files)
  if not rows:
    raise ValueError(f"Split '{split}' has no rows (files: {files})")
  return rows


class Scorer(abc.ABC):
  """Scores every catalogue item (``item_ids``, [N]) for a batch of histories."""

  item_ids: List[bytes]

  @abc.abstractmethod
  def scores(self, histories: Sequence[Sequence[bytes]]) -> np.ndarray:
    """[B, N] scores (higher is better) for B raw-id histories."""


class SavedModelScorer(Scorer):
  """Scores with the ``query_embedding`` / ``item_embeddings`` signatures."""

  def __init__(self, saved_model_path: str):
    if not tf.io.gfile.exists(os.path.join(saved_model_path, "saved_model.pb")):
      raise FileNotFoundError(f"No SavedModel at {saved_model_path} (no saved_model.pb)")
    self.path = saved_model_path
    loaded = tf.saved_model.load(saved_model_path)
    self._loaded = loaded  # keeps the signatures' resources alive
    for name in (contract.QUERY_EMBEDDING_SIGNATURE, contract.ITEM_EMBEDDINGS_SIGNATURE):
      if name not in loaded.signatures:
        raise ValueError(f"SavedModel {saved_model_path} has no signature '{name}'; "
                         f"signatures: {sorted(loaded.signatures.keys())}")
    self._query = loaded.signatures[contract.QUERY_EMBEDDING_SIGNATURE]
    items = loaded.signatures[contract.ITEM_EMBEDDINGS_SIGNATURE]()
    for name in (contract.OUTPUT_ITEM_IDS, contract.OUTPUT_EMBEDDINGS):
      if name not in items:
        raise ValueError(f"{saved_model_path}: signature "
                         f"'{contract.ITEM_EMBEDDINGS_SIGNATURE}' has no output '{name}'; "
                         f"outputs: {sorted(items)}")
    ids = items[contract.OUTPUT_ITEM_IDS].numpy()
    embeddings = items[contract.OUTPUT_EMBEDDINGS].numpy().astype(np.float32)
    if ids.ndim != 1 or embeddings.ndim != 2 or embeddings.shape[0] != ids.shape[0] \
        or ids.shape[0] == 0:
      raise ValueError(
          f"{saved_model_path}: '{contract.ITEM_EMBEDDINGS_SIGNATURE}' must return "
          f"item_ids [N] and embeddings [N, d] with N > 0, got {ids.shape} and "
          f"{embeddings.shape}")
    self.item_ids = [bytes(i) for i in ids]
    if len(set(self.item_ids)) != len(self.item_ids):
      duplicates = [i for i, c in collections.Counter(self.item_ids).items() if c > 1]
      raise ValueError(f"{saved_model_path}: item_ids repeat, e.g. {duplicates[:5]}")
    self.item_embeddings = embeddings

  def query_embeddings(self, histories: Sequence[Sequence[bytes]]) -> np.ndarray:
    """[B, d] query embeddings; histories left-padded with "" to the batch's longest."""
    width = max(1, max(len(h) for h in histories))
    padded = np.array([[contract.PAD.encode()] * (width - len(h)) + list(h)
                       for h in histories], dtype=object)
    output = self._query(**{contract.INPUT_HISTORY: tf.constant(padded, tf.string)})
    if contract.OUTPUT_EMBEDDING not in output:
      raise ValueError(f"{self.path}: signature '{contract.QUERY_EMBEDDING_SIGNATURE}' "
                       f"has no output '{contract.OUTPUT_EMBEDDING}'; outputs: "
                       f"{sorted(output)}")
    query = output[contract.OUTPUT_EMBEDDING].numpy().astype(np.float32)
    expected = (len(histories), self.item_embeddings.shape[1])
    if query.shape != expected:
      raise ValueError(f"{self.path}: query embedding shape {query.shape}, expected "
                       f"{expected} (batch, item embedding dim)")
    return query

  def scores(self, histories):
    return self.query_embeddings(histories) @ self.item_embeddings.T


class PopularityScorer(Scorer):
  """Every user gets the same scores: the items' training interaction counts."""

  def __init__(self, train_rows: Sequence[SequenceRow], item_ids: Sequence[bytes]):
    self.item_ids = list(item_ids)
    index = {item: row for row, item in enumerate(self.item_ids)}
    counts = collections.Counter()
    for row in train_rows:
      for item in row.history + (row.target,):
        if item in index:
          counts[index[item]] += 1
    self.counts = counts
    self.popularity = metrics.popularity_scores(counts, len(self.item_ids))

  def scores(self, histories):
    return np.broadcast_to(self.popularity, (len(histories), len(self.item_ids)))


def rank_users(scorer: Scorer, rows: Sequence[SequenceRow],
               ks: Sequence[int] = DEFAULT_KS,
               batch_size: int = DEFAULT_BATCH_SIZE) -> Dict[str, float]:
  """``metrics.summarize`` of ``scorer`` over ``rows``, batch by batch.

  Ranks exclude each user's history except the target; top-k lists (for
  coverage) exclude the whole history, as the serving signature does.
  """
  ks = metrics.check_ks(ks)
  check_batch_size(batch_size)
  if not rows:
    raise ValueError("no rows to evaluate")
  index = {item: row for row, item in enumerate(scorer.item_ids)}
  num_items = len(scorer.item_ids)
  all_ranks, all_top = [], []
  for start in range(0, len(rows), batch_size):
    batch = rows[start:start + batch_size]
    scores = np.asarray(scorer.scores([row.history for row in batch]))
    if scores.shape != (len(batch), num_items):
      raise ValueError(f"scores of shape {scores.shape}, expected {(len(batch), num_items)}")
    targets = np.array([index.get(row.target, metrics.MISSING) for row in batch], np.int64)
    seen = [[index[item] for item in row.history if item in index] for row in batch]
    history_mask = metrics.exclusion_mask(seen, num_items)
    rank_mask = history_mask.copy()
    known = np.flatnonzero(targets != metrics.MISSING)
    rank_mask[known, targets[known]] = False
    all_ranks.append(metrics.ranks_with_mask(scores, targets, rank_mask))
    all_top.append(metrics.top_k_with_mask(scores, max(ks), history_mask))
  return metrics.summarize(np.concatenate(all_ranks), ks,
                           top_items=np.concatenate(all_top), num_items=num_items)


def format_table(results: Dict[str, Dict[str, float]], ks: Sequence[int]) -> str:
  """A fixed-width table: one row per metric, one column per evaluated scorer."""
  names = metrics.metric_names(ks) + [metrics.NUM_USERS_KEY, metrics.NUM_MISSING_TARGETS_KEY]
  columns = list(results)
  width = max(len(name) for name in names) + 2
  lines = [f"{'metric':<{width}}" + "".join(f"{c:>12}" for c in columns)]
  for name in names:
    cells = []
    for column in columns:
      value = results[column].get(name)
      if value is None:
        cells.append(f"{'-':>12}")
      elif isinstance(value, int):
        cells.append(f"{value:>12d}")
      else:
        cells.append(f"{value:>12.4f}")
    lines.append(f"{name:<{width}}" + "".join(cells))
  return "\n".join(lines)


def evaluate_saved_model(saved_model_path: str, examples: str, *,
                         eval_split: str = features.TEST_SPLIT,
                         train_split: str = features.TRAIN_SPLIT,
                         ks: Sequence[int] = DEFAULT_KS,
                         batch_size: int = DEFAULT_BATCH_SIZE,
                         with_popularity: bool = True,
                         eval_rows: Optional[Sequence[SequenceRow]] = None,
                         train_rows: Optional[Sequence[SequenceRow]] = None,
                         log: Callable[[str], None] = logging.info) -> Dict:
  """Full-ranking metrics of the SavedModel at ``saved_model_path``.

  Args:
    saved_model_path: folder with ``saved_model.pb`` and the signatures of
      ``serving.contract``.
    examples: an Examples artifact uri (``Split-<name>/`` folders) or a file
      pattern with ``{split}`` (see ``split_files``).
    eval_split: split whose targets are ranked.
    train_split: split whose sequences (history + target) give the popularity
      counts.
    ks: cut-offs of HR/NDCG/coverage.
    batch_size: users scored at a time.
    with_popularity: also rank with the popularity baseline.
    eval_rows, train_rows: already-read rows, to skip reading ``examples``.
    log: where the metrics table goes.
  Returns:
    ``{"split", "num_items", "model": {metric: value}, "popularity": {...}}``
    (no ``popularity`` without ``with_popularity``).
  """
  ks = metrics.check_ks(ks)
  if eval_rows is None:
    eval_rows = load_split(examples, eval_split)
  scorer = SavedModelScorer(saved_model_path)
  result = {"split": eval_split, "num_items": len(scorer.item_ids),
            "model": rank_users(scorer, eval_rows, ks, batch_size)}
  if with_popularity:
    if train_rows is None:
      train_rows = load_split(examples, train_split)
    result["popularity"] = rank_users(PopularityScorer(train_rows, scorer.item_ids),
                                      eval_rows, ks, batch_size)
  tables = {k: result[k] for k in ("model", "popularity") if k in result}
  log(f"Full-ranking metrics of {saved_model_path} on split '{eval_split}' "
      f"({len(eval_rows)} users, {len(scorer.item_ids)} items):\n"
      + format_table(tables, ks))
  return result
