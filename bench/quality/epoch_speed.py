"""Seconds per fine-tuning epoch of a dataset's recipe, default vs the speed settings.

Each setting trains the same batches for one timed epoch after a few warm-up steps
(tracing excluded); the load average at its start and end marks it alone or shared.
"""

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from typing import Dict, List

import tensorflow as tf

from bench.quality import data as data_lib
from bench.quality.run import is_shared
from bench.quality.run import load_average
from bench.quality.run import recipe_path
from trainer import cpu_features
from trainer import inputs
from trainer.config import load_model_config
from trainer.model import INPUTS
from trainer.retrieval import RetrievalConfig
from trainer.retrieval import RetrievalModel
from trainer.run_fn import compile_model

# Named settings: TrainingSchedule speed fields over the recipe's.
SETTINGS = {
    "default": {},
    "bfloat16": {"mixed_precision": "bfloat16"},
}
WARMUP_STEPS = 10


def _timed(fn) -> Dict[str, object]:
  """Runs ``fn`` once: its seconds and the 1-minute load average before and after."""
  start_load, start = load_average(), time.perf_counter()
  fn()
  seconds = time.perf_counter() - start
  loads = [[start_load, load_average()]]
  return {"seconds": round(seconds, 2), "load_average": loads[0],
          "cores": "shared" if is_shared(loads, os.cpu_count() or 1) else "alone"}


def _input_epoch(dataset: tf.data.Dataset) -> List[int]:
  """Reads one epoch of ``dataset`` without training; returns its rows per batch."""
  return [int(batch[INPUTS].shape[0]) for batch in dataset]


def measure(args) -> Dict[str, object]:
  """Times the input pipeline alone, then one epoch per setting of ``args.settings``."""
  config = load_model_config(args.model_config)
  encoder, schedule = config.encoder, config.schedule
  data = data_lib.prepare(args.dataset, os.path.join(args.work_dir, "data"), args.data_dir,
                          max_seq_len=encoder.max_seq_len)
  dataset = inputs.make_dataset(data.files["train"], data_lib.SPEC, data.num_items,
                                encoder.max_seq_len, schedule.batch_size, training=True,
                                shuffle_seed=args.seed, prefixes=True)
  _input_epoch(dataset)   # fills the cache, as the first training epoch does
  batches: List[List[int]] = []
  result = {"dataset": args.dataset, "model_config": config.to_dict(),
            "cpu_bf16": cpu_features.has_native_bf16(), "cores": os.cpu_count(),
            "input_pipeline": _timed(lambda: batches.append(_input_epoch(dataset)))}
  result["batches_per_epoch"] = len(batches[0])
  result["rows_per_epoch"] = sum(batches[0])   # one per prefix: one training target each
  for name in args.settings.split(","):
    run_schedule = dataclasses.replace(schedule, **SETTINGS[name])
    tf.keras.utils.set_random_seed(args.seed)
    model = RetrievalModel(data.num_items, encoder, RetrievalConfig(seed=args.seed),
                           data.attributes)
    compile_model(model, run_schedule)
    model.fit(dataset.take(WARMUP_STEPS), verbose=0)
    history = {}
    timing = _timed(lambda: history.update(model.fit(dataset, verbose=0).history))
    timing["loss"] = round(float(history["loss"][0]), 4)
    timing["mixed_precision"] = run_schedule.mixed_precision
    result[name] = timing
    logging.info("%s: %s", name, timing)
  return result


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--dataset", default="beauty", choices=sorted(data_lib.DATASETS))
  parser.add_argument("--data-dir", default=None)
  parser.add_argument("--model-config", default=None,
                      help="default: the dataset's recipe, configs/<dataset>.json")
  parser.add_argument("--settings", default=",".join(SETTINGS),
                      help=f"comma-separated, of {list(SETTINGS)}")
  parser.add_argument("--seed", type=int, default=1)
  parser.add_argument("--work-dir", default=None,
                      help="default: outputs/bench/quality/<dataset>/work")
  parser.add_argument("--out", default=None, help="also write the JSON result here")
  args = parser.parse_args(argv)
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
