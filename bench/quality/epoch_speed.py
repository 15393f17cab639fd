"""Seconds per training epoch of a dataset's recipe, per speed setting (precision, optimizer).

Settings take turns over rounds on the same warmed-up batches (median per setting);
each epoch records per-step times, load and priority (docs/architecture.md).
"""

import argparse
import collections
import dataclasses
import datetime
import glob
import json
import logging
import os
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

import tensorflow as tf

from bench.quality import data as data_lib
from bench.quality import run
from bench.quality.run import is_shared
from bench.quality.run import load_average
from bench.quality.run import recipe_path
from trainer import cpu_features
from trainer import inputs
from trainer.config import load_model_config
from trainer.model import INPUTS
from trainer.pretraining.clustering import ClusteringCallback
from trainer.pretraining.config import PretrainConfig
from trainer.pretraining.model import PretrainingModel
from trainer.retrieval import RetrievalConfig
from trainer.retrieval import RetrievalModel
from trainer.run_fn import compile_model

# Named settings: TrainingSchedule speed fields over the recipe's.
SETTINGS = {
    "default": {},
    "float32": {"mixed_precision": cpu_features.FLOAT32},
    "bfloat16": {"mixed_precision": cpu_features.BFLOAT16},
    "auto": {"mixed_precision": cpu_features.AUTO},
    "adam": {"optimizer": "adam"},   # tf_keras's Adam, not the default fused kernel
}
PHASES = ("finetune", "pretrain")
WARMUP_STEPS = 10
AUTOGROUP = "/proc/self/autogroup"
PROFILE_TOP_OPS = 40
COMPUTE_THREADS = "tf_Compute"   # the profiler's lines of TF's op-executing threads


class StepTimer(tf.keras.callbacks.Callback):
  """Wall times of one ``fit`` epoch: each train step (from the end of the one before;
  the first from the start of the epoch), and the seconds before the first step and
  after the last one. A fixed-rate wait or a retrace shows up here, not in a total."""

  def __init__(self):
    super().__init__()
    self.steps: List[float] = []
    self.marks: Dict[str, float] = {}
    self._last = None

  def on_train_begin(self, logs=None):
    self.marks["train_begin"] = time.perf_counter()

  def on_epoch_begin(self, epoch, logs=None):
    self._last = self.marks["epoch_begin"] = time.perf_counter()

  def on_train_batch_end(self, batch, logs=None):
    now = time.perf_counter()
    self.steps.append(now - self._last)
    self._last = now

  def on_epoch_end(self, epoch, logs=None):
    self.marks["epoch_end"] = time.perf_counter()


def scheduling(autogroup: str = AUTOGROUP) -> Dict[str, object]:
  """This process's nice value and, where Linux groups processes by session
  (autogroup), its group's: with autogroups, a nice value only ranks processes
  within one session, so another session's ``nice -n 19`` job still gets an equal share."""
  result: Dict[str, object] = {"nice": os.nice(0), "autogroup": None}
  try:
    with open(autogroup, encoding="utf-8") as f:
      text = f.read().split()   # e.g. "/autogroup-6 nice -20"
    result["autogroup"] = {"group": text[0], "nice": int(text[2])}
  except (OSError, IndexError, ValueError):
    pass
  return result


def _timed_epoch(model: tf.keras.Model, dataset: tf.data.Dataset,
                 callbacks: List[tf.keras.callbacks.Callback]) -> Dict[str, object]:
  """One epoch of ``model.fit``: its seconds, median step, load average and loss."""
  steps = StepTimer()
  start_load, start = load_average(), time.perf_counter()
  history = model.fit(dataset, verbose=0, callbacks=callbacks + [steps]).history
  end = time.perf_counter()
  loads = [start_load, load_average()]
  marks = steps.marks
  return {"seconds": round(end - start, 2), "steps": len(steps.steps),
          "steps_seconds": round(sum(steps.steps), 2),
          # fit's own work before the epoch's first step and after its last
          "before_steps_seconds": round(marks["epoch_begin"] - start, 2),
          # after the last step: the input's end-of-epoch, then fit returning
          "after_steps_seconds": round(end - marks["epoch_begin"] - sum(steps.steps), 2),
          "after_epoch_seconds": round(end - marks["epoch_end"], 2),
          "median_step_ms": round(1000 * statistics.median(steps.steps), 1),
          "max_step_ms": round(1000 * max(steps.steps), 1),
          "load_average": loads,
          "cores": "shared" if is_shared([loads], os.cpu_count() or 1) else "alone",
          "loss": round(float(history["loss"][0]), 4)}


def kernel_times(xplane_path: str, steps: int) -> Dict[str, float]:
  """Milliseconds per step of each kernel (``scope/op:Type``) of a TF profiler trace,
  summed over the compute threads that ran it."""
  from tensorflow.tsl.profiler.protobuf import xplane_pb2   # pylint: disable=import-outside-toplevel
  space = xplane_pb2.XSpace()
  with open(xplane_path, "rb") as f:
    space.ParseFromString(f.read())
  totals: Dict[str, float] = collections.Counter()
  for plane in space.planes:
    names = plane.event_metadata
    for line in plane.lines:
      if not line.name.startswith(COMPUTE_THREADS):
        continue
      for event in line.events:
        name = names[event.metadata_id].name
        if ":" in name and "::" not in name:   # "scope/op:Type" kernels, not "Executor::…"
          totals[name] += event.duration_ps / 1e9 / steps
  return totals


def op_times(totals: Dict[str, float], top: int = PROFILE_TOP_OPS) -> List[Dict[str, object]]:
  """The ``top`` kernels of ``kernel_times`` by thread time: name, type, milliseconds per
  step and share of all kernels' time."""
  everything = sum(totals.values()) or 1.0
  ops = []
  for name, ms in collections.Counter(totals).most_common(top):
    op, kind = name.rsplit(":", 1)
    ops.append({"op": op, "type": kind, "ms_per_step": round(ms, 3),
                "share": round(ms / everything, 4)})
  return ops


def group_times(totals: Dict[str, float], key: Callable[[str, str], str]
                ) -> List[Dict[str, object]]:
  """Every kernel of ``kernel_times`` in groups ``key(op, type)``, costliest first:
  group, kernels, milliseconds per step, share; the groups' shares sum to 1."""
  everything = sum(totals.values()) or 1.0
  groups: Dict[str, List[float]] = collections.defaultdict(list)
  for name, ms in totals.items():
    groups[key(*name.rsplit(":", 1))].append(ms)
  return [{"group": group, "kernels": len(times), "ms_per_step": round(sum(times), 3),
           "share": round(sum(times) / everything, 4)}
          for group, times in sorted(groups.items(), key=lambda item: -sum(item[1]))]


def step_part(op: str, kind: str) -> str:   # pylint: disable=unused-argument
  """The part of a train step a kernel belongs to, from its scope: the catalogue softmax
  loop, the backward pass, the optimizer, the forward encoder, or the first scope."""
  if op.startswith("while/"):
    return "catalogue softmax loop"
  if op.startswith("gradient_tape/"):
    return "backward (gradient_tape)"
  if "Adam" in op:
    return "optimizer (Adam)"
  return op.split("/", 1)[0]


def _profile(model: tf.keras.Model, dataset: tf.data.Dataset,
             callbacks: List[tf.keras.callbacks.Callback], steps: int,
             log_dir: str) -> Dict[str, object]:
  """Traces ``steps`` training steps with the TF profiler: the kernels' thread time per
  step in all (``ms_per_step``), the costliest (``ops``), and all of them by type and by
  part of the step."""
  batches = dataset.take(steps).cache()
  _input_epoch(batches)   # fills the cache outside the trace
  tf.profiler.experimental.start(log_dir)
  try:
    model.fit(batches, verbose=0, callbacks=callbacks)
  finally:
    tf.profiler.experimental.stop()
  traces = sorted(glob.glob(os.path.join(log_dir, "**", "*.xplane.pb"), recursive=True),
                  key=os.path.getmtime)
  totals = kernel_times(traces[-1], steps)
  return {"steps": steps, "ms_per_step": round(sum(totals.values()), 3),
          "ops": op_times(totals), "by_type": group_times(totals, lambda op, kind: kind),
          "by_part": group_times(totals, step_part)}


def _input_epoch(dataset: tf.data.Dataset) -> List[int]:
  """Reads one epoch of ``dataset`` without training; returns its rows per batch."""
  return [int(batch[INPUTS].shape[0]) for batch in dataset]


def _timed_input_epoch(dataset: tf.data.Dataset, batches: List[List[int]]) -> Dict[str, object]:
  start_load, start = load_average(), time.perf_counter()
  batches.append(_input_epoch(dataset))
  loads = [start_load, load_average()]
  return {"seconds": round(time.perf_counter() - start, 2), "load_average": loads,
          "cores": "shared" if is_shared([loads], os.cpu_count() or 1) else "alone"}


def _builder(args, data, config, dataset: tf.data.Dataset) -> Callable:
  """(schedule) -> (model, its callbacks) for ``args.phase``."""
  encoder = config.encoder
  if args.phase == "finetune":
    def build(schedule):
      model = RetrievalModel(data.num_items, encoder, RetrievalConfig(seed=args.seed),
                             data.attributes)
      compile_model(model, schedule)
      return model, []
    return build
  pretrain_config = PretrainConfig.from_dict(json.loads(args.pretrain_config))
  if data.attributes is None and pretrain_config.attribute_weight > 0:
    pretrain_config = dataclasses.replace(pretrain_config, attribute_weight=0.0)

  def build(schedule):
    run_config = dataclasses.replace(pretrain_config, schedule=schedule)
    model = PretrainingModel(data.num_items, encoder, run_config, data.attributes)
    compile_model(model, schedule)
    return model, ClusteringCallback.for_model(model, dataset, run_config)
  return build


def measure(args) -> Dict[str, object]:
  """Times the input pipeline alone, then ``args.rounds`` interleaved epochs per setting."""
  config = load_model_config(args.model_config)
  encoder = config.encoder
  schedule = config.schedule
  if args.phase == "pretrain":
    schedule = dataclasses.replace(
        PretrainConfig.from_dict(json.loads(args.pretrain_config)).schedule, seed=args.seed)
  data = data_lib.prepare(args.dataset, os.path.join(args.work_dir, "data"), args.data_dir,
                          max_seq_len=encoder.max_seq_len)
  dataset = inputs.make_dataset(data.files["train"], data_lib.SPEC, data.num_items,
                                encoder.max_seq_len, schedule.batch_size, training=True,
                                shuffle_seed=args.seed, prefixes=args.phase == "finetune")
  if args.input_autotune:   # back on, as trainer.inputs had it: for comparison
    options = tf.data.Options()
    options.autotune.enabled = True
    dataset = dataset.with_options(options)
  _input_epoch(dataset)   # fills the cache, as the first training epoch does
  batches: List[List[int]] = []
  result = {"dataset": args.dataset, "phase": args.phase, "commit": run._commit(),  # pylint: disable=protected-access
            "machine": run._machine(), "date": datetime.date.today().isoformat(),  # pylint: disable=protected-access
            "model_config": config.to_dict(),
            "schedule": schedule.to_dict(), "cpu_bf16": cpu_features.has_native_bf16(),
            "cores": os.cpu_count(), "scheduling": scheduling(), "rounds": args.rounds,
            "input_autotune": dataset.options().autotune.enabled,
            "input_pipeline": _timed_input_epoch(dataset, batches)}
  result["batches_per_epoch"] = len(batches[0])
  result["rows_per_epoch"] = sum(batches[0])
  build = _builder(args, data, config, dataset)
  names = args.settings.split(",")
  models = {}
  for name in names:
    run_schedule = dataclasses.replace(schedule, **SETTINGS[name])
    tf.keras.utils.set_random_seed(args.seed)
    model, callbacks = build(run_schedule)
    model.fit(dataset.take(WARMUP_STEPS), verbose=0, callbacks=callbacks)
    models[name] = (model, callbacks)
    result[name] = {"setting": run_schedule.mixed_precision, "optimizer": run_schedule.optimizer,
                    "mixed_precision": cpu_features.resolve_precision(run_schedule.mixed_precision),
                    "epochs": []}
  if args.profile_steps:   # before the timed epochs; the first setting only
    name = names[0]
    model, callbacks = models[name]
    result[name]["profile"] = _profile(model, dataset, callbacks, args.profile_steps,
                                       os.path.join(args.work_dir, "profile", name))
  for round_index in range(args.rounds):
    for name in names:
      model, callbacks = models[name]
      timing = _timed_epoch(model, dataset, callbacks)
      result[name]["epochs"].append(timing)
      logging.info("round %d, %s: %s", round_index + 1, name, timing)
  for name in names:
    epochs = result[name]["epochs"]
    result[name]["median_seconds"] = round(statistics.median(e["seconds"] for e in epochs), 2)
    result[name]["median_step_ms"] = round(
        statistics.median(e["median_step_ms"] for e in epochs), 1)
    result[name]["cores"] = ("shared" if any(e["cores"] == "shared" for e in epochs)
                             else "alone")
  return result


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--dataset", default="beauty", choices=sorted(data_lib.DATASETS))
  parser.add_argument("--data-dir", default=None)
  parser.add_argument("--model-config", default=None,
                      help="default: the dataset's recipe, configs/<dataset>.json")
  parser.add_argument("--phase", default="finetune", choices=PHASES,
                      help="fine-tuning (the recipe's schedule) or pre-training "
                           "(--pretrain-config's objectives and schedule)")
  parser.add_argument("--pretrain-config", default="{}", help="JSON PretrainConfig fields")
  parser.add_argument("--settings", default=",".join(SETTINGS),
                      help=f"comma-separated, of {list(SETTINGS)}")
  parser.add_argument("--rounds", type=int, default=3,
                      help="timed epochs per setting, the settings taking turns")
  parser.add_argument("--input-autotune", action="store_true",
                      help="turn tf.data's autotuning of the training batches back on "
                           "(trainer.inputs turns it off)")
  parser.add_argument("--profile-steps", type=int, default=0,
                      help="also trace this many steps of the first setting with the TF "
                           "profiler and record its costliest ops (thread ms per step)")
  parser.add_argument("--seed", type=int, default=1)
  parser.add_argument("--work-dir", default=None,
                      help="default: outputs/bench/quality/<dataset>/work")
  parser.add_argument("--out", default=None, help="also write the JSON result here")
  args = parser.parse_args(argv)
  unknown = [name for name in args.settings.split(",") if name not in SETTINGS]
  if unknown or args.rounds < 1:
    parser.error(f"--settings must be of {list(SETTINGS)} (got {unknown}) and --rounds >= 1")
  args.model_config = args.model_config or recipe_path(args.dataset)
  args.work_dir = args.work_dir or os.path.join("outputs", "bench", "quality", args.dataset,
                                                "work")
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
  result = measure(args)
  text = json.dumps(result, indent=1)
  if args.out:
    with open(args.out, "w") as f:
      f.write(text)
  print(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
