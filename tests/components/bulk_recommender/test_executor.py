"""BulkRecommender executor: the pushed toy model over a SequenceBuilder-shaped Examples artifact."""

import os

import pandas as pd
import pytest
import tensorflow as tf
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.types.experimental import simple_artifacts

from components.bulk_recommender import component_spec as spec
from components.bulk_recommender import executor
from components.sequence_builder import sequences
from serving import contract
from serving.testing import toy_model
from trainer import features

NUM_ITEMS = 30
# user -> every item in time order; the test split holds items[:-1] + target items[-1].
ITEMS = {b"u1": [b"item_1", b"item_2", b"item_3"],
         b"u2": [b"item_4", b"item_5", b"item_6", b"item_7"],
         b"u3": [b"item_29", b"item_0", b"item_12"]}


def _examples(root) -> standard_artifacts.Examples:
  examples = standard_artifacts.Examples()
  examples.uri = str(root)
  examples.split_names = artifact_utils.encode_split_names(list(features.ALL_SPLITS))
  for split in features.SEQUENCE_SPLITS:
    os.makedirs(root / f"Split-{split}")
    path = str(root / f"Split-{split}" / "data_tfrecord-00000-of-00001.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
      for user, items in ITEMS.items():
        history, target = sequences.leave_one_out(items)[split]
        writer.write(sequences.sequence_example(user, history, target).SerializeToString())
  return examples


def _pushed(uri: str, pushed: int) -> standard_artifacts.PushedModel:
  model = standard_artifacts.PushedModel()
  model.uri = uri
  model.set_int_custom_property(executor.PUSHED_PROPERTY, pushed)
  return model


def _do(tmp_path, pushed: int, **properties) -> simple_artifacts.Dataset:
  model = toy_model.export_toy_model(str(tmp_path / "pushed"), num_items=NUM_ITEMS)
  output = simple_artifacts.Dataset()
  output.uri = str(tmp_path / "recommendations")
  executor.Executor().Do({spec.EXAMPLES_KEY: [_examples(tmp_path / "examples")],
                          spec.PUSHED_MODEL_KEY: [_pushed(model, pushed)]},
                         {spec.RECOMMENDATIONS_KEY: [output]}, properties)
  return output


def test_rows_for_every_user_never_from_the_full_history(tmp_path):
  output = _do(tmp_path, pushed=1, k=4, output_format="csv")
  files = tf.io.gfile.glob(os.path.join(output.uri, "recommendations-*.csv"))
  table = pd.concat(pd.read_csv(f, dtype=str) for f in files)
  assert len(table) == len(ITEMS) * 4
  assert output.get_int_custom_property("rows") == len(table)
  assert output.get_int_custom_property("users") == len(ITEMS)
  for user, rows in table.groupby("user_id"):
    assert not set(rows["item_id"]) & {i.decode() for i in ITEMS[user.encode()]}
  expected = toy_model.expected_recommendations(
      [[i.decode() for i in ITEMS[b"u2"]]], 4, NUM_ITEMS)[0]
  assert table.loc[table.user_id == "u2", "item_id"].tolist() == [i for i, _ in expected]


def test_a_model_that_was_not_pushed_gets_no_recommendations(tmp_path):
  output = _do(tmp_path, pushed=0)
  assert output.get_int_custom_property("rows") == 0
  assert not tf.io.gfile.glob(os.path.join(output.uri, "recommendations-*"))


def test_a_bad_format_names_the_choices(tmp_path):
  with pytest.raises(ValueError, match=r"unknown format 'xml'; choose one of"):
    _do(tmp_path, pushed=1, output_format="xml")


def test_a_rules_file_property_calls_the_recommend_signature_with_no_global_rule():
  settings = executor.settings_from({spec.RULES_FILE_KEY: "rules.jsonl",
                                     spec.EXTRA_INPUTS_KEY: '{"diversity": 0.25}'}, "model")
  assert settings.signature == contract.RULES_SIGNATURE and settings.rules_file == "rules.jsonl"
  assert settings.extra_inputs == {**{name: [] for name in contract.RULE_LIST_INPUTS},
                                   "keep_history": False, "diversity": 0.25}
  plain = executor.settings_from({}, "model")
  assert plain.signature == contract.DEFAULT_SIGNATURE and plain.rules_file is None
  assert plain.extra_inputs == {}
