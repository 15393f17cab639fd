"""PreviousSpanStrategy: the newest statistics of the span before the newest, found through lineage."""

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
from tfx.types import standard_artifacts

from components.drift_validator import resolver


def _store() -> mlmd.MetadataStore:
  config = metadata_store_pb2.ConnectionConfig()
  config.fake_database.SetInParent()
  return mlmd.MetadataStore(config)


def _type(store, name: str) -> int:
  return store.put_artifact_type(metadata_store_pb2.ArtifactType(name=name))


def _statistics_of(store, span: int):
  """Examples of ``span`` -> a StatisticsGen execution -> statistics; the statistics' id."""
  examples = metadata_store_pb2.Artifact(type_id=_type(store, "Examples"))
  examples.custom_properties["span"].int_value = span
  statistics = metadata_store_pb2.Artifact(type_id=_type(store, "ExampleStatistics"))
  [examples_id, statistics_id] = store.put_artifacts([examples, statistics])
  execution_type = store.put_execution_type(metadata_store_pb2.ExecutionType(name="Stats"))
  [execution_id] = store.put_executions([metadata_store_pb2.Execution(type_id=execution_type)])
  store.put_events([
      metadata_store_pb2.Event(artifact_id=examples_id, execution_id=execution_id,
                               type=metadata_store_pb2.Event.INPUT),
      metadata_store_pb2.Event(artifact_id=statistics_id, execution_id=execution_id,
                               type=metadata_store_pb2.Event.OUTPUT)])
  return statistics_id


def _artifacts(ids):
  artifacts = []
  for artifact_id in ids:
    artifact = standard_artifacts.ExampleStatistics()
    artifact.id = artifact_id
    artifacts.append(artifact)
  return artifacts


def _resolve(store, ids):
  result = resolver.PreviousSpanStrategy().resolve_artifacts(
      store, {"statistics": _artifacts(ids)})
  return [a.id for a in result["statistics"]]


def test_resolves_the_newest_statistics_of_the_previous_span():
  store = _store()
  day1 = _statistics_of(store, 20261126)
  day2_first, day2_rerun = _statistics_of(store, 20261127), _statistics_of(store, 20261127)
  today = _statistics_of(store, 20261128)
  assert resolver.input_spans(store, [day1, today]) == {day1: 20261126, today: 20261128}
  assert _resolve(store, [day1, day2_first, day2_rerun, today]) == [day2_rerun]
  # A rerun of today's span still compares with yesterday's, not with itself.
  assert _resolve(store, [day1, today, _statistics_of(store, 20261128)]) == [day1]


def test_the_first_span_resolves_to_nothing():
  store = _store()
  first = _statistics_of(store, 20261126)
  assert _resolve(store, [first, _statistics_of(store, 20261126)]) == []
  assert _resolve(store, []) == []
