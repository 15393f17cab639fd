"""Soak benchmark: steady load on loopback while new versions land and bad requests arrive.

What it reports and its bar: docs/serving.md, "Serving benchmarks".
"""

import argparse
import collections
import datetime
import json
import math
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Tuple

import grpc

from bench.serving import load
from serving import client as client_lib
from serving import contract
from serving import model_watcher
from serving import testing

OK = "OK"
BEAUTY_ITEMS = 12101
KEEP_VERSIONS = 3   # older version folders are removed, as a retention policy would

EXAMPLES = """examples:
  python -m bench.serving.soak                          # make bench-soak: 10 min
  python -m bench.serving.soak --minutes 2 --push-every 20 --warmup-seconds 20
"""


def rss_bytes(pid: int) -> int:
  """Resident memory of process ``pid`` (Linux /proc; 0 if unavailable)."""
  try:
    with open(f"/proc/{pid}/status", encoding="utf-8") as f:
      for line in f:
        if line.startswith("VmRSS:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return 0


class Recorder:
  """Thread-safe log of requests (time, valid?, kind, code, latency, version) and RSS."""

  def __init__(self):
    self.started = time.monotonic()
    self._lock = threading.Lock()
    self.requests: List[Tuple[float, bool, str, str, float, int]] = []
    self.rss: List[Tuple[float, int]] = []
    self.pushes: List[Tuple[float, int]] = []
    self.first_details: Dict[str, str] = {}   # "<kind> <code>" -> first error message

  def now(self) -> float:
    return time.monotonic() - self.started

  def request(self, valid: bool, kind: str, code: str, latency_s: float,
              version: int = 0, details: str = "") -> None:
    with self._lock:
      self.requests.append((self.now(), valid, kind, code, latency_s, version))
      if code != OK:
        self.first_details.setdefault(f"{kind} {code}", details)

  def count(self) -> int:
    with self._lock:
      return len(self.requests)


def _send_valid(client: client_lib.RecommenderClient, batch,
                k: int) -> Tuple[str, int, str]:
  try:
    return OK, client.recommend_details(batch, k).version, ""
  except grpc.RpcError as e:
    return e.code().name, 0, e.details() or ""


def _send_bad(raw_predict, request: bytes, timeout: float) -> Tuple[str, str]:
  try:
    raw_predict(request, timeout=timeout)
    return OK, ""
  except grpc.RpcError as e:
    return e.code().name, e.details() or ""


def _worker(index: int, target: str, args: argparse.Namespace, histories, bad: Dict[str, bytes],
            stop: threading.Event, recorder: Recorder) -> None:
  rng = random.Random(args.seed * 1000 + index)
  kinds = sorted(bad)
  with client_lib.RecommenderClient(target, args.model_name, args.timeout) as client, \
      grpc.insecure_channel(target) as channel:
    raw_predict = testing.raw_predict(channel)
    sent = 0
    while not stop.is_set():
      if recorder.count() >= args.max_requests:
        stop.set()
        return
      start = time.perf_counter()
      if rng.random() < args.bad_fraction:
        kind = kinds[rng.randrange(len(kinds))]
        code, details = _send_bad(raw_predict, bad[kind], args.timeout)
        recorder.request(False, kind, code, time.perf_counter() - start, details=details)
      else:
        code, version, details = _send_valid(
            client, histories[(index + sent) % len(histories)], args.k)
        recorder.request(True, "valid", code, time.perf_counter() - start, version, details)
      sent += 1


def _pusher(export: str, base: str, first_version: int, args: argparse.Namespace,
            stop: threading.Event, recorder: Recorder) -> None:
  version = first_version
  while not stop.wait(args.push_every):
    version += 1
    testing.push_version(export, base, version)
    recorder.pushes.append((round(recorder.now(), 1), version))
    for old in model_watcher.list_versions(base)[:-KEEP_VERSIONS]:
      shutil.rmtree(os.path.join(base, str(old)), ignore_errors=True)


def _sampler(pid: int, interval: float, stop: threading.Event, recorder: Recorder) -> None:
  while True:
    recorder.rss.append((round(recorder.now(), 1), rss_bytes(pid)))
    if stop.wait(interval):
      return


def windows(recorder: Recorder, window_s: float, batch_size: int) -> List[Dict[str, object]]:
  """Per window: valid requests, failures, bad requests, p50/p99 ms, req/s, RSS, versions."""
  end = max([r[0] for r in recorder.requests] + [0.0])
  count = max(1, math.ceil(end / window_s - 0.01))   # no sliver of a last window
  rows = []
  for w in range(count):
    lo, hi = w * window_s, (w + 1) * window_s if w < count - 1 else math.inf
    part = [r for r in recorder.requests if lo <= r[0] < hi]
    ok = [r[4] for r in part if r[1] and r[3] == OK]
    rss = [b for t, b in recorder.rss if lo <= t < hi]
    summary = load.percentile_summary(ok, min(hi, end) - lo, 0, batch_size)
    rows.append({
        "t_end_s": round(min(hi, end), 1), "valid": sum(1 for r in part if r[1]),
        "valid_failed": sum(1 for r in part if r[1] and r[3] != OK),
        "bad": sum(1 for r in part if not r[1]),
        "p50_ms": summary["p50_ms"], "p99_ms": summary["p99_ms"],
        "throughput_rps": round(len(part) / (min(hi, end) - lo), 1) if end > lo else 0.0,
        "rss_mb": round(max(rss) / 2 ** 20, 1) if rss else None,
        "versions": sorted({r[5] for r in part if r[1] and r[3] == OK}),
    })
  return rows


def rss_growth(rss: List[Tuple[float, int]], warmup_s: float,
               window_s: float) -> Dict[str, Optional[float]]:
  """RSS after warm-up and at the end, the peak after warm-up, and the growth in percent.

  RSS peaks while a version loads beside the served one; what must not grow is the
  floor between loads, so each end is the lowest sample of a window: the first
  ``window_s`` after ``warmup_s`` and the last ``window_s``.
  """
  after = [(t, b) for t, b in rss if t >= warmup_s and b > 0]
  if not after:
    return {"warm_mb": None, "end_mb": None, "peak_mb": None, "growth_pct": None}
  warm = min(b for t, b in after if t < after[0][0] + window_s)
  end = min(b for t, b in after if t > after[-1][0] - window_s)
  return {"warm_mb": round(warm / 2 ** 20, 1), "end_mb": round(end / 2 ** 20, 1),
          "peak_mb": round(max(b for _, b in after) / 2 ** 20, 1),
          "growth_pct": round(100.0 * (end - warm) / warm, 2)}


def codes(recorder: Recorder) -> Dict[str, Dict[str, int]]:
  """Status code counts: "valid" and one entry per bad-request kind."""
  table: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
  for _, _, kind, code, _, _ in recorder.requests:
    table[kind][code] += 1
  return {kind: dict(counter) for kind, counter in sorted(table.items())}


def run(args: argparse.Namespace) -> Dict[str, object]:
  """Exports the model, runs the server and the load; returns the report."""
  recorder = None
  with tempfile.TemporaryDirectory(prefix="bench-soak-") as scratch:
    export, model_desc = load.export_model(args, scratch, seed=args.seed)
    base = os.path.join(scratch, "serving", args.model_name)
    testing.push_version(export, base, 1)
    process = testing.ServerProcess.local(
        base, args.model_name, poll_seconds=args.poll_seconds,
        extra_args=load.server_args(args.concurrency))
    process.start(timeout=900)
    try:
      with client_lib.RecommenderClient(process.target, args.model_name, args.timeout) as c:
        catalogue = c.catalogue()
      histories = load.sample_histories(catalogue, args.batch_size, args.history_length,
                                        args.seed)
      bad = testing.bad_predict_requests(args.model_name)
      stop, sampler_stop = threading.Event(), threading.Event()
      recorder = Recorder()
      threads = [threading.Thread(target=_sampler, args=(process.pid, args.rss_interval,
                                                         sampler_stop, recorder)),
                 threading.Thread(target=_pusher, args=(export, base, 1, args, stop, recorder))]
      threads += [threading.Thread(target=_worker, args=(i, process.target, args, histories,
                                                         bad, stop, recorder))
                  for i in range(args.concurrency)]
      for thread in threads:
        thread.start()
      stop.wait(args.minutes * 60)
      stop.set()
      for thread in threads[1:]:
        thread.join()
      sampler_stop.set()
      threads[0].join()
      elapsed = recorder.now()
    finally:
      process.stop()
  all_codes = codes(recorder)
  valid = all_codes.get("valid", {})
  bad_codes = {kind: c for kind, c in all_codes.items() if kind != "valid"}
  memory = rss_growth(recorder.rss, args.warmup_seconds, args.window_seconds)
  failed_valid = sum(n for code, n in valid.items() if code != OK)
  bad_unexpected = sum(n for c in bad_codes.values() for code, n in c.items()
                       if code != grpc.StatusCode.INVALID_ARGUMENT.name)
  growth_ok = memory["growth_pct"] is not None and memory["growth_pct"] < args.max_rss_growth
  return {
      "model": model_desc, "catalogue_size": len(catalogue),
      "server": f"serving.server (subprocess, 127.0.0.1, --max-concurrent-requests "
                f"{args.concurrency})",
      "settings": {k: getattr(args, k) for k in (
          "minutes", "max_requests", "concurrency", "push_every", "bad_fraction",
          "warmup_seconds", "window_seconds", "batch_size", "history_length", "k",
          "max_rss_growth")},
      "elapsed_s": round(elapsed, 1), "requests": len(recorder.requests),
      "versions_pushed": len(recorder.pushes), "pushes": recorder.pushes,
      "codes": all_codes, "first_error_details": recorder.first_details,
      "failed_valid": failed_valid, "bad_not_invalid_argument": bad_unexpected,
      "rss": memory, "rss_samples": recorder.rss,
      "windows": windows(recorder, args.window_seconds, args.batch_size),
      "passed": failed_valid == 0 and bad_unexpected == 0 and growth_ok,
      "machine": load.machine_info(),
  }


def markdown(report: Dict[str, object], label: str) -> str:
  s, m, rss = report["settings"], report["machine"], report["rss"]
  growth = "n/a" if rss["growth_pct"] is None else f"{rss['growth_pct']:+.1f}%"
  lines = [
      f"# Serving soak: {label}", "",
      f"Model: {report['model']} ({report['catalogue_size']} items). Server: "
      f"{report['server']}. Load: concurrency {s['concurrency']} for {report['elapsed_s']:g} s "
      f"({report['requests']} requests; bounds {s['minutes']:g} min, {s['max_requests']} "
      f"requests), batch {s['batch_size']} x history {s['history_length']}, k={s['k']}; a new "
      f"version every {s['push_every']:g} s ({report['versions_pushed']} pushed); "
      f"{s['bad_fraction']:.0%} malformed requests. Machine: {m['cpu_model']}, {m['cpus']} "
      f"CPUs, shared with the load generator (1-min load average {m['load_average_1min']} at "
      f"the end); commit {m['git_commit'][:12]}.", "",
      f"**{'PASS' if report['passed'] else 'FAIL'}**: failed valid requests "
      f"{report['failed_valid']} (bar 0); bad requests not INVALID_ARGUMENT "
      f"{report['bad_not_invalid_argument']} (bar 0); RSS {rss['warm_mb']} MB after "
      f"{s['warmup_seconds']:g} s warm-up, {rss['end_mb']} MB at the end (lowest of "
      f"{s['window_seconds']:g} s; peak {rss['peak_mb']} MB while a version loads): "
      f"{growth} (bar < {s['max_rss_growth']:g}%).", "",
      "| requests | status code | count | first message |", "|---|---|---:|---|"]
  for kind, counts in report["codes"].items():
    for code, n in sorted(counts.items()):
      details = report["first_error_details"].get(f"{kind} {code}", "").replace("|", "\\|")
      lines.append(f"| {kind} | {code} | {n} | {details} |")
  lines += ["", "| until s | valid | failed | bad | p50 ms | p99 ms | req/s | RSS MB | "
            "versions answering |", "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
  for w in report["windows"]:
    lines.append(f"| {w['t_end_s']:g} | {w['valid']} | {w['valid_failed']} | {w['bad']} | "
                 f"{w['p50_ms']:.2f} | {w['p99_ms']:.2f} | {w['throughput_rps']:.1f} | "
                 f"{w['rss_mb']} | {', '.join(map(str, w['versions']))} |")
  return "\n".join(lines) + "\n"


def write_report(report: Dict[str, object], out_dir: str, label: str) -> str:
  """Writes ``<out_dir>/<label>.json`` and ``.md``; returns the markdown."""
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, f"{label}.json"), "w", encoding="utf-8") as f:
    json.dump(dict(report, label=label), f, indent=2)
  text = markdown(report, label)
  with open(os.path.join(out_dir, f"{label}.md"), "w", encoding="utf-8") as f:
    f.write(text)
  return text


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__, epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  model = parser.add_mutually_exclusive_group()
  model.add_argument("--encoder-items", type=int, default=None,
                     help=f"bench.serving.bench_model over this many items (default "
                          f"{BEAUTY_ITEMS} unless --toy-items)")
  model.add_argument("--toy-items", type=int, help="the toy model with this many items")
  parser.add_argument("--toy-dim", type=int, default=64)
  parser.add_argument("--minutes", type=float, default=10.0, help="load duration")
  parser.add_argument("--max-requests", type=int, default=1_000_000,
                      help="stop earlier after this many requests")
  parser.add_argument("--concurrency", type=int, default=8)
  parser.add_argument("--push-every", type=float, default=60.0,
                      help="seconds between two new versions")
  parser.add_argument("--bad-fraction", type=float, default=0.05)
  parser.add_argument("--warmup-seconds", type=float, default=60.0,
                      help="RSS growth is measured from the first sample after this")
  parser.add_argument("--max-rss-growth", type=float, default=10.0, help="bar, in percent")
  parser.add_argument("--window-seconds", type=float, default=30.0)
  parser.add_argument("--rss-interval", type=float, default=2.0, help="seconds between samples")
  parser.add_argument("--poll-seconds", type=float, default=2.0, help="server's version scan")
  parser.add_argument("--batch-size", type=int, default=1)
  parser.add_argument("--history-length", type=int, default=20)
  parser.add_argument("-k", type=int, default=10)
  parser.add_argument("--timeout", type=float, default=30.0)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--model-name", default=contract.MODEL_NAME)
  parser.add_argument("--out-dir", default=os.path.join("outputs", "bench", "serving"))
  parser.add_argument("--label", default=None, help="file name stem (default: soak-<time>)")
  args = parser.parse_args(argv)
  if args.toy_items is None and args.encoder_items is None:
    args.encoder_items = BEAUTY_ITEMS
  args.scann = False
  if min(args.minutes, args.push_every, args.window_seconds, args.rss_interval) <= 0:
    parser.error("--minutes, --push-every, --window-seconds and --rss-interval must be > 0")
  if args.concurrency < 1 or args.max_requests < 1 or not 0 <= args.bad_fraction <= 1:
    parser.error("--concurrency and --max-requests must be >= 1, --bad-fraction in [0, 1]")
  return args


def main(argv: Optional[List[str]] = None) -> int:
  args = parse_args(argv)
  label = args.label or "soak-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
  report = run(args)
  print(write_report(report, args.out_dir, label))
  print(f"wrote {os.path.join(args.out_dir, label)}.json and .md")
  return 0 if report["passed"] else 1


if __name__ == "__main__":
  sys.exit(main())
