"""Drift of a new span against the previous one: item-id distribution, events per user, day.

The checks and their thresholds: docs/kubeflow.md, the drift gate.
"""

import dataclasses
import datetime
from typing import Optional, Tuple

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tensorflow_metadata.proto.v0 import statistics_pb2

from trainer import features

# ExampleGen writes timestamps as int64 microseconds (pipeline.ingest.example_gen).
TIMESTAMP_UNITS_PER_SECOND = 1_000_000
_DRIFT_TYPES = {anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH}
_UTC = datetime.timezone.utc


@dataclasses.dataclass(frozen=True)
class Thresholds:
  """How far a span may move from the previous one (``pipeline.configs.DriftConfig``)."""
  max_item_distance: float           # L-infinity distance of the item-id frequencies
  max_events_per_user_ratio: float   # factor events per user may grow or shrink by
  day_tolerance_hours: float         # timestamps this far outside a YYYYMMDD span's day


def _feature(stats: statistics_pb2.DatasetFeatureStatistics,
             name: str) -> Optional[statistics_pb2.FeatureNameStatistics]:
  for feature in stats.features:
    if list(feature.path.step) == [name] or feature.name == name:
      return feature
  return None


def item_drift(current: statistics_pb2.DatasetFeatureStatisticsList,
               previous: statistics_pb2.DatasetFeatureStatisticsList,
               threshold: float) -> anomalies_pb2.Anomalies:
  """TFDV's L-infinity comparison of the item-id frequencies, only its drift anomalies.

  The schema is inferred from ``current`` itself, so its other checks (the
  ExampleValidator's job) find nothing; only the drift comparator can fire.
  """
  schema = tfdv.infer_schema(current)
  tfdv.get_feature(schema, features.LOG_ITEM_ID).drift_comparator.infinity_norm.threshold = (
      threshold)
  found = tfdv.validate_statistics(current, schema, previous_statistics=previous)
  anomalies = anomalies_pb2.Anomalies()
  info = found.anomaly_info.get(features.LOG_ITEM_ID)
  if info is not None:
    reasons = [r for r in info.reason if r.type in _DRIFT_TYPES]
    if reasons:
      kept = anomalies.anomaly_info[features.LOG_ITEM_ID]
      kept.severity = info.severity
      kept.reason.extend(reasons)
      kept.short_description = reasons[0].short_description
      kept.description = " ".join(r.description for r in reasons)
  return anomalies


def events_per_user(stats: statistics_pb2.DatasetFeatureStatistics) -> Optional[float]:
  """Rows per distinct user id of a span; None without user-id statistics."""
  user = _feature(stats, features.LOG_USER_ID)
  if user is None or not user.string_stats.unique:
    return None
  return user.string_stats.common_stats.num_non_missing / user.string_stats.unique


def span_day(span: int) -> Optional[datetime.date]:
  """The day a span named YYYYMMDD (the nightly convention) stands for; else None."""
  text = str(span)
  if len(text) != 8:
    return None
  try:
    return datetime.datetime.strptime(text, "%Y%m%d").date()
  except ValueError:
    return None


def timestamp_range(stats: statistics_pb2.DatasetFeatureStatistics
                    ) -> Optional[Tuple[float, float]]:
  """(earliest, latest) timestamp of a span in unix seconds; None without them."""
  timestamp = _feature(stats, features.LOG_TIMESTAMP)
  if timestamp is None or not timestamp.num_stats.common_stats.num_non_missing:
    return None
  return (timestamp.num_stats.min / TIMESTAMP_UNITS_PER_SECOND,
          timestamp.num_stats.max / TIMESTAMP_UNITS_PER_SECOND)


def _utc(seconds: float) -> str:
  return datetime.datetime.fromtimestamp(seconds, _UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _add(anomalies: anomalies_pb2.Anomalies, feature: str, kind: int, short: str,
         description: str) -> None:
  info = anomalies.anomaly_info[feature]
  info.severity = anomalies_pb2.AnomalyInfo.ERROR
  info.short_description = short
  info.description = description
  info.reason.add(type=kind, short_description=short, description=description)


def _check_events_per_user(anomalies: anomalies_pb2.Anomalies,
                           current: statistics_pb2.DatasetFeatureStatistics,
                           previous: statistics_pb2.DatasetFeatureStatistics,
                           max_ratio: float) -> None:
  new, old = events_per_user(current), events_per_user(previous)
  if not new or not old:
    return
  ratio = max(new / old, old / new)
  if ratio > max_ratio:
    _add(anomalies, features.LOG_USER_ID, anomalies_pb2.AnomalyInfo.CUSTOM_VALIDATION,
         "Events per user moved",
         f"Events per user moved from {old:.3g} in the previous span to {new:.3g}, by a "
         f"factor of {ratio:.3g}, above the threshold {max_ratio:g}.")


def _check_day(anomalies: anomalies_pb2.Anomalies,
               stats: statistics_pb2.DatasetFeatureStatistics, span: int,
               tolerance_hours: float) -> None:
  day, seen = span_day(span), timestamp_range(stats)
  if day is None or seen is None:
    return
  start = datetime.datetime.combine(day, datetime.time(), _UTC).timestamp()
  tolerance = tolerance_hours * 3600
  low, high = start - tolerance, start + 24 * 3600 + tolerance
  if seen[0] >= low and seen[1] < high:
    return
  kind = (anomalies_pb2.AnomalyInfo.INT_TYPE_SMALL_INT if seen[0] < low
          else anomalies_pb2.AnomalyInfo.INT_TYPE_BIG_INT)
  _add(anomalies, features.LOG_TIMESTAMP, kind, "Timestamps outside the span's day",
       f"Span {span} holds timestamps from {_utc(seen[0])} to {_utc(seen[1])}; its day is "
       f"{day.isoformat()} (UTC) with a tolerance of {tolerance_hours:g} h, i.e. from "
       f"{_utc(low)} to before {_utc(high)}.")


def check(current: statistics_pb2.DatasetFeatureStatisticsList,
          previous: Optional[statistics_pb2.DatasetFeatureStatisticsList],
          span: Optional[int], thresholds: Thresholds) -> anomalies_pb2.Anomalies:
  """The drift anomalies of a span (empty when it passes).

  Args:
    current: the span's statistics (one dataset).
    previous: the previous span's statistics, or None (first span: no comparison).
    span: the span number; only a YYYYMMDD one gets the day check.
    thresholds: see ``Thresholds``.
  """
  anomalies = anomalies_pb2.Anomalies()
  if previous is not None:
    anomalies.MergeFrom(item_drift(current, previous, thresholds.max_item_distance))
    _check_events_per_user(anomalies, current.datasets[0], previous.datasets[0],
                           thresholds.max_events_per_user_ratio)
  if span is not None:
    _check_day(anomalies, current.datasets[0], span, thresholds.day_tolerance_hours)
  return anomalies

