"""DriftValidator executor and component: ExampleValidator's file layout, which the SequenceBuilder reads."""

import os

import pytest
from tfx.types import artifact_utils
from tfx.types import channel_utils
from tfx.types import standard_artifacts

from components.drift_validator import component as component_lib
from components.drift_validator import executor as executor_lib
from components.sequence_builder import anomalies as anomalies_lib
from tests.components.drift_validator.test_drift import span_log
from tests.components.drift_validator.test_drift import stats

THRESHOLDS = {"max_item_distance": 0.3, "max_events_per_user_ratio": 2.0,
              "day_tolerance_hours": 3.0}


def _statistics(root: str, name: str, log) -> standard_artifacts.ExampleStatistics:
  """An ExampleStatistics artifact laid out as StatisticsGen writes it (split 'log')."""
  artifact = standard_artifacts.ExampleStatistics()
  artifact.uri = os.path.join(root, name)
  artifact.split_names = artifact_utils.encode_split_names(["log"])
  split_dir = artifact_utils.get_split_uri([artifact], "log")
  os.makedirs(split_dir)
  with open(os.path.join(split_dir, "FeatureStats.pb"), "wb") as f:
    f.write(stats(log).SerializeToString())
  return artifact


def _examples(span: int) -> standard_artifacts.Examples:
  examples = standard_artifacts.Examples()
  examples.set_int_custom_property("span", span)   # as ExampleGen's driver records it
  return examples


def _validate(root, current, previous=None, span=20261127):
  output = standard_artifacts.ExampleAnomalies()
  output.uri = os.path.join(root, "anomalies")
  inputs = {"statistics": [current], "examples": [_examples(span)],
            "previous_statistics": [previous] if previous else []}
  executor_lib.Executor().Do(inputs, {"anomalies": [output]}, dict(THRESHOLDS))
  return output


def test_a_drifted_span_stops_the_sequence_builder_naming_what_moved(tmp_path):
  root = str(tmp_path)
  previous = _statistics(root, "before", span_log(20261126, seed=1))
  drifted = _statistics(root, "after", span_log(20261127, seed=2, items=[7] * 200))
  output = _validate(root, drifted, previous)
  assert os.path.isfile(os.path.join(output.uri, "Split-log", executor_lib.ANOMALIES_FILE_NAME))
  with pytest.raises(ValueError) as error:
    anomalies_lib.check_no_anomalies(output, "DriftValidator")
  message = str(error.value)
  assert message.startswith("Data anomalies found by DriftValidator in split 'log': feature "
                            "'item_id': High Linfty distance between current and previous: "
                            "The Linfty distance between current and previous is 0.")
  assert "above the threshold 0.3. The feature value with maximum difference is: i7" in message


def test_a_similar_span_and_a_first_span_pass(tmp_path):
  root = str(tmp_path)
  previous = _statistics(root, "before", span_log(20261126, seed=1))
  similar = _statistics(root, "after", span_log(20261127, seed=2))
  anomalies_lib.check_no_anomalies(_validate(os.path.join(root, "a"), similar, previous))
  anomalies_lib.check_no_anomalies(_validate(os.path.join(root, "b"), similar))
  # The span number comes from the Examples: the same statistics filed a day late.
  with pytest.raises(ValueError, match="feature 'timestamp': Timestamps outside the span's day"):
    anomalies_lib.check_no_anomalies(_validate(os.path.join(root, "c"), similar, span=20261128))


def test_component_wires_channels_and_thresholds():
  validator = component_lib.DriftValidator(
      statistics=channel_utils.as_channel([standard_artifacts.ExampleStatistics()]),
      examples=channel_utils.as_channel([standard_artifacts.Examples()]),
      previous_statistics=channel_utils.as_channel([standard_artifacts.ExampleStatistics()]),
      **THRESHOLDS)
  assert set(validator.inputs) == {"statistics", "examples", "previous_statistics"}
  assert validator.outputs["anomalies"].type == standard_artifacts.ExampleAnomalies
  assert validator.exec_properties == THRESHOLDS
