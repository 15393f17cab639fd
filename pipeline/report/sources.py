"""What the run report shows, read from the run's outputs: ML Metadata, the sequence
examples, the Trainers' histories, the evaluator's metrics and the pushed model.

Each part is read on its own; one that cannot be read is recorded with the reason.
"""

import collections
import dataclasses
import os
import statistics
from typing import Callable, Dict, List, Optional, Tuple, TypeVar

from components.ranking_evaluator import evaluation as evaluation_lib
from components.ranking_evaluator import slices
from pipeline import configs
from pipeline import pipeline as pipeline_lib
from pipeline import summary as summary_lib
from pipeline.ingest import canonical
from serving import contract
from trainer import features
from trainer.config import HISTORY_FILE

EXPLAIN_SIGNATURE = contract.EXPLAIN_SIGNATURE   # optional: older exports lack it
EXAMPLE_K = 10
T = TypeVar("T")


@dataclasses.dataclass
class DataSummary:
  stats: Dict                                 # the SequenceBuilder's stats.json
  lengths: List[int]                          # interactions per kept user
  item_counts: List[Tuple[str, int]]          # (item, interactions), most popular first
  bands: List[str]                            # popularity band of each item_counts entry


@dataclasses.dataclass
class ExampleUser:
  user_id: str
  history: List[str]                          # oldest first
  target: str                                 # the held-out next item
  recommendations: List[Tuple[str, float]]    # best first
  model_path: str
  pushed_this_run: bool
  # item -> [(history item, weight)], when the model has an ``explain`` signature.
  explanations: Optional[Dict[str, List[Tuple[str, float]]]] = None
  explain_note: str = ""                      # why there are no explanations


@dataclasses.dataclass
class ReportInputs:
  """Everything the page shows; a None part has its reason in ``missing``."""
  pipeline_name: str
  summary: Dict                               # pipeline.summary.collect's dict
  data: Optional[DataSummary] = None
  histories: Dict[str, Dict] = dataclasses.field(default_factory=dict)  # stage -> history
  evaluation: Optional[Dict] = None
  example: Optional[ExampleUser] = None
  titles: Dict[str, str] = dataclasses.field(default_factory=dict)
  missing: Dict[str, str] = dataclasses.field(default_factory=dict)   # part -> reason


def _attempt(missing: Dict[str, str], part: str, read: Callable[[], T]) -> Optional[T]:
  """``read()``, or None with the reason recorded under ``part``."""
  try:
    return read()
  except Exception as e:  # pylint: disable=broad-except
    missing[part] = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return None


def data_summary(stats: Optional[Dict],
                 rows: List[evaluation_lib.SequenceRow]) -> DataSummary:
  """Sequence lengths and item popularity of the test split's rows (history + target)."""
  if not rows:
    raise ValueError("the test split has no rows")
  counts = collections.Counter()
  for row in rows:
    counts.update(row.history + (row.target,))
  bands = slices.popularity_bands(counts)
  ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
  return DataSummary(stats or {}, [len(row.history) + 1 for row in rows],
                     [(item.decode(), count) for item, count in ordered],
                     [bands[item] for item, _ in ordered])


def _read_test_rows(summary: Dict) -> List[evaluation_lib.SequenceRow]:
  uri = summary.get("sequences_uri")
  if not uri:
    raise FileNotFoundError("no SequenceBuilder output in ML Metadata")
  return evaluation_lib.load_split(uri, features.TEST_SPLIT)


def _newest_run_model_runs(store, pipeline_name: str) -> Dict[str, object]:
  """Trainer id -> the ModelRun artifact it produced in the newest pipeline run."""
  runs = store.get_contexts_by_type("pipeline_run")
  if not runs:
    raise LookupError("no pipeline run in ML Metadata")
  run = max(runs, key=lambda c: (c.create_time_since_epoch, c.id))
  model_run_type = store.get_artifact_type("ModelRun").id
  in_run = {a.id for a in store.get_artifacts_by_context(run.id) if a.type_id == model_run_type}
  result = {}
  for node in (pipeline_lib.PRETRAIN_TRAINER, pipeline_lib.TRAINER):
    context = store.get_context_by_type_and_name("node", f"{pipeline_name}.{node}")
    if context is None:
      continue
    artifact = summary_lib.newest([a for a in store.get_artifacts_by_context(context.id)
                                   if a.id in in_run])
    if artifact is not None:
      result[node] = artifact
  return result


STAGES = {pipeline_lib.PRETRAIN_TRAINER: "pre-training", pipeline_lib.TRAINER: "fine-tuning"}


def _read_histories(metadata_path: str, pipeline_name: str) -> Dict[str, Dict]:
  """Stage name -> per-epoch history of each Trainer of the newest run."""
  store = summary_lib.open_store(metadata_path)
  histories = {}
  for node, artifact in _newest_run_model_runs(store, pipeline_name).items():
    history = summary_lib.read_json(artifact.uri, HISTORY_FILE)
    if history:
      histories[STAGES[node]] = history
  if not histories:
    raise FileNotFoundError(f"no Trainer of the newest run wrote {HISTORY_FILE}")
  return histories


def _read_evaluation(summary: Dict) -> Dict:
  evaluation = summary.get("evaluation")
  if not evaluation:
    raise FileNotFoundError("no evaluator output (metrics.json) in ML Metadata")
  return evaluation


def read_titles(config: configs.PipelineConfig) -> Dict[str, str]:
  """item_id -> title from the run's canonical item table; empty without one."""
  path = os.path.join(config.items_root, canonical.ITEMS_FILE)
  if not os.path.isfile(path):
    return {}
  table = canonical.read_items(path)
  return {item: title for item, title in zip(table[features.ITEM_TABLE_ID],
                                              table[features.ITEM_TABLE_TITLE]) if title}


def served_model(summary: Dict, config: configs.PipelineConfig) -> Tuple[str, bool]:
  """(SavedModel folder, whether this run pushed it): this run's push, else the newest
  version in the serving folder."""
  if summary.get("pushed") and summary.get("pushed_destination"):
    return summary["pushed_destination"], True
  base = config.serving_model_dir
  versions = sorted((int(v) for v in os.listdir(base) if v.isdigit()), reverse=True) \
      if os.path.isdir(base) else []
  if not versions:
    raise FileNotFoundError(f"nothing was pushed and {base} holds no model version")
  return os.path.join(base, str(versions[0])), False


def pick_user(rows: List[evaluation_lib.SequenceRow]) -> evaluation_lib.SequenceRow:
  """The test user whose history length is the median's (ties: smallest user id)."""
  median = statistics.median_low(len(row.history) for row in rows)
  return min(rows, key=lambda row: (abs(len(row.history) - median), row.user_id))


def explanations(outputs: Dict, recommended: List[str]) -> Dict[str, List[Tuple[str, float]]]:
  """item -> [(history item, weight)] from an ``explain`` signature's numpy outputs
  (``because_ids`` / ``because_weights`` [1, k, m]; ``item_ids`` [1, k], if given,
  orders the k items)."""
  missing = [name for name in (contract.OUTPUT_BECAUSE_IDS, contract.OUTPUT_BECAUSE_WEIGHTS)
             if name not in outputs]
  if missing:
    raise ValueError(f"the explain outputs lack {', '.join(missing)}; got "
                     + ", ".join(f"{n}{list(v.shape)}" for n, v in sorted(outputs.items())))
  ids3 = [outputs[contract.OUTPUT_BECAUSE_IDS]]
  weights3 = [outputs[contract.OUTPUT_BECAUSE_WEIGHTS]]
  items = recommended
  if contract.OUTPUT_ITEM_IDS in outputs:
    items = [i.decode() for i in outputs[contract.OUTPUT_ITEM_IDS][0]]
  result = {}
  for item, sources, weights in zip(items, ids3[0][0], weights3[0][0]):
    pairs = [(s.decode(), float(w)) for s, w in zip(sources, weights) if s]
    result[item] = sorted(pairs, key=lambda p: -p[1])
  return result


def recommend_for(model_path: str, row: evaluation_lib.SequenceRow,
                  pushed_this_run: bool, k: int = EXAMPLE_K) -> ExampleUser:
  """``row``'s top-k from the SavedModel at ``model_path`` (and explanations if it has them)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  loaded = tf.saved_model.load(model_path)
  history = tf.constant([list(row.history)], tf.string)
  k_tensor = tf.constant(k, tf.int32)
  outputs = loaded.signatures[contract.DEFAULT_SIGNATURE](
      **{contract.INPUT_HISTORY: history, contract.INPUT_K: k_tensor})
  ids = outputs[contract.OUTPUT_ITEM_IDS].numpy()[0]
  scores = outputs[contract.OUTPUT_SCORES].numpy()[0]
  recommendations = [(i.decode(), float(s)) for i, s in zip(ids, scores) if i]
  example = ExampleUser(row.user_id.decode(), [i.decode() for i in row.history],
                        row.target.decode(), recommendations, model_path, pushed_this_run)
  if EXPLAIN_SIGNATURE not in loaded.signatures:
    example.explain_note = f"the model has no '{EXPLAIN_SIGNATURE}' signature"
    return example
  explain = loaded.signatures[EXPLAIN_SIGNATURE]
  accepted = explain.structured_input_signature[1]
  arguments = {name: value for name, value in ((contract.INPUT_HISTORY, history),
                                               (contract.INPUT_K, k_tensor)) if name in accepted}
  try:
    explained = {name: value.numpy() for name, value in explain(**arguments).items()}
    example.explanations = explanations(explained, [item for item, _ in recommendations])
  except Exception as e:  # pylint: disable=broad-except
    example.explain_note = f"the '{EXPLAIN_SIGNATURE}' signature could not be read: {e}"
  return example


def _read_example(rows: List[evaluation_lib.SequenceRow], summary: Dict,
                  config: configs.PipelineConfig) -> ExampleUser:
  model_path, pushed_this_run = served_model(summary, config)
  return recommend_for(model_path, pick_user(rows), pushed_this_run)


def collect(config: configs.PipelineConfig, summary: Dict) -> ReportInputs:
  """Every part of the report of the newest run of ``config``'s pipeline."""
  inputs = ReportInputs(config.pipeline_name, summary)
  missing = inputs.missing
  rows = _attempt(missing, "data", lambda: _read_test_rows(summary))
  if rows is not None:
    inputs.data = _attempt(missing, "data", lambda: data_summary(summary.get("sequences"), rows))
  inputs.histories = _attempt(missing, "training", lambda: _read_histories(
      config.metadata_path, config.pipeline_name)) or {}
  inputs.evaluation = _attempt(missing, "evaluation", lambda: _read_evaluation(summary))
  inputs.titles = _attempt(missing, "titles", lambda: read_titles(config)) or {}
  if rows is not None:
    inputs.example = _attempt(missing, "example", lambda: _read_example(rows, summary, config))
  else:
    missing["example"] = missing["data"]
  return inputs
