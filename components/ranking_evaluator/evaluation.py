"""Full-ranking evaluation of an exported model, a popularity and a text-similarity baseline.

Usable without TFX; the model is read through the ``serving.contract`` signatures only.
"""

import abc
import collections
import os
from typing import (Callable, Collection, Dict, Iterator, List, Mapping, NamedTuple,
                    Optional, Sequence, Tuple)

from absl import logging
import numpy as np
import tensorflow as tf

from components.ranking_evaluator import metrics
from components.ranking_evaluator import slices
from serving import contract
from trainer import features
from trainer import item_vectors
from trainer import text_match

DEFAULT_KS = (5, 10, 20)
MODEL, POPULARITY, BASELINE, TEXT_SIMILARITY = "model", "popularity", "baseline", "text_similarity"
NO_TEXT_VECTORS_NOTE = ("text-similarity baseline skipped: the run has no item vectors "
                        "(--item-vectors or --embed-items)")
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


def _read_examples(files: Sequence[str]) -> Iterator[Tuple[str, tf.train.Example]]:
  """(where, example) of every tf.Example record (GZIP or plain) of ``files``."""
  for path in files:
    dataset = tf.data.TFRecordDataset(path, compression_type=_compression(path))
    for number, record in enumerate(dataset.as_numpy_iterator()):
      where = f"{path}, record {number}"
      try:
        example = tf.train.Example.FromString(record)
      except Exception as e:  # pylint: disable=broad-except
        raise ValueError(f"{where}: not a tf.train.Example ({e})") from e
      yield where, example


def sequence_row(example: tf.train.Example, where: str) -> SequenceRow:
  """The SequenceRow of one sequence tf.Example; ``where`` names it in errors."""
  user = _bytes_values(example, features.USER_ID, where)
  user_id = user[0] if user else b""
  where = f"{where} (user_id {user_id.decode('utf-8', 'replace')!r})"
  history = tuple(v for v in _bytes_values(example, features.HISTORY, where) if v)
  target = _bytes_values(example, features.TARGET, where)
  if len(target) != 1 or not target[0]:
    raise ValueError(
        f"{where}: feature '{features.TARGET}' must hold exactly one non-empty "
        f"item id, got {target!r}")
  return SequenceRow(user_id, history, target[0])


def read_sequences(files: Sequence[str]) -> List[SequenceRow]:
  """Parses the sequence rows (tf.Example, GZIP or plain TFRecords) of ``files``."""
  return [sequence_row(example, where) for where, example in _read_examples(files)]


def read_item_attributes(files: Sequence[str]) -> Dict[bytes, Tuple[bytes, ...]]:
  """Item id -> attributes ("" dropped) of the ``items`` split rows in ``files``."""
  attributes = {}
  for where, example in _read_examples(files):
    item = [v for v in _bytes_values(example, features.ITEM_ID, where) if v]
    if item:
      attributes[item[0]] = tuple(
          v for v in _bytes_values(example, features.ITEM_ATTRIBUTES, where) if v)
  return attributes


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


def train_item_counts(train_rows: Sequence[SequenceRow]) -> collections.Counter:
  """Raw item id -> occurrences in the training sequences (history and target)."""
  counts = collections.Counter()
  for row in train_rows:
    counts.update(row.history + (row.target,))
  return counts


class PopularityScorer(Scorer):
  """Every user gets the same scores: the items' training interaction counts."""

  def __init__(self, train_counts: Mapping[bytes, int], item_ids: Sequence[bytes]):
    self.item_ids = list(item_ids)
    self.popularity = metrics.popularity_scores(
        {row: train_counts[item] for row, item in enumerate(self.item_ids)
         if item in train_counts}, len(self.item_ids))

  def scores(self, histories):
    return np.broadcast_to(self.popularity, (len(histories), len(self.item_ids)))


def load_text_vectors(path: str) -> Dict[bytes, np.ndarray]:
  """Raw item id -> text vector of an item vectors file (``trainer.item_vectors``)."""
  vectors = item_vectors.read_vectors(path)
  return {item.encode("utf-8"): row for item, row in zip(vectors.item_ids, vectors.vectors)}


class TextSimilarityScorer(Scorer):
  """Cosine between each candidate's text vector and the mean of the history's text vectors
  (``trainer.text_match``, the term a ``text_match`` retrieval model learns to weigh).

  An item without a vector scores 0, and so does every item for a history without one
  (all tied, ranked by the protocol's tie rule).
  """

  def __init__(self, text_vectors: Mapping[bytes, np.ndarray], item_ids: Sequence[bytes]):
    if not text_vectors:
      raise ValueError("no text vectors")
    self.item_ids = list(item_ids)
    # Row r of the table: the r-th item with a vector; the last row (zero): no vector.
    self._rows = {item: row for row, item in enumerate(text_vectors)}
    vectors = np.stack([np.asarray(v, np.float32) for v in text_vectors.values()])
    self.dim = vectors.shape[1]
    self._table = np.concatenate([vectors, np.zeros([1, self.dim], np.float32)])
    no_vector = len(vectors)
    self._candidates = text_match.unit_rows(
        self._table[[self._rows.get(item, no_vector) for item in self.item_ids]]).numpy()

  def scores(self, histories):
    no_vector = len(self._table) - 1
    rows = tf.RaggedTensor.from_row_lengths(
        np.array([self._rows.get(item, no_vector) for history in histories
                  for item in history], np.int64),
        np.array([len(history) for history in histories], np.int64))
    queries = text_match.history_query(self._table, rows).numpy()
    return queries @ self._candidates.T


class Ranking(NamedTuple):
  """One scorer's ranking of the evaluated rows."""
  ranks: np.ndarray      # [U] rank of each target (``inf``: not in the catalogue)
  top_items: np.ndarray  # [U, k] catalogue indices, best first, MISSING padding


def rank_rows(scorer: Scorer, rows: Sequence[SequenceRow], k: int,
              batch_size: int = DEFAULT_BATCH_SIZE) -> Ranking:
  """Ranks of the targets of ``rows`` and their top-k lists, batch by batch.

  Ranks exclude each user's history except the target; top-k lists exclude the
  whole history, as the serving signature does.
  """
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
    all_top.append(metrics.top_k_with_mask(scores, k, history_mask))
  return Ranking(np.concatenate(all_ranks), np.concatenate(all_top))


class SliceContext(NamedTuple):
  """What slices and beyond-accuracy metrics need besides a scorer's ranking."""
  masks: Dict[str, np.ndarray]        # slice name -> [U] users in it
  train_counts: Mapping[bytes, int]   # raw item id -> training interactions
  item_attributes: Optional[Mapping[bytes, Sequence[bytes]]]


def slice_context(eval_rows: Sequence[SequenceRow], train_counts: Mapping[bytes, int],
                  item_attributes: Optional[Mapping[bytes, Sequence[bytes]]] = None,
                  cold_items: Optional[Collection[bytes]] = None) -> SliceContext:
  """Slices of ``eval_rows`` (``slices.assign``) and the data of the other metrics."""
  masks = slices.assign([len(row.history) for row in eval_rows],
                        [row.target for row in eval_rows], train_counts, cold_items)
  return SliceContext(masks, train_counts, item_attributes)


def beyond_accuracy(ranking: Ranking, item_ids: Sequence[bytes], context: SliceContext,
                    ks: Sequence[int]) -> Dict[str, float]:
  """``novelty@k`` and (with item attributes) ``diversity@k``; a metric that is
  undefined (e.g. diversity without attributes) is left out."""
  counts = [context.train_counts.get(item, 0) for item in item_ids]
  information = metrics.self_information(counts, sum(context.train_counts.values()))
  values = {metrics.novelty_key(k): metrics.novelty_at_k(ranking.top_items, information, k)
            for k in ks}
  attributes = context.item_attributes or {}
  if any(attributes.values()):
    diversity = metrics.intra_list_diversity(
        ranking.top_items, [attributes.get(item, ()) for item in item_ids], ks)
    values.update({metrics.diversity_key(k): v for k, v in diversity.items()})
  return {name: value for name, value in values.items() if value is not None}


def evaluate_scorer(scorer: Scorer, rows: Sequence[SequenceRow], ks: Sequence[int],
                    context: SliceContext,
                    batch_size: int = DEFAULT_BATCH_SIZE) -> Dict[str, Dict]:
  """Every metric of one scorer from one ranking pass over ``rows``.

  Returns:
    ``{"metrics": metrics.summarize(...), "slices": {slice: summary},
    "beyond_accuracy": {"novelty@k", "diversity@k"}}``.
  """
  ks = metrics.check_ks(ks)
  ranking = rank_rows(scorer, rows, max(ks), batch_size)
  return {
      "metrics": metrics.summarize(ranking.ranks, ks, top_items=ranking.top_items,
                                   num_items=len(scorer.item_ids)),
      "slices": slices.slice_metrics(ranking.ranks, context.masks, ks),
      "beyond_accuracy": beyond_accuracy(ranking, scorer.item_ids, context, ks),
  }


def report_k(ks: Sequence[int]) -> int:
  """The cut-off of the slice tables: 10 if evaluated, else the largest."""
  return 10 if 10 in ks else max(ks)


def format_table(results: Dict[str, Dict[str, float]], ks: Sequence[int]) -> str:
  """A fixed-width table: one row per metric, one column per evaluated scorer."""
  names = (metrics.metric_names(ks)
           + [metrics.novelty_key(k) for k in ks] + [metrics.diversity_key(k) for k in ks]
           + [metrics.NUM_USERS_KEY, metrics.NUM_MISSING_TARGETS_KEY])
  columns = list(results)
  width = max(len(name) for name in names) + 2
  cell = max([12] + [len(c) + 2 for c in columns])
  lines = [f"{'metric':<{width}}" + "".join(f"{c:>{cell}}" for c in columns)]
  for name in names:
    cells = []
    for column in columns:
      value = results[column].get(name)
      if value is None:
        cells.append(f"{'-':>{cell}}")
      elif isinstance(value, int):
        cells.append(f"{value:>{cell}d}")
      else:
        cells.append(f"{value:>{cell}.4f}")
    lines.append(f"{name:<{width}}" + "".join(cells))
  return "\n".join(lines)


def format_report(result: Dict, ks: Sequence[int]) -> str:
  """The metric table (with beyond-accuracy rows) and the slice table of a result."""
  scorers = [name for name in (MODEL, POPULARITY, TEXT_SIMILARITY, BASELINE) if name in result]
  beyond = result.get("beyond_accuracy", {})
  tables = {name: {**result[name], **beyond.get(name, {})} for name in scorers}
  k = report_k(ks)
  slice_table = slices.format_table(
      {name: result["slices"][name] for name in scorers if name in result.get("slices", {})},
      [metrics.hr_key(k), metrics.ndcg_key(k)])
  return format_table(tables, ks) + ("\n" + slice_table if slice_table else "")


def evaluate_saved_model(saved_model_path: str, examples: str, *,
                         eval_split: str = features.TEST_SPLIT,
                         train_split: str = features.TRAIN_SPLIT,
                         ks: Sequence[int] = DEFAULT_KS,
                         batch_size: int = DEFAULT_BATCH_SIZE,
                         with_popularity: bool = True,
                         eval_rows: Optional[Sequence[SequenceRow]] = None,
                         train_rows: Optional[Sequence[SequenceRow]] = None,
                         item_attributes: Optional[Mapping[bytes, Sequence[bytes]]] = None,
                         cold_items: Optional[Collection[bytes]] = None,
                         text_vectors: Optional[Mapping[bytes, np.ndarray]] = None,
                         log: Callable[[str], None] = logging.info) -> Dict:
  """Full-ranking metrics of the SavedModel at ``saved_model_path``.

  Args:
    saved_model_path: folder with ``saved_model.pb`` and the signatures of
      ``serving.contract``.
    examples: an Examples artifact uri (``Split-<name>/`` folders) or a file
      pattern with ``{split}`` (see ``split_files``).
    eval_split: split whose targets are ranked.
    train_split: split whose sequences (history + target) give the popularity
      counts, the popularity slices and the novelty.
    ks: cut-offs of HR/NDCG/coverage/novelty/diversity.
    batch_size: users scored at a time.
    with_popularity: also rank with the popularity baseline.
    eval_rows, train_rows: already-read rows, to skip reading ``examples``.
    item_attributes: raw item id -> attributes, for ``diversity@k``; None
      leaves diversity out.
    cold_items: ids of the cold items (``slices.assign``); None: the targets
      without training interactions.
    text_vectors: raw item id -> text vector (``load_text_vectors``): also rank
      with the text-similarity baseline (``TextSimilarityScorer``) on the model's
      catalogue. None leaves it out.
    log: where the metrics tables go.
  Returns:
    ``{"split", "num_items", "model": {metric: value}, "popularity": {...},
    "slices": {"model": {slice: {metric: value}}, "popularity": {...}},
    "beyond_accuracy": {"model": {...}, "popularity": {...}}}`` (no
    ``popularity`` entries without ``with_popularity``; ``text_similarity``
    entries next to them with ``text_vectors``).
  """
  ks = metrics.check_ks(ks)
  if eval_rows is None:
    eval_rows = load_split(examples, eval_split)
  scorer = SavedModelScorer(saved_model_path)
  if train_rows is None:
    train_rows = load_split(examples, train_split)
  counts = train_item_counts(train_rows)
  context = slice_context(eval_rows, counts, item_attributes, cold_items)
  scorers = {MODEL: scorer}
  if with_popularity:
    scorers[POPULARITY] = PopularityScorer(counts, scorer.item_ids)
  if text_vectors is not None:
    scorers[TEXT_SIMILARITY] = TextSimilarityScorer(text_vectors, scorer.item_ids)
  result = {"split": eval_split, "num_items": len(scorer.item_ids),
            "slices": {}, "beyond_accuracy": {}}
  for name, each in scorers.items():
    evaluated = evaluate_scorer(each, eval_rows, ks, context, batch_size)
    result[name] = evaluated["metrics"]
    result["slices"][name] = evaluated["slices"]
    result["beyond_accuracy"][name] = evaluated["beyond_accuracy"]
  log(f"Full-ranking metrics of {saved_model_path} on split '{eval_split}' "
      f"({len(eval_rows)} users, {len(scorer.item_ids)} items):\n"
      + format_report(result, ks))
  return result
