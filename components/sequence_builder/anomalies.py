"""Reads ExampleValidator's (or DriftValidator's) anomalies and turns any into a readable error."""

import os
from typing import List

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import types
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

from trainer import features

# tfx.components.example_validator.executor.DEFAULT_FILE_NAME.
ANOMALIES_FILE_NAME = "SchemaDiff.pb"
_SPLIT_PREFIX = "Split-"

# New users and items are what a log brings every day: ids outside a string
# domain inferred from an earlier split are expected, not an anomaly.
_EXPECTED = {
    (feature, anomalies_pb2.AnomalyInfo.ENUM_TYPE_UNEXPECTED_STRING_VALUES)
    for feature in (features.LOG_USER_ID, features.LOG_ITEM_ID)
}


def _split_names(artifact: types.Artifact) -> List[str]:
  """Splits of the artifact; falls back to the Split-* folders on disk."""
  names = artifact_utils.decode_split_names(artifact.split_names)
  if names:
    return names
  if not fileio.isdir(artifact.uri):
    return []
  return sorted(
      name[len(_SPLIT_PREFIX):].rstrip("/")
      for name in fileio.listdir(artifact.uri)
      if name.startswith(_SPLIT_PREFIX))


def read_anomalies(artifact: types.Artifact, split: str) -> anomalies_pb2.Anomalies:
  """The Anomalies proto ExampleValidator wrote for `split`."""
  path = os.path.join(
      artifact_utils.get_split_uri([artifact], split), ANOMALIES_FILE_NAME)
  if not fileio.exists(path):
    raise ValueError(
        f"ExampleValidator output for split '{split}' not found: {path} does "
        "not exist.")
  with fileio.open(path, "rb") as f:
    return anomalies_pb2.Anomalies.FromString(f.read())


def _info_lines(where: str, info: anomalies_pb2.AnomalyInfo,
                feature: str = "") -> List[str]:
  if info.reason:
    reasons = [(r.short_description, r.description) for r in info.reason
               if (feature, r.type) not in _EXPECTED]
  else:
    reasons = [(info.short_description, info.description)]
  return [f"{where}: {short}: {long}" for short, long in reasons]


def describe(anomalies: anomalies_pb2.Anomalies) -> List[str]:
  """One ``feature 'f': <short description>: <description>`` line per anomaly."""
  lines = []
  for name in sorted(anomalies.anomaly_info):
    lines.extend(_info_lines(f"feature '{name}'", anomalies.anomaly_info[name], name))
  if anomalies.HasField("dataset_anomaly_info"):
    lines.extend(_info_lines("dataset", anomalies.dataset_anomaly_info))
  return lines


EXAMPLE_VALIDATOR_HINT = ("Fix the interaction log (or the curated schema) and run the "
                          "pipeline again.")


def check_no_anomalies(artifact: types.Artifact, source: str = "ExampleValidator",
                       hint: str = EXAMPLE_VALIDATOR_HINT) -> None:
  """Raises ValueError listing every anomaly of every split, if there are any.

  Args:
    artifact: a standard_artifacts.ExampleAnomalies from ExampleValidator.
    source: the component that wrote it, for the message.
    hint: the message's last line: what to do.

  Raises:
    ValueError: some split has anomalies (the message names split, feature,
      short description and description), or the artifact has no split.
  """
  splits = _split_names(artifact)
  if not splits:
    raise ValueError(
        f"The anomalies artifact at {artifact.uri} has no split to check.")
  problems = []
  for split in splits:
    lines = describe(read_anomalies(artifact, split))
    if len(lines) == 1:
      problems.append(
          f"Data anomalies found by {source} in split '{split}': {lines[0]}")
    elif lines:
      problems.append(
          f"Data anomalies found by {source} in split '{split}':\n  "
          + "\n  ".join(lines))
  if problems:
    raise ValueError("\n".join(problems) + "\n" + hint)
