"""Item-text benchmark: id / text / id+text items on a seeded cold-item slice, next to baselines.

Protocol, rows and commands: bench/quality/results/README.md, "Item text".
"""

import argparse
import datetime
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from bench.quality import data as data_lib
from bench.quality import run
from components.ranking_evaluator import evaluation
from components.ranking_evaluator import metrics
from trainer import features
from trainer.config import ALL_POSITIONS
from trainer.config import CAUSAL
from trainer.config import load_json_object
from trainer.item_vectors import VECTORS_FILE

DATASETS = ("ml-100k", "ml-latest-small", "scientific")
# Row name -> (item_representation, extra bench.quality.run options). "refreshed": the
# held-out items' id embeddings (trained only as negatives) are zeroed before testing, as
# a catalogue refresh would serve them.
ROWS = {"id": ("id", []), "text": ("text", []), "id+text": ("id+text", []),
        "id+text-refreshed": ("id+text", ["--zero-cold-ids"])}
VARIANT = "finetune_only"
# Long MovieLens histories make one example per prefix costly on shared cores: these
# train one pass per sequence (recipe_argv).
ONE_PASS = ("ml-100k", "ml-latest-small")
COLD, WARM = run.COLD_SLICES
METRICS = ("HR@10", "NDCG@10")
# Published Scientific results (protocols differ: bench/quality/results/README.md, "Item text").
# (name, HR@10 or Recall@10, NDCG@10); None where not checked.
PUBLISHED = {
    "scientific": [
        ("UniSRec (KDD 2022), published: see its Table 2, not copied here", None, None),
        ("Recformer (KDD 2023), published, own Scientific preprocessing", 0.1448, 0.1027),
    ],
}


# ----------------------------------------------------------------------------
# The embedding step and the two baselines.


def embed_step(dataset: str, data_dir: Optional[str], out_dir: str) -> Dict[str, object]:
  """Runs ``python -m pipeline.embed_items`` on the dataset's item table with an empty
  cache and records its wall time; a finished step (``embed.json``) is reused."""
  record_path = os.path.join(out_dir, "embed.json")
  if os.path.exists(record_path):
    with open(record_path) as f:
      return json.load(f)
  folder = data_lib.dataset_folder(dataset, data_dir)
  cache = os.path.join(out_dir, "cache")
  subprocess.run(["rm", "-rf", cache], check=True)
  start = time.perf_counter()
  done = subprocess.run([sys.executable, "-m", "pipeline.embed_items", "--dataset",
                         data_lib.DATASETS[dataset][0], "--data-dir", folder, "--out", out_dir,
                         "--cache", cache], check=True, capture_output=True, text=True)
  record = {"seconds": round(time.perf_counter() - start, 1),
            "summary": done.stdout.strip().splitlines()[-1],
            "vectors": os.path.join(out_dir, VECTORS_FILE)}
  with open(record_path, "w") as f:
    json.dump(record, f, indent=1)
  return record


def _ranks(scores_fn, data: data_lib.BenchData, batch: int = 512) -> np.ndarray:
  """Test ranks of ``scores_fn(user indices) -> [users, V]``, history excluded."""
  split = features.TEST_SPLIT
  users = len(data.targets[split])
  ranks = []
  for start in range(0, users, batch):
    end = min(users, start + batch)
    ranks.append(metrics.ranks_of_targets(scores_fn(range(start, end)),
                                          data.targets[split][start:end],
                                          data.histories[split][start:end]))
  return np.concatenate(ranks)


def _scored(data: data_lib.BenchData, ranks: np.ndarray) -> Dict[str, float]:
  result = {k: v for k, v in metrics.summarize(ranks, run.KS).items() if k in METRICS}
  for name, values in run.cold_slices(data, ranks).items():
    result.update({f"{name} {k}": values.get(k, float("nan")) for k in METRICS})
  return result


def baselines(data: data_lib.BenchData, vectors_path: str) -> Dict[str, Dict[str, float]]:
  """Test metrics, overall and on both slices, of the evaluator's text-similarity
  scorer (cosine to the mean text vector of the history) and of popularity (training
  counts, history and target)."""
  item_ids = [i.encode("utf-8") for i in data.item_ids]
  text = evaluation.TextSimilarityScorer(evaluation.load_text_vectors(vectors_path), item_ids)
  test = data.histories[features.TEST_SPLIT]
  text_ranks = _ranks(lambda users: text.scores([[item_ids[j] for j in test[u]]
                                                 for u in users]), data)
  train = features.TRAIN_SPLIT
  counts = np.bincount(np.concatenate([np.concatenate([np.asarray(h, np.int64) for h in
                                                       data.histories[train]] or [[]]),
                                       data.targets[train]]).astype(np.int64),
                       minlength=data.num_items)
  popularity = metrics.popularity_scores(dict(enumerate(counts)), data.num_items)
  pop_ranks = _ranks(lambda users: np.broadcast_to(popularity, (len(users), data.num_items)),
                     data)
  return {"text_similarity": _scored(data, text_ranks), "popularity": _scored(data, pop_ranks)}


# ----------------------------------------------------------------------------
# The model rows: one quality-benchmark run (bench/quality/run.py) per row.


def recipe_argv(dataset: str, representation: str, out_dir: str, one_pass: bool,
                encoder_options: Optional[dict] = None,
                retrieval_options: Optional[dict] = None) -> List[str]:
  """``--model-config`` (the dataset's recipe with ``item_representation`` set, written
  as a file) and ``--retrieval-config`` of a row.

  ``one_pass`` trains SASRec's way instead: a causal query tower with every position of
  a sequence a target, one pass per sequence rather than one example per prefix.
  ``encoder_options`` / ``retrieval_options``: EncoderConfig / RetrievalConfig fields
  set on top (the text rows' ``--text-encoder-options`` / ``--text-retrieval-options``).
  """
  values = load_json_object(run.recipe_path(dataset))
  encoder = {**values.get("encoder", {}), "item_representation": representation,
             **(encoder_options or {})}
  if one_pass:
    encoder["attention"] = CAUSAL
  values["encoder"] = encoder
  options = hashlib.sha256(json.dumps(encoder_options or {}, sort_keys=True).encode())
  name = (f"model-{representation.replace('+', '_')}{'-one-pass' if one_pass else ''}"
          f"{'-' + options.hexdigest()[:8] if encoder_options else ''}.json")
  path = os.path.join(out_dir, name)
  os.makedirs(out_dir, exist_ok=True)
  with open(path, "w") as f:
    json.dump(values, f, indent=1)
  retrieval = {"targets": ALL_POSITIONS} if one_pass else load_json_object(
      run.DEFAULT_RETRIEVAL_CONFIG)
  retrieval = json.dumps({**retrieval, **(retrieval_options or {})})
  return ["--model-config", path, "--retrieval-config", retrieval]


def row_argv(args, dataset: str, row: str, seeds: int, vectors: str) -> List[str]:
  """``bench.quality.run`` arguments of one row."""
  representation, extra = ROWS[row]
  out = os.path.join(args.out_dir, dataset)
  epochs = _per_dataset(args.epochs_per_dataset).get(dataset, args.finetune_epochs)
  patience = _per_dataset(args.patience_per_dataset).get(dataset, args.patience)
  return ["--dataset", dataset, "--variants", VARIANT, "--seeds", str(seeds),
          "--finetune-epochs", str(epochs), "--patience", str(patience),
          *recipe_argv(dataset, representation, out, dataset in args.one_pass.split(","),
                       *text_options(args, representation)),
          "--cold-item-fraction", str(args.cold_item_fraction),
          "--cold-item-seed", str(args.cold_item_seed),
          "--out-dir", os.path.join(out, row.replace("+", "_")), *extra,
          "--work-dir", os.path.join(out, "work"),
          *(["--item-vectors", vectors] if representation != "id" else []),
          *(["--no-run"] if args.no_run else [])]


def text_options(args, representation: str) -> Tuple[dict, dict]:
  """(EncoderConfig, RetrievalConfig) fields the text rows set on top of the recipe."""
  if representation == "id":
    return {}, {}
  return (load_json_object(args.text_encoder_options),
          load_json_object(args.text_retrieval_options))


def row_summary(results_path: str) -> Optional[dict]:
  """The variant's summary in a quality-benchmark results.json (None if not run)."""
  if not os.path.exists(results_path):
    return None
  with open(results_path) as f:
    result = json.load(f)
  return result["summary"].get(VARIANT)


# ----------------------------------------------------------------------------
# The table.


def _stat(value) -> dict:
  return value if isinstance(value, dict) else {"mean": value, "std": 0.0}


def _cell(value, seeds: int) -> str:
  stat = _stat(value)
  if stat["mean"] is None or np.isnan(stat["mean"]):
    return "–"
  return run._cell(stat, seeds)  # pylint: disable=protected-access


def columns() -> List[str]:
  return [*METRICS, *(f"{COLD} {m}" for m in METRICS), *(f"{WARM} {m}" for m in METRICS)]


def bars(dataset_result: dict) -> Dict[str, object]:
  """The issue's first bar per text row: cold-slice NDCG@10 above the text-similarity
  baseline's, warm-slice NDCG@10 at least 98% of the id row's."""
  rows, text_sim = dataset_result["rows"], dataset_result["baselines"]["text_similarity"]
  cold, warm = f"{COLD} NDCG@10", f"{WARM} NDCG@10"
  out = {}
  for name in ("text", "id+text", "id+text-refreshed"):
    if name not in rows or "id" not in rows:
      continue
    model_cold, model_warm = rows[name][cold]["mean"], rows[name][warm]["mean"]
    id_warm = rows["id"][warm]["mean"]
    out[name] = {"beats_text_similarity_on_cold": bool(model_cold > text_sim[cold]),
                 "warm_within_2pct_of_id": bool(model_warm >= 0.98 * id_warm),
                 "cold_at_least_half_warm": bool(model_cold >= 0.5 * model_warm)}
  return out


def markdown(result: dict) -> str:
  """The readable tables of text.json."""
  meta = result["meta"]
  cols = columns()
  lines = [f"Commit `{meta['commit']}`; {meta['machine']['cpu']}, {meta['machine']['cores']} "
           f"cores, load average {meta['load_average']} (shared cores: {meta['shared']}); "
           f"{meta['date']}. Cold slice: a seeded {meta['cold_item_fraction']:.0%} of the items "
           f"(seed {meta['cold_item_seed']}) held out of training entirely; leave-one-out, full "
           "ranking, history excluded, ties against the model. Mean ± sample std over seeds.", ""]
  for dataset, entry in result["datasets"].items():
    lines += [f"### {dataset}", "",
              f"{entry['num_users']} users, {entry['num_items']} items, load average "
              f"{entry['load_average']['start']} at the start of its runs, "
              f"{entry['load_average']['end']} at the end (1, 5, 15 min; shared cores), "
              f"{entry['num_cold_test_users']} test users with a cold target. Embedding step: "
              f"{entry['embed']['seconds']:.0f} s wall (shared cores; {entry['embed']['summary']}).",
              "", "| row | seeds | " + " | ".join(cols) + " | s/epoch (median) | best epoch |",
              "|---|---|" + "---|" * (len(cols) + 2)]
    for name, row in entry["rows"].items():
      n = len(row["seeds"])
      lines.append(f"| {name} | {n} | " + " | ".join(_cell(row[c], n) for c in cols) +
                   f" | {row['median_epoch_seconds']:.1f} | {row['best_epoch']:.0f} |")
    for name, row in entry["baselines"].items():
      lines.append(f"| {name.replace('_', '-')} baseline | – | " +
                   " | ".join(_cell(row[c], 1) for c in cols) + " | | |")
    for name, hr, ndcg in PUBLISHED.get(dataset, []):
      cells = ["–" if v is None else f"{v:.4f}" for v in (hr, ndcg)]
      lines.append(f"| {name} | | " + " | ".join(cells) + " |" + " |" * (len(cols) - 2) + " | |")
    lines += [""]
    for name, bar in entry["bars"].items():
      lines.append(f"- **{name}**: cold NDCG@10 beats text similarity: "
                   f"{'met' if bar['beats_text_similarity_on_cold'] else 'NOT met'}; warm "
                   f"NDCG@10 within 2% of id: {'met' if bar['warm_within_2pct_of_id'] else 'NOT met'}; "
                   f"(goal) cold at least half of warm: "
                   f"{'yes' if bar['cold_at_least_half_warm'] else 'no'}.")
    lines.append("")
  return "\n".join(lines)


def load_average() -> str:
  return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ----------------------------------------------------------------------------
# The driver.


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--datasets", default=",".join(DATASETS))
  parser.add_argument("--rows", default=",".join(ROWS), help=f"of {list(ROWS)}")
  parser.add_argument("--seeds", type=int, default=3, help="seeds per row")
  parser.add_argument("--seeds-per-dataset", default="",
                      help="overrides, e.g. 'ml-latest-small=1,scientific=2'")
  parser.add_argument("--finetune-epochs", type=int, default=200)
  parser.add_argument("--patience", type=int, default=5)
  parser.add_argument("--epochs-per-dataset", default="", help="e.g. 'ml-100k=8'")
  parser.add_argument("--patience-per-dataset", default="", help="e.g. 'ml-100k=2'")
  parser.add_argument("--one-pass", default=",".join(ONE_PASS),
                      help="datasets trained with a causal query tower on every position "
                           "(one pass per sequence) instead of the recipe's prefixes")
  parser.add_argument("--text-encoder-options", default="{}",
                      help="JSON EncoderConfig fields of the text and id+text rows, e.g. "
                           "'{\"id_dropout\": 0.5}'")
  parser.add_argument("--text-retrieval-options", default="{}",
                      help="JSON RetrievalConfig fields of the text and id+text rows")
  parser.add_argument("--cold-item-fraction", type=float, default=0.1)
  parser.add_argument("--cold-item-seed", type=int, default=0)
  parser.add_argument("--data-dir", action="append", default=[],
                      help="DATASET=FOLDER (default: ../shared/data/...)")
  parser.add_argument("--out-dir", default=os.path.join("outputs", "bench", "text"))
  parser.add_argument("--results", default=os.path.join("bench", "quality", "results", "text"),
                      help="writes <results>.json and <results>.md")
  parser.add_argument("--shared", default="yes",
                      help="whether other jobs share the cores (recorded next to the load)")
  parser.add_argument("--no-run", action="store_true",
                      help="train nothing: tabulate the runs already recorded")
  return parser.parse_args(argv)


def _per_dataset(spec: str) -> Dict[str, str]:
  return dict(part.split("=", 1) for part in spec.split(",") if part)


def benchmark_dataset(args, dataset: str) -> dict:
  """Embeds, runs the rows, scores the baselines of one dataset."""
  data_dir = _per_dataset(",".join(args.data_dir)).get(dataset)
  out = os.path.join(args.out_dir, dataset)
  embed = embed_step(dataset, data_dir, os.path.join(out, "embed"))
  seeds = int(_per_dataset(args.seeds_per_dataset).get(dataset, args.seeds))
  rows, load = {}, {"start": load_average()}
  for name in args.rows.split(","):
    argv = row_argv(args, dataset, name, seeds, embed["vectors"])
    if data_dir:
      argv += ["--data-dir", data_dir]
    run.main(argv)
    summary = row_summary(os.path.join(out, name.replace("+", "_"), "results.json"))
    if summary is not None:
      rows[name] = summary
  data = data_lib.prepare(dataset, os.path.join(out, "work", "data"), data_dir,
                          cold_item_fraction=args.cold_item_fraction,
                          cold_item_seed=args.cold_item_seed)
  cold_users = int(np.isin(data.targets[features.TEST_SPLIT], list(data.cold_items)).sum())
  entry = {"num_users": data.num_users, "num_items": data.num_items,
           "num_cold_items": len(data.cold_items), "num_cold_test_users": cold_users,
           "embed": embed, "rows": rows, "baselines": baselines(data, embed["vectors"])}
  entry["load_average"] = _load_record(os.path.join(out, "load.json"), load, args.no_run)
  entry["bars"] = bars(entry)
  return entry


def _load_record(path: str, load: Dict[str, str], no_run: bool) -> Dict[str, str]:
  """The load average at the start and end of the dataset's runs (kept for --no-run)."""
  if no_run:
    if not os.path.exists(path):
      return {"start": "not recorded", "end": f"{load_average()} (when tabulated)"}
    with open(path) as f:
      return json.load(f)
  load["end"] = load_average()
  with open(path, "w") as f:
    json.dump(load, f)
  return load


def write(result: dict, results: str) -> str:
  return run.write_tables(result, results, markdown)


def meta(args) -> dict:
  return {"commit": run._commit(), "machine": run._machine(),  # pylint: disable=protected-access
          "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
          "load_average": load_average(), "shared": args.shared, "args": vars(args)}


def main(argv: Optional[Sequence[str]] = None) -> int:
  args = parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
  result = {"meta": {**meta(args), "cold_item_fraction": args.cold_item_fraction,
                     "cold_item_seed": args.cold_item_seed}, "datasets": {}}
  for dataset in args.datasets.split(","):
    result["datasets"][dataset] = benchmark_dataset(args, dataset)
    write(result, args.results)   # after each dataset: a partial table survives
  print(write(result, args.results))
  return 0


if __name__ == "__main__":
  sys.exit(main())
