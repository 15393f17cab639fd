"""Recall@k of the ScaNN variant against exact search, and in-process latency of both."""

import argparse
import json
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from serving import client as client_lib
from serving import contract
from serving import servable as servable_lib

EXAMPLES = """\
example:
  python -m bench.serving.ann_recall --exact EXPORT_DIR --scann EXPORT_DIR \\
      [--queries 1000] [--latency-queries 200] [--sweep 50 100 200 300]

Both exports must serve the same model and catalogue (bench.serving.suite writes them
from one bench.serving.bench_model model, whose interest histories are the queries).
recall@k: |ScaNN top-k & exact top-k| / k per history, both from serving_default;
latency: serving_default in this process, one history per call (no gRPC); --sweep:
recall and search time of other num_leaves_to_search values on a fresh ScaNN index
with the variant's other parameters (the saved variant keeps its own)."""


def _load(export_dir: str):
  ops = servable_lib.scann_ops_used(servable_lib.read_meta_graph(export_dir))
  if ops:
    servable_lib.load_scann_ops(export_dir, ops)
  return tf.saved_model.load(export_dir)


def _top_k(signature, histories: Sequence[Sequence[str]], k: int) -> List[List[str]]:
  out = signature(history=tf.constant(client_lib.history_tensor(histories), tf.string),
                  k=tf.constant(k, tf.int32))
  return [[item.decode() for item in row if item]
          for row in out[contract.OUTPUT_ITEM_IDS].numpy()]


def recall_at_k(approximate: Sequence[Sequence[str]], exact: Sequence[Sequence[str]],
                k: int) -> List[float]:
  """Per row: |approximate[:k] ∩ exact[:k]| / min(k, len(exact)) (1 when exact is empty)."""
  values = []
  for got, want in zip(approximate, exact):
    want = set(want[:k])
    values.append(len(set(got[:k]) & want) / len(want) if want else 1.0)
  return values


def latency_ms(signature, histories: Sequence[Sequence[str]], k: int,
               warmup: int = 5) -> Dict[str, float]:
  """p50 / p99 / mean ms of one-history calls of ``signature`` (after ``warmup`` calls)."""
  for history in histories[:warmup]:
    _top_k(signature, [history], k)
  times = []
  for history in histories:
    start = time.perf_counter()
    _top_k(signature, [history], k)
    times.append((time.perf_counter() - start) * 1000.0)
  times = np.asarray(times)
  return {"calls": len(times), "p50_ms": round(float(np.percentile(times, 50)), 3),
          "p99_ms": round(float(np.percentile(times, 99)), 3),
          "mean_ms": round(float(times.mean()), 3)}


def sweep(exact_model, histories: Sequence[Sequence[str]], exact_top: Sequence[Sequence[str]],
          k: int, config, leaves_to_search: Sequence[int]) -> List[Dict[str, float]]:
  """Recall@k for other ``num_leaves_to_search`` values (see the module docstring)."""
  from scann.scann_ops.py import scann_ops  # pylint: disable=g-import-not-at-top
  items = exact_model.signatures[contract.ITEM_EMBEDDINGS_SIGNATURE]()
  ids = [i.decode() for i in items[contract.OUTPUT_ITEM_IDS].numpy()]
  index = {item: i for i, item in enumerate(ids)}
  embeddings = items[contract.OUTPUT_EMBEDDINGS]
  queries = exact_model.signatures[contract.QUERY_EMBEDDING_SIGNATURE](
      history=tf.constant(client_lib.history_tensor(histories), tf.string))[
          contract.OUTPUT_EMBEDDING]
  known = [{index[item] for item in history if item in index} for history in histories]
  wanted = k + max(len(h) for h in known)
  start = time.perf_counter()
  builder = scann_ops.builder(embeddings, k, "dot_product").tree(
      num_leaves=config.num_leaves, num_leaves_to_search=config.num_leaves_to_search,
      training_iterations=config.training_iterations).score_ah(config.dimensions_per_block)
  if config.num_reordering_candidates is not None:
    builder = builder.reorder(config.num_reordering_candidates)
  searcher = builder.build()
  build_s = time.perf_counter() - start
  rows = []
  for leaves in leaves_to_search:
    if not 1 <= leaves <= config.num_leaves:
      continue
    start = time.perf_counter()
    result = searcher.search_batched(queries, final_num_neighbors=wanted,
                                     leaves_to_search=leaves)
    elapsed = time.perf_counter() - start
    found = [[ids[i] for i in row if i >= 0 and i not in seen][:k]
             for row, seen in zip(result.indices.numpy(), known)]
    rows.append({"num_leaves_to_search": leaves,
                 "recall_at_k": round(float(np.mean(recall_at_k(found, exact_top, k))), 4),
                 "search_ms_per_query_batched": round(elapsed * 1000.0 / len(histories), 4)})
  return [dict(r, index_build_s=round(build_s, 1)) for r in rows]


def measure(exact_dir: str, scann_dir: str, histories: Sequence[Sequence[str]], k: int = 10,
            latency_queries: int = 200, batch_size: int = 50, config=None,
            sweep_leaves: Sequence[int] = ()) -> Dict[str, object]:
  """Recall@k of ``scann_dir`` against ``exact_dir`` and their one-call latencies."""
  exact_model, scann_model = _load(exact_dir), _load(scann_dir)
  exact_fn = exact_model.signatures[contract.DEFAULT_SIGNATURE]
  scann_fn = scann_model.signatures[contract.DEFAULT_SIGNATURE]
  exact_top, scann_top = [], []
  start = time.perf_counter()
  for i in range(0, len(histories), batch_size):
    exact_top += _top_k(exact_fn, histories[i:i + batch_size], k)
  exact_s = time.perf_counter() - start
  start = time.perf_counter()
  for i in range(0, len(histories), batch_size):
    scann_top += _top_k(scann_fn, histories[i:i + batch_size], k)
  scann_s = time.perf_counter() - start
  recalls = recall_at_k(scann_top, exact_top, k)
  lat_histories = list(histories[:latency_queries])
  report = {
      "queries": len(histories), "k": k,
      f"recall_at_{k}": round(float(np.mean(recalls)), 4),
      f"recall_at_{k}_min": round(float(np.min(recalls)), 4),
      "queries_with_full_recall": round(float(np.mean(np.asarray(recalls) == 1.0)), 4),
      "batched_ms_per_query": {"batch_size": batch_size,
                               "exact": round(exact_s * 1000.0 / len(histories), 3),
                               "scann": round(scann_s * 1000.0 / len(histories), 3)},
      "latency_in_process_batch_1": {"exact": latency_ms(exact_fn, lat_histories, k),
                                     "scann": latency_ms(scann_fn, lat_histories, k)},
  }
  if sweep_leaves and config is not None:
    report["sweep"] = sweep(exact_model, histories, exact_top, k, config, sweep_leaves)
  return report


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__, epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--exact", required=True, help="exact export (bench.serving.bench_model)")
  parser.add_argument("--scann", required=True, help="its ScaNN variant")
  parser.add_argument("--queries", type=int, default=1000)
  parser.add_argument("--latency-queries", type=int, default=200)
  parser.add_argument("-k", type=int, default=10)
  parser.add_argument("--seed", type=int, default=0, help="bench.serving.bench_model seed")
  parser.add_argument("--out", help="write the report here (JSON)")
  return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
  from bench.serving import bench_model  # pylint: disable=g-import-not-at-top
  args = parse_args(argv)
  exact = _load(args.exact)
  num_items = int(exact.signatures[contract.ITEM_EMBEDDINGS_SIGNATURE]()[
      contract.OUTPUT_ITEM_IDS].shape[0])
  del exact
  histories = bench_model.interest_histories(num_items, args.queries, seed=args.seed)
  report = measure(args.exact, args.scann, histories, args.k, args.latency_queries)
  text = json.dumps(report, indent=2)
  print(text)
  if args.out:
    with open(args.out, "w", encoding="utf-8") as f:
      f.write(text + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
