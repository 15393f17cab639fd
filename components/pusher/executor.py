"""Pusher executor that writes each version atomically and numbers them monotonically."""

import os
import shutil
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
STAGING_PREFIX = ".tmp-"


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


def remove_stale_staging(base_directory: str) -> List[str]:
  """Removes the ``.tmp-*`` folders of pushes that never finished."""
  removed = []
  for name in fileio.listdir(base_directory):
    name = name.rstrip("/")
    if name.startswith(STAGING_PREFIX):
      fileio.rmtree(os.path.join(base_directory, name))
      removed.append(name)
  if removed:
    logging.warning("Removed staging folders of unfinished pushes in %s: %s",
                    base_directory, removed)
  return removed


def _fsync(path: str) -> None:
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)


def _copy_file(source: str, target: str) -> None:
  """Copies one file (``source`` may be remote) and fsyncs the copy."""
  with fileio.open(source, "rb") as reader, open(target, "wb") as writer:
    shutil.copyfileobj(reader, writer, 1 << 20)
    writer.flush()
    os.fsync(writer.fileno())


def _copy_tree_synced(source: str, target: str) -> None:
  """Copies a SavedModel folder to a local ``target``, ``saved_model.pb``
  last, then fsyncs every folder so names and contents are on disk."""
  folders, last = [], None
  for root, _, files in fileio.walk(source):
    relative = os.path.relpath(root.rstrip("/"), source.rstrip("/"))
    folder = os.path.normpath(os.path.join(target, relative))
    os.makedirs(folder, exist_ok=True)
    folders.append(folder)
    for name in files:
      if relative == "." and name == SAVED_MODEL_FILE:
        last = os.path.join(root, name)
        continue
      _copy_file(os.path.join(root, name), os.path.join(folder, name))
  if last is None:
    raise FileNotFoundError(f"no {SAVED_MODEL_FILE} in {source}")
  _copy_file(last, os.path.join(target, SAVED_MODEL_FILE))
  for folder in reversed(folders):
    _fsync(folder)


def _copy_to_object_store(source: str, target: str) -> None:
  io_utils.copy_dir(source, target, deny_regex_patterns=[r"saved_model\.pb"])
  io_utils.copy_file(os.path.join(source, SAVED_MODEL_FILE),
                     os.path.join(target, SAVED_MODEL_FILE))


def push_atomically(model_path: str, base_directory: str, now: float) -> str:
  """Copies the SavedModel at ``model_path`` to ``base_directory/<version>``.

  Raises:
    Whatever the copy raised (disk full, permissions); the staging folder is
    removed first and no version folder appears.
  """
  fileio.makedirs(base_directory)
  remove_stale_staging(base_directory)
  version = next_version(base_directory, now)
  final = os.path.join(base_directory, str(version))
  staging = os.path.join(base_directory, f"{STAGING_PREFIX}{version}")
  try:
    if _is_local(base_directory):
      _copy_tree_synced(model_path, staging)
      os.rename(staging, final)
      _fsync(base_directory)
    else:
      _copy_to_object_store(model_path, staging)
      _copy_to_object_store(staging, final)
      fileio.rmtree(staging)
  except BaseException:
    if fileio.exists(staging):
      fileio.rmtree(staging)
    raise
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
