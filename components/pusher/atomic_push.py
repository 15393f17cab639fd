"""Atomic, monotonically numbered pushes of a SavedModel into a serving base folder.

Used by the Pusher executor and the catalogue refresh; imports no TFX component code.
"""

import os
import shutil
from typing import List

from absl import logging
from tfx.dsl.io import fileio
from tfx.utils import io_utils

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
