"""Catalogue refresh benchmark: new items embedded, pushed and served by the local server.

Writes ``<out-dir>/refresh.json`` and ``refresh.md``; results: bench/serving/results/README.md.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

import numpy as np

from bench.serving.load import machine_info
from serving import testing

WORDS = ("steel", "glass", "digital", "precision", "lab", "scale", "pipette", "micro", "thermal",
         "sensor", "kit", "industrial", "safety", "gloves", "nitrile", "beaker", "flask",
         "adapter", "cable", "battery", "tool", "set", "compact", "portable", "heavy", "duty",
         "clear", "blue", "black", "pack", "meter", "tester", "valve", "pump", "filter", "tape")
CATEGORIES = ("Lab Supplies", "Test Equipment", "Safety", "Electrical", "Hand Tools",
              "Janitorial", "Fasteners", "Hydraulics")


def item_table(num_items: int, num_new: int, seed: int = 0) -> List[Dict[str, str]]:
  """Rows item_id, title, attributes: ``num_items`` served items then ``num_new`` new ones."""
  rng = np.random.default_rng(seed)
  rows = []
  for j in range(num_items + num_new):
    title = " ".join(rng.choice(WORDS, size=rng.integers(5, 12)))
    rows.append({"item_id": f"p{j}", "title": f"{title.capitalize()} #{j}",
                 "attributes": "|".join(rng.choice(CATEGORIES, size=2, replace=False))})
  return rows


def write_table(rows: List[Dict[str, str]], path: str) -> str:
  import pandas as pd  # pylint: disable=g-import-not-at-top
  pd.DataFrame(rows).to_csv(path, index=False)
  return path


def export_served_model(num_items: int, texts: List[str], encoder, serving_dir: str,
                        cache_dir: str) -> np.ndarray:
  """Writes version 1 of a text model (id+text, default encoder shape, untrained weights)
  whose items' vectors are in the embedding cache, as after a pipeline run with
  --embed-items. Latency and refresh time do not depend on the weights."""
  from trainer import export  # pylint: disable=g-import-not-at-top
  from trainer import item_vectors  # pylint: disable=g-import-not-at-top
  from trainer.config import EncoderConfig  # pylint: disable=g-import-not-at-top
  from trainer.config import RetrievalConfig  # pylint: disable=g-import-not-at-top
  from trainer.retrieval import RetrievalModel  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(1)
  vectors = rng.normal(size=[num_items, encoder.dim]).astype(np.float32)
  vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
  cache = item_vectors.EmbeddingCache(cache_dir, encoder.identity, encoder.dim)
  cache.add([item_vectors.text_key(encoder.identity, t) for t in texts], vectors)
  cache.save()
  model = RetrievalModel(num_items, EncoderConfig(item_representation="id+text"),
                         RetrievalConfig(), item_vectors=vectors)
  with tempfile.TemporaryDirectory() as scratch:
    vocab = os.path.join(scratch, "vocab.txt")
    with open(vocab, "w") as f:
      f.write("".join(f"p{j}\n" for j in range(num_items)))
    module = export.RecommenderModule(model, export.HashTableItemVocabulary(vocab, num_items),
                                      model.encoder_config.max_seq_len)
    export.save_module(module, os.path.join(serving_dir, "1"))
  return vectors


def latency_ms(client, num_items: int, requests: int, seed: int = 0) -> Dict[str, float]:
  """p50 / p99 of serving_default over gRPC, one 20-item history per request, k = 10."""
  rng = np.random.default_rng(seed)
  times = []
  for _ in range(requests):
    history = [[f"p{j}" for j in rng.integers(num_items, size=20)]]
    start = time.perf_counter()
    client.recommend(history, 10)
    times.append(time.perf_counter() - start)
  ms = np.asarray(times[requests // 10:]) * 1000   # the first tenth warms up
  return {"p50_ms": round(float(np.percentile(ms, 50)), 2),
          "p99_ms": round(float(np.percentile(ms, 99)), 2)}


PHASES = re.compile(r"\(((?:[a-z ]+ [\d.]+ s(?:, )?)+)\)")


def parse_phases(line: str) -> Dict[str, float]:
  """The command's phase timings from its summary line."""
  match = PHASES.search(line)
  if not match:
    return {}
  return {name: float(value) for name, value in
          (re.match(r"([a-z ]+) ([\d.]+) s", part).groups() for part in match.group(1).split(", "))}


def run(args: argparse.Namespace) -> dict:
  from serving.client import RecommenderClient  # pylint: disable=g-import-not-at-top
  from serving.server import ModelServer  # pylint: disable=g-import-not-at-top
  from trainer import item_text  # pylint: disable=g-import-not-at-top
  from trainer import text_encoder  # pylint: disable=g-import-not-at-top
  root = tempfile.mkdtemp(prefix="bench-refresh-")
  serving_dir = os.path.join(root, "serving", "seqrec")
  cache_dir = os.path.join(root, "cache")
  rows = item_table(args.num_items, args.new_items)
  texts = item_text.item_texts([r["title"] for r in rows], [r["attributes"] for r in rows],
                               [""] * len(rows))
  encoder = text_encoder.load_encoder(args.encoder)
  export_served_model(args.num_items, texts[:args.num_items], encoder, serving_dir, cache_dir)
  table = write_table(rows, os.path.join(root, "items.csv"))
  machine = machine_info()
  with ModelServer("seqrec", serving_dir, port=0, poll_seconds=args.poll_seconds) as server:
    client = RecommenderClient(f"127.0.0.1:{server.port}", "seqrec")
    before = latency_ms(client, args.num_items, args.requests)
    start = time.time()
    command = [sys.executable, "-m", "pipeline.refresh_catalogue", "--serving-dir", serving_dir,
               "--items", table, "--embed", "--encoder", args.encoder, "--cache", cache_dir]
    done = subprocess.run(command, capture_output=True, text=True, cwd=testing.REPO_ROOT,
                          check=False)
    pushed = time.time()
    if done.returncode:
      raise SystemExit(f"refresh failed: {done.stderr.strip().splitlines()[-1]}")
    if not server.watcher.wait_for_version(2, timeout=600):
      raise SystemExit("the server did not swap to version 2")
    served = time.time()
    after = latency_ms(client, args.num_items + args.new_items, args.requests)
    catalogue = len(client.catalogue())
  line = done.stdout.strip().splitlines()[0]
  return {
      "machine": machine,
      "load_average_1min_after": round(os.getloadavg()[0], 2),
      "setup": {"served_items": args.num_items, "new_items": args.new_items,
                "model": "id+text, d=64, 2 blocks, untrained weights",
                "encoder": "packaged all-MiniLM-L6-v2" if args.encoder == "default"
                           else args.encoder,
                "cache": "served items' texts cached (as after --embed-items), new ones not",
                "server_poll_seconds": args.poll_seconds},
      "command_s": round(pushed - start, 1),
      "swap_s": round(served - pushed, 1),
      "to_served_s": round(served - start, 1),
      "command_phases_s": parse_phases(line),
      "command_summary": line,
      "serving_default_before": before,
      "serving_default_after": after,
      "served_catalogue_after": catalogue,
  }


def markdown(result: dict) -> str:
  m, s = result["machine"], result["setup"]
  phases = ", ".join(f"{k} {v} s" for k, v in result["command_phases_s"].items())
  return "\n".join([
      "# Catalogue refresh: new items to a served version", "",
      f"{s['new_items']:,} new items added to a served text model of {s['served_items']:,} "
      f"items ({s['model']}; encoder: {s['encoder']}; {s['cache']}).", "",
      "| step | seconds |", "|---|---|",
      f"| `python -m pipeline.refresh_catalogue --embed` (process start to push) | "
      f"{result['command_s']} |",
      f"| push to the local server serving it (poll every {s['server_poll_seconds']} s, load, "
      f"warm-up) | {result['swap_s']} |",
      f"| **total, to a served version** | **{result['to_served_s']}** |", "",
      f"Inside the command: {phases}.", "",
      f"serving_default p50 / p99 over gRPC, 20-item histories, k = 10: before "
      f"{result['serving_default_before']['p50_ms']} / {result['serving_default_before']['p99_ms']}"
      f" ms, after {result['serving_default_after']['p50_ms']} / "
      f"{result['serving_default_after']['p99_ms']} ms.", "",
      f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), shared cores: 1-min load average "
      f"{m['load_average_1min']} at the start, {result['load_average_1min_after']} at the end; "
      f"TensorFlow {m['tensorflow']}, commit {m['git_commit'][:12]}.", ""])


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--num-items", type=int, default=12000, help="served catalogue size")
  parser.add_argument("--new-items", type=int, default=1000)
  parser.add_argument("--encoder", default="default")
  parser.add_argument("--requests", type=int, default=300)
  parser.add_argument("--poll-seconds", type=float, default=2.0)
  parser.add_argument("--out-dir", default="outputs/bench/serving")
  return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
  args = parse_args(argv)
  result = run(args)
  os.makedirs(args.out_dir, exist_ok=True)
  with open(os.path.join(args.out_dir, "refresh.json"), "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")
  text = markdown(result)
  with open(os.path.join(args.out_dir, "refresh.md"), "w") as f:
    f.write(text)
  print(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
