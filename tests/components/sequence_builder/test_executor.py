"""SequenceBuilder: time order, leave-one-out splits without leakage, catalogue, schema, errors.

The executor runs directly on GZIP tf.Example TFRecords written here in the
layout ExampleGen uses (``Split-<split>/*.gz``); ids and timestamps use the
feature types the pipeline's ExampleGen declares (BYTES ids, INT64 times,
empty cells as features without values).
"""

import glob
import json
import os
from typing import Dict, List, Optional, Sequence

import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import schema_utils
from tfx.components.example_validator import executor as validator_executor
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx.types import channel_utils
from tfx.types import standard_artifacts
from tfx.utils import io_utils

from components.sequence_builder import anomalies as anomalies_lib
from components.sequence_builder import cold_items
from components.sequence_builder import component as component_lib
from components.sequence_builder import executor as executor_lib
from components.sequence_builder import forgotten_users
from components.sequence_builder import sequences
from trainer import features

# ---------------------------------------------------------------------------
# Input data. (user, item, timestamp) with all-digit ids (written as BYTES),
# rows deliberately not in time order. Expected time order per user, written out by hand:
#   user 1: 20 (100), 30 (200), 10 (300), 50 (400), 40 (500)
#   user 2: 8 (10), 9 (20), 7 (30)                      -> n = 3, empty train history
#   user 3: two rows                                     -> dropped (min 3)
#   user 4: 10, 100, 9 all at t=100 then 5 at t=200      -> ties by id *string*:
#           "10" < "100" < "9" (numeric order would be 9, 10, 100)
INT_LOG = [
    (1, 10, 300), (1, 20, 100), (1, 40, 500), (1, 30, 200), (1, 50, 400),
    (2, 7, 30), (2, 9, 20), (2, 8, 10),
    (3, 10, 5), (3, 20, 6),
    (4, 9, 100), (4, 100, 100), (4, 5, 200), (4, 10, 100),
]
INT_LOG_ORDER = {
    b"1": [b"20", b"30", b"10", b"50", b"40"],
    b"2": [b"8", b"9", b"7"],
    b"4": [b"10", b"100", b"9", b"5"],
}
# Item table with all-digit ids and a single all-digit attribute per row.
INT_ITEMS = [
    {"item_id": "10", "title": "Ten", "attributes": "7"},
    {"item_id": "99", "title": "Never seen", "attributes": "8"},
]


def _feature(value) -> tf.train.Feature:
  """int -> INT64, float -> FLOAT, str/bytes -> BYTES, None -> empty cell."""
  if value is None:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[]))
  if isinstance(value, bool):
    raise TypeError(value)
  if isinstance(value, int):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
  if isinstance(value, float):
    return tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
  if isinstance(value, str):
    value = value.encode("utf-8")
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _write_examples(uri: str, rows_by_split: Dict[str, List[dict]],
                    shards: int = 1) -> standard_artifacts.Examples:
  """An Examples artifact with GZIP TFRecords as ExampleGen writes them."""
  artifact = standard_artifacts.Examples()
  artifact.uri = uri
  artifact.split_names = artifact_utils.encode_split_names(list(rows_by_split))
  for split, rows in rows_by_split.items():
    split_dir = os.path.join(uri, f"Split-{split}")
    os.makedirs(split_dir)
    for shard in range(shards):
      path = os.path.join(
          split_dir, f"data_tfrecord-{shard:05d}-of-{shards:05d}.gz")
      with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for row in rows[shard::shards]:
          example = tf.train.Example(features=tf.train.Features(
              feature={k: _feature(v) for k, v in row.items()}))
          writer.write(example.SerializeToString())
  return artifact


def _log_rows(triples) -> List[dict]:
  """Log rows with the ids as strings (BYTES), as ExampleGen writes them."""
  return [{features.LOG_USER_ID: str(u), features.LOG_ITEM_ID: str(i),
           features.LOG_TIMESTAMP: t} for u, i, t in triples]


def _run(root: str, log: Dict[str, List[dict]],
         items: Optional[Dict[str, List[dict]]] = None,
         anomalies: Optional[standard_artifacts.ExampleAnomalies] = None,
         drift_anomalies: Optional[standard_artifacts.ExampleAnomalies] = None,
         exec_properties: Optional[dict] = None,
         beam_pipeline_args: Sequence[str] = (),
         log_shards: int = 1) -> dict:
  """Runs the executor; returns output examples, schema and stats."""
  input_dict = {"examples": [_write_examples(
      os.path.join(root, "log"), log, shards=log_shards)]}
  if items is not None:
    input_dict["items"] = [_write_examples(os.path.join(root, "items"), items)]
  if anomalies is not None:
    input_dict["anomalies"] = [anomalies]
  if drift_anomalies is not None:
    input_dict["drift_anomalies"] = [drift_anomalies]
  output = standard_artifacts.Examples()
  output.uri = os.path.join(root, "output_examples")
  schema = standard_artifacts.Schema()
  schema.uri = os.path.join(root, "schema")
  context = base_beam_executor.BaseBeamExecutor.Context(
      beam_pipeline_args=list(beam_pipeline_args), tmp_dir=root)
  executor_lib.Executor(context).Do(
      input_dict, {"output_examples": [output], "schema": [schema]},
      exec_properties if exec_properties is not None else
      {"min_interactions": 3, "max_history_length": 0})
  return {"output": output, "schema": schema, "root": root}


def _serialized(output: standard_artifacts.Examples, split: str) -> List[bytes]:
  files = glob.glob(os.path.join(
      artifact_utils.get_split_uri([output], split), "*.gz"))
  assert files, f"no files in split {split}"
  return [r.numpy() for r in tf.data.TFRecordDataset(files, "GZIP")]


def _read(output: standard_artifacts.Examples, split: str) -> List[dict]:
  """Rows of a split as {feature: [bytes values]}."""
  rows = []
  for record in _serialized(output, split):
    example = tf.train.Example.FromString(record)
    rows.append({name: list(f.bytes_list.value)
                 for name, f in example.features.feature.items()})
  return rows


def _by_user(rows: List[dict]) -> Dict[bytes, dict]:
  result = {row[features.USER_ID][0]: row for row in rows}
  assert len(result) == len(rows), "one example per user and split"
  return result


def _canonical(output: standard_artifacts.Examples) -> Dict[str, list]:
  """Order-free view of every split, for equality between runs."""
  return {split: sorted(sorted((k, tuple(v)) for k, v in row.items())
                        for row in _read(output, split))
          for split in features.ALL_SPLITS}


def _anomalies_artifact(root: str, bad: bool) -> standard_artifacts.ExampleAnomalies:
  """Runs TFX's own ExampleValidator on log statistics; bad -> BYTES timestamps."""
  good_log = pd.DataFrame({"user_id": [1, 2], "item_id": [3, 4],
                           "timestamp": [5, 6]})
  schema_proto = tfdv.infer_schema(tfdv.generate_statistics_from_dataframe(good_log))
  schema = standard_artifacts.Schema()
  schema.uri = os.path.join(root, "log_schema")
  io_utils.write_pbtxt_file(os.path.join(schema.uri, "schema.pbtxt"), schema_proto)
  stats = standard_artifacts.ExampleStatistics()
  stats.uri = os.path.join(root, "log_stats")
  stats.split_names = artifact_utils.encode_split_names(["train", "eval"])
  for split in ("train", "eval"):
    log = good_log.copy()
    if bad and split == "train":
      log["timestamp"] = ["2020-01-01", "2020-01-02"]
    split_dir = artifact_utils.get_split_uri([stats], split)
    os.makedirs(split_dir)
    with open(os.path.join(split_dir, "FeatureStats.pb"), "wb") as f:
      f.write(tfdv.generate_statistics_from_dataframe(log).SerializeToString())
  anomalies = standard_artifacts.ExampleAnomalies()
  anomalies.uri = os.path.join(root, "anomalies")
  validator_executor.Executor().Do(
      {"statistics": [stats], "schema": [schema]}, {"anomalies": [anomalies]},
      {"exclude_splits": "[]"})
  return anomalies


@pytest.fixture(scope="module")
def int_run(tmp_path_factory):
  """All-digit ids, INT64 timestamps, two input splits, clean anomalies, item table."""
  root = str(tmp_path_factory.mktemp("int_run"))
  rows = _log_rows(INT_LOG)
  return _run(
      root, {"train": rows[0::2], "eval": rows[1::2]},
      items={"train": INT_ITEMS[:1], "eval": INT_ITEMS[1:]},
      anomalies=_anomalies_artifact(root, bad=False))


# ---------------------------------------------------------------------------
# Sequences.


def test_splits_are_leave_one_out_over_timestamp_order(int_run):
  output = int_run["output"]
  expected = {}
  for user, items in INT_LOG_ORDER.items():
    expected[user] = {
        features.TRAIN_SPLIT: (items[:-3], items[-3]),
        features.EVAL_SPLIT: (items[:-2], items[-2]),
        features.TEST_SPLIT: (items[:-1], items[-1]),
    }
  for split in features.SEQUENCE_SPLITS:
    rows = _by_user(_read(output, split))
    assert set(rows) == set(expected), split
    for user, row in rows.items():
      history, target = expected[user][split]
      assert row[features.HISTORY] == history, (split, user)
      assert row[features.TARGET] == [target], (split, user)
  # n = 3: the train example exists with an empty history.
  train_user2 = _by_user(_read(output, features.TRAIN_SPLIT))[b"2"]
  assert train_user2[features.HISTORY] == []
  assert train_user2[features.TARGET] == [b"8"]


def test_ties_are_broken_by_item_id_as_string(int_run):
  test_user4 = _by_user(_read(int_run["output"], features.TEST_SPLIT))[b"4"]
  assert test_user4[features.HISTORY] == [b"10", b"100", b"9"]
  assert test_user4[features.TARGET] == [b"5"]


def test_no_leakage_between_train_eval_and_test(int_run):
  output = int_run["output"]
  train = _by_user(_read(output, features.TRAIN_SPLIT))
  evaluation = _by_user(_read(output, features.EVAL_SPLIT))
  test = _by_user(_read(output, features.TEST_SPLIT))
  for user, items in INT_LOG_ORDER.items():
    train_seen = train[user][features.HISTORY] + train[user][features.TARGET]
    eval_seen = (evaluation[user][features.HISTORY]
                 + evaluation[user][features.TARGET])
    test_seen = test[user][features.HISTORY] + test[user][features.TARGET]
    assert train_seen == items[:-2]
    assert eval_seen == items[:-1]
    assert test_seen == items
    assert items[-1] not in train_seen and items[-2] not in train_seen
    assert items[-1] not in eval_seen
    # Each split's history is the previous split's history + target.
    assert evaluation[user][features.HISTORY] == train_seen
    assert test[user][features.HISTORY] == eval_seen


def test_sequence_rows_carry_empty_item_features_and_int_ids_as_strings(int_run):
  for split in features.SEQUENCE_SPLITS:
    for row in _read(int_run["output"], split):
      assert set(row) == {features.USER_ID, features.HISTORY, features.TARGET,
                          features.ITEM_ID, features.ITEM_ATTRIBUTES,
                          features.TITLE}
      assert row[features.ITEM_ID] == [b""]
      assert row[features.TITLE] == [b""]
      assert row[features.ITEM_ATTRIBUTES] == []
      for value in row[features.HISTORY] + row[features.TARGET]:
        assert value.decode().isdigit()


def test_min_interactions_drops_short_users_and_stats_count_them(int_run):
  output = int_run["output"]
  for split in features.SEQUENCE_SPLITS:
    assert b"3" not in _by_user(_read(output, split))
  with open(os.path.join(output.uri, executor_lib.STATS_FILE_NAME)) as f:
    stats = json.load(f)
  assert stats["num_interactions"] == len(INT_LOG)
  assert stats["num_interactions_kept"] == 5 + 3 + 4
  assert stats["num_users_in"] == 4
  assert stats["num_users_kept"] == 3
  assert stats["num_users_dropped_short"] == 1
  # Log items 5 7 8 9 10 20 30 40 50 100, plus 99 from the item table.
  assert stats["num_items_in_log"] == 10
  assert stats["num_items"] == 11
  assert stats["num_items_only_in_table"] == 1
  assert stats["split_counts"] == {"train": 3, "eval": 3, "test": 3, "items": 11}
  assert output.get_int_custom_property("num_users_kept") == 3
  assert output.get_int_custom_property("num_examples_items") == 11


def test_output_artifact_lists_splits_and_payload_format(int_run):
  output = int_run["output"]
  assert artifact_utils.decode_split_names(output.split_names) == list(
      features.ALL_SPLITS)
  assert output.get_string_custom_property("payload_format") == (
      "FORMAT_TF_EXAMPLE")
  for split in features.ALL_SPLITS:
    files = os.listdir(artifact_utils.get_split_uri([output], split))
    assert files and all(name.startswith("data_tfrecord") and
                         name.endswith(".gz") for name in files)


def test_output_does_not_depend_on_input_order_sharding_or_parallelism(
    int_run, tmp_path):
  rows = _log_rows(list(reversed(INT_LOG)))
  rerun = _run(
      str(tmp_path), {"only": rows},
      items={"train": list(reversed(INT_ITEMS))},
      beam_pipeline_args=["--direct_num_workers=2",
                          "--direct_running_mode=multi_threading"],
      log_shards=3)
  assert _canonical(rerun["output"]) == _canonical(int_run["output"])


def test_max_history_length_keeps_the_most_recent_items(tmp_path):
  rows = _log_rows(INT_LOG)
  run = _run(str(tmp_path), {"train": rows},
             exec_properties={"min_interactions": 4, "max_history_length": 2})
  output = run["output"]
  train = _by_user(_read(output, features.TRAIN_SPLIT))
  evaluation = _by_user(_read(output, features.EVAL_SPLIT))
  test = _by_user(_read(output, features.TEST_SPLIT))
  assert set(test) == {b"1", b"4"}  # user 2 (3 items) is below 4 now.
  # user 1: 20 30 10 50 40
  assert train[b"1"][features.HISTORY] == [b"20", b"30"]
  assert evaluation[b"1"][features.HISTORY] == [b"30", b"10"]
  assert test[b"1"][features.HISTORY] == [b"10", b"50"]
  assert test[b"1"][features.TARGET] == [b"40"]
  # user 4: 10 100 9 5
  assert train[b"4"][features.HISTORY] == [b"10"]
  assert test[b"4"][features.HISTORY] == [b"100", b"9"]


# ---------------------------------------------------------------------------
# Cold-item hold-out. Fraction 0.3 with seed 128 holds out c and f of a..h
# (checked below). Time order per user:
#   u1: a b c d e f -> a b d e f  (c removed; f, the test target, kept)
#   u2: c a b d e   -> a b d e
#   u3: a c f b     -> a b        (below min_interactions 3: dropped)
#   u4: g h a       -> unchanged
COLD_LOG = [("u1", item, t) for t, item in enumerate("abcdef")] + [
    ("u2", item, t) for t, item in enumerate("cabde")] + [
    ("u3", item, t) for t, item in enumerate("acfb")] + [
    ("u4", item, t) for t, item in enumerate("gha")]
COLD_PROPERTIES = {"min_interactions": 3, "cold_item_fraction": 0.3, "cold_item_seed": 128}


@pytest.fixture(scope="module")
def cold_run(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("cold_run"))
  return _run(root, {"train": _log_rows(COLD_LOG)},
              items={"train": [{"item_id": "h", "title": "Aitch"}]},
              exec_properties=dict(COLD_PROPERTIES))


def test_hold_out_removes_cold_items_but_keeps_cold_test_targets(cold_run):
  selector = cold_items.ColdItemSelector(0.3, 128)
  assert [i for i in "abcdefgh" if selector.is_cold(i.encode())] == ["c", "f"]
  output = cold_run["output"]
  expected = {b"u1": b"abdef", b"u2": b"abde", b"u4": b"gha"}
  for split in features.SEQUENCE_SPLITS:
    rows = _by_user(_read(output, split))
    assert set(rows) == set(expected), split
    for user, items in expected.items():
      items = [bytes([i]) for i in items]
      history, target = sequences.leave_one_out(items)[split]
      assert rows[user][features.HISTORY] == history, (split, user)
      assert rows[user][features.TARGET] == [target], (split, user)
  # The test row whose target is held out is there.
  assert _by_user(_read(output, features.TEST_SPLIT))[b"u1"][features.TARGET] == [b"f"]


def test_no_held_out_item_in_any_train_or_eval_row_or_test_history(cold_run):
  output = cold_run["output"]
  for split in features.SEQUENCE_SPLITS:
    for row in _read(output, split):
      seen = row[features.HISTORY] + (
          [] if split == features.TEST_SPLIT else row[features.TARGET])
      assert not {b"c", b"f"} & set(seen), (split, row)


def test_held_out_items_stay_in_the_catalogue_and_are_listed(cold_run):
  output = cold_run["output"]
  catalogue = {row[features.ITEM_ID][0] for row in _read(output, features.ITEMS_SPLIT)}
  assert catalogue == {i.encode() for i in "abcdefgh"}
  assert cold_items.read(output.uri) == {b"c", b"f"}
  with open(os.path.join(output.uri, cold_items.COLD_ITEMS_FILE)) as f:
    listed = json.load(f)
  assert listed == {"fraction": 0.3, "seed": 128, "item_ids": ["c", "f"]}


def test_hold_out_stats(cold_run):
  output = cold_run["output"]
  with open(os.path.join(output.uri, executor_lib.STATS_FILE_NAME)) as f:
    stats = json.load(f)
  assert stats["num_cold_items"] == 2
  assert stats["num_interactions_held_out"] == 1 + 1 + 2
  assert stats["num_users_dropped_held_out"] == 1
  assert stats["num_test_targets_held_out"] == 1
  assert stats["num_users_kept"] == 3
  assert stats["num_interactions_kept"] == 5 + 4 + 3
  assert output.get_int_custom_property("num_cold_items") == 2


def test_no_hold_out_by_default_and_no_cold_items_file(int_run):
  assert cold_items.read(int_run["output"].uri) is None
  with open(os.path.join(int_run["output"].uri, executor_lib.STATS_FILE_NAME)) as f:
    stats = json.load(f)
  assert stats["num_cold_items"] == stats["num_interactions_held_out"] == 0


def test_hold_out_does_not_depend_on_input_order_or_parallelism(cold_run, tmp_path):
  rerun = _run(str(tmp_path), {"a": _log_rows(COLD_LOG[::-1])},
               items={"train": [{"item_id": "h", "title": "Aitch"}]},
               exec_properties=dict(COLD_PROPERTIES),
               beam_pipeline_args=["--direct_num_workers=2",
                                   "--direct_running_mode=multi_threading"],
               log_shards=3)
  assert _canonical(rerun["output"]) == _canonical(cold_run["output"])
  assert cold_items.read(rerun["output"].uri) == {b"c", b"f"}


# ---------------------------------------------------------------------------
# Catalogue (items split).


def test_items_split_covers_log_and_item_table_with_int_ids(int_run):
  rows = _read(int_run["output"], features.ITEMS_SPLIT)
  items = {row[features.ITEM_ID][0]: row for row in rows}
  assert len(items) == len(rows)
  assert set(items) == {b"5", b"7", b"8", b"9", b"10", b"20", b"30", b"40",
                        b"50", b"100", b"99"}
  assert items[b"10"][features.TITLE] == [b"Ten"]
  assert items[b"10"][features.ITEM_ATTRIBUTES] == [b"7"]
  assert items[b"99"][features.TITLE] == [b"Never seen"]
  assert items[b"5"][features.TITLE] == [b""]
  assert items[b"5"][features.ITEM_ATTRIBUTES] == []
  for row in rows:
    assert row[features.USER_ID] == [b""]
    assert row[features.TARGET] == [b""]
    assert row[features.HISTORY] == []


def test_item_table_attributes_titles_and_defaults(tmp_path):
  # Default parameters (min_interactions = 5).
  log = []
  for user, items in (("u1", "abcde"), ("u2", "bcafg"), ("u3", "akc")):
    for position, item in enumerate(items):
      log.append((user, item, 1000 + position))
  table = [
      {"item_id": "a", "title": "Alpha", "attributes": "x|y"},
      {"item_id": "b", "title": None, "attributes": "y| |z|"},
      {"item_id": "c", "title": "Gamma", "attributes": None},
      {"item_id": "h", "title": "Only in table", "attributes": "x"},
      {"item_id": None, "title": "No id", "attributes": "q"},
      {"item_id": "a", "title": "Alpha dup", "attributes": "z|x"},
  ]
  run = _run(str(tmp_path), {"train": _log_rows(log)},
             items={"train": table[:3], "eval": table[3:]}, exec_properties={})
  output = run["output"]
  test = _by_user(_read(output, features.TEST_SPLIT))
  assert set(test) == {b"u1", b"u2"}  # u3 has 4 < 5 interactions.
  assert test[b"u2"][features.HISTORY] == [b"b", b"c", b"a", b"f"]
  items = {row[features.ITEM_ID][0]: row
           for row in _read(output, features.ITEMS_SPLIT)}
  # Every log item (also those of the dropped user) and every table item.
  assert set(items) == {b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"k", b"h"}
  assert items[b"a"][features.TITLE] == [b"Alpha"]
  assert items[b"a"][features.ITEM_ATTRIBUTES] == [b"x", b"y", b"z"]
  assert items[b"b"][features.TITLE] == [b""]
  assert items[b"b"][features.ITEM_ATTRIBUTES] == [b"y", b"z"]
  assert items[b"c"][features.ITEM_ATTRIBUTES] == []
  assert items[b"h"][features.TITLE] == [b"Only in table"]
  assert items[b"k"][features.TITLE] == [b""]
  with open(os.path.join(output.uri, executor_lib.STATS_FILE_NAME)) as f:
    stats = json.load(f)
  assert stats["num_item_table_rows"] == 6
  assert stats["num_item_table_rows_without_id"] == 1
  assert stats["min_interactions"] == 5 and stats["max_history_length"] == 0


# ---------------------------------------------------------------------------
# Schema.


def test_schema_pbtxt_matches_the_examples(int_run):
  path = os.path.join(int_run["schema"].uri, executor_lib.SCHEMA_FILE_NAME)
  schema = io_utils.parse_pbtxt_file(path, schema_pb2.Schema())
  spec = schema_utils.schema_as_feature_spec(schema).feature_spec
  scalar = tf.io.FixedLenFeature([], tf.string)
  varlen = tf.io.VarLenFeature(tf.string)
  assert spec == {
      features.USER_ID: scalar, features.TARGET: scalar,
      features.ITEM_ID: scalar, features.TITLE: scalar,
      features.HISTORY: varlen, features.ITEM_ATTRIBUTES: varlen,
  }
  for split in features.ALL_SPLITS:
    serialized = _serialized(int_run["output"], split)
    parsed = tf.io.parse_example(serialized, spec)
    assert parsed[features.USER_ID].shape == (len(serialized),)
  # TFDV finds no anomaly in the output against this schema.
  stats = tfdv.generate_statistics_from_tfrecord(
      os.path.join(int_run["output"].uri, "Split-*", "*.gz"))
  assert not tfdv.validate_statistics(stats, schema).anomaly_info


# ---------------------------------------------------------------------------
# Errors.


def test_anomalies_from_example_validator_stop_with_a_readable_error(tmp_path):
  anomalies = _anomalies_artifact(str(tmp_path), bad=True)
  with pytest.raises(ValueError) as error:
    _run(str(tmp_path), {"train": _log_rows(INT_LOG)}, anomalies=anomalies)
  message = str(error.value)
  assert "Data anomalies found by ExampleValidator in split 'train'" in message
  assert "feature 'timestamp': Unexpected data type" in message
  assert "Expected data of type: INT but got STRING" in message
  assert "split 'eval'" not in message
  # The clean artifact passes the same check.
  anomalies_lib.check_no_anomalies(_anomalies_artifact(
      str(tmp_path / "clean"), bad=False))


def test_drift_anomalies_stop_the_run_naming_what_moved(tmp_path):
  report = anomalies_pb2.Anomalies()
  info = report.anomaly_info["item_id"]
  info.reason.add(type=anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH,
                  short_description="High Linfty distance between current and previous",
                  description="The Linfty distance between current and previous is 0.7 "
                              "(up to six significant digits), above the threshold 0.3.")
  drift = standard_artifacts.ExampleAnomalies()
  drift.uri = str(tmp_path / "drift")
  drift.split_names = artifact_utils.encode_split_names(["log"])
  io_utils.write_bytes_file(os.path.join(drift.uri, "Split-log", "SchemaDiff.pb"),
                            report.SerializeToString())
  with pytest.raises(ValueError) as error:
    _run(str(tmp_path), {"train": _log_rows(INT_LOG)}, drift_anomalies=drift)
  message = str(error.value)
  assert message.startswith("Data anomalies found by DriftValidator in split 'log': feature "
                            "'item_id': High Linfty distance between current and previous: "
                            "The Linfty distance between current and previous is 0.7")
  assert message.endswith(executor_lib.DRIFT_HINT)
  assert not (tmp_path / "output_examples").exists()


def test_forgotten_users_are_dropped_from_every_input_split(tmp_path):
  ledger = tmp_path / forgotten_users.LEDGER_FILE
  ledger.write_text(json.dumps({"forgotten": [
      {"user_hash": forgotten_users.user_hash("1"), "forgotten_at": "2026-11-27T00:00:00"}]}))
  rows = _log_rows(INT_LOG)
  result = _run(str(tmp_path), {"train": rows[0::2], "eval": rows[1::2]},
                exec_properties={"min_interactions": 3, "max_history_length": 0,
                                 "forgotten_users": str(ledger)})
  output = result["output"]
  for split in features.SEQUENCE_SPLITS:
    assert set(_by_user(_read(output, split))) == {b"2", b"4"}
  # Items only user 1 had (30, 40, 50) leave the catalogue with them.
  items = {row[features.ITEM_ID][0] for row in _read(output, features.ITEMS_SPLIT)}
  assert items == {b"5", b"7", b"8", b"9", b"10", b"20", b"100"}
  with open(os.path.join(output.uri, executor_lib.STATS_FILE_NAME)) as f:
    stats = json.load(f)
  assert stats["num_interactions_forgotten"] == 5
  assert stats["num_interactions"] == len(INT_LOG)


def test_missing_column_names_it_and_lists_the_columns_found(tmp_path):
  rows = [{"user_id": 1, "item_id": 2, "time": 3}]
  with pytest.raises(ValueError, match=(
      r"interaction log \(split 'train'\) has no column 'timestamp'.*"
      r"columns found: \['item_id', 'time', 'user_id'\]")):
    _run(str(tmp_path), {"train": rows})


def test_bytes_timestamp_is_rejected(tmp_path):
  rows = _log_rows([(1, 2, "2020-01-01")])
  with pytest.raises(ValueError, match=(
      r"feature 'timestamp' must be INT64, got BYTES in split 'eval'")):
    _run(str(tmp_path), {"eval": rows})


def test_float_timestamps_are_rejected_as_they_lose_the_order(tmp_path):
  # float32 holds 1700000000.123 and 1700000000.0 as the same value.
  rows = _log_rows([(1, 2, 1700000000.123)])
  with pytest.raises(ValueError, match=(
      r"feature 'timestamp' must be INT64, got FLOAT in split 'train'")):
    _run(str(tmp_path), {"train": rows})


@pytest.mark.parametrize("column", [features.LOG_USER_ID, features.LOG_ITEM_ID])
def test_integer_ids_are_rejected_as_they_lost_leading_zeros(tmp_path, column):
  rows = _log_rows(INT_LOG)
  for row in rows:
    row[column] = int(row[column])
  with pytest.raises(ValueError, match=(
      rf"Feature '{column}' of the interaction log \(split 'train'\) must be "
      r"a string id \(BYTES\), got INT64")):
    _run(str(tmp_path), {"train": rows})


def test_integer_item_table_ids_are_rejected(tmp_path):
  with pytest.raises(ValueError, match=(
      r"Feature 'item_id' of the item table \(split 'train'\) must be a "
      r"string id \(BYTES\), got INT64")):
    _run(str(tmp_path), {"train": _log_rows(INT_LOG)},
         items={"train": [{"item_id": 10, "title": "Ten"}]})


def test_ids_differing_only_in_leading_zeros_stay_distinct(tmp_path):
  # Timestamps 1 microsecond apart keep their order against the item ids.
  base = 1_700_000_000_000_000
  rows = _log_rows([("007", "42", base + 2), ("007", "042", base + 1),
                    ("007", "0042", base), ("7", "42", base),
                    ("7", "1", base + 1), ("7", "2", base + 2)])
  test = _by_user(_read(_run(str(tmp_path), {"train": rows})["output"],
                        features.TEST_SPLIT))
  assert set(test) == {b"007", b"7"}
  assert test[b"007"][features.HISTORY] == [b"0042", b"042"]
  assert test[b"007"][features.TARGET] == [b"42"]


def test_no_user_left_reports_user_count_and_min_interactions(tmp_path):
  with pytest.raises(ValueError, match=(
      r"all 4 users .* fewer than min_interactions=6")):
    _run(str(tmp_path), {"train": _log_rows(INT_LOG)},
         exec_properties={"min_interactions": 6})


def test_parameters_are_validated(tmp_path):
  with pytest.raises(ValueError, match="min_interactions must be >= 3"):
    _run(str(tmp_path / "a"), {"train": _log_rows(INT_LOG)},
         exec_properties={"min_interactions": 2})
  with pytest.raises(ValueError, match="max_history_length must be >= 0"):
    _run(str(tmp_path / "b"), {"train": _log_rows(INT_LOG)},
         exec_properties={"max_history_length": -1})
  with pytest.raises(ValueError, match="cold_item_fraction must be a number in"):
    _run(str(tmp_path / "c"), {"train": _log_rows(INT_LOG)},
         exec_properties={"cold_item_fraction": 1.0})


# ---------------------------------------------------------------------------
# Component.


def test_component_wires_channels_and_parameters():
  builder = component_lib.SequenceBuilder(
      examples=channel_utils.as_channel([standard_artifacts.Examples()]),
      items=channel_utils.as_channel([standard_artifacts.Examples()]),
      anomalies=channel_utils.as_channel(
          [standard_artifacts.ExampleAnomalies()]),
      min_interactions=4, max_history_length=50)
  assert builder.outputs["output_examples"].type == standard_artifacts.Examples
  assert builder.outputs["schema"].type == standard_artifacts.Schema
  assert set(builder.inputs) == {"examples", "items", "anomalies"}
  assert builder.exec_properties["min_interactions"] == 4
  assert builder.exec_properties["max_history_length"] == 50
  minimal = component_lib.SequenceBuilder(
      examples=channel_utils.as_channel([standard_artifacts.Examples()]))
  assert minimal.exec_properties["min_interactions"] == 5
  assert minimal.exec_properties["max_history_length"] == 0
  with pytest.raises(ValueError, match="min_interactions must be >= 3"):
    component_lib.SequenceBuilder(
        examples=channel_utils.as_channel([standard_artifacts.Examples()]),
        min_interactions=2)
  nightly = component_lib.SequenceBuilder(
      examples=channel_utils.as_channel([standard_artifacts.Examples()]),
      drift_anomalies=channel_utils.as_channel([standard_artifacts.ExampleAnomalies()]),
      forgotten_users="data/forgotten_users.json")
  assert set(nightly.inputs) == {"examples", "drift_anomalies"}
  assert nightly.exec_properties["forgotten_users"] == "data/forgotten_users.json"
  cold = component_lib.SequenceBuilder(
      examples=channel_utils.as_channel([standard_artifacts.Examples()]),
      cold_item_fraction=0.1, cold_item_seed=3)
  assert cold.exec_properties["cold_item_fraction"] == 0.1
  assert cold.exec_properties["cold_item_seed"] == 3
  assert minimal.exec_properties["cold_item_fraction"] == 0.0
  with pytest.raises(ValueError, match="cold_item_fraction"):
    component_lib.SequenceBuilder(
        examples=channel_utils.as_channel([standard_artifacts.Examples()]),
        cold_item_fraction=1.5)


def test_new_ids_outside_an_inferred_string_domain_do_not_stop_the_run():
  from tensorflow_metadata.proto.v0 import anomalies_pb2
  from components.sequence_builder import anomalies as anomalies_lib
  report = anomalies_pb2.Anomalies()
  for feature in ("item_id", "event_type"):
    info = report.anomaly_info[feature]
    reason = info.reason.add()
    reason.type = anomalies_pb2.AnomalyInfo.ENUM_TYPE_UNEXPECTED_STRING_VALUES
    reason.short_description = "Unexpected string values"
    reason.description = "Examples contain values missing from the schema: x (<1%)."
  lines = anomalies_lib.describe(report)
  assert lines == ["feature 'event_type': Unexpected string values: "
                   "Examples contain values missing from the schema: x (<1%)."]
