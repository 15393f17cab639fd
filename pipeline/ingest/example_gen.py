"""ExampleGen for the canonical CSV tables, with declared feature types.

Ids and text are BYTES as written, ``timestamp`` INT64 microseconds (CsvExampleGen would infer).
"""

import csv
import decimal
import os
from typing import Any, Dict, Iterator, Optional

import apache_beam as beam
import tensorflow as tf
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs

from trainer import features

# The ExampleGen ``timestamp`` unit: microseconds of the canonical seconds.
TIMESTAMP_UNITS_PER_SECOND = 1_000_000

_BYTES, _INT64_MICROS, _FLOAT = "bytes", "int64_micros", "float"
# Feature type of every column of the canonical tables (see canonical.py).
COLUMN_TYPES = {
    features.LOG_USER_ID: _BYTES,
    features.LOG_ITEM_ID: _BYTES,
    features.LOG_TIMESTAMP: _INT64_MICROS,
    features.LOG_WEIGHT: _FLOAT,
    features.LOG_EVENT_TYPE: _BYTES,
    features.ITEM_TABLE_ID: _BYTES,
    features.ITEM_TABLE_TITLE: _BYTES,
    features.ITEM_TABLE_ATTRIBUTES: _BYTES,
    features.ITEM_TABLE_TEXT: _BYTES,
}


def timestamp_micros(text: str) -> int:
  """Exact integer microseconds of a decimal seconds text ("1.000001")."""
  try:
    seconds = decimal.Decimal(text.strip())
  except decimal.InvalidOperation as e:
    raise ValueError(f"{text!r} is not a number") from e
  if not seconds.is_finite():
    raise ValueError(f"{text!r} is not a finite number")
  return int((seconds * TIMESTAMP_UNITS_PER_SECOND).to_integral_value(
      rounding=decimal.ROUND_HALF_EVEN))


def _feature(kind: str, text: str) -> tf.train.Feature:
  """One cell as a feature; an empty cell is a feature without a value."""
  if not text:
    return tf.train.Feature()
  if kind == _BYTES:
    return tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[text.encode("utf-8")]))
  if kind == _INT64_MICROS:
    return tf.train.Feature(
        int64_list=tf.train.Int64List(value=[timestamp_micros(text)]))
  return tf.train.Feature(float_list=tf.train.FloatList(value=[float(text)]))


def read_examples(path: str) -> Iterator[tf.train.Example]:
  """The rows of one canonical CSV file (header first) as tf.Examples.

  Raises:
    ValueError: naming the file and line of a column outside the canonical
      format, a row with another field count or an unparsable number.
  """
  with fileio.open(path, "r") as f:
    rows = csv.reader(f)
    header = next(rows, [])
    unknown = [c for c in header if c not in COLUMN_TYPES]
    if unknown:
      raise ValueError(f"{path}, line 1: column(s) {unknown} are not in the "
                       f"canonical format {sorted(COLUMN_TYPES)}")
    kinds = [COLUMN_TYPES[c] for c in header]
    for row in rows:
      if not row:
        continue
      if len(row) != len(header):
        raise ValueError(f"{path}, line {rows.line_num}: expected "
                         f"{len(header)} fields ({','.join(header)}), found "
                         f"{len(row)}")
      try:
        feature = {name: _feature(kind, text)
                   for name, kind, text in zip(header, kinds, row)}
      except ValueError as e:
        raise ValueError(f"{path}, line {rows.line_num}: {e}") from e
      yield tf.train.Example(features=tf.train.Features(feature=feature))


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _CanonicalCsvToExample(  # pylint: disable=invalid-name
    pipeline: beam.Pipeline, exec_properties: Dict[str, Any],
    split_pattern: str) -> beam.pvalue.PCollection:
  """Every file matching ``split_pattern`` under ``input_base``, as tf.Examples."""
  pattern = os.path.join(
      exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)
  files = sorted(fileio.glob(pattern))
  if not files:
    raise RuntimeError(f"Split pattern {pattern} does not match any files.")
  return (pipeline
          | "Files" >> beam.Create(files)
          | "ReadRows" >> beam.FlatMap(read_examples))


class Executor(BaseExampleGenExecutor):
  """ExampleGen executor for the canonical CSV tables (types in COLUMN_TYPES)."""

  def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
    return _CanonicalCsvToExample


def canonical_example_gen(
    input_base: str,
    input_config: Optional[example_gen_pb2.Input] = None) -> FileBasedExampleGen:
  """A FileBasedExampleGen reading the canonical CSV files under ``input_base``."""
  return FileBasedExampleGen(
      input_base=input_base, input_config=input_config,
      custom_executor_spec=executor_spec.BeamExecutorSpec(Executor))
