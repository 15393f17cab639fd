"""Business-rules benchmark: p99 of ``recommend`` with rules next to ``serving_default``,
and what MMR diversity does to NDCG@10 and intra-list diversity."""

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from bench.serving import bench_model
from bench.serving import load
from bench.serving import mmr
from serving import client as client_lib
from serving import contract
from serving import testing
from trainer import export

BEAUTY_ITEMS = 12101
BRANDS_PER_ITEM = 50          # about one brand per this many items
EXCLUDED_IDS = 20             # "already shown / out of stock" ids per request
ALLOWED_IDS = 500             # a shop's items, for the allow-list mode
MMR_WEIGHTS = (0.0, 0.1, 0.3, 0.5)
EXAMPLES = """\
examples:
  python -m bench.serving.rules --out-dir outputs/bench/serving
  python -m bench.serving.rules --requests 100 --rounds 1 --concurrency 1 --quality-users 200

Exports bench.serving.bench_model at Beauty size with synthetic attributes (the item's
cluster as category, a random brand), serves it with serving.server in a subprocess and
runs the same gRPC load (bench.serving.load) on serving_default and on the recommend
signature under several rule mixes. Then, in process, NDCG@10 and intra-list diversity
of recommend at several MMR weights. Writes <out-dir>/rules.json and rules.md.
More: docs/serving.md, "Business rules"."""


def catalogue_attributes(num_items: int, seed: int = 0,
                         items_per_cluster: int = bench_model.DEFAULT_ITEMS_PER_CLUSTER
                         ) -> Tuple[List[str], List[List[int]]]:
  """(values, per item its value indices): ``category_<cluster>`` and one ``brand_<b>``."""
  clusters = bench_model.item_clusters(num_items, seed, items_per_cluster)
  num_categories = int(clusters.max()) + 1
  num_brands = max(1, num_items // BRANDS_PER_ITEM)
  brands = np.random.default_rng([seed, 7]).integers(0, num_brands, size=num_items)
  values = ([f"category_{c}" for c in range(num_categories)]
            + [f"brand_{b}" for b in range(num_brands)])
  rows = [[int(c), num_categories + int(b)] for c, b in zip(clusters, brands)]
  return values, rows


def export_rules_model(export_dir: str, num_items: int, seed: int = 0) -> str:
  """The benchmark SavedModel (``bench_model``) with ``catalogue_attributes`` inside."""
  model = bench_model.build_model(num_items, seed=seed)
  values, rows = catalogue_attributes(num_items, seed)
  with tempfile.TemporaryDirectory(prefix="bench-vocab-") as scratch:
    module = export.RecommenderModule(
        model, bench_model.vocabulary(num_items, scratch), model.encoder_config.max_seq_len,
        export.ItemAttributes(values, rows))
    return export.save_module(module, export_dir)


def rule_modes(num_items: int, seed: int) -> Dict[str, Tuple[str, load.Call]]:
  """Mode name -> (description, the call the load generator makes)."""
  rng = np.random.default_rng([seed, 11])
  ids = bench_model.item_ids(num_items)
  values, rows = catalogue_attributes(num_items, seed)
  excluded = [ids[i] for i in rng.choice(num_items, EXCLUDED_IDS, replace=False)]
  allowed = [ids[i] for i in rng.choice(num_items, min(ALLOWED_IDS, num_items), replace=False)]
  brand = values[rows[0][1]]

  def with_rules(make_rules, diversity=0.0):
    def call(client, batch, k):
      rules = [make_rules(history) for history in batch]
      return client.recommend_with_rules(batch, k, rules, diversity=diversity)
    return call

  def category_of(history):
    return [values[rows[int(history[-1].rsplit("_", 1)[1])][0]]] if history else []

  return {
      "serving_default": ("serving_default, history excluded", load.plain_call),
      "recommend-no-rules": ("recommend, every rule list empty",
                             with_rules(lambda h: client_lib.Rules())),
      "recommend-rules": (f"recommend: {EXCLUDED_IDS} excluded ids, the last history item's "
                          f"category required, one brand excluded",
                          with_rules(lambda h: client_lib.Rules(
                              exclude=excluded, require_attributes=category_of(h),
                              exclude_attributes=[brand]))),
      "recommend-allow": (f"recommend: allow list of {len(allowed)} ids, {EXCLUDED_IDS} "
                          f"excluded ids", with_rules(lambda h: client_lib.Rules(
                              exclude=excluded, allow=allowed))),
      "recommend-mmr": (f"recommend: {EXCLUDED_IDS} excluded ids, one brand excluded, "
                        f"diversity 0.3", with_rules(lambda h: client_lib.Rules(
                            exclude=excluded, exclude_attributes=[brand]), 0.3)),
  }


class InProcessClient:
  """The two ``RecommenderClient`` calls the rule modes make, on a loaded SavedModel."""

  def __init__(self, loaded):
    self.signatures = loaded.signatures

  def recommend_details(self, histories, k):
    return self.signatures[contract.DEFAULT_SIGNATURE](
        history=tf.constant(client_lib.history_tensor(histories)), k=tf.constant(k))

  def recommend_with_rules(self, histories, k, rules, keep_history=False, diversity=0.0):
    lists = {name: tf.constant(client_lib.history_tensor([r.lists()[name] for r in rules]),
                               tf.string) for name in contract.RULE_LIST_INPUTS}
    return self.signatures[contract.RULES_SIGNATURE](
        history=tf.constant(client_lib.history_tensor(histories)), k=tf.constant(k), **lists,
        keep_history=tf.constant(keep_history), diversity=tf.constant(diversity, tf.float32))


def in_process_latency(args: argparse.Namespace, export_dir: str) -> Dict[str, Dict[str, float]]:
  """Every rule mode called on the loaded SavedModel (no gRPC), modes taking turns."""
  client = InProcessClient(tf.saved_model.load(export_dir))
  modes = rule_modes(args.items, args.seed)
  histories = load.sample_histories(bench_model.item_ids(args.items), 1, args.history_length,
                                    args.seed)
  latencies: Dict[str, List[float]] = {mode: [] for mode in modes}
  for round_number in range(args.rounds):
    for mode, (_, call) in modes.items():
      for i in range(args.warmup + args.requests):
        start = time.perf_counter()
        call(client, histories[i % len(histories)], args.k)
        if i >= args.warmup:
          latencies[mode].append(time.perf_counter() - start)
    print(f"in process: round {round_number + 1} done", flush=True)
  return {mode: load.percentile_summary(values, sum(values), 0, 1)
          for mode, values in latencies.items()}


def quality(export_dir: str, num_items: int, users: int, k: int, seed: int):
  """``mmr_effect`` on synthetic interest histories, the last item held out."""
  histories = bench_model.interest_histories(num_items, users, seed=seed + 1, min_length=6)
  values, rows = catalogue_attributes(num_items, seed)
  loaded = tf.saved_model.load(export_dir)
  items = loaded.signatures[contract.ITEM_EMBEDDINGS_SIGNATURE]()
  recommend = mmr.in_process_recommender(loaded.signatures[contract.RULES_SIGNATURE], k)
  return mmr.mmr_effect(recommend, [h[:-1] for h in histories],
                        [h[-1] for h in histories],
                        [i.decode() for i in items[contract.OUTPUT_ITEM_IDS].numpy()],
                        items[contract.OUTPUT_EMBEDDINGS].numpy(),
                        [[values[v] for v in row] for row in rows], weights=MMR_WEIGHTS, k=k)


def latency(args: argparse.Namespace, export_dir: str) -> Dict[str, Dict[str, object]]:
  """The gRPC load of every rule mode against one server subprocess.

  The modes take turns, ``args.rounds`` times, so that other work on the machine
  weighs on each alike; each level's row holds the median over rounds of each
  statistic, and ``rounds`` the runs themselves.
  """
  modes = rule_modes(args.items, args.seed)
  runs = {mode: {c: [] for c in args.concurrency} for mode in modes}
  with tempfile.TemporaryDirectory(prefix="bench-rules-") as scratch:
    base = os.path.join(scratch, contract.MODEL_NAME)
    testing.push_version(export_dir, base, 1)
    process = testing.ServerProcess.local(
        base, contract.MODEL_NAME, poll_seconds=30.0,
        extra_args=load.server_args(max(args.concurrency)))
    process.start(timeout=900)
    try:
      histories = load.sample_histories(bench_model.item_ids(args.items), 1,
                                        args.history_length, args.seed)
      for round_number in range(args.rounds):
        for concurrency in args.concurrency:
          for mode, (_, call) in modes.items():
            summary = load.run_level(process.target, contract.MODEL_NAME, histories, args.k,
                                     concurrency, args.requests, args.max_seconds,
                                     args.timeout, args.warmup, call=call)
            runs[mode][concurrency].append(summary)
            print(f"round {round_number + 1} {mode} concurrency {concurrency}: p50 "
                  f"{summary['p50_ms']:.2f} ms, p99 {summary['p99_ms']:.2f} ms, "
                  f"{summary['errors']} errors", flush=True)
    finally:
      process.stop()
  return {mode: {"description": modes[mode][0],
                 "results": [median_summary(runs[mode][c]) for c in args.concurrency],
                 "rounds": runs[mode]}
          for mode in modes}


def median_summary(summaries: List[Dict[str, float]]) -> Dict[str, float]:
  """Per statistic the median over ``summaries``; requests and errors summed."""
  result = {key: float(np.median([s[key] for s in summaries]))
            for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput_rps")}
  result.update(requests=sum(s["requests"] for s in summaries),
                errors=sum(s["errors"] for s in summaries),
                concurrency=summaries[0]["concurrency"], rounds=len(summaries))
  return result


def markdown(report: Dict[str, object]) -> str:
  machine = report["machine"]
  lines = [
      "# Business rules: latency and MMR", "",
      f"{report['started']}, commit `{machine['git_commit']}`; {machine['cpu_model']}, "
      f"{machine['cpus']} cores, 1-min load average {machine['load_average_1min']}."
      + (" **Shared cores**: other work ran on the machine; re-measure alone before "
         "quoting." if report["shared_cores"] else ""), "",
      f"Model: {report['model']}. gRPC Predict on loopback to serving.server "
      f"(subprocess), one history of {report['history_length']} random items per request, "
      f"k={report['k']}.", "",
      f"Each mode ran {report['rounds']} times, modes taking turns; a row holds the median "
      "over those runs (requests and errors: totals).", "",
      "| mode | concurrency | requests | errors | p50 ms | p99 ms | p99 / serving_default |",
      "|---|---:|---:|---:|---:|---:|---:|"]
  base = {r["concurrency"]: r["p99_ms"]
          for r in report["latency"].get("serving_default", {}).get("results", [])}
  for mode, entry in report["latency"].items():
    for r in entry["results"]:
      ratio = r["p99_ms"] / base[r["concurrency"]] if base.get(r["concurrency"]) else float("nan")
      lines.append(f"| {mode} | {r['concurrency']} | {r['requests']} | {r['errors']} | "
                   f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {ratio:.2f} |")
  lines += ["", "Modes: " + "; ".join(f"`{m}`: {e['description']}"
                                      for m, e in report["latency"].items()) + "."]
  if report.get("in_process"):
    base = report["in_process"]["serving_default"]["p99_ms"]
    lines += ["", "## In process (the loaded SavedModel, no gRPC, one history per call)", "",
              "| mode | calls | p50 ms | p99 ms | p99 / serving_default |",
              "|---|---:|---:|---:|---:|"]
    for mode, r in report["in_process"].items():
      lines.append(f"| {mode} | {r['requests']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                   f"{r['p99_ms'] / base:.2f} |")
  if report.get("quality"):
    keys = [key for key in report["quality"][0] if key != "diversity_weight"]
    lines += ["", f"## MMR on {report['quality_users']} synthetic interest histories "
              "(last item held out; untrained encoder, so NDCG only compares weights)", "",
              "| diversity | " + " | ".join(keys) + " |", "|---:" * (len(keys) + 1) + "|"]
    for row in report["quality"]:
      lines.append(f"| {row['diversity_weight']:g} | "
                   + " | ".join("n/a" if row[key] is None else f"{row[key]:.4f}"
                                for key in keys) + " |")
  return "\n".join(lines) + "\n"


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__, epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--items", type=int, default=BEAUTY_ITEMS)
  parser.add_argument("--requests", type=int, default=500,
                      help="requests per mode, level and round")
  parser.add_argument("--rounds", type=int, default=3,
                      help="times every mode runs, in turns (the report: medians)")
  parser.add_argument("--max-seconds", type=float, default=30.0)
  parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
  parser.add_argument("--history-length", type=int, default=20)
  parser.add_argument("-k", type=int, default=10)
  parser.add_argument("--warmup", type=int, default=5)
  parser.add_argument("--timeout", type=float, default=30.0)
  parser.add_argument("--quality-users", type=int, default=2000,
                      help="histories for the MMR quality part (0: skip it)")
  parser.add_argument("--dedicated", action="store_true",
                      help="the machine ran nothing else (else the report says shared cores)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out-dir", default=os.path.join("outputs", "bench", "serving"))
  parser.add_argument("--label", default="rules")
  args = parser.parse_args(argv)
  if (args.items < 2 or min(args.requests, args.rounds, args.k, *args.concurrency) < 1):
    parser.error("--items >= 2; --requests, --rounds, -k and --concurrency >= 1")
  return args


def main(argv: Optional[List[str]] = None) -> int:
  args = parse_args(argv)
  report = {"started": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": load.machine_info(), "shared_cores": not args.dedicated,
            "model": f"bench.serving.bench_model (untrained encoder, EncoderConfig defaults), "
                     f"{args.items} items with synthetic category and brand attributes",
            "history_length": args.history_length, "k": args.k, "rounds": args.rounds,
            "quality_users": args.quality_users}
  with tempfile.TemporaryDirectory(prefix="bench-rules-model-") as scratch:
    export_dir = export_rules_model(os.path.join(scratch, "model"), args.items, args.seed)
    report["latency"] = latency(args, export_dir)
    report["in_process"] = in_process_latency(args, export_dir)
    if args.quality_users:
      report["quality"] = quality(export_dir, args.items, args.quality_users, args.k, args.seed)
  os.makedirs(args.out_dir, exist_ok=True)
  with open(os.path.join(args.out_dir, f"{args.label}.json"), "w", encoding="utf-8") as f:
    json.dump(report, f, indent=2)
  text = markdown(report)
  with open(os.path.join(args.out_dir, f"{args.label}.md"), "w", encoding="utf-8") as f:
    f.write(text)
  print(text)
  errors = sum(r["errors"] for entry in report["latency"].values() for r in entry["results"])
  return 0 if errors == 0 else 1


if __name__ == "__main__":
  sys.exit(main())
