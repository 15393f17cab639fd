"""The watcher retries a version that failed to load once any file of its folder changes,
and gives a replaced version's memory back."""

import gc
import weakref

import grpc

from serving import model_watcher
from serving import servable as servable_lib

MODEL = "seqrec"


class _FakeServable:

  def __init__(self, version):
    self.version = version


def test_a_version_copied_pb_first_is_loaded_once_its_variables_arrive(tmp_path):
  # cp -r / rsync write saved_model.pb before variables/: the first poll fails.
  calls = []

  def loader(path, version):
    calls.append(version)
    if not (tmp_path / str(version) / "variables" / "variables.index").exists():
      raise servable_lib.LoadError(grpc.StatusCode.DATA_LOSS, f"{path}: no variables")
    return _FakeServable(version)

  watcher = model_watcher.ModelWatcher(MODEL, str(tmp_path), loader, poll_seconds=60)
  folder = tmp_path / "3"
  folder.mkdir()
  (folder / "saved_model.pb").write_bytes(b"model")
  assert not watcher.poll_once() and not watcher.poll_once()
  assert calls == [3]                         # a broken folder is not reloaded
  assert watcher.version_states()[3].state == model_watcher.END
  (folder / "variables").mkdir()
  (folder / "variables" / "variables.data-00000-of-00001").write_bytes(b"weights")
  assert not watcher.poll_once()              # still incomplete: retried, fails
  (folder / "variables" / "variables.index").write_bytes(b"index")
  assert watcher.poll_once() and watcher.serving_version() == 3
  assert calls == [3, 3, 3]
  assert watcher.version_states()[3].state == model_watcher.AVAILABLE


class _CyclicServable(_FakeServable):
  """Holds a reference cycle, as a loaded SavedModel's graphs do."""

  def __init__(self, version):
    super().__init__(version)
    self.cycle = self


def test_a_replaced_version_is_freed_once_no_request_holds_it(tmp_path, monkeypatch):
  trims = []
  monkeypatch.setattr(model_watcher, "_MALLOC_TRIM", trims.append)
  watcher = model_watcher.ModelWatcher(MODEL, str(tmp_path), lambda p, v: _CyclicServable(v),
                                       poll_seconds=60)
  for version in (1, 2):
    (tmp_path / str(version)).mkdir()
  (tmp_path / "2" / "saved_model.pb").write_bytes(b"later")
  (tmp_path / "2").rename(tmp_path / "hidden")
  was_enabled = gc.isenabled()
  gc.disable()   # only the watcher collects
  try:
    assert watcher.poll_once()
    in_flight = watcher.servable()   # a request still running on version 1
    first = weakref.ref(in_flight)
    (tmp_path / "hidden").rename(tmp_path / "2")
    assert watcher.poll_once() and watcher.serving_version() == 2
    assert first() is not None
    del in_flight                    # the request ends; the cycle keeps version 1
    assert not watcher.poll_once()   # the next scan collects it
    assert first() is None
    assert trims and set(trims) == {0}   # the freed heap goes back to the system
  finally:
    if was_enabled:
      gc.enable()
