"""Transfer of the text-item encoder to a new catalogue: warm start vs from scratch, by label share.

Protocol and commands: bench/quality/results/README.md, "Transfer".
"""

import argparse
import logging
import os
import sys
from typing import Dict, List, Optional, Sequence

from bench.quality import run
from bench.quality import text

FRACTIONS = (0.1, 0.25, 1.0)
STARTS = ("scratch", "transferred")
REPRESENTATION = "text"   # no id table: nothing of the source catalogue is carried over


def _data_dir(args, dataset: str) -> List[str]:
  folder = text._per_dataset(",".join(args.data_dir)).get(dataset)  # pylint: disable=protected-access
  return ["--data-dir", folder] if folder else []


def _common(args, dataset: str, out: str, vectors: str, seeds: int,
            epochs: Optional[int] = None) -> List[str]:
  return ["--dataset", dataset, *_data_dir(args, dataset), "--variants", text.VARIANT,
          "--seeds", str(seeds), "--finetune-epochs", str(epochs or args.finetune_epochs),
          "--patience", str(args.patience),
          *text.recipe_argv(dataset, REPRESENTATION, out, dataset in args.one_pass.split(",")),
          "--item-vectors", vectors, "--out-dir", out,
          "--work-dir", os.path.join(args.out_dir, dataset, "work"),
          *(["--no-run"] if args.no_run else [])]


def source_model(args) -> str:
  """Fine-tunes the text model on the whole source dataset (one seed); its warm-start folder."""
  out = os.path.join(args.out_dir, args.source, "source")
  folder = os.path.join(out, "model", "serving")   # trainer.warm_start keeps ../warm_start
  embed = text.embed_step(args.source, text._per_dataset(",".join(args.data_dir)).get(  # pylint: disable=protected-access
      args.source), os.path.join(args.embed_dir, args.source, "embed"))
  run.main(_common(args, args.source, out, embed["vectors"], 1, args.source_epochs) +
           ["--save-warm-start", folder])
  return folder


def target_rows(args, source_folder: str) -> Dict[str, dict]:
  """``<start> <fraction>`` -> the quality benchmark's summary of that row."""
  embed = text.embed_step(args.target, text._per_dataset(",".join(args.data_dir)).get(  # pylint: disable=protected-access
      args.target), os.path.join(args.embed_dir, args.target, "embed"))
  rows = {}
  for fraction in [float(f) for f in args.fractions.split(",")]:
    for start in STARTS:
      out = os.path.join(args.out_dir, args.target, f"{start}-users{fraction:g}")
      argv = _common(args, args.target, out, embed["vectors"], args.seeds)
      if fraction < 1:
        argv += ["--train-user-fraction", str(fraction)]
      if start == "transferred":
        argv += ["--warm-start-from", source_folder]
      run.main(argv)
      summary = text.row_summary(os.path.join(out, "results.json"))
      if summary is not None:
        rows[f"{start} {fraction:g}"] = {"start": start, "fraction": fraction, **summary}
  return rows


def markdown(result: dict) -> str:
  meta = result["meta"]
  lines = [f"Source **{meta['source']}** → target **{meta['target']}** (disjoint catalogues, "
           f"items as text only); commit `{meta['commit']}`; {meta['machine']['cpu']}, "
           f"{meta['machine']['cores']} cores, load average {meta['load_average']} (shared "
           f"cores: {meta['shared']}); {meta['date']}. Fractions are of the target's training "
           "users; every target user is validated and tested. Mean ± sample std over seeds.", "",
           "| start | training users | seeds | HR@10 | NDCG@10 | best epoch | "
           "epochs to 95% of best | s/epoch (median) |", "|---|---|---|---|---|---|---|---|"]
  for row in result["rows"].values():
    n = len(row["seeds"])
    lines.append(f"| {row['start']} | {row['fraction']:.0%} | {n} | "
                 f"{run._cell(row['HR@10'], n)} | {run._cell(row['NDCG@10'], n)} | "  # pylint: disable=protected-access
                 f"{row['best_epoch']:.0f} | {row['epochs_to_95']:.0f} | "
                 f"{row['median_epoch_seconds']:.1f} |")
  source = result.get("source")
  if source:
    lines += ["", f"Source model ({meta['source']}, all users, 1 seed): test HR@10 "
              f"{source['HR@10']['mean']:.4f}, NDCG@10 {source['NDCG@10']['mean']:.4f}."]
  return "\n".join(lines) + "\n"


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--source", default="ml-latest-small")
  parser.add_argument("--target", default="ml-100k")
  parser.add_argument("--fractions", default=",".join(f"{f:g}" for f in FRACTIONS))
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--one-pass", default=",".join(text.ONE_PASS),
                      help="datasets trained one pass per sequence (bench.quality.text)")
  parser.add_argument("--finetune-epochs", type=int, default=200)
  parser.add_argument("--patience", type=int, default=5)
  parser.add_argument("--source-epochs", type=int, default=None,
                      help="at most this many epochs on the source (default --finetune-epochs)")
  parser.add_argument("--data-dir", action="append", default=[],
                      help="DATASET=FOLDER (default: ../shared/data/...)")
  parser.add_argument("--out-dir", default=os.path.join("outputs", "bench", "transfer"))
  parser.add_argument("--embed-dir", default=os.path.join("outputs", "bench", "text"),
                      help="where bench.quality.text keeps the embedding step (shared)")
  parser.add_argument("--results",
                      default=os.path.join("bench", "quality", "results", "transfer"))
  parser.add_argument("--shared", default="yes")
  parser.add_argument("--no-run", action="store_true")
  return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
  args = parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
  folder = source_model(args)
  rows = target_rows(args, folder)
  result = {"meta": {**text.meta(args), "source": args.source, "target": args.target},
            "source": text.row_summary(os.path.join(args.out_dir, args.source, "source",
                                                    "results.json")),
            "rows": rows}
  print(run.write_tables(result, args.results, markdown))
  return 0


if __name__ == "__main__":
  sys.exit(main())
