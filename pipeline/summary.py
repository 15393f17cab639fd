"""The end-of-run summary: data sizes, metrics next to popularity (overall and per
slice), the pushed path.

Read from ML Metadata, so it reports what the pipeline actually produced.
"""

import json
import os
from typing import Dict, Optional

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components.ranking_evaluator import slices

METRICS_FILE = "metrics.json"
STATS_FILE = "stats.json"
# The overall metrics shown, in order (those the evaluation has).
METRIC_NAMES = ("HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20", "MRR",
                "coverage@10", "novelty@10", "diversity@10")


def open_store(metadata_path: str) -> metadata_store.MetadataStore:
  """A read-only connection to the run's ML Metadata (SQLite)."""
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = metadata_path
  config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
  return metadata_store.MetadataStore(config)


def newest(artifacts):
  """The newest of ``artifacts`` (by creation time, then id), or None."""
  return max(artifacts, key=lambda a: (a.create_time_since_epoch, a.id)) if artifacts else None


def _latest(store, type_name: str):
  try:
    artifacts = store.get_artifacts_by_type(type_name)
  except Exception:  # pylint: disable=broad-except
    return None
  return newest([a for a in artifacts if a.state == metadata_store_pb2.Artifact.LIVE])


def read_json(directory: str, name: str) -> Optional[Dict]:
  path = os.path.join(directory, name)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def collect(metadata_path: str) -> Dict:
  """The newest run's sequence stats, evaluation and push, from MLMD."""
  store = open_store(metadata_path)
  result = {}
  evaluation = _latest(store, "ModelEvaluation")
  if evaluation is not None:
    result["evaluation"] = read_json(evaluation.uri, METRICS_FILE)
  push = _latest(store, "PushedModel")
  if push is not None:
    props = push.custom_properties
    result["pushed"] = bool(props["pushed"].int_value) if "pushed" in props else False
    if "pushed_destination" in props:
      result["pushed_destination"] = props["pushed_destination"].string_value
  bulk = _latest(store, "Dataset")
  if bulk is not None and "rows" in bulk.custom_properties and (
      push is None or bulk.create_time_since_epoch >= push.create_time_since_epoch):
    props = bulk.custom_properties
    result["bulk_recommendations"] = {"uri": bulk.uri, "users": props["users"].int_value,
                                      "rows": props["rows"].int_value, "k": props["k"].int_value}
  for examples in sorted(store.get_artifacts_by_type("Examples"),
                         key=lambda a: (a.create_time_since_epoch, a.id), reverse=True):
    stats = read_json(examples.uri, STATS_FILE)
    if stats is not None:
      result["sequences"] = stats
      result["sequences_uri"] = examples.uri
      break
  return result


def scorer_metrics(evaluation: Dict, scorer: str) -> Dict:
  """One scorer's overall metrics, accuracy and beyond accuracy, in one dict."""
  return {**evaluation.get(scorer, {}), **evaluation.get("beyond_accuracy", {}).get(scorer, {})}


def format_summary(summary: Dict, wall_seconds: float) -> str:
  """A short, readable block for the end of a run."""
  lines = ["", "=" * 64, "Run summary", "=" * 64]
  stats = summary.get("sequences") or {}
  if stats:
    lines.append(
        f"data: {stats.get('num_interactions', '?')} interactions, "
        f"{stats.get('num_users_kept', '?')} users kept "
        f"({stats.get('num_users_dropped_short', 0)} below min_interactions), "
        f"{stats.get('num_items', '?')} items")
    if stats.get("num_cold_items"):
      lines.append(
          f"cold items: {stats['num_cold_items']} held out of training, the target of "
          f"{stats.get('num_test_targets_held_out', '?')} test users "
          f"({stats.get('num_users_dropped_held_out', 0)} users too short without them)")
  evaluation = summary.get("evaluation") or {}
  model = scorer_metrics(evaluation, "model")
  popularity = scorer_metrics(evaluation, "popularity")
  text = scorer_metrics(evaluation, "text_similarity")
  text_column = f"{'text_similarity':>17}" if text else ""
  if evaluation.get("model"):
    names = [n for n in METRIC_NAMES if n in model]
    lines.append(f"full-ranking metrics on split '{evaluation.get('split', 'test')}' "
                 f"({model.get('num_users', '?')} users):")
    lines.append(f"  {'metric':<12}{'model':>10}{'popularity':>12}{text_column}")
    for name in names:
      lines.append(f"  {name:<12}{model[name]:>10.4f}{popularity.get(name, float('nan')):>12.4f}"
                   + (f"{text.get(name, float('nan')):>17.4f}" if text else ""))
  for note in evaluation.get("notes", []):
    lines.append(f"note: {note}")
  table = slices.format_table(evaluation.get("slices", {}),
                              [n for n in ("HR@10", "NDCG@10") if n in model])
  if table:
    lines.append("per slice:")
    lines += ["  " + line for line in table.splitlines()]
  gating = evaluation.get("gating", {})
  if gating:
    verdict = "BLESSED" if gating.get("blessed") else "NOT BLESSED"
    lines.append(f"blessing: {verdict} ({gating.get('metric')} = {gating.get('value', 0):.4f})")
    for reason in gating.get("reasons", []):
      lines.append(f"  - {reason}")
  if summary.get("pushed"):
    lines.append(f"pushed: {summary.get('pushed_destination')}")
  else:
    lines.append("pushed: nothing (model not blessed); the serving folder is unchanged")
  bulk = summary.get("bulk_recommendations")
  if bulk:
    lines.append(f"bulk recommendations: {bulk['users']} users, {bulk['rows']} rows "
                 f"(k={bulk['k']}) in {bulk['uri']}")
  if summary.get("report"):
    lines.append(f"report: {summary['report']}")
  lines.append(f"wall time: {wall_seconds:.0f} s")
  lines.append("=" * 64)
  return "\n".join(lines)
