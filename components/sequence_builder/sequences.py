"""Leave-one-out sequence examples, catalogue examples and their schema.

Pure functions (no Beam), so the split rule can be read and tested on its own.
"""

from typing import Dict, Iterable, List, Sequence, Tuple

import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from components.sequence_builder import records
from trainer import features

# Scalar (FixedLen, shape []) and variable-length bytes features of the output.
SCALAR_FEATURES = (
    features.USER_ID, features.TARGET, features.ITEM_ID, features.TITLE)
LIST_FEATURES = (features.HISTORY, features.ITEM_ATTRIBUTES)


def order_items(events: Iterable[Tuple[int, bytes]]) -> List[bytes]:
  """Item ids of one user's (timestamp, item_id) events in time order.

  Ties on the timestamp are broken by the item id (as a string), so the order
  does not depend on the order the events arrive in.
  """
  return [item for _, item in sorted(events)]


def leave_one_out(
    items: Sequence[bytes], max_history_length: int = 0
) -> Dict[str, Tuple[List[bytes], bytes]]:
  """Split name -> (history, target) for one user's time-ordered items.

  Args:
    items: ``x_1 .. x_n``, oldest first, n >= 3.
    max_history_length: if > 0, keep only the most recent this many history
      items; 0 keeps all.

  Returns:
    ``{train: (x_1..x_{n-3}, x_{n-2}), eval: (x_1..x_{n-2}, x_{n-1}),
    test: (x_1..x_{n-1}, x_n)}``, histories oldest first.

  Raises:
    ValueError: fewer than 3 items.
  """
  n = len(items)
  if n < 3:
    raise ValueError(f"leave-one-out needs at least 3 items, got {n}")
  result = {}
  for offset, split in enumerate(features.SEQUENCE_SPLITS):
    target_index = n - 3 + offset
    history = list(items[:target_index])
    if max_history_length > 0:
      history = history[-max_history_length:]
    result[split] = (history, items[target_index])
  return result


def _bytes_feature(values: Sequence[bytes]) -> tf.train.Feature:
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _example(user_id: bytes, history: Sequence[bytes], target: bytes,
             item_id: bytes, item_attributes: Sequence[bytes],
             title: bytes) -> tf.train.Example:
  return tf.train.Example(features=tf.train.Features(feature={
      features.USER_ID: _bytes_feature([user_id]),
      features.HISTORY: _bytes_feature(history),
      features.TARGET: _bytes_feature([target]),
      features.ITEM_ID: _bytes_feature([item_id]),
      features.ITEM_ATTRIBUTES: _bytes_feature(item_attributes),
      features.TITLE: _bytes_feature([title]),
  }))


def sequence_example(user_id: bytes, history: Sequence[bytes],
                     target: bytes) -> tf.train.Example:
  """A train/eval/test row; item_id and title b"", item_attributes []."""
  return _example(user_id, history, target, b"", (), b"")


def item_example(item_id: bytes, attributes: Sequence[bytes],
                 title: bytes) -> tf.train.Example:
  """An items-split row; user_id and target b"", history []."""
  return _example(b"", (), b"", item_id, attributes, title)


def merge_item_rows(
    rows: Iterable[records.ItemRow]) -> Tuple[bytes, Tuple[bytes, ...]]:
  """(title, attributes) of one item from its item-table rows (maybe none).

  Duplicate rows are merged independently of their order: the rows are
  sorted, the first non-empty title wins and the attributes are the union, in
  order of first appearance over the sorted rows.
  """
  title = b""
  attributes = []
  seen = set()
  for row in sorted(rows):
    if not title and row.title:
      title = row.title
    for attribute in row.attributes:
      if attribute not in seen:
        seen.add(attribute)
        attributes.append(attribute)
  return title, tuple(attributes)


def output_schema() -> schema_pb2.Schema:
  """Schema of every output split, as SchemaGen would write it for Transform.

  ``user_id``, ``target``, ``item_id``, ``title``: BYTES, shape [] (FixedLen
  scalar), present in every example. ``history``, ``item_attributes``: BYTES,
  variable length (possibly empty), present in every example.
  """
  schema = schema_pb2.Schema()
  for name in (features.USER_ID, features.HISTORY, features.TARGET,
               features.ITEM_ID, features.ITEM_ATTRIBUTES, features.TITLE):
    feature = schema.feature.add(name=name, type=schema_pb2.BYTES)
    feature.presence.min_fraction = 1.0
    feature.presence.min_count = 1
    if name in SCALAR_FEATURES:
      feature.shape.SetInParent()  # No dims: a scalar, FixedLenFeature([]).
    else:
      feature.value_count.min = 0
  return schema
