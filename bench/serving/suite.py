"""The serving benchmark (``make bench-serving``): Beauty-size and 1M catalogues, exact and ScaNN."""

import argparse
import datetime
import gc
import json
import os
import sys
import tempfile
import time
from typing import Dict, List, Optional

from bench.serving import ann_recall
from bench.serving import bench_model
from bench.serving import load
from serving import contract
from trainer import scann_export

BEAUTY_ITEMS = 12101
LARGE_ITEMS = 1000000
EXAMPLES = """\
examples:
  python -m bench.serving.suite --out-dir outputs/bench/serving
  python -m bench.serving.suite --requests 200 --max-seconds 10 --recall-queries 200  # smoke

Models (bench.serving.bench_model): beauty-exact (12,101 items, exact top-k), large-exact
(1,000,000 items, exact) and large-scann (the same, ScaNN variant). Each gets a gRPC load
run against serving.server in a subprocess; the 1M pair also ScaNN's recall@10 against
exact search, the one-call latency of both and the --sweep of num_leaves_to_search.
Writes <model>.json|.md per load run, ann-recall.json and summary.json|.md (with the
machine) to --out-dir. Other load on the machine makes the latencies upper bounds.
More: docs/serving.md, "Serving benchmarks"."""


def _load_args(args: argparse.Namespace, model_path: str, description: str) -> List[str]:
  return ["--model-path", model_path, "--description", description,
          "--requests", str(args.requests), "--max-seconds", str(args.max_seconds),
          "--concurrency", *map(str, args.concurrency), "--history-length",
          str(args.history_length), "-k", str(args.k), "--warmup", str(args.warmup),
          "--seed", str(args.seed), "--model-name", contract.MODEL_NAME]


def _load_run(args: argparse.Namespace, name: str, model_path: str,
              description: str) -> Dict[str, object]:
  print(f"== load: {name} ({description})", flush=True)
  load_args = load.parse_args(_load_args(args, model_path, description))
  report = load.run(load_args)
  load.write_report(report, args.out_dir, name)
  return report


def _timed(what: str, fn, timings: Dict[str, float]):
  start = time.perf_counter()
  result = fn()
  timings[what] = round(time.perf_counter() - start, 1)
  print(f"   {what}: {timings[what]} s", flush=True)
  return result


def run(args: argparse.Namespace) -> Dict[str, object]:
  """Runs every part; returns the summary (also written to ``args.out_dir``)."""
  scann_config = scann_export.ScannConfig(
      num_leaves=args.num_leaves, num_leaves_to_search=args.num_leaves_to_search,
      num_reordering_candidates=args.num_reordering_candidates)
  started = time.perf_counter()
  timings: Dict[str, float] = {}
  summary: Dict[str, object] = {
      "started": datetime.datetime.now().isoformat(timespec="seconds"),
      "machine_before": load.machine_info(),
      "model": ("bench.serving.bench_model: trainer.model.NextItemModel with EncoderConfig "
                "defaults, UNTRAINED encoder weights (latency does not depend on them); "
                "item embeddings: mixture of Gaussians, "
                f"{bench_model.DEFAULT_ITEMS_PER_CLUSTER} items per cluster on average, "
                f"within-cluster std {bench_model.DEFAULT_SPREAD} x centre std; raw ids "
                "through a tf.lookup.StaticHashTable (no tf.Transform graph)"),
      "load_settings": {"requests_per_level": args.requests, "max_seconds": args.max_seconds,
                        "concurrency": args.concurrency, "batch_size": 1,
                        "history_length": args.history_length, "k": args.k},
      "scann_config": scann_config.to_dict(),
      "load": {}, "timings_s": timings,
  }
  os.makedirs(args.out_dir, exist_ok=True)
  with tempfile.TemporaryDirectory(prefix="bench-suite-") as scratch:
    if args.beauty_items:
      print(f"== export: {args.beauty_items} items, exact", flush=True)
      beauty = _timed("export_beauty_exact", lambda: bench_model.export_bench_model(
          os.path.join(scratch, "beauty-exact"), args.beauty_items, seed=args.seed), timings)
      summary["load"]["beauty-exact"] = _load_run(
          args, "beauty-exact", beauty, f"encoder model, {args.beauty_items} items, exact top-k")
    if args.large_items:
      print(f"== build + export: {args.large_items} items, exact and ScaNN", flush=True)
      model = _timed("build_large_model", lambda: bench_model.build_model(
          args.large_items, seed=args.seed), timings)
      exact = _timed("export_large_exact", lambda: bench_model.export_bench_model(
          os.path.join(scratch, "large-exact"), args.large_items, model=model), timings)
      vocabulary = bench_model.vocabulary(args.large_items, os.path.join(scratch, "vocab"))
      scann = _timed("export_large_scann", lambda: scann_export.export_scann_variant(
          model, vocabulary, model.encoder_config.max_seq_len, os.path.join(scratch, "serving"),
          1, scann_config), timings)
      del model, vocabulary
      gc.collect()
      print(f"== recall@{args.k}: ScaNN vs exact, {args.recall_queries} histories", flush=True)
      histories = bench_model.interest_histories(args.large_items, args.recall_queries,
                                                 seed=args.seed)
      recall = _timed("ann_recall", lambda: ann_recall.measure(
          exact, scann, histories, args.k, args.latency_queries, config=scann_config,
          sweep_leaves=args.sweep), timings)
      summary["ann_recall"] = recall
      with open(os.path.join(args.out_dir, "ann-recall.json"), "w", encoding="utf-8") as f:
        json.dump(recall, f, indent=2)
      print(json.dumps(recall, indent=2), flush=True)
      gc.collect()
      summary["load"]["large-exact"] = _load_run(
          args, "large-exact", exact, f"encoder model, {args.large_items} items, exact top-k")
      summary["load"]["large-scann"] = _load_run(
          args, "large-scann", scann, f"encoder model, {args.large_items} items, ScaNN variant")
  summary["machine_after"] = load.machine_info()
  timings["total"] = round(time.perf_counter() - started, 1)
  with open(os.path.join(args.out_dir, "summary.json"), "w", encoding="utf-8") as f:
    json.dump(summary, f, indent=2)
  text = markdown(summary)
  with open(os.path.join(args.out_dir, "summary.md"), "w", encoding="utf-8") as f:
    f.write(text)
  print(text)
  print(f"wrote {os.path.join(args.out_dir, 'summary.json')} and summary.md")
  return summary


def markdown(summary: Dict[str, object]) -> str:
  """The summary as a readable markdown report."""
  machine = summary["machine_before"]
  after = summary.get("machine_after", {})
  settings = summary["load_settings"]
  lines = [
      "# Serving benchmark", "",
      f"Started {summary['started']}, commit `{machine['git_commit']}`. Machine: "
      f"{machine['cpu_model']}, {machine['cpus']} cores, {machine['platform']}; "
      f"TensorFlow {machine['tensorflow']}. 1-min load average "
      f"{machine['load_average_1min']} at the start and "
      f"{after.get('load_average_1min', 'n/a')} at the end: other work on the machine "
      f"(and the load generator itself) shares the cores, so latencies are upper bounds.",
      "",
      f"Model: {summary['model']}.", "",
      f"Load: gRPC Predict on loopback to `serving.server` (subprocess, 8 handler "
      f"threads), one history of {settings['history_length']} random catalogue items per "
      f"request, k={settings['k']}; up to {settings['requests_per_level']} requests per "
      f"concurrency level, at most {settings['max_seconds']:g} s each.", "",
      "| model | items | concurrency | requests | errors | p50 ms | p99 ms | req/s |",
      "|---|---:|---:|---:|---:|---:|---:|---:|",
  ]
  for name, report in summary["load"].items():
    for r in report["results"]:
      lines.append(f"| {name} | {report['catalogue_size']:,} | {r['concurrency']} | "
                   f"{r['requests']} | {r['errors']} | {r['p50_ms']:.2f} | "
                   f"{r['p99_ms']:.2f} | {r['throughput_rps']:.1f} |")
  recall = summary.get("ann_recall")
  if recall:
    k = recall["k"]
    config = summary["scann_config"]
    lat = recall["latency_in_process_batch_1"]
    lines += [
        "", f"## ScaNN vs exact at {summary['load'].get('large-exact', {}).get('catalogue_size', 0):,} items", "",
        f"ScaNN parameters: num_leaves {config['num_leaves']}, num_leaves_to_search "
        f"{config['num_leaves_to_search']}, num_reordering_candidates "
        f"{config['num_reordering_candidates']}, dimensions_per_block "
        f"{config['dimensions_per_block']}, training_iterations "
        f"{config['training_iterations']}.", "",
        f"- recall@{k} over {recall['queries']} synthetic interest histories: "
        f"**{recall[f'recall_at_{k}']:.4f}** (min {recall[f'recall_at_{k}_min']:.2f}; "
        f"{recall['queries_with_full_recall']:.1%} of queries with all {k} found)",
        "", "| model | in-process p50 ms | p99 ms | mean ms | batched ms/query |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ("exact", "scann"):
      lines.append(f"| {name} | {lat[name]['p50_ms']:.2f} | {lat[name]['p99_ms']:.2f} | "
                   f"{lat[name]['mean_ms']:.2f} | "
                   f"{recall['batched_ms_per_query'][name]:.2f} |")
    lines.append("")
    lines.append("In-process: `serving_default` of the loaded SavedModel, one history per "
                 "call, no gRPC (the encoder's cost is in both).")
    if recall.get("sweep"):
      lines += ["", f"Sweep (a fresh index with the same num_leaves / reordering, "
                f"`scann_ops` directly; build {recall['sweep'][0]['index_build_s']} s):", "",
                f"| num_leaves_to_search | recall@{k} | search ms/query (batched) |",
                "|---:|---:|---:|"]
      for row in recall["sweep"]:
        lines.append(f"| {row['num_leaves_to_search']} | {row['recall_at_k']:.4f} | "
                     f"{row['search_ms_per_query_batched']:.3f} |")
  lines += ["", "Timings (s): " + ", ".join(f"{k} {v}" for k, v in summary["timings_s"].items()),
            ""]
  return "\n".join(lines)


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__, epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out-dir", default=os.path.join("outputs", "bench", "serving"))
  parser.add_argument("--beauty-items", type=int, default=BEAUTY_ITEMS,
                      help="catalogue of the first model (0: skip it)")
  parser.add_argument("--large-items", type=int, default=LARGE_ITEMS,
                      help="catalogue of the exact/ScaNN pair (0: skip them)")
  parser.add_argument("--requests", type=int, default=1000, help="requests per level")
  parser.add_argument("--max-seconds", type=float, default=30.0,
                      help="stop a level after this long even if requests remain")
  parser.add_argument("--concurrency", type=int, nargs="+",
                      default=list(load.DEFAULT_CONCURRENCY))
  parser.add_argument("--history-length", type=int, default=20)
  parser.add_argument("-k", type=int, default=10)
  parser.add_argument("--warmup", type=int, default=3, help="unmeasured requests per thread")
  parser.add_argument("--recall-queries", type=int, default=1000)
  parser.add_argument("--latency-queries", type=int, default=200,
                      help="one-history in-process calls per model")
  defaults = scann_export.ScannConfig()
  parser.add_argument("--num-leaves", type=int, default=defaults.num_leaves)
  parser.add_argument("--num-leaves-to-search", type=int,
                      default=defaults.num_leaves_to_search)
  parser.add_argument("--num-reordering-candidates", type=int,
                      default=defaults.num_reordering_candidates)
  parser.add_argument("--sweep", type=int, nargs="*", default=[50, 100, 200, 300],
                      help="other num_leaves_to_search values to measure recall at")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  if args.requests < 1 or args.recall_queries < 1 or args.latency_queries < 1:
    parser.error("--requests, --recall-queries and --latency-queries must be >= 1")
  return args


def main(argv: Optional[List[str]] = None) -> int:
  args = parse_args(argv)
  summary = run(args)
  errors = sum(r["errors"] for report in summary["load"].values() for r in report["results"])
  return 0 if errors == 0 else 1


if __name__ == "__main__":
  sys.exit(main())
