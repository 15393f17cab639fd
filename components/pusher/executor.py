"""Pusher executor that writes each version atomically and numbers them monotonically.

The standard Pusher copies straight into ``<base>/<unix time>/``, so a model server
polling the folder can see a half-copied version, and two pushes within one second
(or after a clock step back) collide. This executor keeps the standard Pusher's
spec, blessing check and output properties, and changes only how the files land:

* version = max(unix time, newest existing version + 1), so versions only grow;
* the model is copied into a hidden ``.tmp-<version>`` sibling (TF Serving ignores
  non-numeric names) and renamed into place in one step on local filesystems; on
  object stores, where rename is a copy, ``saved_model.pb`` is written last as the
  standard Pusher does.
"""

import os
import time
from typing import Any, Dict, List

from absl import logging
from tfx import types
from tfx.components.pusher import executor as tfx_pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import io_utils
from tfx.utils import proto_utils

SAVED_MODEL_FILE = "saved_model.pb"


def existing_versions(base_directory: str) -> List[int]:
  """Numeric version folders under ``base_directory`` (the ones TF Serving loads)."""
  if not fileio.exists(base_directory):
    return []
  return sorted(int(name.rstrip("/")) for name in fileio.listdir(base_directory)
                if name.rstrip("/").isdigit())


def next_version(base_directory: str, now: float) -> int:
  versions = existing_versions(base_directory)
  return max(int(now), (versions[-1] + 1) if versions else 0)


def _is_local(path: str) -> bool:
  return "://" not in path


def push_atomically(model_path: str, base_directory: str, now: float) -> str:
  """Copies the SavedModel at ``model_path`` to ``base_directory/<version>``."""
  version = next_version(base_directory, now)
  final = os.path.join(base_directory, str(version))
  fileio.makedirs(base_directory)
  staging = os.path.join(base_directory, f".tmp-{version}")
  if fileio.exists(staging):
    fileio.rmtree(staging)
  io_utils.copy_dir(model_path, staging, deny_regex_patterns=[r"saved_model\.pb"])
  io_utils.copy_file(os.path.join(model_path, SAVED_MODEL_FILE),
                     os.path.join(staging, SAVED_MODEL_FILE))
  if _is_local(base_directory):
    os.rename(staging, final)
  else:
    io_utils.copy_dir(staging, final, deny_regex_patterns=[r"saved_model\.pb"])
    io_utils.copy_file(os.path.join(staging, SAVED_MODEL_FILE),
                       os.path.join(final, SAVED_MODEL_FILE))
    fileio.rmtree(staging)
  return final


class Executor(tfx_pusher_executor.Executor):
  """Standard Pusher behaviour with atomic, monotonically versioned pushes."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    model_push = artifact_utils.get_single_instance(
        output_dict[standard_component_specs.PUSHED_MODEL_KEY])
    if not self.CheckBlessing(input_dict):
      self._MarkNotPushed(model_push)
      return
    model_path = self.GetModelPath(input_dict)
    destination = pusher_pb2.PushDestination()
    proto_utils.json_to_proto(
        exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
    if destination.WhichOneof("destination") != "filesystem":
      raise NotImplementedError("Only filesystem push destinations are supported.")
    serving_path = push_atomically(
        model_path, destination.filesystem.base_directory, time.time())
    logging.info("Model written to serving path %s.", serving_path)
    io_utils.copy_dir(model_path, model_push.uri)
    self._MarkPushed(model_push, pushed_destination=serving_path,
                     pushed_version=os.path.basename(serving_path))
