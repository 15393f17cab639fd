"""Each user's full known history, oldest first, as Beam reads it: from sequence examples or events.

Sequence examples: the SequenceBuilder's test split, whose history + target is everything known.
"""

import csv
import os
from typing import Iterable, Iterator, List, Sequence, Tuple

import apache_beam as beam
import tensorflow as tf

from components.ranking_evaluator import evaluation
from components.sequence_builder import sequences
from trainer import features

UserHistory = Tuple[str, Tuple[str, ...]]   # (user_id, item ids oldest first)
FULL_HISTORY_SPLIT = features.TEST_SPLIT


def _text(value: bytes) -> str:
  return value.decode("utf-8")


def example_history(serialized: bytes) -> UserHistory:
  """(user, history + target) of one serialized sequence example."""
  row = evaluation.sequence_row(tf.train.Example.FromString(serialized),
                                "sequence example")
  return _text(row.user_id), tuple(_text(i) for i in row.history + (row.target,))


def example_files(examples: str) -> List[str]:
  """The files of the full-history split of an Examples artifact uri (or a ``{split}`` pattern)."""
  return evaluation.split_files(examples, FULL_HISTORY_SPLIT)


class ReadExampleHistories(beam.PTransform):
  """Sequence example files (GZIP or plain TFRecords) -> UserHistory per user."""

  def __init__(self, files: Sequence[str]):
    super().__init__()
    self._files = list(files)

  def expand(self, pipeline):
    return (pipeline
            | "Files" >> beam.Create(self._files)
            | "Read" >> beam.io.ReadAllFromTFRecord(
                compression_type=beam.io.filesystem.CompressionTypes.AUTO)
            | "Parse" >> beam.Map(example_history))


def event_columns(path: str) -> Tuple[int, int, int]:
  """Positions of user_id, item_id and timestamp in the header of an events CSV."""
  with tf.io.gfile.GFile(path, "r") as f:
    header = next(csv.reader([f.readline()]), [])
  missing = [c for c in features.LOG_REQUIRED_COLUMNS if c not in header]
  if missing:
    raise ValueError(f"events file {path}: no column {missing} in its header {header}; "
                     f"expected the canonical columns {list(features.LOG_REQUIRED_COLUMNS)}")
  return tuple(header.index(c) for c in features.LOG_REQUIRED_COLUMNS)


def event_files(patterns: Sequence[str]) -> List[str]:
  """The files of the events patterns, each pattern matching at least one."""
  files = []
  for pattern in patterns:
    found = sorted(tf.io.gfile.glob(pattern))
    if not found:
      raise ValueError(f"--events {pattern}: no such file")
    files += found
  return files


def _parse_event(line: str, columns: Tuple[int, int, int]) -> Iterator[Tuple[str, Tuple[int, str]]]:
  """(user, (timestamp, item)) of one CSV line; nothing for a blank line."""
  values = next(csv.reader([line]), [])
  if values:
    user, item, timestamp = (values[i] for i in columns)
    yield user, (int(timestamp), item)


def _ordered(element: Tuple[str, Iterable[Tuple[int, str]]]) -> UserHistory:
  user, events = element
  return user, tuple(sequences.order_items(events))


class ReadEventHistories(beam.PTransform):
  """Canonical events CSVs (user_id, item_id, timestamp; header) -> UserHistory per user.

  Every event counts, in time order (ties by item id), as the SequenceBuilder orders them.
  """

  def __init__(self, files: Sequence[str]):
    super().__init__()
    self._files = list(files)
    self._columns = event_columns(self._files[0])

  def expand(self, pipeline):
    columns = self._columns
    reads = [pipeline | f"Read{i}" >> beam.io.ReadFromText(path, skip_header_lines=1)
             for i, path in enumerate(self._files)]
    return (reads | "Lines" >> beam.Flatten()
            | "Parse" >> beam.FlatMap(_parse_event, columns)
            | "ByUser" >> beam.GroupByKey()
            | "Order" >> beam.Map(_ordered))


def check_users_file(path: str) -> str:
  """``path``, or a ValueError when there is no such file."""
  if not tf.io.gfile.exists(path) or tf.io.gfile.isdir(path):
    raise ValueError(f"--users {path}: no such file")
  return path


class ReadUserIds(beam.PTransform):
  """A users file -> its user ids: one per line, blank lines and a ``user_id`` header skipped."""

  def __init__(self, path: str):
    super().__init__()
    self._path = path

  def expand(self, pipeline):
    return (pipeline
            | "Read" >> beam.io.ReadFromText(self._path)
            | "Strip" >> beam.Map(str.strip)
            | "Ids" >> beam.Filter(lambda line: line and line != features.LOG_USER_ID))


def source_name(files: Sequence[str]) -> str:
  """A short name of the input files for the summary."""
  return files[0] if len(files) == 1 else f"{len(files)} files under {os.path.dirname(files[0])}"
