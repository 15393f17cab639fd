"""Resolver strategy: the StatisticsGen output of the span before the newest one.

StatisticsGen does not carry the span over, so it is read from each artifact's lineage in MLMD.
"""

from typing import Dict, List, Optional

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
from tfx import types
from tfx.dsl.components.common import resolver

_SPAN = "span"
_Event = metadata_store_pb2.Event


def input_spans(store: mlmd.MetadataStore, artifact_ids: List[int]) -> Dict[int, int]:
  """Artifact id -> span of the Examples its producer read (ids without one left out)."""
  if not artifact_ids:
    return {}
  producer = {e.artifact_id: e.execution_id
              for e in store.get_events_by_artifact_ids(artifact_ids)
              if e.type == _Event.OUTPUT}
  read = {}
  for event in store.get_events_by_execution_ids(sorted(set(producer.values()))):
    if event.type == _Event.INPUT:
      read.setdefault(event.execution_id, []).append(event.artifact_id)
  inputs = {a.id: a for a in store.get_artifacts_by_id(
      sorted({i for ids in read.values() for i in ids}))}
  spans = {}
  for artifact_id, execution_id in producer.items():
    found = [inputs[i].custom_properties[_SPAN].int_value for i in read.get(execution_id, [])
             if i in inputs and _SPAN in inputs[i].custom_properties]
    if found:
      spans[artifact_id] = max(found)
  return spans


def previous_span(artifacts: List[types.Artifact],
                  spans: Dict[int, int]) -> List[types.Artifact]:
  """[the newest artifact of the largest span below the largest], or [] if there is none."""
  known = [a for a in artifacts if a.id in spans]
  if not known:
    return []
  newest = max(spans[a.id] for a in known)
  older = [a for a in known if spans[a.id] < newest]
  return [max(older, key=lambda a: (spans[a.id], a.id))] if older else []


class PreviousSpanStrategy(resolver.ResolverStrategy):
  """Resolves each channel to its artifact of the previous span ([] on the first span).

  The Resolver must run after the producer of this run's artifact (add it with
  ``add_upstream_node``), else "newest" would be yesterday's span.
  """

  def resolve_artifacts(
      self, store: mlmd.MetadataStore,
      input_dict: Dict[str, List[types.Artifact]]
  ) -> Optional[Dict[str, List[types.Artifact]]]:
    return {key: previous_span(artifacts, input_spans(store, [a.id for a in artifacts]))
            for key, artifacts in input_dict.items()}
