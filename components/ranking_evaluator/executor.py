"""RankingEvaluator executor: full-ranking metrics, popularity and text baselines, blessing.

Writes the outputs the way the standard Evaluator does, so the standard Pusher reads them unchanged.
"""

import json
import os
from typing import Any, Dict, List, Optional

from absl import logging
from tfx import types
from tfx.components.evaluator import constants
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils
from tfx.utils import path_utils

from components.ranking_evaluator import component_spec as spec
from components.ranking_evaluator import evaluation
from components.ranking_evaluator import gating
from components.ranking_evaluator import metrics
from components.sequence_builder import cold_items as cold_items_lib
from trainer import features

METRICS_FILE = "metrics.json"
POPULARITY_PROPERTY_PREFIX = "popularity/"
TEXT_SIMILARITY_PROPERTY_PREFIX = "text_similarity/"


def _parse_ks(value: Any) -> tuple:
  if isinstance(value, str):
    try:
      value = json.loads(value)
    except json.JSONDecodeError as e:
      raise ValueError(f"execution property '{spec.KS_KEY}' must be a JSON list of "
                       f"ints, got {value!r}") from e
  return metrics.check_ks(value)


def parse_exec_properties(exec_properties: Dict[str, Any]) -> Dict[str, Any]:
  """Execution properties with defaults filled in and types checked."""
  def get(key, default):
    value = exec_properties.get(key)
    return default if value is None else value

  ks = _parse_ks(get(spec.KS_KEY, list(spec.DEFAULT_KS)))
  params = {
      "eval_split": str(get(spec.EVAL_SPLIT_KEY, spec.DEFAULT_EVAL_SPLIT)),
      "ks": ks,
      "gating_metric": gating.check_gating_metric(
          str(get(spec.GATING_METRIC_KEY, spec.DEFAULT_GATING_METRIC)), ks),
      "min_value": get(spec.MIN_VALUE_KEY, spec.DEFAULT_MIN_VALUE),
      "must_beat_popularity": bool(
          get(spec.MUST_BEAT_POPULARITY_KEY, spec.DEFAULT_MUST_BEAT_POPULARITY)),
      "baseline_tolerance": get(spec.BASELINE_TOLERANCE_KEY,
                                spec.DEFAULT_BASELINE_TOLERANCE),
      "batch_size": evaluation.check_batch_size(
          get(spec.BATCH_SIZE_KEY, spec.DEFAULT_BATCH_SIZE)),
      "slice_gates": gating.check_slice_gates(
          get(spec.SLICE_GATES_KEY, list(spec.DEFAULT_SLICE_GATES)), ks),
      "item_vectors": exec_properties.get(spec.ITEM_VECTORS_KEY) or None,
  }
  gating.check_thresholds(params["min_value"], params["baseline_tolerance"])
  params["min_value"] = float(params["min_value"])
  params["baseline_tolerance"] = float(params["baseline_tolerance"])
  return params


def _split_dir(examples: types.Artifact, split: str) -> str:
  names = artifact_utils.decode_split_names(examples.split_names)
  if split not in names:
    raise ValueError(f"Examples artifact {examples.uri} has no split '{split}'; "
                     f"its splits: {names}")
  return artifact_utils.get_split_uri([examples], split)


def _split_rows(examples: types.Artifact, split: str) -> List[evaluation.SequenceRow]:
  directory = _split_dir(examples, split)
  rows = evaluation.read_sequences(evaluation.files_in(directory, split))
  if not rows:
    raise ValueError(f"Split '{split}' of {examples.uri} has no rows")
  return rows


def _item_attributes(examples: types.Artifact) -> Optional[Dict[bytes, tuple]]:
  """Item id -> attributes from the ``items`` split; None without that split."""
  if features.ITEMS_SPLIT not in artifact_utils.decode_split_names(examples.split_names):
    return None
  directory = _split_dir(examples, features.ITEMS_SPLIT)
  return evaluation.read_item_attributes(
      evaluation.files_in(directory, features.ITEMS_SPLIT))


def _no_log(unused_message: str) -> None:
  """The executor logs one table with every column instead."""


def _serving_model_path(model: types.Artifact) -> str:
  return path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))


class Executor(base_executor.BaseExecutor):
  """Evaluates the model (and baseline, and popularity) and writes the blessing."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    params = parse_exec_properties(exec_properties)
    ks, batch_size = params["ks"], params["batch_size"]

    examples = artifact_utils.get_single_instance(input_dict[spec.EXAMPLES_KEY])
    model = artifact_utils.get_single_instance(input_dict[spec.MODEL_KEY])
    baseline_models = input_dict.get(spec.BASELINE_MODEL_KEY) or []
    if len(baseline_models) > 1:
      raise ValueError(f"Expected at most one baseline model, got {len(baseline_models)}")
    baseline_model = baseline_models[0] if baseline_models else None

    eval_rows = _split_rows(examples, params["eval_split"])
    train_rows = _split_rows(examples, features.TRAIN_SPLIT)
    cold_items = cold_items_lib.read(examples.uri, fileio.exists, fileio.open)
    shared = {"eval_split": params["eval_split"], "ks": ks, "batch_size": batch_size,
              "eval_rows": eval_rows, "train_rows": train_rows,
              "item_attributes": _item_attributes(examples), "cold_items": cold_items,
              "log": _no_log}

    text_vectors, notes = None, []
    if params["item_vectors"]:
      text_vectors = evaluation.load_text_vectors(params["item_vectors"])
    else:
      notes.append(evaluation.NO_TEXT_VECTORS_NOTE)
    result = evaluation.evaluate_saved_model(
        _serving_model_path(model), examples.uri, text_vectors=text_vectors, **shared)
    result["model_uri"] = model.uri
    result["notes"] = notes
    if cold_items is not None:
      result["cold_items"] = {"num_items": len(cold_items),
                              "file": os.path.join(examples.uri, cold_items_lib.COLD_ITEMS_FILE)}
    baseline = None
    if baseline_model is not None:
      baseline_result = evaluation.evaluate_saved_model(
          _serving_model_path(baseline_model), examples.uri, with_popularity=False,
          **shared)
      baseline = baseline_result["model"]
      result["baseline"] = baseline
      result["slices"]["baseline"] = baseline_result["slices"]["model"]
      result["beyond_accuracy"]["baseline"] = baseline_result["beyond_accuracy"]["model"]
      result["baseline_uri"] = baseline_model.uri
      result["baseline_num_items"] = baseline_result["num_items"]

    decision = gating.decide(
        result["model"], result["popularity"], baseline, params["gating_metric"],
        params["min_value"], params["must_beat_popularity"],
        params["baseline_tolerance"], params["slice_gates"], result["slices"])
    result["gating"] = decision

    verdict = "BLESSED" if decision["blessed"] else "NOT BLESSED"
    logging.info(
        "Full-ranking metrics on split '%s' (%d users, %d items%s):\n%s%s\n%s: %s = %.4f%s",
        params["eval_split"], len(eval_rows), result["num_items"],
        f", {len(cold_items)} held out of training" if cold_items is not None else "",
        evaluation.format_report(result, ks), "".join(f"\nNote: {n}" for n in notes),
        verdict, decision["metric"], decision["value"],
        "".join(f"\n  - {r}" for r in decision["reasons"]))

    self._write_evaluation(
        artifact_utils.get_single_instance(output_dict[spec.EVALUATION_KEY]), result)
    self._write_blessing(
        artifact_utils.get_single_instance(output_dict[spec.BLESSING_KEY]),
        decision, model, baseline_model, exec_properties)

  def _write_evaluation(self, artifact: types.Artifact, result: Dict[str, Any]) -> None:
    io_utils.write_string_file(os.path.join(artifact.uri, METRICS_FILE),
                               json.dumps(result, indent=2, sort_keys=True))
    beyond = result["beyond_accuracy"]
    scorers = (("", evaluation.MODEL), (POPULARITY_PROPERTY_PREFIX, evaluation.POPULARITY),
               (TEXT_SIMILARITY_PROPERTY_PREFIX, evaluation.TEXT_SIMILARITY))
    for prefix, values in ((prefix, {**result[name], **beyond[name]})
                           for prefix, name in scorers if name in result):
      for name, value in values.items():
        if isinstance(value, float):
          artifact.set_float_custom_property(prefix + name, value)
        else:
          artifact.set_int_custom_property(prefix + name, int(value))

  def _write_blessing(self, blessing: types.Artifact, decision: Dict[str, Any],
                      model: types.Artifact, baseline_model,
                      exec_properties: Dict[str, Any]) -> None:
    """Marker file and properties exactly as the standard Evaluator writes them."""
    fileio.makedirs(blessing.uri)
    blessing.set_string_custom_property(
        constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri)
    blessing.set_int_custom_property(
        constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
    if baseline_model is not None:
      blessing.set_string_custom_property(
          constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, baseline_model.uri)
      blessing.set_int_custom_property(
          constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY, baseline_model.id)
    if "current_component_id" in exec_properties:
      blessing.set_string_custom_property(
          "component_id", exec_properties["current_component_id"])
    if decision["blessed"]:
      io_utils.write_string_file(
          os.path.join(blessing.uri, constants.BLESSED_FILE_NAME), "")
      blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY,
                                       constants.BLESSED_VALUE)
      message = f"{decision['metric']} = {decision['value']:.4f}: blessed"
    else:
      io_utils.write_string_file(
          os.path.join(blessing.uri, constants.NOT_BLESSED_FILE_NAME), "")
      blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY,
                                       constants.NOT_BLESSED_VALUE)
      message = "not blessed: " + "; ".join(decision["reasons"])
    blessing.set_string_custom_property(
        constants.ARTIFACT_PROPERTY_BLESSING_MESSAGE_KEY, message)
    logging.info("Blessing result %s written to %s.", decision["blessed"], blessing.uri)
