"""Watches a model base path and serves its newest version, as TF Serving does.

The version policy and its one deviation: docs/serving.md, "The local server".
"""

import ctypes
import ctypes.util
import dataclasses
import gc
import logging
import os
import threading
import time
import weakref
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import grpc

from serving import servable as servable_lib

_LOG = logging.getLogger(__name__)

START, LOADING, AVAILABLE, UNLOADING, END = (
    "START", "LOADING", "AVAILABLE", "UNLOADING", "END")

Loader = Callable[[str, int], "servable_lib.Servable"]
RETIRED_COLLECTIONS = 5   # scans that collect garbage after a swap, at most


def _malloc_trim() -> Optional[Callable[[int], int]]:
  """glibc's ``malloc_trim`` (None elsewhere, e.g. musl or macOS)."""
  try:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
  except (OSError, AttributeError):
    return None


_MALLOC_TRIM = _malloc_trim()


@dataclasses.dataclass(frozen=True)
class VersionState:
  """Where one version stands; ``error_code`` is OK unless its load failed."""
  version: int
  state: str
  error_code: grpc.StatusCode = grpc.StatusCode.OK
  error_message: str = ""


class ServableNotFound(LookupError):
  """No loaded version matches the request (TF Serving's NOT_FOUND)."""


class UnknownVersionLabel(LookupError):
  """The request names a version label the server does not define (INVALID_ARGUMENT)."""


def list_versions(base_path: str) -> List[int]:
  """Numeric version folders under ``base_path``, ascending."""
  versions = []
  for name in os.listdir(base_path):
    if name.isdigit() and os.path.isdir(os.path.join(base_path, name)):
      versions.append(int(name))
  return sorted(versions)


def _fingerprint(version_dir: str) -> Tuple:
  """Identifies the folder's content cheaply: every file's relative path, size
  and modification time (no file is read)."""
  entries = []
  for root, _, files in os.walk(version_dir):
    for name in files:
      path = os.path.join(root, name)
      try:
        stat = os.stat(path)
      except OSError:  # Removed while walking: the next poll sees the change.
        continue
      entries.append((os.path.relpath(path, version_dir), stat.st_size,
                      stat.st_mtime_ns))
  return tuple(sorted(entries))


class ModelWatcher:
  """Loads the newest version of one model and hands out the one being served."""

  def __init__(self, model_name: str, base_path: str, loader: Loader,
               poll_seconds: float = 2.0,
               version_labels: Optional[Mapping[str, int]] = None):
    """Creates the watcher; nothing is read before ``start`` or ``poll_once``.

    Args:
      model_name: the name clients put in ``ModelSpec.name``.
      base_path: folder holding ``<version>/`` SavedModel folders.
      loader: ``loader(version_dir, version)`` returns a loaded servable or raises.
      poll_seconds: pause between two scans of ``base_path``.
      version_labels: label -> version, for ``ModelSpec.version_label``.
    """
    if poll_seconds <= 0:
      raise ValueError(f"poll_seconds must be > 0, got {poll_seconds}")
    self.model_name = model_name
    self.base_path = base_path
    self.poll_seconds = poll_seconds
    self.version_labels = dict(version_labels or {})
    self._loader = loader
    self._lock = threading.Lock()
    self._poll_lock = threading.Lock()
    self._current: Optional["servable_lib.Servable"] = None
    self._states: Dict[int, VersionState] = {}
    self._failed: Dict[int, Tuple] = {}   # version -> fingerprint that failed
    # Replaced servables not yet freed, with the collections left to try.
    self._retired: List[Tuple[weakref.ref, int]] = []
    self._stop = threading.Event()
    self._thread: Optional[threading.Thread] = None
    self._warned_empty = False

  # Lifecycle.

  def start(self) -> None:
    """Scans once in the caller's thread (loading the newest version), then polls."""
    self.poll_once()
    self._thread = threading.Thread(target=self._run, name=f"watch-{self.model_name}",
                                    daemon=True)
    self._thread.start()

  def stop(self, timeout: Optional[float] = None) -> None:
    """Stops polling; a load in progress finishes first (up to ``timeout``)."""
    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout)

  def _run(self) -> None:
    while not self._stop.wait(self.poll_seconds):
      try:
        self.poll_once()
      except Exception:  # pylint: disable=broad-except
        _LOG.exception("model %s: polling %s failed", self.model_name, self.base_path)

  # Scanning and loading.

  def poll_once(self) -> bool:
    """Scans ``base_path`` once; loads and swaps in the aspired version if needed.

    Returns:
      True if the served version changed.
    """
    with self._poll_lock:
      self._collect_retired()
      problem = ""
      try:
        versions = list_versions(self.base_path)
      except OSError as e:
        versions, problem = [], f" ({e})"
      if not versions:
        if not self._warned_empty:   # once per empty spell, not on every poll
          current = self._current
          _LOG.warning("model %s: no versions found under %s%s%s", self.model_name,
                       self.base_path, problem,
                       f"; version {current.version} keeps serving" if current else "")
          self._warned_empty = True
        return False
      self._warned_empty = False
      aspired = versions[-1]
      current = self._current
      if current is not None and current.version == aspired:
        return False
      version_dir = os.path.join(self.base_path, str(aspired))
      fingerprint = _fingerprint(version_dir)
      if self._failed.get(aspired) == fingerprint:
        return False
      return self._load_and_swap(aspired, version_dir, fingerprint)

  def _set_state(self, version: int, state: str,
                 error_code: grpc.StatusCode = grpc.StatusCode.OK,
                 error_message: str = "") -> None:
    with self._lock:
      self._states[version] = VersionState(version, state, error_code, error_message)

  def _load_and_swap(self, version: int, version_dir: str, fingerprint: Tuple) -> bool:
    self._set_state(version, START)
    self._set_state(version, LOADING)
    _LOG.info("model %s: loading version %d from %s", self.model_name, version, version_dir)
    started = time.monotonic()
    try:
      new = self._loader(version_dir, version)
    except Exception as e:  # pylint: disable=broad-except
      code = getattr(e, "code", grpc.StatusCode.UNKNOWN)
      if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
      message = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
      self._failed[version] = fingerprint
      self._set_state(version, END, code, message)
      current = self._current
      _LOG.error("model %s: version %d failed to load (%s: %s); %s", self.model_name,
                 version, code.name, message,
                 f"version {current.version} keeps serving" if current
                 else "no version is serving")
      return False
    self._failed.pop(version, None)
    with self._lock:
      old, self._current = self._current, new
      self._states[version] = VersionState(version, AVAILABLE)
      if old is not None:
        self._states[old.version] = VersionState(old.version, UNLOADING)
    _LOG.info("model %s: version %d is serving (loaded in %.1f s)%s", self.model_name,
              version, time.monotonic() - started,
              f"; version {old.version} unloaded" if old is not None else "")
    if old is not None:
      # Requests still running on ``old`` hold their own reference to it.
      self._set_state(old.version, END)
      self._retired.append((weakref.ref(old), RETIRED_COLLECTIONS))
      del old
      self._collect_retired()
    return True

  def _collect_retired(self) -> None:
    """Runs the garbage collector while a replaced servable is still in memory."""
    if not self._retired:
      return
    gc.collect()
    if _MALLOC_TRIM is not None:
      _MALLOC_TRIM(0)   # freed pages go back to the system, not only to malloc
    self._retired = [(ref, tries - 1) for ref, tries in self._retired
                     if ref() is not None and tries > 1]

  # Lookups for the servicers.

  def servable(self, version: Optional[int] = None,
               version_label: Optional[str] = None) -> "servable_lib.Servable":
    """The served version, checked against a requested version or label.

    Raises:
      UnknownVersionLabel: ``version_label`` is not defined.
      ServableNotFound: no version is loaded, or not the requested one; the message
        is TF Serving's ``Servable not found for request: Latest(name)`` /
        ``Specific(name, version)``.
    """
    if version_label:
      if version_label not in self.version_labels:
        raise UnknownVersionLabel(
            f"Unrecognized servable version label: {version_label}")
      version = self.version_labels[version_label]
    current = self._current
    if version is None:
      if current is None:
        raise ServableNotFound(f"Servable not found for request: Latest({self.model_name})")
      return current
    if current is None or current.version != version:
      raise ServableNotFound(
          f"Servable not found for request: Specific({self.model_name}, {version})")
    return current

  def version_states(self) -> Dict[int, VersionState]:
    """Every version seen so far and its latest state."""
    with self._lock:
      return dict(self._states)

  def serving_version(self) -> Optional[int]:
    current = self._current
    return current.version if current is not None else None

  def wait_for_version(self, version: int, timeout: float) -> bool:
    """Blocks until ``version`` is served or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      if self.serving_version() == version:
        return True
      time.sleep(0.05)
    return self.serving_version() == version
