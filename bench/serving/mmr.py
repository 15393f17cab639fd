"""What MMR diversity does to a served model: NDCG@k, HR@k and intra-list diversity per weight.

On a pipeline run's pushed model and its leave-one-out test users; docs/serving.md, "Diversity (MMR)".
"""

import argparse
import datetime
import glob
import os
import sys
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from bench.serving import bulk
from bench.serving import load
from components.bulk_recommender import saved_model
from components.ranking_evaluator import evaluation
from components.ranking_evaluator import metrics
from serving import client as client_lib
from serving import contract
from trainer import features

MMR_WEIGHTS = (0.0, 0.1, 0.25, 0.5, 0.75)
EXAMPLES = """\
examples:
  python -m bench.serving.mmr --run-dir /work/run/ml100k --out-dir bench/serving/results
  python -m bench.serving.mmr --model-dir outputs/ml-100k/serving/seqrec \\
      --examples outputs/ml-100k/tfx/seqrec-ml-100k/SequenceBuilder/output_examples/7

The test split's users (history -> held-out target), full ranking through the served
`recommend` signature (history excluded, no other rule) at each --weights value.
Writes <out-dir>/<label>.json and .md."""


def embedding_diversity(embeddings: np.ndarray, items: Sequence[int]) -> float:
  """Mean pairwise cosine distance of ``items`` (rows of ``embeddings``); 0 below two."""
  if len(items) < 2:
    return 0.0
  unit = embeddings[list(items)]
  unit = unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
  n = len(unit)
  return float((n * n - (unit @ unit.T).sum()) / (n * (n - 1)))


def attribute_vectors(item_attributes: Sequence[Sequence[str]]) -> np.ndarray:
  """Multi-hot [num_items, num_values] of the items' attribute values (genres)."""
  values = sorted({v for row in item_attributes for v in row})
  column = {v: i for i, v in enumerate(values)}
  vectors = np.zeros((len(item_attributes), max(len(values), 1)), np.float32)
  for item, row in enumerate(item_attributes):
    vectors[item, [column[v] for v in row]] = 1.0
  return vectors


def mmr_effect(recommend: Callable[[List[List[str]], float], List[List[str]]],
               histories: Sequence[Sequence[str]], targets: Sequence[str],
               catalogue: Sequence[str], embeddings: np.ndarray,
               item_attributes: Optional[Sequence[Sequence[str]]] = None,
               weights: Sequence[float] = MMR_WEIGHTS, k: int = 10) -> List[Dict[str, float]]:
  """NDCG@k, HR@k and intra-list diversity (ILD) of ``recommend`` at each MMR weight.

  A target's rank is its position in the returned list (a miss past it).

  Args:
    recommend: (histories, diversity weight) -> top-k item ids per history.
    histories, targets: each history's held-out next item.
    catalogue: item ids in ``embeddings`` row order.
    embeddings: float [num_items, d], for the cosine ILD over item embeddings.
    item_attributes: per catalogue item its attribute values; gives the evaluator's
      Jaccard ILD (``attribute_ild``) and the cosine ILD over multi-hot attribute
      vectors (``attribute_cosine_ild``, items without attributes left out of the
      pairs); None leaves both out.
  """
  index = {item: i for i, item in enumerate(catalogue)}
  vectors = None if item_attributes is None else attribute_vectors(item_attributes)
  results = []
  for weight in weights:
    lists = [[index[i] for i in row if i in index] for row in recommend(list(histories), weight)]
    ranks = [float(row.index(index[t]) + 1) if index.get(t) in row else float("inf")
             for row, t in zip(lists, targets)]
    result = {"diversity_weight": weight, f"ndcg@{k}": metrics.ndcg_at_k(ranks, k),
              f"hr@{k}": metrics.hit_rate_at_k(ranks, k),
              f"embedding_ild@{k}": float(np.mean([embedding_diversity(embeddings, row)
                                                    for row in lists]))}
    if item_attributes is not None:
      top = np.array([row + [metrics.MISSING] * (k - len(row)) for row in lists])
      result[f"attribute_ild@{k}"] = metrics.intra_list_diversity(top, item_attributes, [k])[k]
      described = [[i for i in row if vectors[i].any()] for row in lists]
      result[f"attribute_cosine_ild@{k}"] = float(np.mean(
          [embedding_diversity(vectors, row) for row in described if len(row) > 1]))
    results.append(result)
  return results


def in_process_recommender(signature, k: int, batch_size: int = 256):
  """(histories, weight) -> top-k ids, through a loaded ``recommend`` ``signature``."""

  def recommend(histories, weight):
    ids = []
    for start in range(0, len(histories), batch_size):
      batch = client_lib.history_tensor(histories[start:start + batch_size])
      empty = tf.fill([len(batch), 1], contract.PAD)
      outputs = signature(
          history=tf.constant(batch), k=tf.constant(k),
          **{name: empty for name in contract.RULE_LIST_INPUTS},
          keep_history=tf.constant(False), diversity=tf.constant(weight, tf.float32))
      ids += [[i.decode() for i in row if i] for row in outputs[contract.OUTPUT_ITEM_IDS].numpy()]
    return ids

  return recommend


def run_paths(run_dir: str) -> Dict[str, str]:
  """The serving base and the newest SequenceBuilder output of a pipeline run's folder."""
  bases = sorted(glob.glob(os.path.join(run_dir, "serving", "*")))
  examples = sorted(glob.glob(os.path.join(run_dir, "tfx", "*", "SequenceBuilder",
                                           "output_examples", "*")),
                    key=lambda p: int(os.path.basename(p)) if os.path.basename(p).isdigit()
                    else -1)
  if not bases or not examples:
    raise ValueError(f"--run-dir {run_dir}: no serving/<model> or SequenceBuilder output")
  return {"model_dir": bases[0], "examples": examples[-1]}


def measure(model_dir: str, examples: str, weights: Sequence[float], k: int,
            max_users: int = 0) -> Dict[str, object]:
  """``mmr_effect`` on the test split's users, and the evaluator's own NDCG at weight 0."""
  rows = evaluation.load_split(examples, features.TEST_SPLIT)[:max_users or None]
  attributes = evaluation.read_item_attributes(evaluation.split_files(examples, features.ITEMS_SPLIT))
  loaded = tf.saved_model.load(model_dir)
  items = loaded.signatures[contract.ITEM_EMBEDDINGS_SIGNATURE]()
  catalogue = [i.decode() for i in items[contract.OUTPUT_ITEM_IDS].numpy()]
  histories = [[i.decode() for i in row.history] for row in rows]
  targets = [row.target.decode() for row in rows]
  results = mmr_effect(in_process_recommender(loaded.signatures[contract.RULES_SIGNATURE], k),
                       histories, targets, catalogue,
                       items[contract.OUTPUT_EMBEDDINGS].numpy(),
                       [[v.decode() for v in attributes.get(i.encode(), ())] for i in catalogue],
                       weights=weights, k=k)
  ranking = evaluation.rank_rows(evaluation.SavedModelScorer(model_dir), rows, k)
  return {"users": len(rows), "items": len(catalogue),
          "items_with_attributes": sum(1 for i in catalogue if attributes.get(i.encode())),
          "targets_in_history": sum(t in h for t, h in zip(targets, histories)),
          "evaluator": {f"ndcg@{k}": metrics.ndcg_at_k(ranking.ranks, k),
                        f"hr@{k}": metrics.hit_rate_at_k(ranking.ranks, k)},
          "results": results}


def markdown(report: Dict[str, object]) -> str:
  machine, k = report["machine"], report["k"]
  lines = [
      "# MMR diversity on a trained model (shared cores)", "",
      f"{report['started']}, commit `{machine['git_commit'][:12]}`; {machine['cpu_model']}, "
      f"{machine['cpus']} cores, 1-min load average {machine['load_average_1min']} "
      "(quality metrics do not depend on the load).", "",
      f"Model: {report['model_dir']} ({report['items']:,} items, "
      f"{report['items_with_attributes']:,} with genres). Users: the {report['users']:,} "
      f"leave-one-out test users of {report['examples']} (history -> held-out target); "
      f"`recommend` with the history excluded and no other rule, k={k}; a target's rank is "
      f"its position in the list. The evaluator's full ranking of the same model gives "
      f"NDCG@{k} {report['evaluator'][f'ndcg@{k}']:.4f}, HR@{k} "
      f"{report['evaluator'][f'hr@{k}']:.4f} (weight 0 must match).", "",
      "ILD: mean pairwise distance within a user's list, averaged over users. `embedding`: "
      "cosine distance of the item embeddings (what MMR itself penalises); `genre Jaccard`: "
      "the evaluator's `diversity@k`; `genre cosine`: 1 - cosine similarity of multi-hot "
      "genre vectors (intra-list similarity over item features, as in Microsoft "
      "Recommenders' diversity).", "",
      f"| MMR weight | NDCG@{k} | HR@{k} | ILD embedding | ILD genre Jaccard | "
      "ILD genre cosine |", "|---:|---:|---:|---:|---:|---:|"]
  for r in report["results"]:
    lines.append(f"| {r['diversity_weight']:g} | {r[f'ndcg@{k}']:.4f} | {r[f'hr@{k}']:.4f} | "
                 f"{r[f'embedding_ild@{k}']:.4f} | {r[f'attribute_ild@{k}']:.4f} | "
                 f"{r[f'attribute_cosine_ild@{k}']:.4f} |")
  return "\n".join(lines) + "\n"


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__, epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--run-dir", help="a pipeline run's --output-dir (model and examples)")
  parser.add_argument("--model-dir", help="serving base or pushed version (else from --run-dir)")
  parser.add_argument("--examples", help="SequenceBuilder output_examples (else from --run-dir)")
  parser.add_argument("--weights", type=float, nargs="+", default=list(MMR_WEIGHTS))
  parser.add_argument("-k", type=int, default=10)
  parser.add_argument("--max-users", type=int, default=0, help="0: every test user")
  parser.add_argument("--out-dir", default=os.path.join("outputs", "bench", "serving"))
  parser.add_argument("--label", default="mmr")
  args = parser.parse_args(argv)
  if args.run_dir:
    paths = run_paths(args.run_dir)
    args.model_dir = args.model_dir or paths["model_dir"]
    args.examples = args.examples or paths["examples"]
  if not args.model_dir or not args.examples:
    parser.error("give --run-dir, or --model-dir and --examples")
  return args


def main(argv: Optional[List[str]] = None) -> int:
  args = parse_args(argv)
  model_dir = saved_model.resolve_model_dir(args.model_dir)
  report = {"started": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": load.machine_info(), "model_dir": model_dir,
            "examples": args.examples, "k": args.k,
            **measure(model_dir, args.examples, args.weights, args.k, args.max_users)}
  bulk.write_report(report, args.out_dir, args.label, markdown)
  return 0


if __name__ == "__main__":
  sys.exit(main())
