"""Reads the rows the pipeline's ExampleGen wrote (tf.Example) as typed records.

Ids must be BYTES and the timestamp INT64; inferred types are refused rather than used.
"""

from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from trainer import features


_KIND_NAMES = {
    "bytes_list": "BYTES",
    "int64_list": "INT64",
    "float_list": "FLOAT",
    None: "no type (column empty everywhere)",
}


class Interaction(NamedTuple):
  """One row of the interaction log."""
  user_id: bytes
  item_id: bytes
  timestamp: int


class ItemRow(NamedTuple):
  """One row of the item table; ``attributes`` is already split, in order."""
  item_id: bytes
  title: bytes
  attributes: Tuple[bytes, ...]


def _kind(feature: tf.train.Feature) -> Optional[str]:
  return feature.WhichOneof("kind")


def _values(feature: tf.train.Feature) -> list:
  kind = _kind(feature)
  return list(getattr(feature, kind).value) if kind else []


def _describe(example: tf.train.Example, limit: int = 80) -> str:
  """`name=value` of every feature of a row, for error messages."""
  parts = []
  for name in sorted(example.features.feature):
    values = _values(example.features.feature[name])
    shown = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v
             for v in values]
    text = repr(shown[0]) if len(shown) == 1 else repr(shown)
    parts.append(f"{name}={text[:limit]}")
  return ", ".join(parts)


def _text_bytes(value: Union[bytes, int, float]) -> bytes:
  """Bytes of the string form of one feature value."""
  if isinstance(value, bytes):
    return value
  if isinstance(value, float):
    # Values went through float32; print the shortest form that round-trips.
    return str(np.float32(value)).encode("utf-8")
  return str(value).encode("utf-8")


def _single_value(example: tf.train.Example, name: str, table: str,
                  split: str, required: Sequence[str]):
  """The one value of required column `name`, or a ValueError saying why not."""
  feature_map = example.features.feature
  if name not in feature_map:
    raise ValueError(
        f"The {table} (split '{split}') has no column '{name}'. Required "
        f"columns: {list(required)}; columns found: {sorted(feature_map)}.")
  values = _values(feature_map[name])
  if len(values) != 1:
    what = "no value (empty cell)" if not values else f"{len(values)} values"
    raise ValueError(
        f"A row of the {table} (split '{split}') has {what} for column "
        f"'{name}', expected exactly one. Row: {_describe(example)}")
  return values[0]


def _id_bytes(example: tf.train.Example, name: str, table: str, split: str,
              required: Sequence[str]) -> bytes:
  """Required id column as bytes (BYTES, non-empty)."""
  kind = _kind(example.features.feature[name]) if (
      name in example.features.feature) else "missing"
  if kind in ("int64_list", "float_list"):
    raise ValueError(
        f"Feature '{name}' of the {table} (split '{split}') must be a string "
        f"id (BYTES), got {_KIND_NAMES[kind]}: numbers lose what the client "
        "sends (\"0042\" -> 42); read the canonical data with "
        f"pipeline.ingest.example_gen. Row: {_describe(example)}")
  value = _single_value(example, name, table, split, required)
  if not value:
    raise ValueError(
        f"A row of the {table} (split '{split}') has an empty '{name}'. "
        f"Row: {_describe(example)}")
  return value


def parse_interaction(serialized: bytes, split: str) -> Interaction:
  """Parses one serialized interaction-log tf.Example.

  Args:
    serialized: a tf.Example with at least ``user_id``, ``item_id`` (BYTES,
      one value) and ``timestamp`` (INT64, one value).
    split: the input split it came from, named in errors.

  Returns:
    The Interaction; ids as bytes, the timestamp as int.

  Raises:
    ValueError: a required column is missing, empty, multi-valued or of the
      wrong type.
  """
  example = tf.train.Example.FromString(serialized)
  table = "interaction log"
  required = features.LOG_REQUIRED_COLUMNS
  for name in required:  # Report a missing column before any row problem.
    if name not in example.features.feature:
      _single_value(example, name, table, split, required)
  kind = _kind(example.features.feature[features.LOG_TIMESTAMP])
  if kind != "int64_list":
    raise ValueError(
        f"feature '{features.LOG_TIMESTAMP}' must be INT64, got "
        f"{_KIND_NAMES[kind]} in split '{split}' of the {table} (float32 ties "
        "unix times minutes apart; pipeline.ingest.example_gen writes integer "
        f"microseconds). Row: {_describe(example)}")
  timestamp = _single_value(
      example, features.LOG_TIMESTAMP, table, split, required)
  return Interaction(
      user_id=_id_bytes(example, features.LOG_USER_ID, table, split, required),
      item_id=_id_bytes(example, features.LOG_ITEM_ID, table, split, required),
      timestamp=timestamp)


def split_attributes(values: list) -> Tuple[bytes, ...]:
  """Attribute values of one row: split on ``|``, stripped, empties dropped."""
  result = []
  separator = features.ATTRIBUTE_SEPARATOR.encode("utf-8")
  for value in values:
    for part in _text_bytes(value).split(separator):
      part = part.strip()
      if part:
        result.append(part)
  return tuple(result)


def parse_item_row(serialized: bytes, split: str) -> Optional[ItemRow]:
  """Parses one serialized item-table tf.Example.

  Args:
    serialized: a tf.Example with ``item_id`` and optionally ``title`` and
      ``attributes`` (``|``-separated); any of them may be missing or empty.
    split: the input split it came from, named in errors.

  Returns:
    The ItemRow (title ``b""`` when unknown), or None when the row's item id
    cell is empty (it cannot be attached to any item).

  Raises:
    ValueError: the table has no ``item_id`` column, or the id is not BYTES
      or has more than one value.
  """
  example = tf.train.Example.FromString(serialized)
  feature_map = example.features.feature
  table = "item table"
  if features.ITEM_TABLE_ID not in feature_map:
    _single_value(example, features.ITEM_TABLE_ID, table, split,
                  (features.ITEM_TABLE_ID,))
  if not _values(feature_map[features.ITEM_TABLE_ID]):
    return None
  item_id = _id_bytes(example, features.ITEM_TABLE_ID, table, split,
                      (features.ITEM_TABLE_ID,))
  title = b""
  if features.ITEM_TABLE_TITLE in feature_map:
    titles: List = _values(feature_map[features.ITEM_TABLE_TITLE])
    title = b" ".join(_text_bytes(t) for t in titles).strip()
  attributes = ()
  if features.ITEM_TABLE_ATTRIBUTES in feature_map:
    attributes = split_attributes(
        _values(feature_map[features.ITEM_TABLE_ATTRIBUTES]))
  return ItemRow(item_id=item_id, title=title, attributes=attributes)
