"""Recovery: a run killed with SIGKILL in the Trainer resumes from the TFX cache on rerun.

The rerun must reuse every component that finished before the kill, leave nothing
half-written behind, and push a model as good as an uninterrupted run's (``tiny_run``).
Not bitwise the same model: training on CPU with the fixed seeds is repeatable for the
same input files, but the Beam components do not fix the order of the rows they write,
and the Trainers' seeded shuffle permutes rows in file order. So the evaluation is
compared within METRIC_ATOL.
"""

import glob
import os
import signal
import subprocess
import sys
import time

import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2

from pipeline import local_runner
from pipeline import summary as pipeline_summary
from tests import lineage
from tests.conftest import TINY_FLAGS

STATE = metadata_store_pb2.Execution.State.Name
# Everything upstream of the fine-tuning Trainer: finished when the kill comes.
FINISHED_BEFORE_KILL = ("ItemExampleGen", "LogExampleGen", "StatisticsGen", "SchemaGen",
                        "ExampleValidator", "SequenceBuilder", "Transform", "PretrainTrainer")
RUN_TIMEOUT = 900   # seconds for one whole tiny run on a loaded CI machine
# About twice what different row orders, or different fine-tuning seeds, change in
# the tiny run's metrics.
METRIC_ATOL = {"HR@10": 0.05, "NDCG@10": 0.05}


def _command(out: str) -> list:
  return [sys.executable, "-m", "pipeline.local_runner", *TINY_FLAGS, "--output-dir", out,
          "--enable-cache"]


def _kill_when_training(command: list, pipeline_root: str, log_path: str) -> None:
  """Starts the run, waits until the fine-tuning Trainer trains, SIGKILLs the run's group."""
  with open(log_path, "w") as log:
    run = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                           start_new_session=True)
  # The Trainer's TensorBoard callback opens model_run/<execution>/train when fit starts.
  training = os.path.join(pipeline_root, "Trainer", "model_run", "*", "train")
  deadline = time.time() + RUN_TIMEOUT
  try:
    while not glob.glob(training):
      assert run.poll() is None, f"run ended before the Trainer trained; see {log_path}"
      assert time.time() < deadline, f"no Trainer within {RUN_TIMEOUT} s; see {log_path}"
      time.sleep(0.1)
  finally:
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=60)


def _executions(store, pipeline_name: str, node: str) -> list:
  """Executions of one pipeline node, oldest first."""
  [context] = [c for c in store.get_contexts_by_type("node")
               if c.name == f"{pipeline_name}.{node}"]
  return sorted(store.get_executions_by_context(context.id), key=lambda e: e.id)


def _states(store, pipeline_name: str, node: str) -> list:
  return [STATE(e.last_known_state) for e in _executions(store, pipeline_name, node)]


def _producer_states(store, artifact_ids: list) -> list:
  """States of the executions that output the artifacts, oldest first."""
  ids = {e.execution_id for e in store.get_events_by_artifact_ids(artifact_ids)
         if e.type == lineage.OUTPUT}
  return [STATE(e.last_known_state) for e in sorted(store.get_executions_by_id(ids),
                                                    key=lambda e: e.id)]


def test_a_run_killed_in_the_trainer_resumes_from_the_cache_and_pushes_as_a_whole_run(
    tiny_run, tmp_path):
  _, reference = tiny_run
  out = str(tmp_path / "run")
  config = local_runner.build_config(local_runner.parse_args([*TINY_FLAGS, "--output-dir", out]))
  command = _command(out)
  _kill_when_training(command, config.pipeline_root, str(tmp_path / "killed.log"))
  store = lineage.store(config.metadata_path)
  assert _states(store, config.pipeline_name, "Trainer") == ["RUNNING"], "not killed in training"
  assert not os.path.exists(config.serving_model_dir)

  rerun = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT)
  assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]

  store = lineage.store(config.metadata_path)
  for node in FINISHED_BEFORE_KILL:
    assert _states(store, config.pipeline_name, node) == ["COMPLETE", "CACHED"], node
  # The killed Trainer's execution stays as it was; one new execution trains, on the
  # artifacts the first run wrote (the rerun's cached executions output them again).
  trainer_states = _states(store, config.pipeline_name, "Trainer")
  assert trainer_states == ["RUNNING", "COMPLETE"]
  trainer = _executions(store, config.pipeline_name, "Trainer")[-1]
  for key, artifacts in lineage.artifacts_by_key(store, trainer, lineage.INPUT).items():
    assert _producer_states(store, artifacts) == ["COMPLETE", "CACHED"], key
  summary = pipeline_summary.collect(config.metadata_path)
  assert summary["pushed"], rerun.stdout[-3000:]
  # One version folder, nothing half-written beside it (no staging folder).
  assert os.listdir(config.serving_model_dir) == [
      os.path.basename(summary["pushed_destination"])]

  # As good as an uninterrupted run (see the module docstring).
  model, expected = summary["evaluation"]["model"], reference["evaluation"]["model"]
  for name, tolerance in METRIC_ATOL.items():
    assert abs(model[name] - expected[name]) <= tolerance, (name, model, expected)
  assert tf.saved_model.contains_saved_model(summary["pushed_destination"])
