"""Nightly drift gate, whole pipeline: a drifted span stops the run before training and pushes nothing.

Two short runs (each stops at the SequenceBuilder): the first span's timestamps lie
outside its day, the second span's items moved; the second message shows that the
previous span's statistics were found.
"""

import datetime
import os

import numpy as np
import pandas as pd
import pytest

from pipeline import local_runner
from pipeline import retrain_state
from tests.conftest import TINY_MODEL_CONFIG


def _day(path, span: int, items, day_offset: int = 0):
  """A day's log for span YYYYMMDD: 30 users x 5 events, timestamps in that day (+offset)."""
  rng = np.random.default_rng(span)
  midnight = datetime.datetime.strptime(str(span), "%Y%m%d").replace(
      tzinfo=datetime.timezone.utc).timestamp() + day_offset * 86400
  pd.DataFrame({
      "user_id": np.repeat([f"user{u}" for u in range(30)], 5),
      "item_id": items,
      "timestamp": (midnight + rng.integers(0, 86400, 150)).astype(np.int64),
  }).to_csv(path, index=False)
  return str(path)


def _retrain(tmp_path, log: str, span: int):
  return local_runner.main([
      "--dataset", "csv", "--data-dir", log, "--span", str(span), "--span-window", "3",
      "--output-dir", str(tmp_path / "out"), "--pipeline-name", "seqrec-nightly",
      "--min-interactions", "3", "--model-config", TINY_MODEL_CONFIG, "--pretrain-config", "off"])


def test_a_drifted_span_stops_before_training_saying_what_moved(tmp_path):
  rng = np.random.default_rng(0)
  usual = [f"item{i}" for i in rng.integers(0, 40, 150)]
  # Span 20240310 holds the log of a week earlier.
  late = _day(tmp_path / "a.csv", 20240310, usual, day_offset=-7)
  with pytest.raises(Exception) as first:
    _retrain(tmp_path, late, 20240310)
  assert "Data anomalies found by DriftValidator in split 'train': feature 'timestamp': " \
         "Timestamps outside the span's day: Span 20240310 holds timestamps from 2024-03-03" \
         in str(first.value)

  # The next day most events are on one item.
  skewed = _day(tmp_path / "b.csv", 20240311, ["item3"] * 100 + usual[:50])
  with pytest.raises(Exception) as second:
    _retrain(tmp_path, skewed, 20240311)
  message = str(second.value)
  assert "feature 'item_id': High Linfty distance between current and previous" in message
  assert "above the threshold 0.3. The feature value with maximum difference is: item3" in message
  assert "timestamp" not in message
  assert "nothing was trained or pushed" in message

  out = tmp_path / "out"
  assert not (out / "serving").exists()
  assert not (out / retrain_state.STATE_FILE).exists()
  assert not os.path.exists(out / "tfx" / "seqrec-nightly" / "Transform")
