"""Latency of a pushed model: serving_default and recommend with rules, in process and
through serving.server's gRPC and REST APIs, against issue 18's bars."""

import argparse
import functools
import os
import sys
import tempfile
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from bench.serving import load
from bench.serving import rest_vs_grpc
from serving import client as client_lib
from serving import contract
from serving import testing
from trainer import catalogue_refresh

EXCLUDED_IDS = 20          # "already shown / out of stock" ids per rules request
# Issue 18 ("Latency of the model users actually serve"): the bar and the goals.
P99_BAR_MS = 10.0          # serving_default through gRPC, concurrency 1
P99_GOAL_MS = 5.0
THROUGHPUT_GOAL_RPS = 500.0   # through gRPC, concurrency 8
RULES_P99_RATIO_BAR = 1.5     # recommend with rules vs serving_default, same path and level
EXAMPLES = """\
examples:
  python -m bench.serving.trained --model-path outputs/beauty/serving/seqrec
  python -m bench.serving.trained --model-path outputs/beauty/serving/seqrec/1796091141 \\
      --requests 500 --label trained-beauty-quick

Loads the model in process and times its signatures (no server), then serves it with
serving.server in a subprocess (gRPC and REST on loopback) and runs bench.serving.load's
load generator on serving_default, on recommend with rules (EXCLUDED_IDS excluded ids,
the last history item's first attribute required, one attribute value excluded) and on
serving_default through REST. Histories: random catalogue ids. Writes <out-dir>/<label>.json
and .md, with the machine's CPU flags and load average; "shared" when the 1-min load
average at the start was at least half the cores. More: bench/serving/results/README.md."""


class InProcessRecommender:
  """The load generator's client interface on a loaded SavedModel's signatures: no server,
  no proto conversion, no validation."""

  def __init__(self, loaded):
    self._default = loaded.signatures[contract.DEFAULT_SIGNATURE]
    self._rules = loaded.signatures[contract.RULES_SIGNATURE]

  def __enter__(self) -> "InProcessRecommender":
    return self

  def __exit__(self, *exc) -> None:
    pass

  def recommend_details(self, histories: Sequence[Sequence[str]], k: int
                        ) -> client_lib.Recommendations:
    outputs = self._default(history=tf.constant(client_lib.history_tensor(histories)),
                            k=tf.constant(k, tf.int32))
    return client_lib.Recommendations(
        client_lib.ranked_items({a: t.numpy() for a, t in outputs.items()}), None, 0)

  def recommend_with_rules(self, histories: Sequence[Sequence[str]], k: int,
                           rules: Sequence[client_lib.Rules], keep_history: bool = False,
                           diversity: float = 0.0) -> client_lib.Recommendations:
    lists = {name: tf.constant(client_lib.history_tensor([r.lists()[name] for r in rules],
                                                         name), tf.string)
             for name in contract.RULE_LIST_INPUTS}
    outputs = self._rules(history=tf.constant(client_lib.history_tensor(histories)),
                          k=tf.constant(k, tf.int32), keep_history=tf.constant(keep_history),
                          diversity=tf.constant(diversity, tf.float32), **lists)
    return client_lib.Recommendations(
        client_lib.ranked_items({a: t.numpy() for a, t in outputs.items()}), None, 0)


def version_dir(model_path: str) -> str:
  """The SavedModel folder of ``model_path``: itself, or its newest numeric version."""
  if os.path.exists(os.path.join(model_path, "saved_model.pb")):
    return model_path
  versions = sorted((int(v) for v in os.listdir(model_path) if v.isdigit()), reverse=True)
  if not versions:
    raise SystemExit(f"error: --model-path {model_path} holds neither saved_model.pb nor "
                     f"numeric version folders")
  return os.path.join(model_path, str(versions[0]))


def rules_call(loaded, export_dir: str, catalogue: Sequence[str], seed: int) -> load.Call:
  """The rules request of every history: ``EXCLUDED_IDS`` random ids excluded, the last
  history item's first attribute value required, the rarest value excluded."""
  rng = np.random.default_rng([seed, 11])
  excluded = [catalogue[i] for i in rng.choice(len(catalogue), EXCLUDED_IDS, replace=False)]
  values = catalogue_refresh._attribute_vocab(export_dir)  # pylint: disable=protected-access
  first_value: Dict[str, str] = {}
  excluded_values: List[str] = []
  attributes = getattr(loaded, "attributes", None)
  if values and attributes is not None:
    pairs = attributes.pairs.numpy()
    for item, value in pairs[::-1]:   # sorted pairs: the first value of each item wins
      first_value[catalogue[item]] = values[value]
    counts = np.bincount(pairs[:, 1], minlength=len(values))
    excluded_values = [values[int(np.argmin(counts))]]

  def rules_of(history: Sequence[str]) -> client_lib.Rules:
    required = [first_value[history[-1]]] if history and history[-1] in first_value else []
    return client_lib.Rules(exclude=excluded, require_attributes=required,
                            exclude_attributes=[v for v in excluded_values if v not in required])

  def call(client, batch, k):
    return client.recommend_with_rules(batch, k, [rules_of(h) for h in batch])

  return call


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__, epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--model-path", required=True,
                      help="a pushed model's base path or one version's SavedModel folder")
  parser.add_argument("--model-name", default=contract.MODEL_NAME)
  parser.add_argument("--description", help="the model, in the report (default: its path)")
  parser.add_argument("--requests", type=int, default=1000, help="requests per level")
  parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
  parser.add_argument("--max-seconds", type=float, default=15.0,
                      help="stop a level after this long even if requests remain")
  parser.add_argument("--history-length", type=int, default=50)
  parser.add_argument("-k", type=int, default=10)
  parser.add_argument("--warmup", type=int, default=20, help="unmeasured requests per thread")
  parser.add_argument("--timeout", type=float, default=30.0)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out-dir", default=os.path.join("bench", "serving", "results"))
  parser.add_argument("--label", default=None, help="file name stem (default: trained-<time>)")
  args = parser.parse_args(argv)
  if args.requests < 1 or args.history_length < 1 or args.k < 1:
    parser.error("--requests, --history-length and -k must be >= 1")
  if any(c < 1 for c in args.concurrency):
    parser.error("--concurrency levels must be >= 1")
  return args


def _levels(path: str, factory: Callable, calls: Dict[str, load.Call], histories, args
            ) -> List[Dict[str, object]]:
  """Every (signature, concurrency) level of ``calls`` through ``factory``'s clients."""
  results = []
  for signature, call in calls.items():
    for concurrency in args.concurrency:
      summary = load.run_level("", args.model_name, histories, args.k, concurrency,
                               args.requests, args.max_seconds, args.timeout, args.warmup,
                               client_factory=factory, call=call)
      summary.update(path=path, signature=signature)
      results.append(summary)
      print(f"{path} {signature} concurrency {concurrency}: p50 {summary['p50_ms']:.2f} ms, "
            f"p99 {summary['p99_ms']:.2f} ms, {summary['throughput_rps']:.1f} req/s, "
            f"{summary['errors']} errors", flush=True)
  return results


def run(args: argparse.Namespace) -> Dict[str, object]:
  """In process, then gRPC and REST through one serving.server; returns the report."""
  load_before = os.getloadavg()[0]
  export_dir = version_dir(args.model_path)
  loaded = tf.saved_model.load(export_dir)
  catalogue = [i.decode() for i in loaded.signatures[contract.ITEM_EMBEDDINGS_SIGNATURE]()[
      contract.OUTPUT_ITEM_IDS].numpy().tolist()]
  histories = load.sample_histories(catalogue, 1, args.history_length, args.seed)
  calls = {contract.DEFAULT_SIGNATURE: load.plain_call,
           "recommend-rules": rules_call(loaded, export_dir, catalogue, args.seed)}
  in_process = functools.partial(InProcessRecommender, loaded)
  results = _levels("in-process", in_process, calls, histories, args)
  rest_port = testing.free_port()
  with tempfile.TemporaryDirectory(prefix="bench-trained-") as scratch:
    process = testing.ServerProcess.local(
        load._base_path(export_dir, scratch), args.model_name,  # pylint: disable=protected-access
        poll_seconds=30.0,
        extra_args=load.server_args(max(args.concurrency)) + ["--rest-port", str(rest_port)])
    process.start(timeout=900)
    try:
      grpc = functools.partial(client_lib.RecommenderClient, process.target, args.model_name,
                               args.timeout)
      rest = functools.partial(rest_vs_grpc.RestRecommender, testing.LOOPBACK, rest_port,
                               args.model_name, args.timeout)
      with grpc() as grpc_client, rest() as rest_client, in_process() as local:
        identical = (rest_vs_grpc.same_answers(grpc_client, rest_client, histories[:32], args.k)
                     and rest_vs_grpc.same_answers(grpc_client, local, histories[:32], args.k))
      results += _levels("grpc", grpc, calls, histories, args)
      results += _levels("rest", rest, {contract.DEFAULT_SIGNATURE: load.plain_call},
                         histories, args)
    finally:
      process.stop()
  return {"model": args.description or os.path.abspath(export_dir),
          "catalogue_size": len(catalogue), "history_length": args.history_length,
          "k": args.k, "requests_per_level": args.requests, "max_seconds": args.max_seconds,
          "identical_answers": identical, "machine": load.machine_during(load_before),
          "results": results, "bars": bars(results)}


def _find(results, path: str, signature: str, concurrency: int) -> Optional[Dict[str, object]]:
  for r in results:
    if (r["path"], r["signature"], r["concurrency"]) == (path, signature, concurrency):
      return r
  return None


def bars(results: List[Dict[str, object]]) -> List[Dict[str, object]]:
  """Issue 18's bars and goals, each with the measured value and whether it is met."""
  checks = []
  default_1 = _find(results, "grpc", contract.DEFAULT_SIGNATURE, 1)
  if default_1:
    checks.append({"what": "gRPC serving_default p99 at concurrency 1 (bar)",
                   "limit": f"<= {P99_BAR_MS:g} ms", "value": default_1["p99_ms"],
                   "met": default_1["p99_ms"] <= P99_BAR_MS})
    checks.append({"what": "gRPC serving_default p99 at concurrency 1 (goal)",
                   "limit": f"<= {P99_GOAL_MS:g} ms", "value": default_1["p99_ms"],
                   "met": default_1["p99_ms"] <= P99_GOAL_MS})
  default_8 = _find(results, "grpc", contract.DEFAULT_SIGNATURE, 8)
  if default_8:
    checks.append({"what": "gRPC serving_default throughput at concurrency 8 (goal)",
                   "limit": f">= {THROUGHPUT_GOAL_RPS:g} req/s",
                   "value": default_8["throughput_rps"],
                   "met": default_8["throughput_rps"] >= THROUGHPUT_GOAL_RPS})
  for r in results:
    if r["signature"] != contract.DEFAULT_SIGNATURE:
      plain = _find(results, r["path"], contract.DEFAULT_SIGNATURE, r["concurrency"])
      if plain and plain["p99_ms"] > 0:
        ratio = r["p99_ms"] / plain["p99_ms"]
        checks.append({"what": f"{r['path']} {r['signature']} p99 / serving_default p99 at "
                               f"concurrency {r['concurrency']} (bar)",
                       "limit": f"<= {RULES_P99_RATIO_BAR:g}x", "value": round(ratio, 2),
                       "met": ratio <= RULES_P99_RATIO_BAR})
  return checks


def markdown(report: Dict[str, object], label: str) -> str:
  machine = report["machine"]
  lines = [f"# Trained-model latency: {label}\n",
           f"Model: {report['model']} ({report['catalogue_size']} items). Requests: one "
           f"history of {report['history_length']} random catalogue ids, k={report['k']}; "
           f"{report['requests_per_level']} per level (max {report['max_seconds']:g} s). "
           f"Same answers in process, through gRPC and through REST: "
           f"{'yes' if report['identical_answers'] else 'NO'}.\n",
           f"Machine: {machine['cpu_model']}, {machine['cpus']} CPUs "
           f"({', '.join(machine['cpu_flags']) or 'no AVX'}), load generator and server on the "
           f"same cores; 1-min load average {machine['load_average_before']:.1f} at the start "
           f"and {machine['load_average_after']:.1f} at the end: **{machine['cores']}**. "
           f"TensorFlow {machine['tensorflow']}, commit {machine['git_commit'][:12]}.\n",
           "| path | signature | concurrency | requests | errors | p50 ms | p90 ms | p99 ms "
           "| req/s |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
  for r in report["results"]:
    lines.append(f"| {r['path']} | {r['signature']} | {r['concurrency']} | {r['requests']} | "
                 f"{r['errors']} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | "
                 f"{r['throughput_rps']:.1f} |")
  lines += ["", "| check | limit | measured | met |", "|---|---|---:|---|"]
  for check in report["bars"]:
    lines.append(f"| {check['what']} | {check['limit']} | {check['value']} | "
                 f"{'yes' if check['met'] else 'no'} |")
  return "\n".join(lines) + "\n"


def write_report(report: Dict[str, object], out_dir: str, label: str) -> str:
  """Writes ``<out_dir>/<label>.json`` and ``.md``; returns the markdown."""
  text = markdown(report, label)
  load.write_files(report, out_dir, label, text)
  print(text)
  return text


def main(argv: Optional[List[str]] = None) -> int:
  args = parse_args(argv)
  label = load.timestamped(args.label, "trained")
  report = run(args)
  write_report(report, args.out_dir, label)
  return load.exit_code(report)


if __name__ == "__main__":
  sys.exit(main())
