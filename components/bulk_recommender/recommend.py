"""The bulk recommendation Beam job: user histories through the served model to sharded files.

One row per (user, rank): user_id, rank (1 = best), item_id, score; docs/serving.md, "Bulk".
"""

import csv
import dataclasses
import io
import logging
import os
import time
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
import numpy as np
import pyarrow as pa
import tensorflow as tf

from components.bulk_recommender import histories as histories_lib
from components.bulk_recommender import saved_model
from components.bulk_recommender import user_rules
from serving import contract

FORMATS = ("parquet", "csv")
FILE_PREFIX = "recommendations"
COLUMNS = ("user_id", "rank", "item_id", "score")
SCHEMA = pa.schema([("user_id", pa.string()), ("rank", pa.int32()),
                    ("item_id", pa.string()), ("score", pa.float32())])
DEFAULT_K = 10
DEFAULT_BATCH_SIZE = 256
METRICS_NAMESPACE = "bulk_recommend"
USERS, ROWS, MISSING_USERS = "users", "rows", "users_without_history"
RULE_USERS, RULES_WITHOUT_HISTORY, CALLS = "users_with_rules", "rules_without_history", "calls"
PROGRESS_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class BulkSettings:
  """What one bulk run computes; ``extra_inputs`` feeds a signature's other inputs (rules).

  ``rules_file``: per-user values of those inputs (``user_rules``), merged with
  ``extra_inputs`` for the users it names.
  """
  model_dir: str                       # the SavedModel folder (saved_model.resolve_model_dir)
  k: int = DEFAULT_K
  signature: str = contract.DEFAULT_SIGNATURE
  extra_inputs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  output_format: str = "parquet"
  num_shards: int = 0                  # 0: the runner decides
  batch_size: int = DEFAULT_BATCH_SIZE
  rules_file: Optional[str] = None

  def check(self) -> Dict[str, saved_model.InputSpec]:
    """Raises ValueError (ModelError for the model) on bad settings; the extra input specs."""
    if self.output_format not in FORMATS:
      raise ValueError(f"unknown format {self.output_format!r}; choose one of {list(FORMATS)}")
    for name in ("k", "batch_size"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if self.num_shards < 0:
      raise ValueError(f"num_shards must be >= 0, got {self.num_shards}")
    specs = saved_model.signature_inputs(self.model_dir, self.signature, self.extra_inputs)
    if self.rules_file:
      if not specs:
        raise ValueError(f"signature '{self.signature}' takes no inputs a rules file could "
                         f"set; use --signature {contract.RULES_SIGNATURE}")
      user_rules.check_file(self.rules_file, specs)
    return specs


def padded(histories: Sequence[Sequence[str]]) -> np.ndarray:
  """Histories as a [batch, longest] string array, left-padded with ``contract.PAD``."""
  width = max(1, max(len(h) for h in histories))
  return np.array([[contract.PAD] * (width - len(h)) + list(h) for h in histories],
                  dtype=object)


def rows_of(user: str, item_ids: np.ndarray, scores: np.ndarray) -> Iterator[Dict[str, Any]]:
  """The output rows of one user; slots without an item (id "", score -inf) are left out."""
  rank = 0
  for item, score in zip(item_ids, scores):
    item = item.decode("utf-8") if isinstance(item, bytes) else str(item)
    if not item or not np.isfinite(score):
      continue
    rank += 1
    yield {"user_id": user, "rank": rank, "item_id": item, "score": float(score)}


class _Progress:
  """Logs users done and users/s of this worker at most every few seconds."""

  def __init__(self, every_seconds: float):
    self._every = every_seconds
    self._start = self._last = time.monotonic()
    self._done = 0

  def add(self, users: int) -> None:
    self._done += users
    now = time.monotonic()
    if now - self._last >= self._every:
      self._last = now
      logging.info("bulk recommendations: %d users done on this worker (%.0f users/s)",
                   self._done, self._done / max(now - self._start, 1e-9))


class RecommendDoFn(beam.DoFn):
  """Batches of UserHistory (or (user, history, UserRules)) -> output rows, from the
  SavedModel loaded once per worker.

  ``settings.signature`` is called with history [batch, longest] (left-padded with
  ""), k and ``settings.extra_inputs`` merged with each user's rules (per-row inputs
  row by row; rank-0 inputs as given, one call per distinct set of them in a batch).
  """

  def __init__(self, settings: BulkSettings, input_specs: Mapping[str, saved_model.InputSpec]):
    super().__init__()
    self._settings = settings
    self._specs = dict(input_specs)
    self._users = beam.metrics.Metrics.counter(METRICS_NAMESPACE, USERS)
    self._rows = beam.metrics.Metrics.counter(METRICS_NAMESPACE, ROWS)
    self._rule_users = beam.metrics.Metrics.counter(METRICS_NAMESPACE, RULE_USERS)
    self._calls = beam.metrics.Metrics.counter(METRICS_NAMESPACE, CALLS)

  def setup(self):
    self._loaded = tf.saved_model.load(self._settings.model_dir)
    self._call = self._loaded.signatures[self._settings.signature]
    self._k = tf.constant(self._settings.k, tf.int32)
    self._progress = _Progress(PROGRESS_SECONDS)

  def _rows_of_call(self, batch: Sequence[tuple], extra: Mapping[str, tf.Tensor]):
    outputs = self._call(**{contract.INPUT_HISTORY: tf.constant(padded([e[1] for e in batch])),
                            contract.INPUT_K: self._k}, **extra)
    self._calls.inc()
    ids = outputs[contract.OUTPUT_ITEM_IDS].numpy()
    scores = outputs[contract.OUTPUT_SCORES].numpy()
    for element, user_ids, user_scores in zip(batch, ids, scores):
      yield from rows_of(element[0], user_ids, user_scores)

  def process(self, batch: List[tuple]):
    users = [element[2] if len(element) > 2 else None for element in batch]
    self._rule_users.inc(sum(1 for u in users if u is not None))
    rows = 0
    if not any(users):
      calls = [(batch, saved_model.request_tensors(self._specs, self._settings.extra_inputs,
                                                   len(batch)))]
    else:
      groups = user_rules.row_values(self._settings.extra_inputs, users, self._specs)
      calls = [([batch[i] for i in positions], saved_model.row_tensors(self._specs, values))
               for positions, values in groups.values()]
    for elements, extra in calls:
      for row in self._rows_of_call(elements, extra):
        rows += 1
        yield row
    self._users.inc(len(batch))
    self._rows.inc(rows)
    self._progress.add(len(batch))


def _csv_line(row: Dict[str, Any]) -> str:
  out = io.StringIO()
  csv.writer(out, lineterminator="").writerow(
      [row["user_id"], row["rank"], row["item_id"], str(np.float32(row["score"]))])
  return out.getvalue()


class WriteRecommendations(beam.PTransform):
  """Rows -> ``<output>/recommendations-SSSSS-of-NNNNN.<format>``."""

  def __init__(self, output_dir: str, output_format: str, num_shards: int = 0):
    super().__init__()
    self._prefix = os.path.join(output_dir, FILE_PREFIX)
    self._format = output_format
    self._num_shards = num_shards

  def expand(self, rows):
    if self._format == "parquet":
      return rows | "Parquet" >> beam.io.WriteToParquet(
          self._prefix, SCHEMA, file_name_suffix=".parquet", num_shards=self._num_shards)
    return (rows | "CsvLines" >> beam.Map(_csv_line)
            | "Csv" >> beam.io.WriteToText(self._prefix, file_name_suffix=".csv",
                                           num_shards=self._num_shards,
                                           header=",".join(COLUMNS)))


class _KeepWanted(beam.DoFn):
  """(user, {history: [...], wanted: [...]}) -> the UserHistory of a wanted user."""

  def __init__(self):
    super().__init__()
    self._missing = beam.metrics.Metrics.counter(METRICS_NAMESPACE, MISSING_USERS)

  def process(self, element):
    user, grouped = element
    if not list(grouped["wanted"]):
      return
    found = list(grouped["history"])
    if not found:
      self._missing.inc()
      return
    yield user, found[0]


def only_users(histories, user_ids):
  """The UserHistory of the users in ``user_ids`` (PCollection of ids); counts the missing."""
  return ({"history": histories, "wanted": user_ids | "Key" >> beam.Map(lambda u: (u, None))}
          | "Join" >> beam.CoGroupByKey()
          | "Wanted" >> beam.ParDo(_KeepWanted()))


class _AttachRules(beam.DoFn):
  """(user, {history: [...], rules: [...]}) -> (user, history, UserRules or None)."""

  def __init__(self):
    super().__init__()
    self._orphans = beam.metrics.Metrics.counter(METRICS_NAMESPACE, RULES_WITHOUT_HISTORY)

  def process(self, element):
    user, grouped = element
    found, rules = list(grouped["history"]), list(grouped["rules"])
    if not found:
      if rules:
        self._orphans.inc()
      return
    yield user, found[0], rules[0] if rules else None


def with_user_rules(histories, rules):
  """(user, history, that user's rules or None) for every user of ``histories``; rules
  of users without a history are counted and dropped."""
  return ({"history": histories, "rules": rules}
          | "JoinRules" >> beam.CoGroupByKey()
          | "AttachRules" >> beam.ParDo(_AttachRules()))


def recommend(histories, settings: BulkSettings,
              input_specs: Mapping[str, saved_model.InputSpec]):
  """UserHistory (or (user, history, UserRules)) PCollection -> output rows PCollection."""
  return (histories
          | "Batch" >> beam.BatchElements(min_batch_size=settings.batch_size,
                                           max_batch_size=settings.batch_size)
          | "Recommend" >> beam.ParDo(RecommendDoFn(settings, input_specs)))


@dataclasses.dataclass(frozen=True)
class BulkResult:
  """What a run wrote: counts (Beam metrics), files, and its wall time."""
  users: int
  rows: int
  users_without_history: int
  files: List[str]
  seconds: float
  users_with_rules: int = 0
  rules_without_history: int = 0   # rules file users with no history in the input
  calls: int = 0                   # model calls

  @property
  def users_per_second(self) -> float:
    return self.users / self.seconds if self.seconds > 0 else 0.0


def _counter(result, name: str) -> int:
  found = result.metrics().query(
      MetricsFilter().with_namespace(METRICS_NAMESPACE).with_name(name))["counters"]
  return int(sum(c.committed or 0 for c in found))


def output_files(output_dir: str) -> List[str]:
  """The recommendation files under ``output_dir``."""
  return sorted(tf.io.gfile.glob(os.path.join(output_dir, FILE_PREFIX + "-*")))


def run(settings: BulkSettings, read_histories: beam.PTransform, output_dir: str,
        users_file: Optional[str] = None, make_pipeline=None) -> BulkResult:
  """Runs the whole job: histories (only ``users_file``'s users, if given) to files,
  each user under the global rules merged with theirs (``settings.rules_file``).

  ``make_pipeline``: a no-argument factory of the Beam pipeline (default: a
  DirectRunner pipeline); the TFX executor passes its own.
  """
  input_specs = settings.check()
  start = time.monotonic()
  pipeline = make_pipeline() if make_pipeline else beam.Pipeline()
  with pipeline as p:
    found = p | "Histories" >> read_histories
    if users_file:
      wanted = p | "Users" >> histories_lib.ReadUserIds(users_file)
      found = only_users(found, wanted)
    if settings.rules_file:
      rules = p | "Rules" >> user_rules.ReadUserRules(settings.rules_file, input_specs)
      found = with_user_rules(found, rules)
    _ = (recommend(found, settings, input_specs)
         | "Write" >> WriteRecommendations(output_dir, settings.output_format,
                                           settings.num_shards))
  result = p.result
  return BulkResult(users=_counter(result, USERS), rows=_counter(result, ROWS),
                    users_without_history=_counter(result, MISSING_USERS),
                    files=output_files(output_dir), seconds=time.monotonic() - start,
                    users_with_rules=_counter(result, RULE_USERS),
                    rules_without_history=_counter(result, RULES_WITHOUT_HISTORY),
                    calls=_counter(result, CALLS))
