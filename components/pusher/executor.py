"""Pusher executor that writes each version atomically and numbers them monotonically."""

import os
import time
from typing import Any, Dict, List

from absl import logging
from tfx import types
from tfx.components.pusher import executor as tfx_pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import io_utils
from tfx.utils import proto_utils

# pylint: disable=unused-import  (re-exported: the executor's push, by its old names)
from components.pusher.atomic_push import existing_versions
from components.pusher.atomic_push import push_atomically
# pylint: enable=unused-import


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
