"""The canonical ExampleGen keeps ids as the user's strings and timestamps in full order.

Runs the real ExampleGen executor on canonical files that ``write_canonical``
wrote, then the SequenceBuilder executor on its output, as the pipeline does.
"""

import glob
import os
from typing import Dict, List

import pandas as pd
import pytest
import tensorflow as tf
from tfx.components.example_gen import utils as example_gen_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components.sequence_builder import executor as sequence_builder
from pipeline import ingest
from pipeline.ingest import example_gen
from trainer import features

T0 = 1_700_000_000


def _example_gen(input_base: str, out: str,
                 pattern: str = "*") -> standard_artifacts.Examples:
  """Runs the ExampleGen executor as the pipeline configures it (train/eval)."""
  input_config = example_gen_pb2.Input(
      splits=[example_gen_pb2.Input.Split(name="single_split", pattern=pattern)])
  output_config = example_gen_utils.make_default_output_config(input_config)
  examples = standard_artifacts.Examples()
  examples.uri = out
  example_gen.Executor().Do({}, {"examples": [examples]}, {
      "input_base": input_base,
      "input_config": proto_utils.proto_to_json(input_config),
      "output_config": proto_utils.proto_to_json(output_config),
  })
  return examples


def _rows(examples: standard_artifacts.Examples) -> List[tf.train.Example]:
  files = glob.glob(os.path.join(examples.uri, "Split-*", "*.gz"))
  return [tf.train.Example.FromString(r.numpy())
          for r in tf.data.TFRecordDataset(files, "GZIP")]


def _split(examples: standard_artifacts.Examples, split: str) -> List[Dict]:
  files = glob.glob(os.path.join(
      artifact_utils.get_split_uri([examples], split), "*.gz"))
  rows = []
  for record in tf.data.TFRecordDataset(files, "GZIP"):
    example = tf.train.Example.FromString(record.numpy())
    rows.append({k: list(v.bytes_list.value)
                 for k, v in example.features.feature.items()})
  return rows


def _sequence_builder(root: str, log: standard_artifacts.Examples,
                      items: standard_artifacts.Examples) -> standard_artifacts.Examples:
  output = standard_artifacts.Examples()
  output.uri = os.path.join(root, "sequences")
  schema = standard_artifacts.Schema()
  schema.uri = os.path.join(root, "schema")
  context = base_beam_executor.BaseBeamExecutor.Context(
      beam_pipeline_args=[], tmp_dir=root)
  sequence_builder.Executor(context).Do(
      {"examples": [log], "items": [items]},
      {"output_examples": [output], "schema": [schema]},
      {"min_interactions": 3, "max_history_length": 0})
  return output


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  """Users and items "0042", "042", "42"; each user's events 1 ms apart, in
  time order the reverse of id order."""
  root = tmp_path_factory.mktemp("example_gen")
  rows = []
  for user in ("0042", "042", "42"):
    for k, item in enumerate(("42", "042", "0042", "x")):
      rows.append((user, item, T0 + (4 - k) / 1000))
  log = pd.DataFrame(rows, columns=[features.LOG_USER_ID, features.LOG_ITEM_ID,
                                    features.LOG_TIMESTAMP])
  items = pd.DataFrame({"item_id": ["0042", "042", "42", "007"],
                        "title": ["four zeros", "one zero", "no zero", "bond"],
                        "attributes": ["a", "b", "c", "007|7"]})
  data = ingest.write_canonical(log, items, str(root / "data"))
  log_examples = _example_gen(data.interactions_dir, str(root / "log"))
  item_examples = _example_gen(data.items_dir, str(root / "items"))
  output = _sequence_builder(str(root), log_examples, item_examples)
  return {"log": log_examples, "items": item_examples, "output": output}


def test_ids_stay_the_strings_written_and_timestamps_are_int64_micros(built):
  got = set()
  for row in _rows(built["log"]):
    feature = row.features.feature
    assert feature[features.LOG_USER_ID].WhichOneof("kind") == "bytes_list"
    assert feature[features.LOG_ITEM_ID].WhichOneof("kind") == "bytes_list"
    assert feature[features.LOG_TIMESTAMP].WhichOneof("kind") == "int64_list"
    got.add((feature[features.LOG_USER_ID].bytes_list.value[0],
             feature[features.LOG_ITEM_ID].bytes_list.value[0],
             feature[features.LOG_TIMESTAMP].int64_list.value[0]))
  assert len(got) == 12
  assert (b"0042", b"x", (T0 * 1000 + 1) * 1000) in got
  assert (b"042", b"42", (T0 * 1000 + 4) * 1000) in got
  item_ids = {r.features.feature["item_id"].bytes_list.value[0]
              for r in _rows(built["items"])}
  assert item_ids == {b"0042", b"042", b"42", b"007"}


def test_sequences_keep_distinct_ids_in_time_order(built):
  test = {row[features.USER_ID][0]: row
          for row in _split(built["output"], features.TEST_SPLIT)}
  assert set(test) == {b"0042", b"042", b"42"}
  for row in test.values():
    # Time order; id order (what tied float32 timestamps give) is the reverse.
    assert row[features.HISTORY] == [b"x", b"0042", b"042"]
    assert row[features.TARGET] == [b"42"]
  items = {row[features.ITEM_ID][0]: row
           for row in _split(built["output"], features.ITEMS_SPLIT)}
  assert set(items) == {b"0042", b"042", b"42", b"x", b"007"}
  assert items[b"0042"][features.TITLE] == [b"four zeros"]
  assert items[b"42"][features.TITLE] == [b"no zero"]
  assert items[b"007"][features.ITEM_ATTRIBUTES] == [b"007", b"7"]


def test_span_folders_are_read_with_the_same_types(tmp_path):
  log = pd.DataFrame({"user_id": ["01"], "item_id": ["001"],
                      "timestamp": [T0 + 0.5]})
  data = ingest.write_canonical(log, None, str(tmp_path / "data"), span=3)
  examples = _example_gen(os.path.dirname(data.interactions_dir),
                          str(tmp_path / "out"), pattern="span-3/*")
  (row,) = _rows(examples)
  feature = row.features.feature
  assert feature["item_id"].bytes_list.value == [b"001"]
  assert feature["timestamp"].int64_list.value == [(2 * T0 + 1) * 500_000]


@pytest.mark.parametrize("text, micros", [
    ("1700000000.001", 1_700_000_000_001_000),
    ("1700000000.000001", 1_700_000_000_000_001),
    ("0", 0),
    ("1e3", 1_000_000_000),
    (" 2.5 ", 2_500_000),
])
def test_timestamp_micros_is_exact(text, micros):
  assert example_gen.timestamp_micros(text) == micros


def test_columns_outside_the_canonical_format_name_the_file(tmp_path):
  path = tmp_path / "log.csv"
  path.write_text("user_id,item_id,timestamp,extra\nu,i,1,x\n")
  with pytest.raises(ValueError, match=r"log\.csv, line 1: column\(s\) "
                     r"\['extra'\] are not in the canonical format"):
    list(example_gen.read_examples(str(path)))
  path.write_text("user_id,item_id,timestamp\nu,i,soon\n")
  with pytest.raises(ValueError, match=r"log\.csv, line 2: 'soon' is not a "
                     "number"):
    list(example_gen.read_examples(str(path)))
