"""BulkRecommender executor: the bulk Beam job on the pushed model, into the output Dataset.

A model that was not pushed (not blessed) gets no recommendations: the output stays empty.
"""

import json
from typing import Any, Dict, List

from absl import logging
from tfx import types
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils

from components.bulk_recommender import component_spec as spec
from components.bulk_recommender import histories
from components.bulk_recommender import recommend
from components.bulk_recommender import user_rules
from serving import contract

PUSHED_PROPERTY = "pushed"   # what the standard Pusher sets on its PushedModel


def settings_from(exec_properties: Dict[str, Any], model_dir: str) -> recommend.BulkSettings:
  """The BulkSettings of the execution properties (defaults for those not set)."""
  def get(key, default):
    value = exec_properties.get(key)
    return default if value is None else value

  extra = json.loads(get(spec.EXTRA_INPUTS_KEY, "{}") or "{}")
  if not isinstance(extra, dict):
    raise ValueError(f"{spec.EXTRA_INPUTS_KEY} must be a JSON object, got {extra!r}")
  rules_file = exec_properties.get(spec.RULES_FILE_KEY) or None
  signature = get(spec.SIGNATURE_KEY, contract.RULES_SIGNATURE if rules_file
                  else contract.DEFAULT_SIGNATURE)
  return recommend.BulkSettings(
      model_dir=model_dir, k=get(spec.K_KEY, spec.DEFAULTS[spec.K_KEY]), signature=signature,
      extra_inputs=user_rules.with_rule_defaults(signature, extra), rules_file=rules_file,
      output_format=get(spec.OUTPUT_FORMAT_KEY, spec.DEFAULTS[spec.OUTPUT_FORMAT_KEY]),
      num_shards=get(spec.NUM_SHARDS_KEY, spec.DEFAULTS[spec.NUM_SHARDS_KEY]),
      batch_size=get(spec.BATCH_SIZE_KEY, spec.DEFAULTS[spec.BATCH_SIZE_KEY]))


class Executor(base_beam_executor.BaseBeamExecutor):
  """Writes top-k rows for every user of the test split's full histories."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    examples = artifact_utils.get_single_instance(input_dict[spec.EXAMPLES_KEY])
    pushed = artifact_utils.get_single_instance(input_dict[spec.PUSHED_MODEL_KEY])
    output = artifact_utils.get_single_instance(output_dict[spec.RECOMMENDATIONS_KEY])
    settings = settings_from(exec_properties, pushed.uri)
    output.set_string_custom_property("format", settings.output_format)
    output.set_int_custom_property("k", settings.k)
    if not pushed.get_int_custom_property(PUSHED_PROPERTY):
      logging.warning("BulkRecommender: the model was not pushed; no recommendations written")
      output.set_int_custom_property("users", 0)
      output.set_int_custom_property("rows", 0)
      return
    files = histories.example_files(examples.uri)
    result = recommend.run(settings, histories.ReadExampleHistories(files), output.uri,
                           make_pipeline=self._make_beam_pipeline)
    output.set_int_custom_property("users", result.users)
    output.set_int_custom_property("rows", result.rows)
    logging.info("BulkRecommender: %d users, %d rows (k=%d) -> %s (%d %s files), "
                 "%.0f users/s", result.users, result.rows, settings.k, output.uri,
                 len(result.files), settings.output_format, result.users_per_second)
