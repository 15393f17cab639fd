"""DriftValidator executor: writes ``Split-<split>/SchemaDiff.pb`` as ExampleValidator does."""

import os
from typing import Any, Dict, List, Optional

from absl import logging
from tfx import types
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components.drift_validator import component_spec as spec
from components.drift_validator import drift

# tfx.components.example_validator.executor.DEFAULT_FILE_NAME, which the
# SequenceBuilder reads (components.sequence_builder.anomalies).
ANOMALIES_FILE_NAME = "SchemaDiff.pb"
_SPAN = "span"


def _span(examples: types.Artifact) -> Optional[int]:
  """The span ExampleGen recorded on its Examples, if any."""
  if examples.has_custom_property(_SPAN):
    return int(examples.get_int_custom_property(_SPAN))
  return None


class Executor(base_executor.BaseExecutor):
  """Compares each split of the newest span's statistics with the previous span's."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    current = artifact_utils.get_single_instance(input_dict[spec.STATISTICS_KEY])
    previous_list = input_dict.get(spec.PREVIOUS_STATISTICS_KEY) or []
    previous = previous_list[0] if previous_list else None
    span = _span(artifact_utils.get_single_instance(input_dict[spec.EXAMPLES_KEY]))
    thresholds = drift.Thresholds(**{key: float(exec_properties[key])
                                     for key in spec.THRESHOLD_KEYS})
    splits = artifact_utils.decode_split_names(current.split_names)
    output = artifact_utils.get_single_instance(output_dict[spec.ANOMALIES_KEY])
    output.split_names = artifact_utils.encode_split_names(splits)
    previous_splits = (artifact_utils.decode_split_names(previous.split_names)
                       if previous is not None else [])
    for split in splits:
      stats = stats_artifact_utils.load_statistics(current, split).proto()
      before = (stats_artifact_utils.load_statistics(previous, split).proto()
                if split in previous_splits else None)
      anomalies = drift.check(stats, before, span, thresholds)
      path = os.path.join(artifact_utils.get_split_uri([output], split), ANOMALIES_FILE_NAME)
      io_utils.write_bytes_file(path, anomalies.SerializeToString())
      logging.info("DriftValidator: span %s, split %s, compared with %s: %d anomalies",
                   span, split, previous.uri if before is not None else "no previous span",
                   len(anomalies.anomaly_info))
