"""The Pusher lands versions atomically, numbers them monotonically, and pushes only blessed models."""

import os

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
