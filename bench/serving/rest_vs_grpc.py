"""REST vs gRPC: the same recommendation requests to one serving.server through both APIs.

Takes bench.serving.load's flags except --server; usage: docs/serving.md, "Serving benchmarks".
"""

import http.client
import json
import math
import os
import sys
import tempfile
from typing import Dict, List, Optional, Sequence

import numpy as np

from bench.serving import load
from serving import client as client_lib
from serving import contract
from serving import testing


class RestRecommender:
  """``recommend_details`` through TF Serving's REST API on one keep-alive connection."""

  def __init__(self, host: str, port: int, model_name: str, timeout: float):
    self._path = f"/v1/models/{model_name}:predict"
    self._connection = http.client.HTTPConnection(host, port, timeout=timeout)

  def __enter__(self) -> "RestRecommender":
    return self

  def __exit__(self, *exc) -> None:
    self._connection.close()

  def recommend_details(self, histories: Sequence[Sequence[str]], k: int
                        ) -> client_lib.Recommendations:
    body = json.dumps({"inputs": {contract.INPUT_HISTORY: histories, contract.INPUT_K: k}})
    self._connection.request("POST", self._path, body,
                             {"Content-Type": "application/json"})
    response = self._connection.getresponse()
    answer = json.loads(response.read())
    if response.status != 200:
      raise RuntimeError(f"HTTP {response.status}: {answer.get('error')}")
    outputs = answer["outputs"]
    # Scores are float32 in the model: read back as such, as the gRPC client does.
    items = [[(item, float(np.float32(score))) for item, score in zip(ids, scores)
              if math.isfinite(score)]
             for ids, scores in zip(outputs[contract.OUTPUT_ITEM_IDS],
                                    outputs[contract.OUTPUT_SCORES])]
    return client_lib.Recommendations(items, outputs.get(contract.OUTPUT_NUM_UNKNOWN), 0)


def parse_args(argv: Optional[List[str]]):
  args = load.parse_args(argv)
  if args.server:
    raise SystemExit("error: --server is not supported: the comparison runs its own "
                     "serving.server with both APIs")
  return args


def same_answers(grpc_client, rest_client, histories: List[List[List[str]]], k: int) -> bool:
  """Both APIs recommend the same items with the same scores for every batch."""
  return all(grpc_client.recommend_details(batch, k).items ==
             rest_client.recommend_details(batch, k).items for batch in histories)


def run(args) -> Dict[str, object]:
  load_before = os.getloadavg()[0]
  rest_port = testing.free_port()
  with tempfile.TemporaryDirectory(prefix="bench-rest-") as scratch:
    if args.model_path:
      base, model_desc = load._base_path(args.model_path, scratch), args.model_path  # pylint: disable=protected-access
    else:
      export, model_desc = load.export_model(args, scratch)
      base = load._base_path(export, scratch)  # pylint: disable=protected-access
    extra = load.server_args(max(args.concurrency)) + ["--rest-port", str(rest_port)]
    process = testing.ServerProcess.local(base, args.model_name, poll_seconds=30.0,
                                          extra_args=extra)
    process.start(timeout=900)
    try:
      grpc_factory = lambda: client_lib.RecommenderClient(process.target, args.model_name,
                                                          args.timeout)
      rest_factory = lambda: RestRecommender(testing.LOOPBACK, rest_port, args.model_name,
                                             args.timeout)
      with grpc_factory() as grpc_client, rest_factory() as rest_client:
        catalogue = grpc_client.catalogue()
        histories = load.sample_histories(catalogue, args.batch_size, args.history_length,
                                          args.seed)
        identical = same_answers(grpc_client, rest_client, histories[:32], args.k)
      results = []
      for concurrency in args.concurrency:
        for api, factory in (("grpc", grpc_factory), ("rest", rest_factory)):
          summary = load.run_level(process.target, args.model_name, histories, args.k,
                                   concurrency, args.requests, args.max_seconds,
                                   args.timeout, args.warmup, client_factory=factory)
          summary["api"] = api
          results.append(summary)
          print(f"{api} concurrency {concurrency}: p50 {summary['p50_ms']:.2f} ms, "
                f"p99 {summary['p99_ms']:.2f} ms, {summary['throughput_rps']:.1f} req/s, "
                f"{summary['errors']} errors", flush=True)
    finally:
      process.stop()
  machine = load.machine_during(load_before)
  return {"model": args.description or model_desc, "catalogue_size": len(catalogue),
          "batch_size": args.batch_size, "history_length": args.history_length, "k": args.k,
          "requests_per_level": args.requests, "max_seconds": args.max_seconds,
          "identical_answers": identical, "machine": machine, "results": results}


def write_report(report: Dict[str, object], out_dir: str, label: str) -> str:
  """Writes ``<out_dir>/<label>.json`` and ``.md``; returns the markdown table."""
  lines = ["| api | concurrency | requests | errors | p50 ms | p99 ms | req/s |",
           "|---|---:|---:|---:|---:|---:|---:|"]
  for r in report["results"]:
    lines.append(f"| {r['api']} | {r['concurrency']} | {r['requests']} | {r['errors']} | "
                 f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['throughput_rps']:.1f} |")
  table = "\n".join(lines)
  machine = report["machine"]
  load.write_files(report, out_dir, label,
                   f"# REST vs gRPC: {label}\n\n"
                   f"Model: {report['model']} ({report['catalogue_size']} items), served by "
                   f"serving.server on loopback. Requests: batch {report['batch_size']} x history "
                   f"{report['history_length']}, k={report['k']}; {report['requests_per_level']} "
                   f"per level and API. Same answers through both APIs: "
                   f"{'yes' if report['identical_answers'] else 'NO'}. Machine: "
                   f"{machine['cpu_model']}, {machine['cpus']} CPUs shared with the load "
                   f"generator, "
                   f"1-min load average {machine['load_average_before']:.1f} before and "
                   f"{machine['load_average_after']:.1f} after; commit "
                   f"{machine['git_commit'][:12]}.\n\n{table}\n")
  print(table)
  return table


def main(argv: Optional[List[str]] = None) -> int:
  args = parse_args(argv)
  label = load.timestamped(args.label, "rest-vs-grpc")
  report = run(args)
  write_report(report, args.out_dir, label)
  return load.exit_code(report)


if __name__ == "__main__":
  sys.exit(main())
