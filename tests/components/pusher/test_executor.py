"""The Pusher lands versions atomically, numbers them monotonically, and pushes only blessed models."""

import os
import threading

import pytest

from components.pusher import executor as pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils


def _saved_model(path):
  os.makedirs(os.path.join(path, "variables"))
  with open(os.path.join(path, "saved_model.pb"), "wb") as f:
    f.write(b"pb")
  with open(os.path.join(path, "variables", "variables.index"), "wb") as f:
    f.write(b"idx")
  return path


def test_versions_only_grow_even_if_the_clock_goes_back(tmp_path):
  model = _saved_model(str(tmp_path / "model"))
  base = str(tmp_path / "serving" / "m")
  first = pusher_executor.push_atomically(model, base, now=1000.0)
  second = pusher_executor.push_atomically(model, base, now=999.0)
  third = pusher_executor.push_atomically(model, base, now=5000.0)
  assert [os.path.basename(p) for p in (first, second, third)] == ["1000", "1001", "5000"]
  assert pusher_executor.existing_versions(base) == [1000, 1001, 5000]


def test_push_leaves_no_staging_folder_and_a_complete_model(tmp_path):
  model = _saved_model(str(tmp_path / "model"))
  base = str(tmp_path / "serving")
  final = pusher_executor.push_atomically(model, base, now=42.0)
  assert sorted(os.listdir(base)) == ["42"]
  assert os.path.exists(os.path.join(final, "saved_model.pb"))
  assert os.path.exists(os.path.join(final, "variables", "variables.index"))


def _run_pusher(tmp_path, blessed: bool):
  model = standard_artifacts.Model()
  model.uri = str(tmp_path / "trainer")
  _saved_model(os.path.join(model.uri, "Format-Serving"))
  blessing = standard_artifacts.ModelBlessing()
  blessing.uri = str(tmp_path / "blessing")
  blessing.set_int_custom_property("blessed", int(blessed))
  pushed = standard_artifacts.PushedModel()
  pushed.uri = str(tmp_path / "pushed")
  base = str(tmp_path / "serving")
  destination = pusher_pb2.PushDestination(
      filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=base))
  pusher_executor.Executor().Do(
      {"model": [model], "model_blessing": [blessing]}, {"pushed_model": [pushed]},
      {"push_destination": proto_utils.proto_to_json(destination)})
  return pushed, base


def test_unblessed_model_is_not_pushed(tmp_path):
  pushed, base = _run_pusher(tmp_path, blessed=False)
  assert pushed.get_int_custom_property("pushed") == 0
  assert not os.path.exists(base)


def test_blessed_model_is_pushed_with_version_property(tmp_path):
  pushed, base = _run_pusher(tmp_path, blessed=True)
  assert pushed.get_int_custom_property("pushed") == 1
  version = pushed.get_string_custom_property("pushed_version")
  assert os.listdir(base) == [version]
  assert pushed.get_string_custom_property("pushed_destination") == os.path.join(base, version)


def _listing(base):
  return sorted(os.listdir(base)) if os.path.isdir(base) else []


def test_a_push_failing_mid_copy_leaves_no_version_and_no_staging(tmp_path):
  # A dangling file fails any copy part-way (as a full disk would): a plain copy
  # into <base>/<version> would leave a half version that TF Serving loads.
  model = _saved_model(str(tmp_path / "model"))
  os.symlink(str(tmp_path / "gone"),
             os.path.join(model, "variables", "variables.data-00000-of-00001"))
  base = str(tmp_path / "serving")
  with pytest.raises(Exception):
    pusher_executor.push_atomically(model, base, now=42.0)
  assert _listing(base) == []


def test_staging_folders_of_a_killed_push_are_removed_at_the_next_push(tmp_path):
  model = _saved_model(str(tmp_path / "model"))
  base = tmp_path / "serving"
  (base / ".tmp-41" / "variables").mkdir(parents=True)
  (base / ".tmp-41" / "saved_model.pb").write_bytes(b"half")
  final = pusher_executor.push_atomically(model, str(base), now=50.0)
  assert _listing(str(base)) == ["50"]
  assert os.path.basename(final) == "50"


def test_files_and_folders_are_fsynced_before_the_rename(tmp_path, monkeypatch):
  events = []
  real_fsync, real_rename = os.fsync, os.rename

  def fsync(fd):
    events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
    real_fsync(fd)

  def rename(src, dst):
    events.append(("rename", str(src)))
    real_rename(src, dst)

  monkeypatch.setattr(os, "fsync", fsync)
  monkeypatch.setattr(os, "rename", rename)
  model = _saved_model(str(tmp_path / "model"))
  base = str(tmp_path / "serving")
  pusher_executor.push_atomically(model, base, now=7.0)
  staging = os.path.join(base, ".tmp-7")
  rename_at = events.index(("rename", staging))
  synced_before = {path for kind, path in events[:rename_at] if kind == "fsync"}
  assert {os.path.join(staging, "saved_model.pb"),
          os.path.join(staging, "variables", "variables.index"),
          os.path.join(staging, "variables"), staging} <= synced_before
  # The rename itself is made durable by syncing the serving folder.
  assert ("fsync", base) in events[rename_at:]


def test_a_watcher_never_sees_an_incomplete_version(tmp_path):
  model = _saved_model(str(tmp_path / "model"))
  with open(os.path.join(model, "variables", "variables.data-00000-of-00001"), "wb") as f:
    f.write(os.urandom(32 << 20))
  base = str(tmp_path / "serving")
  os.makedirs(base)
  incomplete, stop = [], threading.Event()

  def watch():
    while not stop.is_set():
      for name in os.listdir(base):
        folder = os.path.join(base, name)
        if name.isdigit() and not (
            os.path.exists(os.path.join(folder, "saved_model.pb")) and
            os.path.getsize(os.path.join(folder, "variables",
                                         "variables.data-00000-of-00001")) == 32 << 20):
          incomplete.append(name)

  watcher = threading.Thread(target=watch)
  watcher.start()
  try:
    pusher_executor.push_atomically(model, base, now=9.0)
  finally:
    stop.set()
    watcher.join()
  assert not incomplete
