"""Runs the pipeline on this machine with LocalDagRunner.

Converts the input to the canonical layout under ``<output-dir>/data``, runs, prints a summary.
"""

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import List, Optional

from pipeline import configs
from pipeline import embed_items
from pipeline import progress
from pipeline import retrain_state
from pipeline.ingest import IngestError, load_dataset, write_canonical
from pipeline.ingest import privacy
from pipeline.ingest import synthetic
from pipeline.ingest.canonical import check_trainable
from trainer.item_vectors import VECTORS_FILE

DATASETS = ("synthetic", "ml-100k", "ml-1m", "ml-latest", "s3rec", "unisrec", "csv")
SYNTHETIC_SIZES = ("tiny", "default", "large")
CONFIG_FILE = "config.json"   # the run's whole PipelineConfig, under --output-dir
EMBED_DIR = "item_vectors"    # --embed-items output (and its cache), under --output-dir
EXAMPLES = """\
examples:
  python -m pipeline.local_runner                          # synthetic default data
  python -m pipeline.local_runner --dataset ml-100k --data-dir ../shared/data/ml-100k
  python -m pipeline.local_runner --dataset s3rec --data-dir ../shared/data/beauty
  python -m pipeline.local_runner --dataset csv --data-dir my_log.csv --items items.csv

The input files are only read. Input formats and flags: docs/data.md."""


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__, epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--dataset", choices=DATASETS, default="synthetic")
  parser.add_argument("--data-dir", help="dataset folder, or the log file for --dataset csv")
  parser.add_argument("--items", help="item table file (csv dataset only)")
  parser.add_argument("--synthetic-size", choices=SYNTHETIC_SIZES, default="default")
  parser.add_argument("--output-dir", default=None,
                      help="where pipeline outputs, metadata and the serving folder go "
                           "(default: outputs/<dataset>)")
  configs.add_flags(parser)
  privacy.add_key_flags(parser)
  parser.add_argument("--span", type=int, default=None,
                      help="nightly retraining: store this input as daily span N "
                           "(<output-dir>/data/interactions/span-N/) and train on the "
                           "last --span-window spans; rerunning a finished span does nothing")
  parser.add_argument("--span-window", type=int, default=7,
                      help="how many of the newest spans a --span run trains on (default 7)")
  parser.add_argument("--embed-items", action="store_true",
                      help="embed the item table's texts before the pipeline (python -m "
                           "pipeline.embed_items, default encoder, cached by text) into "
                           f"<output-dir>/{EMBED_DIR}/ and train with them (--item-vectors)")
  parser.add_argument("--verbose", action="store_true",
                      help="show every TFX/Beam log line, not only progress")
  return parser.parse_args(argv)


def prepare_data(args, data_root: str):
  """Converts the chosen input into the canonical layout under ``data_root``."""
  if args.dataset == "synthetic":
    preset = {"tiny": synthetic.SyntheticConfig.tiny, "large": synthetic.SyntheticConfig.large,
              "default": synthetic.SyntheticConfig}[args.synthetic_size]()
    interactions, items = synthetic.generate(preset)
  else:
    if not args.data_dir:
      raise IngestError(f"--data-dir is required for --dataset {args.dataset}")
    interactions, items = load_dataset(args.dataset, args.data_dir, args.items)
  return write_canonical(interactions, items, data_root, span=args.span,
                         pseudonymize_key=privacy.key_from_flags(args))


def build_config(args) -> configs.PipelineConfig:
  output_root = args.output_dir or os.path.join("outputs", args.dataset)
  settings = {} if args.span is None else {"span_window": args.span_window, "enable_cache": True}
  if args.embed_items:
    settings["item_vectors"] = os.path.join(output_root, EMBED_DIR, VECTORS_FILE)
  return configs.from_flags(args, data_root=configs.data_root_of(output_root),
                            output_root=output_root,
                            default_pipeline_name=f"{configs.PIPELINE_NAME}-{args.dataset}",
                            **settings)


def embed(data, item_vectors: str) -> int:
  """Embeds the canonical item table's texts into ``item_vectors`` (0, or 1 after an error)."""
  if not data.items_path:
    print("error: --embed-items needs an item table", file=sys.stderr)
    return 1
  return embed_items.main(["--items", data.items_path, "--out", os.path.dirname(item_vectors)])


def describe_data(dataset: str, data) -> str:
  """One line: the dataset, its sizes and where its canonical copy is."""
  items = f" (item table: {data.num_catalogue_items} items)" if data.has_items else ""
  forgotten = (f"; {data.num_forgotten_interactions} interactions of forgotten users "
               "dropped" if data.num_forgotten_interactions else "")
  return (f"Data: {dataset}, {data.num_users} users, {data.num_items} items, "
          f"{data.num_interactions} interactions{items} in {data.out_dir}{forgotten}")


def write_config(config: configs.PipelineConfig) -> str:
  """Writes the whole config as JSON to ``<output_root>/config.json``; returns the path."""
  path = os.path.join(config.output_root, CONFIG_FILE)
  os.makedirs(config.output_root, exist_ok=True)
  with open(path, "w") as f:
    json.dump(dataclasses.asdict(config), f, indent=2, default=str)
    f.write("\n")
  return path


def run(config: configs.PipelineConfig) -> dict:
  """Runs the pipeline with LocalDagRunner, writes the run report and returns the MLMD
  summary (with the report's path under "report" when it was written)."""
  from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top
  from pipeline.pipeline import create_pipeline  # pylint: disable=g-import-not-at-top
  from pipeline.report import build as report  # pylint: disable=g-import-not-at-top
  from pipeline import summary  # pylint: disable=g-import-not-at-top
  os.makedirs(os.path.dirname(config.metadata_path), exist_ok=True)
  metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(
      config.metadata_path)
  tfx.orchestration.LocalDagRunner().run(create_pipeline(config, metadata))
  result = summary.collect(config.metadata_path)
  report_path = report.write_or_warn(config, result)
  if report_path:
    result["report"] = report_path
  return result


def main(argv: Optional[List[str]] = None) -> int:
  args = parse_args(argv)
  progress.configure(args.verbose)
  start = time.time()
  try:
    config = build_config(args)
    if config.item_vectors and not args.embed_items and not os.path.isfile(config.item_vectors):
      raise ValueError(f"--item-vectors {config.item_vectors}: no such file")
    data = prepare_data(args, config.data_root)
    check_trainable(data, config.sequence.min_interactions, config.span_window)
  except (IngestError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(describe_data(args.dataset, data), flush=True)
  done = retrain_state.finished_run(config.output_root, args.span, data.interactions_path)
  if done is not None:
    print(f"Span {args.span} with this exact data was already trained: {done}. "
          "Nothing to do.", flush=True)
    return 0
  if args.embed_items and embed(data, config.item_vectors):
    return 1
  print("\n".join(configs.describe(config)), flush=True)
  print(f"Full config: {write_config(config)}", flush=True)
  progress.import_tensorflow(args.verbose)
  result = run(config)
  from pipeline import summary  # pylint: disable=g-import-not-at-top
  print(summary.format_summary(result, time.time() - start), flush=True)
  retrain_state.record_run(config.output_root, args.span, data.interactions_path, result)
  return 0


if __name__ == "__main__":
  sys.exit(main())
