"""Nightly idempotence state: a corrupt file is set aside and never breaks a run."""

import json
import os

import pytest

from pipeline import retrain_state

SUMMARY = {"evaluation": {"gating": {"blessed": True}}, "pushed": True,
           "pushed_destination": "/serving/7"}


@pytest.fixture
def data(tmp_path):
  path = tmp_path / "interactions.csv"
  path.write_text("user_id,item_id,timestamp\nu,i,1\n")
  return str(path)


def test_a_recorded_span_on_the_same_data_is_finished(tmp_path, data):
  root = str(tmp_path)
  assert retrain_state.finished_run(root, 3, data) is None
  retrain_state.record_run(root, 3, data, SUMMARY)
  assert retrain_state.finished_run(root, 3, data)["pushed_destination"] == "/serving/7"
  assert retrain_state.finished_run(root, 4, data) is None


@pytest.mark.parametrize("content", [b'{"3": {"fingerp', b"", b"\xff\xfe",
                                     b"[1, 2]", b'{"3": 5}'])
def test_a_corrupt_state_file_is_moved_aside_and_counts_as_no_state(
    tmp_path, data, capsys, content):
  root = str(tmp_path)
  path = os.path.join(root, retrain_state.STATE_FILE)
  with open(path, "wb") as f:
    f.write(content)
  assert retrain_state.finished_run(root, 3, data) is None
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith(f"warning: {path} is corrupt (")
  kept = [n for n in os.listdir(root) if ".corrupt-" in n]
  assert len(kept) == 1
  with open(os.path.join(root, kept[0]), "rb") as f:
    assert f.read() == content
  # The next record starts a fresh, valid state; later runs see it.
  retrain_state.record_run(root, 3, data, SUMMARY)
  assert json.load(open(path))["3"]["blessed"] is True
  assert retrain_state.finished_run(root, 3, data) is not None
