"""Bulk recommendation throughput (users/s): the Beam job of ``pipeline.bulk_recommend``, in process.

Writes ``<out-dir>/<label>.json`` and ``.md``; docs/serving.md, "Bulk recommendations".
"""

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
import numpy as np
import pandas as pd
import tensorflow as tf

from bench.serving import bench_model
from bench.serving import load
from components.bulk_recommender import histories
from components.bulk_recommender import recommend
from components.bulk_recommender import saved_model
from components.bulk_recommender import user_rules
from serving import contract

BEAUTY_ITEMS = 12101
BEAUTY_USERS = 22363
RULE_IDS = 20   # excluded ids per user ("already sent"), and globally
# Mode -> (signature, global excluded ids?, per-user rules file?)
MODES = {"plain": (contract.DEFAULT_SIGNATURE, False, False),
         "global-rules": (contract.RULES_SIGNATURE, True, False),
         "per-user-rules": (contract.RULES_SIGNATURE, True, True)}
EXAMPLES = """\
examples:
  python -m bench.serving.bulk --out-dir outputs/bench/serving             # Beauty size
  python -m bench.serving.bulk --model-path outputs/synthetic/serving/seqrec --label bulk-pushed
  python -m bench.serving.bulk --users 2000 --batch-sizes 64               # smoke
  python -m bench.serving.bulk --users 5000 --batch-sizes 256 --modes plain per-user-rules \
      --label bulk-rules                                                 # rules cost, ~2 min

Without --model-path: the untrained Beauty-size encoder model of bench.serving.bench_model
and synthetic interest histories; with it: that model and uniform random histories of
its catalogue. Each mode and batch size is one whole run (events CSV -> Parquet files),
startup included; modes: plain (serving_default), global-rules (recommend, the same
excluded ids for everybody), per-user-rules (recommend, those plus each user's own excluded
ids from a rules file). Other load on the machine makes the rates lower bounds."""


def catalogue_of(model_dir: str) -> List[str]:
  loaded = tf.saved_model.load(model_dir)
  return [i.decode() for i in loaded.signatures[contract.ITEM_EMBEDDINGS_SIGNATURE]()[
      contract.OUTPUT_ITEM_IDS].numpy()]


def _histories(args: argparse.Namespace, model_dir: Optional[str]) -> List[List[str]]:
  if model_dir is None:
    return bench_model.interest_histories(args.items, args.users, seed=args.seed,
                                          min_length=args.min_history,
                                          max_length=args.max_history)
  ids = catalogue_of(model_dir)
  rng = np.random.default_rng(args.seed)
  lengths = rng.integers(args.min_history, args.max_history + 1, size=args.users)
  return [list(rng.choice(ids, size=min(n, len(ids)), replace=False)) for n in lengths]


def write_events(user_histories: Sequence[Sequence[str]], path: str) -> str:
  """The histories as a canonical events CSV (user_id, item_id, timestamp)."""
  rows = [(f"user_{u}", item, t) for u, history in enumerate(user_histories)
          for t, item in enumerate(history)]
  pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(path, index=False)
  return path


def write_rules(catalogue: Sequence[str], users: int, path: str, seed: int) -> str:
  """A rules file: every user ``RULE_IDS`` random excluded ids of ``catalogue``."""
  rng = np.random.default_rng([seed, 5])
  with open(path, "w", encoding="utf-8") as f:
    for u in range(users):
      excluded = rng.choice(len(catalogue), size=min(RULE_IDS, len(catalogue)), replace=False)
      f.write(json.dumps({user_rules.USER_ID: f"user_{u}",
                          contract.INPUT_EXCLUDE_IDS: [catalogue[i] for i in excluded]}) + "\n")
  return path


def mode_settings(mode: str, model_dir: str, k: int, batch_size: int,
                  catalogue: Sequence[str], rules_file: str) -> recommend.BulkSettings:
  """The BulkSettings of one benchmark mode (``MODES``)."""
  signature, global_ids, per_user = MODES[mode]
  extra = {contract.INPUT_EXCLUDE_IDS: list(catalogue[:RULE_IDS])} if global_ids else {}
  return recommend.BulkSettings(
      model_dir=model_dir, k=k, batch_size=batch_size, signature=signature,
      extra_inputs=user_rules.with_rule_defaults(signature, extra),
      rules_file=rules_file if per_user else None)


def measure(settings: recommend.BulkSettings, mode: str, events: str, users: int,
            scratch: str) -> Dict[str, object]:
  """One whole bulk run (the rules file check included); users, rows, seconds, users/s."""
  output = os.path.join(scratch, f"out-{mode}-{settings.batch_size}")
  options = PipelineOptions(["--direct_running_mode=in_memory", "--direct_num_workers=1"])
  print(f"== bulk {mode}: {users} users, k={settings.k}, batch {settings.batch_size}",
        flush=True)
  start = time.monotonic()
  result = recommend.run(settings, histories.ReadEventHistories([events]), output,
                         make_pipeline=lambda: beam.Pipeline(options=options))
  seconds = time.monotonic() - start
  row = {"mode": mode, "batch_size": settings.batch_size, "users": result.users,
         "rows": result.rows, "rows_expected": users * settings.k, "files": len(result.files),
         "users_with_rules": result.users_with_rules, "model_calls": result.calls,
         "seconds": round(seconds, 2), "users_per_s": round(result.users / seconds, 1)}
  print(f"   {row}", flush=True)
  return row


def run(args: argparse.Namespace) -> Dict[str, object]:
  report: Dict[str, object] = {
      "started": datetime.datetime.now().isoformat(timespec="seconds"),
      "machine_before": load.machine_info(), "users": args.users, "k": args.k,
      "history_length": [args.min_history, args.max_history], "rule_ids": RULE_IDS, "runner":
      "DirectRunner, in_memory, 1 worker", "results": []}
  with tempfile.TemporaryDirectory(prefix="bench-bulk-") as scratch:
    if args.model_path:
      model_dir = saved_model.resolve_model_dir(args.model_path)
      report["model"] = f"{model_dir} (uniform random histories of its catalogue)"
    else:
      print(f"== export: {args.items} items", flush=True)
      model_dir = bench_model.export_bench_model(os.path.join(scratch, "model"), args.items,
                                                 seed=args.seed)
      report["model"] = (f"bench.serving.bench_model, {args.items} items, untrained default "
                         "encoder (synthetic interest histories)")
    events = write_events(_histories(args, args.model_path and model_dir),
                          os.path.join(scratch, "events.csv"))
    catalogue = catalogue_of(model_dir)
    rules_file = write_rules(catalogue, args.users, os.path.join(scratch, "rules.jsonl"),
                             args.seed)
    for batch_size in args.batch_sizes:
      for mode in args.modes:
        settings = mode_settings(mode, model_dir, args.k, batch_size, catalogue, rules_file)
        report["results"].append(measure(settings, mode, events, args.users, scratch))
  report["machine_after"] = load.machine_info()
  return report


def markdown(report: Dict[str, object]) -> str:
  machine, after = report["machine_before"], report["machine_after"]
  lines = [
      "# Bulk recommendations throughput (shared cores)", "",
      f"Started {report['started']}, commit `{machine['git_commit'][:12]}`. Machine: "
      f"{machine['cpu_model']}, {machine['cpus']} cores; TensorFlow {machine['tensorflow']}. "
      f"1-min load average {machine['load_average_1min']} at the start and "
      f"{after['load_average_1min']} at the end: other work shares the cores, so the rates "
      "are lower bounds.", "",
      f"Model: {report['model']}. {report['users']:,} users, histories of "
      f"{report['history_length'][0]}-{report['history_length'][1]} items, k={report['k']}. "
      f"`components.bulk_recommender` job ({report['runner']}): events CSV -> Parquet; "
      "wall time of the whole run, pipeline startup (and the rules file check) included. "
      f"Modes: `plain` serving_default; `global-rules` the recommend signature with "
      f"{report['rule_ids']} excluded ids for everybody; `per-user-rules` those plus "
      f"{report['rule_ids']} excluded ids of each user's own from a rules file "
      "(JSON Lines, joined to the histories by user id).", "",
      "| mode | batch size | users | rows | model calls | seconds | users/s |",
      "|---|---:|---:|---:|---:|---:|---:|"]
  for r in report["results"]:
    lines.append(f"| {r['mode']} | {r['batch_size']} | {r['users']:,} | {r['rows']:,} | "
                 f"{r['model_calls']:,} | {r['seconds']} | {r['users_per_s']:.0f} |")
  return "\n".join(lines) + "\n"


def write_report(report: Dict[str, object], out_dir: str, label: str,
                 render: Callable[[Dict[str, object]], str] = markdown) -> str:
  """Writes ``<out_dir>/<label>.json`` and ``.md`` (``render(report)``); returns the markdown."""
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, f"{label}.json"), "w", encoding="utf-8") as f:
    json.dump(report, f, indent=2)
  text = render(report)
  with open(os.path.join(out_dir, f"{label}.md"), "w", encoding="utf-8") as f:
    f.write(text)
  print(text)
  print(f"wrote {os.path.join(out_dir, label)}.json and .md")
  return text


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__, epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out-dir", default=os.path.join("outputs", "bench", "serving"))
  parser.add_argument("--label", default="bulk")
  parser.add_argument("--model-path", help="a served model (serving base or version folder) "
                                           "instead of the synthetic Beauty-size one")
  parser.add_argument("--items", type=int, default=BEAUTY_ITEMS)
  parser.add_argument("--users", type=int, default=BEAUTY_USERS)
  parser.add_argument("-k", type=int, default=10)
  parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
  parser.add_argument("--modes", nargs="+", choices=sorted(MODES), default=["plain"],
                      help="what each run calls (module doc); default plain")
  parser.add_argument("--min-history", type=int, default=5)
  parser.add_argument("--max-history", type=int, default=50)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  if args.users < 1 or args.k < 1 or min(args.batch_sizes) < 1:
    parser.error("--users, -k and --batch-sizes must be >= 1")
  return args


def main(argv: Optional[List[str]] = None) -> int:
  args = parse_args(argv)
  report = run(args)
  write_report(report, args.out_dir, args.label)
  complete = all(r["rows"] == r["rows_expected"] for r in report["results"])
  return 0 if complete else 1


if __name__ == "__main__":
  sys.exit(main())
