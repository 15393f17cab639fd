"""The drift checks on two tiny spans' statistics: a similar day passes, a drifted one says what moved."""

import datetime

import numpy as np
import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2

from components.drift_validator import drift

THRESHOLDS = drift.Thresholds(max_item_distance=0.3, max_events_per_user_ratio=2.0,
                              day_tolerance_hours=3.0)
MICROS = 1_000_000


def _midnight(span: int) -> float:
  day = datetime.datetime.strptime(str(span), "%Y%m%d").replace(tzinfo=datetime.timezone.utc)
  return day.timestamp()


def span_log(span: int, seed: int, users: int = 40, events_per_user: int = 5,
             items=None, hours=(0.0, 24.0)) -> pd.DataFrame:
  """A day's log as ExampleGen types it: string ids, int64 microsecond timestamps."""
  rng = np.random.default_rng(seed)
  n = users * events_per_user
  items = rng.zipf(1.6, n) % 30 if items is None else np.asarray(items)
  seconds = _midnight(span) + rng.uniform(hours[0] * 3600, hours[1] * 3600 - 1, n)
  return pd.DataFrame({
      "user_id": [f"u{u}" for u in np.repeat(np.arange(users), events_per_user)],
      "item_id": [f"i{i}" for i in items],
      "timestamp": (seconds * MICROS).astype(np.int64)})


def stats(log: pd.DataFrame):
  return tfdv.generate_statistics_from_dataframe(log)


@pytest.fixture(scope="module")
def previous():
  return stats(span_log(20261126, seed=1))


def _lines(anomalies: anomalies_pb2.Anomalies):
  return {name: info.description for name, info in anomalies.anomaly_info.items()}


def test_a_similar_day_passes(previous):
  assert not _lines(drift.check(stats(span_log(20261127, seed=2)), previous, 20261127,
                                THRESHOLDS))


def test_a_shifted_item_distribution_names_the_feature_distance_and_threshold(previous):
  # Half of the day's events on one item that was rare the day before.
  items = np.where(np.arange(200) % 2 == 0, 29, np.random.default_rng(3).zipf(1.6, 200) % 30)
  found = _lines(drift.check(stats(span_log(20261127, seed=3, items=items)), previous,
                             20261127, THRESHOLDS))
  assert set(found) == {"item_id"}
  assert found["item_id"].startswith("The Linfty distance between current and previous is 0.")
  assert "above the threshold 0.3" in found["item_id"]
  assert found["item_id"].endswith("The feature value with maximum difference is: i29")


def test_events_per_user_tripled_is_named_with_both_values(previous):
  log = span_log(20261127, seed=4, users=13, events_per_user=15)
  found = _lines(drift.check(stats(log), previous, 20261127, THRESHOLDS))
  assert found["user_id"] == ("Events per user moved from 5 in the previous span to 15, by a "
                              "factor of 3, above the threshold 2.")
  relaxed = drift.Thresholds(0.3, 3.5, 3.0)
  assert "user_id" not in _lines(drift.check(stats(log), previous, 20261127, relaxed))


def test_timestamps_outside_the_day_name_the_span_and_the_allowed_range(previous):
  late = span_log(20261127, seed=5, hours=(20.0, 28.0))   # up to 04:00 the next day
  found = _lines(drift.check(stats(late), previous, 20261127, THRESHOLDS))
  assert set(found) == {"timestamp"}
  assert found["timestamp"].startswith("Span 20261127 holds timestamps from 2026-11-27 20:")
  assert " to 2026-11-28 03:" in found["timestamp"]
  assert found["timestamp"].endswith(
      "its day is 2026-11-27 (UTC) with a tolerance of 3 h, i.e. from 2026-11-26 21:00:00 UTC "
      "to before 2026-11-28 03:00:00 UTC.")
  # Within the tolerance, and for yesterday's log filed as today.
  assert not _lines(drift.check(stats(late), previous, 20261127,
                                drift.Thresholds(0.3, 2.0, 4.0)))
  yesterday = span_log(20261126, seed=6)
  assert set(_lines(drift.check(stats(yesterday), previous, 20261127, THRESHOLDS))) == {
      "timestamp"}


def test_the_first_span_gets_only_the_day_check():
  early = stats(span_log(20261127, seed=7, hours=(-6.0, 12.0)))
  assert set(_lines(drift.check(early, None, 20261127, THRESHOLDS))) == {"timestamp"}
  assert not _lines(drift.check(stats(span_log(20261127, seed=7)), None, 20261127, THRESHOLDS))


@pytest.mark.parametrize("span", [3, 20261340, 123456789])
def test_spans_that_are_not_dates_get_no_day_check(span):
  assert drift.span_day(span) is None
  far = stats(span_log(20200101, seed=8))
  assert not _lines(drift.check(far, None, span, THRESHOLDS))


def test_measures_read_from_the_statistics(previous):
  dataset = previous.datasets[0]
  assert drift.events_per_user(dataset) == 5
  earliest, latest = drift.timestamp_range(dataset)
  assert _midnight(20261126) <= earliest < latest < _midnight(20261127)
