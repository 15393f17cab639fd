"""ML Metadata lookups for lineage assertions: which execution consumed or produced what."""

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

INPUT = metadata_store_pb2.Event.INPUT
OUTPUT = metadata_store_pb2.Event.OUTPUT


def store(metadata_path: str) -> metadata_store.MetadataStore:
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = metadata_path
  return metadata_store.MetadataStore(config)


def executions(mlmd, type_suffix: str) -> list:
  """Executions whose type name ends with ``type_suffix`` (e.g. "Trainer")."""
  return [e for e in mlmd.get_executions()
          if mlmd.get_execution_types_by_id([e.type_id])[0].name.endswith(type_suffix)]


def last_execution(mlmd, type_suffix: str):
  return max(executions(mlmd, type_suffix), key=lambda e: e.id)


def artifacts_by_key(mlmd, execution, kind) -> dict:
  """{input/output key: [artifact ids]} of one execution's INPUT or OUTPUT events."""
  found = {}
  for event in mlmd.get_events_by_execution_ids([execution.id]):
    if event.type == kind:
      found.setdefault(event.path.steps[0].key, []).append(event.artifact_id)
  return found


def producer(mlmd, type_suffix: str, artifact_id: int):
  """The one execution of that type that output the artifact."""
  [execution] = [e for e in executions(mlmd, type_suffix)
                 if artifact_id in sum(artifacts_by_key(mlmd, e, OUTPUT).values(), [])]
  return execution
