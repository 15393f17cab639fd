"""Runs a Trainer run_fn in a fresh process under one distribution strategy, and the
helpers the tests start such processes and compare their runs with.

    python -m tests.trainer.strategy_worker STRATEGY ROOT OUT [LOGICAL_CPUS [TRAINER]]

``ROOT`` holds ``fake_transform.write(..., graph=True)`` output; the model goes to
``OUT/model``, the history to ``OUT/model_run`` and the strategy's replica count to
``OUT/replicas.json``. ``LOGICAL_CPUS`` > 1 splits the CPU into that many logical
devices before TensorFlow starts (a MirroredStrategy needs several devices);
multi-worker runs read their cluster from ``TF_CONFIG``, as a TFX Trainer would.
``TRAINER``: ``fine-tuning`` (trainer/run_fn.py, the default) or ``pre-training``
(trainer/pretrain_run_fn.py).
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import types
from typing import List, Optional

import pytest

import trainer  # pylint: disable=unused-import  (selects Keras 2 before TensorFlow loads)
import tensorflow as tf

from tests.trainer import fake_transform
from trainer import features
from trainer import pretrain_run_fn
from trainer import run_fn
from trainer.config import MODEL_CONFIG_KEY
from trainer.config import PRETRAIN_CONFIG_KEY

FINE_TUNING, PRE_TRAINING = "fine-tuning", "pre-training"
# Dropout masks are drawn per replica, so only a model without dropout can match one
# device exactly. An odd batch size splits unevenly across two replicas.
MODEL_CONFIG = {"max_seq_len": 6, "embedding_dim": 16, "num_blocks": 1, "num_heads": 1,
                "ff_dim": 16, "dropout": 0.0, "epochs": 2, "batch_size": 31}
# Cloze masks and contrastive views are drawn per replica too, and contrastive
# negatives come from the replica's rows: next-item prediction is the objective
# that can match one device exactly.
PRETRAIN_CONFIG = {"masked_item_weight": 0.0, "next_item_weight": 1.0, "attribute_weight": 0.0,
                   "contrastive_weight": 0.0, "clustering_weight": 0.0, "epochs": 2,
                   "batch_size": 31}

WORKER_TIMEOUT = 300   # seconds per training process
# Replicas sum the same per-row terms in another order: losses agree to float32 noise
# (weighing an uneven split wrongly moves them well past this). Ranking metrics move only
# if a near-tie flips: at most one of the 16 validation rows may rank differently.
LOSS_RTOL = 1e-5
RANKING_ATOL = 1 / 16


def fn_args(root: str, out: str, strategy: str, trainer_name: str) -> types.SimpleNamespace:
  """What TFX's Trainer hands run_fn, over the fake Transform output under ``root``."""
  examples = os.path.join(root, "transformed_examples")
  custom_config = {MODEL_CONFIG_KEY: {**MODEL_CONFIG, "distribution_strategy": strategy}}
  if trainer_name == PRE_TRAINING:
    custom_config[PRETRAIN_CONFIG_KEY] = PRETRAIN_CONFIG
  return types.SimpleNamespace(
      transform_output=os.path.join(root, "transform_graph"),
      train_files=fake_transform.split_files(examples, features.TRAIN_SPLIT),
      eval_files=fake_transform.split_files(examples, features.EVAL_SPLIT),
      serving_model_dir=os.path.join(out, "model", "Format-Serving"),
      model_run_dir=os.path.join(out, "model_run"),
      base_model=None,
      custom_config=custom_config)


def main(argv) -> None:
  strategy, root, out = argv[:3]
  logical_cpus = int(argv[3]) if len(argv) > 3 else 1
  trainer_name = argv[4] if len(argv) > 4 else FINE_TUNING
  module = {FINE_TUNING: run_fn, PRE_TRAINING: pretrain_run_fn}[trainer_name]
  if logical_cpus > 1:
    [cpu] = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * logical_cpus)
  made = []
  make = module.distribution_strategy
  module.distribution_strategy = lambda name: made.append(make(name)) or made[-1]
  module.run_fn(fn_args(root, out, strategy, trainer_name))
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "replicas.json"), "w") as f:
    json.dump(made[0].num_replicas_in_sync, f)


# Used by the tests.

def start(strategy: str, root, out, logical_cpus: int = 1, tf_config: Optional[dict] = None,
          trainer_name: str = FINE_TUNING) -> subprocess.Popen:
  """This module as a training process (its own ``TMPDIR``, ``OUT-tmp``)."""
  env = {**os.environ, "TMPDIR": str(out) + "-tmp"}
  os.makedirs(env["TMPDIR"])
  if tf_config is not None:
    env["TF_CONFIG"] = json.dumps(tf_config)
  return subprocess.Popen(
      [sys.executable, "-m", "tests.trainer.strategy_worker", strategy, str(root), str(out),
       str(logical_cpus), trainer_name],
      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def start_cluster(strategy: str, root, outs, trainer_name: str = FINE_TUNING
                  ) -> List[subprocess.Popen]:
  """One process per ``outs`` entry, the workers of one cluster on loopback (chief first)."""
  cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(len(outs))]}
  return [start(strategy, root, out, trainer_name=trainer_name,
                tf_config={"cluster": cluster, "task": {"type": "worker", "index": i}})
          for i, out in enumerate(outs)]


def finish(*workers) -> None:
  """Waits for the workers (killing them all past WORKER_TIMEOUT); each must succeed."""
  deadline = time.time() + WORKER_TIMEOUT
  try:
    outputs = [w.communicate(timeout=max(deadline - time.time(), 1))[0] for w in workers]
  finally:
    for worker in workers:
      if worker.poll() is None:
        worker.kill()
        worker.wait()
  for worker, output in zip(workers, outputs):
    assert worker.returncode == 0, output[-5000:]


def train_on_one_device(root, out, trainer_name: str = FINE_TUNING) -> dict:
  """The history of a run on the default strategy, the reference of the others."""
  finish(start("default", root, out, trainer_name=trainer_name))
  assert replicas(out) == 1
  return history(out)


def history(out) -> dict:
  with open(os.path.join(out, "model_run", "history.json")) as f:
    return json.load(f)


def replicas(out) -> int:
  with open(os.path.join(out, "replicas.json")) as f:
    return json.load(f)


def assert_same_metrics(run: dict, reference: dict) -> None:
  assert run.keys() == reference.keys()
  for name, values in reference.items():
    tolerance = {"rel": LOSS_RTOL} if "loss" in name else {"abs": RANKING_ATOL}
    assert run[name] == pytest.approx(values, **tolerance), name


def free_ports(count: int) -> list:
  """Loopback ports nothing listens on (all held open together, so all different)."""
  with contextlib.ExitStack() as stack:
    sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
    for s in sockets:
      s.bind(("127.0.0.1", 0))
    return [s.getsockname()[1] for s in sockets]


if __name__ == "__main__":
  main(sys.argv[1:])
