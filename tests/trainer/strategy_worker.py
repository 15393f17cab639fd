"""Runs the fine-tuning run_fn in a fresh process under one distribution strategy.

    python -m tests.trainer.strategy_worker STRATEGY ROOT OUT [LOGICAL_CPUS]

``ROOT`` holds ``fake_transform.write(..., graph=True)`` output; the model goes to
``OUT/model``, the history to ``OUT/model_run`` and the strategy's replica count to
``OUT/replicas.json``. ``LOGICAL_CPUS`` > 1 splits the CPU into that many logical
devices before TensorFlow starts (a MirroredStrategy needs several devices);
multi-worker runs read their cluster from ``TF_CONFIG``, as a TFX Trainer would.
"""

import json
import os
import sys
import types

import trainer  # pylint: disable=unused-import  (selects Keras 2 before TensorFlow loads)
import tensorflow as tf

from tests.trainer import fake_transform
from trainer import features
from trainer import run_fn
from trainer.config import MODEL_CONFIG_KEY

# Dropout masks are drawn per replica, so only a model without dropout can match one
# device exactly. An odd batch size splits unevenly across two replicas.
MODEL_CONFIG = {"max_seq_len": 6, "embedding_dim": 16, "num_blocks": 1, "num_heads": 1,
                "ff_dim": 16, "dropout": 0.0, "epochs": 2, "batch_size": 31}


def fn_args(root: str, out: str, strategy: str) -> types.SimpleNamespace:
  """What TFX's Trainer hands run_fn, over the fake Transform output under ``root``."""
  examples = os.path.join(root, "transformed_examples")
  return types.SimpleNamespace(
      transform_output=os.path.join(root, "transform_graph"),
      train_files=fake_transform.split_files(examples, features.TRAIN_SPLIT),
      eval_files=fake_transform.split_files(examples, features.EVAL_SPLIT),
      serving_model_dir=os.path.join(out, "model", "Format-Serving"),
      model_run_dir=os.path.join(out, "model_run"),
      base_model=None,
      custom_config={MODEL_CONFIG_KEY: {**MODEL_CONFIG, "distribution_strategy": strategy}})


def main(argv) -> None:
  strategy, root, out = argv[:3]
  logical_cpus = int(argv[3]) if len(argv) > 3 else 1
  if logical_cpus > 1:
    [cpu] = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * logical_cpus)
  made = []
  make = run_fn.distribution_strategy
  run_fn.distribution_strategy = lambda name: made.append(make(name)) or made[-1]
  run_fn.run_fn(fn_args(root, out, strategy))
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "replicas.json"), "w") as f:
    json.dump(made[0].num_replicas_in_sync, f)


if __name__ == "__main__":
  main(sys.argv[1:])
