"""The served model holds no user ids and no per-user parameters.

Read generally from the SavedModel the tiny run pushed: every string constant of its
graph, every asset file, every variable's values (strings) and shapes.
"""

import os
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pandas as pd
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2

from pipeline.ingest import canonical
from trainer import features

ASSET_DIRS = ("assets", "assets.extra")


def graph_strings(path: str) -> Set[str]:
  """Every string constant in the SavedModel's graph and its functions."""
  model = saved_model_pb2.SavedModel()
  model.ParseFromString(Path(path, "saved_model.pb").read_bytes())
  strings = set()
  for graph in (m.graph_def for m in model.meta_graphs):
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    for node in nodes:
      if node.op == "Const" and node.attr["dtype"].type == types_pb2.DT_STRING:
        strings.update(s.decode("utf-8", "replace") for s in node.attr["value"].tensor.string_val)
  return strings


def asset_lines(path: str) -> Set[str]:
  """Every line of every asset file (vocabularies are one entry a line)."""
  lines = set()
  for folder in ASSET_DIRS:
    for file in Path(path, folder).rglob("*") if Path(path, folder).is_dir() else []:
      if file.is_file():
        lines.update(file.read_bytes().decode("utf-8", "replace").splitlines())
  return lines


def variables(path: str) -> Tuple[Dict[str, List[int]], Set[str]]:
  """(name -> shape of every variable, the values of the string variables)."""
  reader = tf.train.load_checkpoint(os.path.join(path, "variables", "variables"))
  shapes = reader.get_variable_to_shape_map()
  strings = set()
  for name, dtype in reader.get_variable_to_dtype_map().items():
    if dtype == tf.string:
      values = tf.reshape(tf.constant(reader.get_tensor(name)), [-1]).numpy()
      strings.update(v.decode("utf-8", "replace") for v in values)
  return shapes, strings


def scan(path: str) -> Tuple[Set[str], Dict[str, List[int]]]:
  """(every string the model holds, every variable's shape)."""
  shapes, variable_strings = variables(path)
  return graph_strings(path) | asset_lines(path) | variable_strings, shapes


def found_in(strings: Set[str], ids: Set[str]) -> Set[str]:
  """The ids that some string holds."""
  return {i for i in ids if any(i in s for s in strings)}


def users_sized(shapes: Dict[str, List[int]], num_users: int) -> List[str]:
  """Variables with a dimension of the user count (a table of users, +1 or +2 for OOV/pad)."""
  sizes = {num_users, num_users + 1, num_users + 2}
  return sorted(name for name, shape in shapes.items() if sizes & set(shape))


def _log(config) -> pd.DataFrame:
  return pd.concat([pd.read_csv(p, dtype=str, keep_default_na=False)
                    for p in canonical.canonical_logs(config.data_root)])


def test_the_served_model_holds_no_user_id_and_no_per_user_parameter(tiny_run,
                                                                      pushed_model_path):
  config, _ = tiny_run
  log = _log(config)
  user_ids = set(log[features.LOG_USER_ID])
  strings, shapes = scan(pushed_model_path)
  # The scan does see the model's vocabularies: its item ids are there.
  assert found_in(strings, set(log[features.LOG_ITEM_ID])) == set(log[features.LOG_ITEM_ID])
  assert found_in(strings, user_ids) == set()
  encoder = config.model.encoder
  others = {encoder.embedding_dim, encoder.ff_dim, encoder.max_seq_len,
            log[features.LOG_ITEM_ID].nunique()}
  if {len(user_ids), len(user_ids) + 1, len(user_ids) + 2} & others:
    pytest.skip(f"{len(user_ids)} users is also a model size here: inconclusive")
  assert users_sized(shapes, len(user_ids)) == []


class _UserTower(tf.Module):
  """What the test must catch: a user vocabulary and a table of per-user embeddings."""

  def __init__(self, vocabulary: str, num_users: int):
    super().__init__()
    self.users = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(vocabulary, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                      tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER), -1)
    self.table = tf.Variable(tf.zeros([num_users + 1, 4]))
    self.last_seen = tf.Variable(["u9"])

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
  def __call__(self, user):
    return tf.gather(self.table, self.users.lookup(user)), tf.constant("u7")


def test_the_scan_finds_user_ids_in_assets_constants_and_variables_and_user_tables(tmp_path):
  vocabulary = tmp_path / "users.txt"
  vocabulary.write_text("u1\nu2\nu3\n")
  path = str(tmp_path / "model")
  tf.saved_model.save(_UserTower(str(vocabulary), 3), path)
  strings, shapes = scan(path)
  assert found_in(strings, {"u1", "u3"}) == {"u1", "u3"}      # asset
  assert found_in(strings, {"u7", "u9", "u5"}) == {"u7", "u9"}   # constant, variable
  assert users_sized(shapes, 3) == ["table/.ATTRIBUTES/VARIABLE_VALUE"]
