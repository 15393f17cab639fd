"""Load generator: latency percentiles and throughput of Predict over gRPC on loopback."""

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from serving import client as client_lib
from serving import contract
from serving import testing
from serving.testing import toy_model

DEFAULT_CONCURRENCY = (1, 8, 32)
EXAMPLES = """\
examples:
  python -m bench.serving.load --model-path outputs/synthetic/serving/seqrec --requests 2000
  python -m bench.serving.load --encoder-items 12101 --requests 2000
  python -m bench.serving.load --encoder-items 1000000 --scann --requests 2000
  python -m bench.serving.load --toy-items 12000 --toy-dim 64 --requests 2000
  python -m bench.serving.load --server 127.0.0.1:8500 --requests 2000   # running server

Unless --server is given, python -m serving.server runs on 127.0.0.1 in a subprocess.
Per concurrency level: a short warm-up, then --requests requests from that many threads,
each with its own client and channel, until --max-seconds. Latency is measured around
RecommenderClient.recommend_details (encoding, call, decoding). The load generator
shares the machine's cores with the server. Writes <out-dir>/<label>.json and .md.
More: docs/serving.md, "Serving benchmarks"."""


def _cpuinfo(field: str) -> Optional[str]:
  """The first ``field`` of /proc/cpuinfo (None elsewhere)."""
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.split(":", 1)[0].strip() == field:
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return None


def cpu_model() -> str:
  """The CPU's ``model name`` from /proc/cpuinfo ("unknown" elsewhere)."""
  return _cpuinfo("model name") or "unknown"


VECTOR_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")


def cpu_vector_flags() -> List[str]:
  """The vector-instruction flags TensorFlow's CPU kernels use that this CPU has."""
  flags = set((_cpuinfo("flags") or "").split())
  return [flag for flag in VECTOR_FLAGS if flag in flags]


def sharing(load_before: float, cpus: Optional[int]) -> str:
  """"alone" when the 1-min load average at the start was below half the cores,
  "shared" otherwise (other work skews the numbers)."""
  return "alone" if load_before < 0.5 * (cpus or 1) else "shared"


def git_commit(repo_root: str = testing.REPO_ROOT) -> str:
  """The checked-out commit, read from ``.git`` without running git ("unknown" if none).

  Uncommitted changes in the working tree are not detected.
  """
  git_dir = os.path.join(repo_root, ".git")
  try:
    if os.path.isfile(git_dir):   # a worktree: ".git" names its own git directory
      with open(git_dir, encoding="utf-8") as f:
        git_dir = os.path.join(repo_root, f.read().strip().partition("gitdir: ")[2])
    common_dir = git_dir          # where the refs are (a worktree shares its repo's)
    if os.path.exists(os.path.join(git_dir, "commondir")):
      with open(os.path.join(git_dir, "commondir"), encoding="utf-8") as f:
        common_dir = os.path.join(git_dir, f.read().strip())
    with open(os.path.join(git_dir, "HEAD"), encoding="utf-8") as f:
      head = f.read().strip()
    if not head.startswith("ref: "):
      return head
    ref = head[len("ref: "):]
    ref_file = os.path.join(common_dir, ref)
    if os.path.exists(ref_file):
      with open(ref_file, encoding="utf-8") as f:
        return f.read().strip()
    with open(os.path.join(common_dir, "packed-refs"), encoding="utf-8") as f:
      for line in f:
        parts = line.split()
        if len(parts) == 2 and parts[1] == ref:
          return parts[0]
  except OSError:
    pass
  return "unknown"


def machine_info() -> Dict[str, object]:
  """CPU, cores, software versions, commit and 1-min load average (other work skews numbers)."""
  return {"cpu_model": cpu_model(), "cpus": os.cpu_count(),
          "platform": platform.platform(), "python": platform.python_version(),
          "tensorflow": tf.__version__, "git_commit": git_commit(),
          "load_average_1min": round(os.getloadavg()[0], 2)}


def machine_during(load_before: float) -> Dict[str, object]:
  """``machine_info`` at the end of a run that started at 1-min load ``load_before``."""
  machine = machine_info()
  machine["load_average_before"] = round(load_before, 2)
  machine["load_average_after"] = machine.pop("load_average_1min")
  machine["cpu_flags"] = cpu_vector_flags()
  machine["cores"] = sharing(load_before, machine["cpus"])
  return machine


def percentile_summary(latencies_s: List[float], elapsed_s: float, errors: int,
                       batch_size: int) -> Dict[str, float]:
  """Latency percentiles (ms) and throughput of one run."""
  ms = np.asarray(latencies_s, dtype=np.float64) * 1000.0
  done = len(ms)
  summary = {"requests": done, "errors": errors, "elapsed_s": round(elapsed_s, 3),
             "throughput_rps": round(done / elapsed_s, 2) if elapsed_s > 0 else 0.0,
             "histories_per_s": round(done * batch_size / elapsed_s, 2) if elapsed_s > 0 else 0.0}
  for name, q in (("p50_ms", 50), ("p90_ms", 90), ("p99_ms", 99)):
    summary[name] = round(float(np.percentile(ms, q)), 3) if done else float("nan")
  summary["mean_ms"] = round(float(ms.mean()), 3) if done else float("nan")
  summary["max_ms"] = round(float(ms.max()), 3) if done else float("nan")
  return summary


Call = Callable[[client_lib.RecommenderClient, List[List[str]], int], object]


def plain_call(client: client_lib.RecommenderClient, batch: List[List[str]], k: int):
  """One ``serving_default`` request (what the load generator measures by default)."""
  return client.recommend_details(batch, k)


def run_level(target: str, model_name: str, histories: List[List[List[str]]], k: int,
              concurrency: int, requests: int, max_seconds: float, timeout: float,
              warmup: int, client_factory: Optional[Callable[[], Any]] = None,
              call: Call = plain_call) -> Dict[str, float]:
  """Sends ``requests`` requests (each one ``call``) from ``concurrency`` threads;
  returns the summary.

  client_factory: makes each thread's client, a context manager with
  ``recommend_details(histories, k)`` (default: a gRPC ``RecommenderClient``).
  """
  client_factory = client_factory or (
      lambda: client_lib.RecommenderClient(target, model_name, timeout))
  lock = threading.Lock()
  latencies: List[float] = []
  errors: List[str] = []
  next_index = [0]
  deadline = [0.0]

  def take() -> Optional[int]:
    with lock:
      if next_index[0] >= requests or time.perf_counter() > deadline[0]:
        return None
      next_index[0] += 1
      return next_index[0] - 1

  def worker():
    with client_factory() as client:
      for i in range(warmup):
        call(client, histories[i % len(histories)], k)
      ready.wait()
      go.wait()
      while True:
        index = take()
        if index is None:
          return
        batch = histories[index % len(histories)]
        start = time.perf_counter()
        try:
          call(client, batch, k)
        except Exception as e:  # pylint: disable=broad-except
          with lock:
            errors.append(f"{type(e).__name__}: {e}")
          continue
        elapsed = time.perf_counter() - start
        with lock:
          latencies.append(elapsed)

  ready = threading.Barrier(concurrency + 1)   # every thread has warmed up
  go = threading.Event()                       # the clock runs
  with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
    futures = [pool.submit(worker) for _ in range(concurrency)]
    try:
      ready.wait(timeout=max(60.0, timeout * (warmup + 1)))
    except threading.BrokenBarrierError:
      failed = [f.exception() for f in futures if f.done() and f.exception()]
      if failed:   # a worker's warm-up failed: say why, not that the barrier broke
        raise RuntimeError(f"warm-up request failed: {failed[0]!r}") from failed[0]
      raise
    started = time.perf_counter()
    deadline[0] = started + max_seconds
    go.set()
    for future in futures:
      future.result()
    elapsed = time.perf_counter() - started
  summary = percentile_summary(latencies, elapsed, len(errors), len(histories[0]))
  summary["concurrency"] = concurrency
  if errors:
    summary["first_error"] = errors[0]
  return summary


def markdown_table(results: List[Dict[str, float]]) -> str:
  lines = ["| concurrency | requests | errors | p50 ms | p90 ms | p99 ms | mean ms | req/s | histories/s |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
  for r in results:
    lines.append(f"| {r['concurrency']} | {r['requests']} | {r['errors']} | {r['p50_ms']:.2f} | "
                 f"{r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {r['mean_ms']:.2f} | "
                 f"{r['throughput_rps']:.1f} | {r['histories_per_s']:.1f} |")
  return "\n".join(lines)


def _base_path(model_path: str, scratch: str) -> str:
  """A model base path for ``model_path`` (a base path, or one version's folder)."""
  if os.path.exists(os.path.join(model_path, "saved_model.pb")):
    base = os.path.join(scratch, "model")
    os.makedirs(base)
    os.symlink(os.path.abspath(model_path), os.path.join(base, "1"))
    return base
  if not os.path.isdir(model_path):
    raise SystemExit(f"error: --model-path {model_path} does not exist")
  if not any(name.isdigit() for name in os.listdir(model_path)):
    raise SystemExit(f"error: --model-path {model_path} holds neither saved_model.pb nor "
                     f"numeric version folders")
  return model_path


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__, epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument("--model-path", help="model base path or one version's SavedModel folder")
  source.add_argument("--encoder-items", type=int,
                      help="benchmark bench.serving.bench_model (untrained Transformer encoder, "
                           "EncoderConfig defaults) over this many synthetic items")
  source.add_argument("--toy-items", type=int, help="benchmark a toy model with this many items")
  source.add_argument("--server", help="HOST:PORT of a running TF Serving gRPC endpoint")
  parser.add_argument("--scann", action="store_true",
                      help="with --encoder-items: serve the ScaNN variant (needs scann)")
  parser.add_argument("--toy-dim", type=int, default=64)
  parser.add_argument("--description", help="the model, in the report (default: from the source)")
  parser.add_argument("--model-name", default=contract.MODEL_NAME)
  parser.add_argument("--requests", type=int, default=1000, help="requests per concurrency level")
  parser.add_argument("--concurrency", type=int, nargs="+", default=list(DEFAULT_CONCURRENCY))
  parser.add_argument("--max-seconds", type=float, default=60.0,
                      help="stop a level after this long even if requests remain")
  parser.add_argument("--batch-size", type=int, default=1, help="histories per request")
  parser.add_argument("--history-length", type=int, default=20)
  parser.add_argument("-k", type=int, default=10)
  parser.add_argument("--warmup", type=int, default=5, help="unmeasured requests per thread")
  parser.add_argument("--timeout", type=float, default=30.0)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out-dir", default=os.path.join("bench", "serving", "results"))
  parser.add_argument("--label", default=None, help="file name stem (default: load-<time>)")
  args = parser.parse_args(argv)
  if args.requests < 1 or args.batch_size < 1 or args.history_length < 0 or args.k < 1:
    parser.error("--requests, --batch-size and -k must be >= 1, --history-length >= 0")
  if any(c < 1 for c in args.concurrency):
    parser.error("--concurrency levels must be >= 1")
  if args.scann and not args.encoder_items:
    parser.error("--scann goes with --encoder-items")
  return args


def _export_encoder_model(args: argparse.Namespace, scratch: str) -> str:
  """Exports the benchmark encoder model (exact, or its ScaNN variant) into ``scratch``."""
  from bench.serving import bench_model  # pylint: disable=g-import-not-at-top
  export_dir = os.path.join(scratch, "encoder")
  if not args.scann:
    return bench_model.export_bench_model(export_dir, args.encoder_items, seed=args.seed)
  from trainer import scann_export  # pylint: disable=g-import-not-at-top
  model = bench_model.build_model(args.encoder_items, seed=args.seed)
  return scann_export.export_scann_model(
      model, bench_model.vocabulary(args.encoder_items, os.path.join(scratch, "vocab")),
      model.encoder_config.max_seq_len, export_dir)


def export_model(args: argparse.Namespace, scratch: str, seed: int = 0) -> Tuple[str, str]:
  """Exports the model of ``--toy-items`` or ``--encoder-items [--scann]`` into
  ``scratch``: (SavedModel folder, description)."""
  if args.toy_items:
    export = toy_model.export_toy_model(os.path.join(scratch, f"toy-{seed}"), args.toy_items,
                                        args.toy_dim, seed=seed)
    return export, f"toy model, {args.toy_items} items, dim {args.toy_dim}"
  return _export_encoder_model(args, scratch), (
      f"bench.serving.bench_model: untrained Transformer encoder (EncoderConfig "
      f"defaults), {args.encoder_items} items, "
      f"{'ScaNN variant' if args.scann else 'exact top-k'}")


def server_args(max_concurrency: int) -> List[str]:
  """``serving.server`` flags for a load of ``max_concurrency`` callers: none refused."""
  return ["--max-concurrent-requests", str(max_concurrency)]


def sample_histories(catalogue: List[str], batch_size: int, history_length: int,
                     seed: int, count: int = 256) -> List[List[List[str]]]:
  """``count`` request batches of uniformly drawn catalogue items."""
  rng = np.random.default_rng(seed)
  return [[[catalogue[i] for i in rng.integers(0, len(catalogue), history_length)]
           for _ in range(batch_size)] for _ in range(count)]


def run(args: argparse.Namespace) -> Dict[str, object]:
  """Starts a server if needed, runs every concurrency level; returns the report."""
  load_before = os.getloadavg()[0]
  with tempfile.TemporaryDirectory(prefix="bench-serving-") as scratch:
    process = None
    model_desc = args.server
    if args.server:
      target = args.server
    else:
      if args.toy_items or args.encoder_items:
        export, model_desc = export_model(args, scratch)
        base = _base_path(export, scratch)
      else:
        base = _base_path(args.model_path, scratch)
        model_desc = os.path.abspath(args.model_path)
      process = testing.ServerProcess.local(base, args.model_name, poll_seconds=30.0,
                                            extra_args=server_args(max(args.concurrency)))
      process.start(timeout=900)
      target = process.target
    try:
      with client_lib.RecommenderClient(target, args.model_name, args.timeout) as client:
        catalogue = client.catalogue()
      histories = sample_histories(catalogue, args.batch_size, args.history_length, args.seed)
      results = []
      for concurrency in args.concurrency:
        summary = run_level(target, args.model_name, histories, args.k, concurrency,
                            args.requests, args.max_seconds, args.timeout, args.warmup)
        results.append(summary)
        print(f"concurrency {concurrency}: p50 {summary['p50_ms']:.2f} ms, "
              f"p99 {summary['p99_ms']:.2f} ms, {summary['throughput_rps']:.1f} req/s, "
              f"{summary['errors']} errors", flush=True)
    finally:
      if process is not None:
        process.stop()
  machine = machine_during(load_before)
  return {
      "model": args.description or model_desc,
      "server": "serving.server (subprocess)" if not args.server else args.server,
      "catalogue_size": len(catalogue),
      "batch_size": args.batch_size, "history_length": args.history_length, "k": args.k,
      "requests_per_level": args.requests, "max_seconds": args.max_seconds,
      "machine": machine,
      "results": results,
  }


def timestamped(label: Optional[str], stem: str) -> str:
  """``label``, or ``<stem>-<local time>`` when none is given."""
  return label or f"{stem}-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S")


def write_files(report: Dict[str, object], out_dir: str, label: str, markdown: str) -> None:
  """Writes ``<out_dir>/<label>.json`` (``report`` with its label) and ``<label>.md``."""
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, f"{label}.json"), "w", encoding="utf-8") as f:
    json.dump(dict(report, label=label), f, indent=2)
  with open(os.path.join(out_dir, f"{label}.md"), "w", encoding="utf-8") as f:
    f.write(markdown)


def exit_code(report: Dict[str, object]) -> int:
  """0 when no request failed (and the paths answered alike, where compared), else 1."""
  ok = (report.get("identical_answers", True)
        and all(r["errors"] == 0 for r in report["results"]))
  return 0 if ok else 1


def write_report(report: Dict[str, object], out_dir: str, label: str) -> str:
  """Writes ``<out_dir>/<label>.json`` and ``.md``; returns the markdown table."""
  report = dict(report, label=label)
  os.makedirs(out_dir, exist_ok=True)
  json_path = os.path.join(out_dir, f"{label}.json")
  md_path = os.path.join(out_dir, f"{label}.md")
  with open(json_path, "w", encoding="utf-8") as f:
    json.dump(report, f, indent=2)
  table = markdown_table(report["results"])
  machine = report["machine"]
  with open(md_path, "w", encoding="utf-8") as f:
    f.write(f"# Serving load: {label}\n\n"
            f"Model: {report['model']} ({report['catalogue_size']} items). Server: "
            f"{report['server']} on loopback. Requests: batch {report['batch_size']} x "
            f"history {report['history_length']}, k={report['k']}; "
            f"{report['requests_per_level']} per level (max {report['max_seconds']:g} s). "
            f"Machine: {machine['cpu_model']}, {machine['cpus']} CPUs, load generator on "
            f"the same machine, 1-min load average {machine['load_average_before']:.1f} "
            f"before and {machine['load_average_after']:.1f} after; commit "
            f"{machine['git_commit'][:12]}.\n\n"
            f"{table}\n")
  print(table)
  print(f"wrote {json_path} and {md_path}")
  return table


def main(argv: Optional[List[str]] = None) -> int:
  args = parse_args(argv)
  label = timestamped(args.label, "load")
  report = run(args)
  write_report(report, args.out_dir, label)
  return exit_code(report)


if __name__ == "__main__":
  sys.exit(main())
