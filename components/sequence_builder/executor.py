"""SequenceBuilder executor: interaction log -> per-user leave-one-out examples (a Beam job)."""

import json
import os
from typing import Any, Dict, FrozenSet, Iterable, List, Optional, Tuple

from absl import logging
import apache_beam as beam
from tfx import types
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components.sequence_builder import anomalies as anomalies_lib
from components.sequence_builder import cold_items as cold_items_lib
from components.sequence_builder import component_spec as spec
from components.sequence_builder import forgotten_users
from components.sequence_builder import records
from components.sequence_builder import sequences
from trainer import features

# Files written into the output artifacts.
STATS_FILE_NAME = "stats.json"  # in the output_examples uri
SCHEMA_FILE_NAME = "schema.pbtxt"  # in the schema uri (as SchemaGen)
EXAMPLES_FILE_PREFIX = "data_tfrecord"  # in each Split-<split> (as ExampleGen)

# What to do when the newest span drifted from the previous one.
DRIFT_HINT = ("The newest span moved too far from the previous one, so nothing was trained "
              "or pushed. Check that span's log; if the change is real, rerun with looser "
              "thresholds (--drift-config) or without the check (--drift-config off).")

_GZIP_FILE_FORMAT = "tfrecords_gzip"
_STATS_TAG = "stats"
_EXAMPLES_TAG = "examples"

# Integer statistics in stats.json (also set as artifact custom properties).
COUNTER_NAMES = (
    "num_interactions",          # rows of the log, all input splits
    "num_interactions_forgotten",  # rows of forgotten users, dropped
    "num_interactions_kept",     # rows of the users kept
    "num_users_in",              # distinct users of the log
    "num_users_kept",            # users with >= min_interactions rows
    "num_users_dropped_short",   # users with fewer rows
    "num_items",                 # rows of the items split
    "num_items_in_log",          # distinct items of the log
    "num_items_only_in_table",   # items of the item table never interacted with
    "num_item_table_rows",       # rows of the item table
    "num_item_table_rows_without_id",  # item-table rows skipped (empty id)
    # Cold-item hold-out (all 0 when off):
    "num_cold_items",            # catalogue items held out of training
    "num_interactions_held_out",  # rows of held-out items removed from the sequences
    "num_users_dropped_held_out",  # users below min_interactions once those are removed
    "num_test_targets_held_out",  # test rows whose target is a held-out item
)


def _input_file_patterns(artifact: types.Artifact, role: str) -> Dict[str, str]:
  """Split name -> file pattern of every split of an input Examples artifact."""
  payload_format = examples_utils.get_payload_format(artifact)
  if payload_format != example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE:
    raise ValueError(
        f"The {role} Examples at {artifact.uri} have payload format "
        f"{example_gen_pb2.PayloadFormat.Name(payload_format)}; SequenceBuilder "
        "reads FORMAT_TF_EXAMPLE (what ExampleGen writes).")
  file_format = examples_utils.get_file_format(artifact)
  if file_format != _GZIP_FILE_FORMAT:
    raise ValueError(
        f"The {role} Examples at {artifact.uri} have file format "
        f"'{file_format}'; SequenceBuilder reads '{_GZIP_FILE_FORMAT}'.")
  splits = artifact_utils.decode_split_names(artifact.split_names)
  if not splits:
    raise ValueError(
        f"The {role} Examples at {artifact.uri} have no split names.")
  return {
      split: examples_utils.get_split_file_patterns([artifact], split)[0]
      for split in splits
  }


def _optional_single(input_dict: Dict[str, List[types.Artifact]],
                     key: str) -> Optional[types.Artifact]:
  artifacts = input_dict.get(key) or []
  return artifact_utils.get_single_instance(artifacts) if artifacts else None


@beam.ptransform_fn
def _ReadSplits(pipeline: beam.Pipeline, patterns: Dict[str, str],  # pylint: disable=invalid-name
                parse_fn) -> beam.PCollection:
  """Reads and parses the GZIP tf.Example TFRecords of every split."""
  parsed = []
  for split, pattern in sorted(patterns.items()):
    parsed.append(
        pipeline
        | f"Read[{split}]" >> beam.io.ReadFromTFRecord(
            pattern, coder=beam.coders.BytesCoder(),
            compression_type=beam.io.filesystem.CompressionTypes.GZIP)
        # Output type Any: the records are NamedTuples, which Beam would
        # otherwise try (and fail) to encode as schema'd rows.
        | f"Parse[{split}]" >> beam.Map(parse_fn, split=split).with_output_types(
            Any))
  return parsed | "Flatten" >> beam.Flatten()


class _DropForgotten(beam.DoFn):
  """Passes the rows of users not in ``hashes``; counts the others."""

  def __init__(self, hashes: FrozenSet[str]):
    self._hashes = hashes

  def process(self, row: records.Interaction):
    if forgotten_users.user_hash(row.user_id) in self._hashes:
      yield beam.pvalue.TaggedOutput(_STATS_TAG, ("num_interactions_forgotten", 1))
    else:
      yield row


class _BuildSequences(beam.DoFn):
  """(user_id, [(timestamp, item_id)]) -> (split, serialized tf.Example)."""

  def __init__(self, min_interactions: int, max_history_length: int,
               cold: Optional[cold_items_lib.ColdItemSelector] = None):
    self._min_interactions = min_interactions
    self._max_history_length = max_history_length
    self._cold = cold

  def process(self, element: Tuple[bytes, Iterable[Tuple[Any, bytes]]]):
    user_id, events = element
    items = sequences.order_items(events)
    yield beam.pvalue.TaggedOutput(_STATS_TAG, ("num_users_in", 1))
    if len(items) < self._min_interactions:
      yield beam.pvalue.TaggedOutput(_STATS_TAG, ("num_users_dropped_short", 1))
      return
    if self._cold is not None:
      kept = self._cold.hold_out(items)
      yield beam.pvalue.TaggedOutput(
          _STATS_TAG, ("num_interactions_held_out", len(items) - len(kept)))
      items = kept
      if len(items) < self._min_interactions:
        yield beam.pvalue.TaggedOutput(_STATS_TAG, ("num_users_dropped_held_out", 1))
        return
      yield beam.pvalue.TaggedOutput(
          _STATS_TAG, ("num_test_targets_held_out", int(self._cold.is_cold(items[-1]))))
    yield beam.pvalue.TaggedOutput(_STATS_TAG, ("num_users_kept", 1))
    yield beam.pvalue.TaggedOutput(
        _STATS_TAG, ("num_interactions_kept", len(items)))
    splits = sequences.leave_one_out(items, self._max_history_length)
    for split, (history, target) in splits.items():
      example = sequences.sequence_example(user_id, history, target)
      yield split, example.SerializeToString()


class _BuildItems(beam.DoFn):
  """(item_id, {log: [...], table: [ItemRow]}) -> serialized items example."""

  def process(self, element: Tuple[bytes, Dict[str, Iterable[Any]]]):
    item_id, grouped = element
    in_log = any(True for _ in grouped.get("log", ()))
    title, attributes = sequences.merge_item_rows(grouped.get("table", ()))
    yield beam.pvalue.TaggedOutput(_STATS_TAG, ("num_items", 1))
    if in_log:
      yield beam.pvalue.TaggedOutput(_STATS_TAG, ("num_items_in_log", 1))
    else:
      yield beam.pvalue.TaggedOutput(_STATS_TAG, ("num_items_only_in_table", 1))
    yield sequences.item_example(item_id, attributes, title).SerializeToString()


def _finalize_stats(counts: Dict[str, int], min_interactions: int,
                    max_history_length: int) -> Dict[str, Any]:
  """All counters (0 when never counted), per-split counts; fails on no user."""
  stats: Dict[str, Any] = {name: int(counts.get(name, 0))
                           for name in COUNTER_NAMES}
  if stats["num_users_kept"] == 0:
    raise ValueError(
        f"No user left after the min_interactions filter: all "
        f"{stats['num_users_in']} users of the interaction log "
        f"({stats['num_interactions']} interactions) have fewer than "
        f"min_interactions={min_interactions} interactions. Lower "
        "min_interactions or check the log.")
  stats["min_interactions"] = min_interactions
  stats["max_history_length"] = max_history_length
  split_counts = {split: stats["num_users_kept"]
                  for split in features.SEQUENCE_SPLITS}
  split_counts[features.ITEMS_SPLIT] = stats["num_items"]
  stats["split_counts"] = split_counts
  return stats


def _write_split(examples: beam.PCollection, output: types.Artifact,
                 split: str) -> None:
  split_uri = artifact_utils.get_split_uri([output], split)
  _ = examples | f"Write[{split}]" >> beam.io.WriteToTFRecord(
      os.path.join(split_uri, EXAMPLES_FILE_PREFIX), file_name_suffix=".gz")


def _cold_item_selector(
    exec_properties: Dict[str, Any]) -> Optional[cold_items_lib.ColdItemSelector]:
  """The hold-out of the execution properties; None when off (fraction 0)."""
  fraction = exec_properties.get(spec.COLD_ITEM_FRACTION_KEY)
  seed = exec_properties.get(spec.COLD_ITEM_SEED_KEY)
  selector = cold_items_lib.ColdItemSelector(
      spec.DEFAULT_COLD_ITEM_FRACTION if fraction is None else fraction,
      spec.DEFAULT_COLD_ITEM_SEED if seed is None else seed)
  return selector if selector.fraction > 0 else None


def _write_cold_items(catalogue_ids: beam.PCollection,
                      cold: cold_items_lib.ColdItemSelector,
                      output_uri: str) -> beam.PCollection:
  """Writes ``cold_items.json`` (the held-out catalogue ids); returns their count stat."""
  held_out = (catalogue_ids
              | "ColdItems" >> beam.Filter(cold.is_cold)
              | "ColdItemsToList" >> beam.combiners.ToList())
  prefix = os.path.join(output_uri, os.path.splitext(cold_items_lib.COLD_ITEMS_FILE)[0])
  _ = (held_out
       | "ColdItemsToJson" >> beam.Map(lambda ids: cold_items_lib.to_json(cold, ids))
       | "WriteColdItems" >> beam.io.WriteToText(
           prefix, file_name_suffix=".json", shard_name_template=""))
  return held_out | "CountColdItems" >> beam.Map(lambda ids: ("num_cold_items", len(ids)))


class Executor(base_beam_executor.BaseBeamExecutor):
  """Builds the sequence examples, their schema and stats.json."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    """Runs the SequenceBuilder.

    Args:
      input_dict:
        - examples: one Examples artifact, the interaction log (all splits
          are read).
        - items: optional, one Examples artifact, the item table.
        - anomalies: optional, one ExampleAnomalies artifact; any anomaly in
          any split stops the run with a ValueError listing them.
        - drift_anomalies: optional, the DriftValidator's; the same.
      output_dict:
        - output_examples: one Examples artifact; gets splits train, eval,
          test, items and stats.json.
        - schema: one Schema artifact; gets schema.pbtxt.
      exec_properties:
        - min_interactions: int >= 3 (default 5).
        - max_history_length: int >= 0 (default 0 = whole history).
        - forgotten_users: optional path of the forgotten-users ledger.
        - cold_item_fraction: float in [0, 1) (default 0: off); this fraction of
          the items is held out of training (``cold_items``) and their ids are
          written to ``cold_items.json``.
        - cold_item_seed: int >= 0 (default 0): which items.

    Raises:
      ValueError: anomalies, bad parameters, bad input rows, or no user left.
    """
    self._log_startup(input_dict, output_dict, exec_properties)
    min_interactions = exec_properties.get(spec.MIN_INTERACTIONS_KEY)
    if min_interactions is None:
      min_interactions = spec.DEFAULT_MIN_INTERACTIONS
    max_history_length = exec_properties.get(spec.MAX_HISTORY_LENGTH_KEY)
    if max_history_length is None:
      max_history_length = spec.DEFAULT_MAX_HISTORY_LENGTH
    spec.validate_parameters(min_interactions, max_history_length)
    cold = _cold_item_selector(exec_properties)

    ledger = exec_properties.get(spec.FORGOTTEN_USERS_KEY)
    forgotten = (forgotten_users.forgotten_hashes(ledger, fileio.exists, fileio.open)
                 if ledger else frozenset())

    anomalies = _optional_single(input_dict, spec.ANOMALIES_KEY)
    if anomalies is not None:
      anomalies_lib.check_no_anomalies(anomalies)
    drift = _optional_single(input_dict, spec.DRIFT_ANOMALIES_KEY)
    if drift is not None:
      anomalies_lib.check_no_anomalies(drift, "DriftValidator", DRIFT_HINT)

    # One Examples artifact, or several (e.g. the last N daily spans gathered by
    # a SpanRangeStrategy resolver): their events are pooled per user.
    logs = input_dict[spec.EXAMPLES_KEY]
    if not logs:
      raise ValueError("SequenceBuilder got no interaction log Examples.")
    log_patterns = {}
    for i, log in enumerate(logs):
      for split, pattern in _input_file_patterns(log, "interaction log").items():
        log_patterns[split if len(logs) == 1 else f"{i}-{split}"] = pattern
    items = _optional_single(input_dict, spec.ITEMS_KEY)
    items_patterns = (
        _input_file_patterns(items, "item table") if items is not None
        else None)

    output = artifact_utils.get_single_instance(
        output_dict[spec.OUTPUT_EXAMPLES_KEY])
    output.split_names = artifact_utils.encode_split_names(
        list(features.ALL_SPLITS))
    examples_utils.set_payload_format(
        output, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
    examples_utils.set_file_format(output, _GZIP_FILE_FORMAT)

    schema_uri = os.path.join(
        artifact_utils.get_single_uri(output_dict[spec.SCHEMA_KEY]),
        SCHEMA_FILE_NAME)
    io_utils.write_pbtxt_file(schema_uri, sequences.output_schema())
    logging.info("SequenceBuilder: schema written to %s", schema_uri)

    stats_prefix = os.path.join(output.uri, os.path.splitext(STATS_FILE_NAME)[0])
    with self._make_beam_pipeline() as p:
      interactions = p | "ReadLog" >> _ReadSplits(  # pylint: disable=no-value-for-parameter
          log_patterns, records.parse_interaction)
      stats = [
          interactions
          | "CountInteractions" >> beam.Map(lambda _: ("num_interactions", 1))
      ]
      if forgotten:
        kept = interactions | "DropForgottenUsers" >> beam.ParDo(
            _DropForgotten(forgotten)).with_outputs(_STATS_TAG, main=_EXAMPLES_TAG)
        interactions = kept[_EXAMPLES_TAG]
        stats.append(kept[_STATS_TAG])

      # Sequences, one example per kept user and split.
      built = (
          interactions
          | "KeyByUser" >> beam.Map(
              lambda r: (r.user_id, (r.timestamp, r.item_id)))
          | "GroupByUser" >> beam.GroupByKey()
          | "BuildSequences" >> beam.ParDo(
              _BuildSequences(min_interactions, max_history_length, cold)
          ).with_outputs(_STATS_TAG, main=_EXAMPLES_TAG))
      stats.append(built[_STATS_TAG])
      by_split = (
          built[_EXAMPLES_TAG]
          | "PartitionBySplit" >> beam.Partition(
              lambda kv, _: features.SEQUENCE_SPLITS.index(kv[0]),
              len(features.SEQUENCE_SPLITS)))
      for split, split_examples in zip(features.SEQUENCE_SPLITS, by_split):
        _write_split(
            split_examples | f"DropKey[{split}]" >> beam.Values(),
            output, split)

      # Catalogue: log items and item-table rows, one example per item.
      catalogue = {
          "log": (interactions
                  | "LogItems" >> beam.Map(lambda r: r.item_id)
                  | "DistinctLogItems" >> beam.Distinct()
                  | "KeyLogItems" >> beam.Map(lambda item: (item, True))),
      }
      if items_patterns is not None:
        item_rows = p | "ReadItemTable" >> _ReadSplits(  # pylint: disable=no-value-for-parameter
            items_patterns, records.parse_item_row)
        stats.append(
            item_rows | "CountItemRows" >> beam.FlatMap(
                lambda row: [("num_item_table_rows", 1),
                             ("num_item_table_rows_without_id",
                              int(row is None))]))
        catalogue["table"] = (
            item_rows
            | "DropRowsWithoutId" >> beam.Filter(lambda row: row is not None)
            | "KeyItemRows" >> beam.Map(lambda row: (row.item_id, row)))
      grouped_items = catalogue | "GroupByItem" >> beam.CoGroupByKey()
      built_items = (
          grouped_items
          | "BuildItems" >> beam.ParDo(_BuildItems()).with_outputs(
              _STATS_TAG, main=_EXAMPLES_TAG))
      stats.append(built_items[_STATS_TAG])
      _write_split(built_items[_EXAMPLES_TAG], output, features.ITEMS_SPLIT)
      if cold is not None:
        stats.append(_write_cold_items(
            grouped_items | "CatalogueIds" >> beam.Keys(), cold, output.uri))

      # Counters -> stats.json (fails the run if no user is left).
      _ = (
          stats
          | "FlattenStats" >> beam.Flatten()
          | "SumStats" >> beam.CombinePerKey(sum)
          | "StatsToDict" >> beam.combiners.ToDict()
          | "FinalizeStats" >> beam.Map(
              _finalize_stats, min_interactions=min_interactions,
              max_history_length=max_history_length)
          | "StatsToJson" >> beam.Map(json.dumps, sort_keys=True, indent=2)
          | "WriteStats" >> beam.io.WriteToText(
              stats_prefix, file_name_suffix=".json", shard_name_template=""))

    stats_path = os.path.join(output.uri, STATS_FILE_NAME)
    with fileio.open(stats_path, "r") as f:
      result = json.load(f)
    for name in COUNTER_NAMES:
      output.set_int_custom_property(name, result[name])
    for split, count in result["split_counts"].items():
      output.set_int_custom_property(f"num_examples_{split}", count)
    logging.info("SequenceBuilder: wrote %s to %s; stats: %s",
                 list(features.ALL_SPLITS), output.uri,
                 json.dumps(result, sort_keys=True))
