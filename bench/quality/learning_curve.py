"""Data-scarce learning curve: fine-tune only vs pre-trained, by share of the training users.

Pre-training sees every user's training sequences (once per seed, reused at every fraction);
fine-tuning a seeded fraction of them; every user is validated and tested (bench.quality.run).
"""

import argparse
import datetime
import functools
import json
import logging
import os
import shlex
import subprocess
import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from bench.quality import run
from components.ranking_evaluator import slices

FRACTIONS = (0.05, 0.1, 0.25, 0.5, 1.0)
BASE, PRETRAINED = run.HEADLINE   # finetune_only, pretrain_finetune
# Pre-training epochs of each dataset's headline (bench/quality/results/README.md).
PRETRAIN_EPOCHS = {"lastfm": 200}
DEFAULT_PRETRAIN_EPOCHS = 10
GAIN_METRICS = ("NDCG@10", "HR@10")
# The slices the first bar names, reported first.
BAR_SLICES = (slices.slice_key(slices.HISTORY_LENGTH, "<=3"),
              slices.slice_key(slices.POPULARITY, slices.TAIL))


def run_args(args, fraction: float):
  """bench.quality.run's arguments of one fraction (the dataset's headline recipe)."""
  return run.parse_args(
      ["--dataset", args.dataset, *(["--data-dir", args.data_dir] if args.data_dir else []),
       "--finetune-epochs", str(args.finetune_epochs), "--patience", str(args.patience),
       "--pretrain-epochs", str(args.pretrain_epochs), "--out-dir", args.work_dir,
       "--train-user-fraction", str(fraction), *args.run_args])


def pretrained_dir(args, seed: int) -> str:
  """Where one seed's pre-training is kept, keyed by the settings it depends on
  (``run.pretrained_key``: not the fine-tuning ones)."""
  key = run.pretrained_key(run_args(args, 1.0), PRETRAINED, seed)
  return os.path.join(args.work_dir, "pretrained", f"seed{seed}-{key}")


def child_argv(args, fraction: float, variant: str, seed: int, record: str) -> List[str]:
  """One run's command: pre-trains and saves, or reuses this seed's saved pre-training."""
  argv = run._child_argv(run_args(args, fraction), variant, seed, record)  # pylint: disable=protected-access
  if run.VARIANTS[variant].pretrain:
    folder = pretrained_dir(args, seed)
    argv += (["--pretrained-from", folder] if os.path.isdir(folder)
             else ["--save-pretrained", folder])
  return argv


def run_child(argv: List[str]) -> None:
  """Runs one (fraction, variant, seed) in its own process (bench.quality.run)."""
  subprocess.run(argv, check=True)


def run_key(fraction: float, variant: str, seed: int, settings: str) -> Tuple:
  return (round(fraction, 6), variant, seed, settings)


def _key_of(record: dict) -> Tuple:
  return run_key(record["fraction"], record["variant"], record["seed"], record["settings_key"])


def load_result(path: str) -> dict:
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)
  return {"runs": []}


# ----------------------------------------------------------------------------
# Aggregation.


def _stat(values: Sequence[float]) -> Dict[str, float]:
  values = np.asarray(values, dtype=np.float64)
  return {"mean": float(values.mean()),
          "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}


def paired_gain(base: Dict[int, float], other: Dict[int, float]) -> Optional[dict]:
  """``other - base`` per seed both have: mean, sample std, seeds, and whether the mean
  gain exceeds twice the std (the issue's bar; it asks for 3 or more seeds)."""
  seeds = sorted(set(base) & set(other))
  if not seeds:
    return None
  gains = [other[s] - base[s] for s in seeds]
  stat = _stat(gains)
  return {**stat, "seeds": seeds,
          "above_2_std": bool(len(seeds) > 1 and stat["mean"] > 2 * stat["std"]),
          "bar_met": bool(len(seeds) >= 3 and stat["mean"] > 2 * stat["std"])}


def _by_seed(runs: List[dict], variant: str,
             value: Callable[[dict], Optional[float]]) -> Dict[int, float]:
  out = {}
  for r in runs:
    if r["variant"] == variant and value(r) is not None:
      out[r["seed"]] = value(r)
  return out


def _slice_value(name: str, metric: str) -> Callable[[dict], Optional[float]]:
  return lambda r: r.get("test_slices", {}).get(name, {}).get(metric)


def slice_rows(runs: List[dict]) -> Dict[str, dict]:
  """Per slice of the runs' ``test_slices``: users, each variant's mean ± std and the
  paired gain of the pre-trained model, per metric of GAIN_METRICS."""
  names = slices.report_order({n for r in runs for n in r.get("test_slices", {})})
  rows = {}
  for name in names:
    users = [r["test_slices"][name].get("num_users", 0) for r in runs if name in
             r.get("test_slices", {})]
    row = {"num_users": int(max(users))}
    for metric in GAIN_METRICS:
      values = {v: _by_seed(runs, v, _slice_value(name, metric)) for v in (BASE, PRETRAINED)}
      for variant, by_seed in values.items():
        if by_seed:
          row[f"{variant} {metric}"] = {**_stat(list(by_seed.values())), "seeds": len(by_seed)}
      row[f"gain {metric}"] = paired_gain(values[BASE], values[PRETRAINED])
    rows[name] = row
  return rows


def fraction_row(runs: List[dict]) -> dict:
  """One fraction: ``run.aggregate`` per variant, the paired gains and the slices."""
  row = {"variants": run.aggregate(runs),
         "train_users": max((r.get("train_users", r.get("num_users", 0)) for r in runs)),
         "imported": sorted({r["imported_from"] for r in runs if "imported_from" in r}),
         "slices": slice_rows(runs)}
  for metric in GAIN_METRICS:
    row[f"gain {metric}"] = paired_gain(*(_by_seed(runs, v, lambda r, m=metric: r["test"][m])
                                          for v in (BASE, PRETRAINED)))
  return row


def summarize(runs: List[dict]) -> Dict[str, dict]:
  """``fraction_row`` of every fraction, in increasing order (keys ``f"{fraction:g}"``)."""
  fractions = sorted({r["fraction"] for r in runs})
  return {f"{f:g}": fraction_row([r for r in runs if r["fraction"] == f]) for f in fractions}


# ----------------------------------------------------------------------------
# Report.


def _gain_cell(gain: Optional[dict]) -> str:
  if gain is None:
    return "–"
  if len(gain["seeds"]) < 2:
    return f"{gain['mean']:+.4f}"
  return f"{gain['mean']:+.4f} ± {gain['std']:.4f}"


def _verdict(gain: Optional[dict]) -> str:
  if gain is None or len(gain["seeds"]) < 2:
    return "–"
  return ("**yes**" if gain["bar_met"] else "yes (< 3 seeds)" if gain["above_2_std"]
          else "no")


def _variant_cell(row: dict, variant: str, metric: str) -> str:
  stats = row["variants"].get(variant)
  if stats is None:
    return "–"
  return run._cell(stats[metric], len(stats["seeds"]))  # pylint: disable=protected-access


def markdown(result: dict) -> str:
  """The learning-curve and slice tables of a curve results JSON."""
  meta, summary = result["meta"], result["summary"]
  lines = [f"Dataset **{meta['dataset']}** ({meta['num_users']} users); commit "
           f"`{meta['commit']}`; {meta['machine']['cpu']}, {meta['machine']['cores']} cores; "
           f"load average {meta['load_average']} ({'shared cores' if meta['shared'] else 'cores alone'}); "
           f"{meta['date']}. Recipe: {meta['recipe']}, pre-training {meta['pretrain_epochs']} "
           "epochs on every user's training sequences (one pre-training per seed, reused at "
           "every fraction); fine-tuning on a seeded fraction of the users; every user "
           "validated and tested (full ranking, leave-one-out). Mean ± sample std over seeds; "
           "gain = pre-trained − fine-tune only, paired by seed; bar: gain > 2 × its std over "
           ">= 3 seeds.", "",
           "| training users | seeds | fine-tune only NDCG@10 | pre-trained NDCG@10 | "
           "NDCG@10 gain | > 2 std | fine-tune only HR@10 | pre-trained HR@10 | HR@10 gain | "
           "> 2 std | s/epoch (median, fine-tune only / pre-trained) |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
  for fraction, row in summary.items():
    seeds = max((len(v["seeds"]) for v in row["variants"].values()), default=0)
    speed = " / ".join(f"{row['variants'][v]['median_epoch_seconds']:.1f}"
                       if v in row["variants"] else "–" for v in (BASE, PRETRAINED))
    note = " (imported)" if row["imported"] else ""
    lines.append(
        f"| {float(fraction):.0%} ({row['train_users']}){note} | {seeds} | "
        f"{_variant_cell(row, BASE, 'NDCG@10')} | {_variant_cell(row, PRETRAINED, 'NDCG@10')} | "
        f"{_gain_cell(row['gain NDCG@10'])} | {_verdict(row['gain NDCG@10'])} | "
        f"{_variant_cell(row, BASE, 'HR@10')} | {_variant_cell(row, PRETRAINED, 'HR@10')} | "
        f"{_gain_cell(row['gain HR@10'])} | {_verdict(row['gain HR@10'])} | {speed} |")
  imported = sorted({f for row in summary.values() for f in row["imported"]})
  if imported:
    lines += ["", f"Rows marked (imported) are the runs of {', '.join(imported)} (same "
              "recipe, recorded without slices)."]
  lines += ["", "Slices of the test users (components/ranking_evaluator/slices.py; popularity "
            "bands by thirds of the full training split's interactions, the same at every "
            "fraction):", "",
            "| training users | slice | users | fine-tune only NDCG@10 | pre-trained NDCG@10 | "
            "NDCG@10 gain | > 2 std | fine-tune only HR@10 | pre-trained HR@10 | HR@10 gain |",
            "|---|---|---|---|---|---|---|---|---|---|"]
  for fraction, row in summary.items():
    for name, cells in row["slices"].items():
      values = [run._cell(cells[k], cells[k]["seeds"]) if k in cells else "–"  # pylint: disable=protected-access
                for k in (f"{BASE} NDCG@10", f"{PRETRAINED} NDCG@10")]
      hr = [run._cell(cells[k], cells[k]["seeds"]) if k in cells else "–"  # pylint: disable=protected-access
            for k in (f"{BASE} HR@10", f"{PRETRAINED} HR@10")]
      lines.append(f"| {float(fraction):.0%} | {name} | {cells['num_users']} | {values[0]} | "
                   f"{values[1]} | {_gain_cell(cells['gain NDCG@10'])} | "
                   f"{_verdict(cells['gain NDCG@10'])} | {hr[0]} | {hr[1]} | "
                   f"{_gain_cell(cells['gain HR@10'])} |")
  return "\n".join(lines) + "\n"


def plot(result: dict, path: str) -> None:
  """NDCG@10 against the share of training users (log x), both variants with std bars."""
  import matplotlib   # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  from matplotlib import pyplot   # pylint: disable=import-outside-toplevel
  figure, axes = pyplot.subplots(figsize=(6, 4))
  for variant, label in ((BASE, "fine-tune only"), (PRETRAINED, "pre-trained + fine-tuned")):
    points = [(float(f), row["variants"][variant]["NDCG@10"])
              for f, row in result["summary"].items() if variant in row["variants"]]
    if points:
      axes.errorbar([f for f, _ in points], [s["mean"] for _, s in points],
                    yerr=[s["std"] for _, s in points], marker="o", capsize=3, label=label)
  axes.set_xscale("log")
  axes.set_xlabel("share of training users fine-tuned on")
  axes.set_ylabel("test NDCG@10")
  axes.set_title(f"{result['meta']['dataset']}: mean ± std over seeds"
                 f"{' (shared cores)' if result['meta']['shared'] else ''}")
  if axes.get_legend_handles_labels()[0]:   # a curve with no runs of either variant yet
    axes.legend()
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  pyplot.close(figure)


def write(result: dict, prefix: str) -> str:
  """``prefix``.json, .md and .png of ``result``; returns the markdown."""
  table = run.write_tables(result, prefix, markdown)
  plot(result, prefix + ".png")
  return table


# ----------------------------------------------------------------------------
# The driver.


def import_full(args, path: str) -> List[dict]:
  """The full-data runs of a quality-benchmark results JSON whose recipe is this curve's
  (same settings key as a fraction-1.0 run here), marked as imported."""
  if not path or not os.path.exists(path):
    return []
  with open(path) as f:
    runs = json.load(f)["runs"]
  full = run_args(args, 1.0)
  imported = []
  for variant in args.variants.split(","):
    key = run._settings_key(full, variant)  # pylint: disable=protected-access
    for r in runs:
      if r["variant"] == variant and r["seed"] <= args.seeds and _same_recipe(r, full, variant):
        imported.append({**r, "fraction": 1.0, "settings_key": key, "imported_from": path})
  return imported


# Fields a recorded ModelConfig may differ in and still be the same recipe here: the
# seed and epoch budget are set per run, early stopping is run.py's --patience.
_RUN_SET = ("seed", "epochs", "early_stopping_patience")


def _same_recipe(record: dict, args, variant: str) -> bool:
  """Whether a recorded run's configs agree with those ``args`` would run ``variant``
  with on every field both name (fields added since kept their defaults)."""
  pairs = [(record["model_config"], run.load_model_config(args.model_config).to_dict()),
           (record.get("retrieval_config", {}), run.load_json_object(args.retrieval_config))]
  if run.VARIANTS[variant].pretrain:
    pretrain = run.PretrainConfig.from_dict(run.load_json_object(args.pretrain_config))
    pairs.append((record.get("pretrain_config", {}), pretrain.to_dict()))
  for recorded, wanted in pairs:
    recorded, wanted = run.leaves(recorded), run.leaves(wanted)
    if any(recorded[k] != wanted[k] for k in set(recorded) & set(wanted) - set(_RUN_SET)):
      return False
  pretrain_epochs = run.leaves(record.get("pretrain_config", {})).get("epochs")
  return not run.VARIANTS[variant].pretrain or pretrain_epochs == args.pretrain_epochs


def _rekeyed(args, record: dict) -> dict:
  """``record`` (a run of this curve) under the current settings key when it was recorded
  under another only because config fields were added since with their defaults
  (``_same_recipe``); the key it was recorded under stays in ``recorded_settings_key``."""
  wanted = run_args(args, record["fraction"])
  current = run._settings_key(wanted, record["variant"])  # pylint: disable=protected-access
  if (record["settings_key"] == current or "imported_from" in record or
      "model_config" not in record or not _same_recipe(record, wanted, record["variant"])):
    return record
  return {**record, "settings_key": current,
          "recorded_settings_key": record.get("recorded_settings_key", record["settings_key"])}


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--dataset", default="beauty")
  parser.add_argument("--data-dir", default=None)
  parser.add_argument("--fractions", default=",".join(f"{f:g}" for f in FRACTIONS),
                      help="shares of the training users fine-tuned on")
  parser.add_argument("--variants", default=",".join(run.HEADLINE))
  parser.add_argument("--seeds", type=int, default=3, help="seeds --first-seed..N")
  parser.add_argument("--first-seed", type=int, default=1,
                      help="run seeds from this one (pieces of a curve in parallel, each "
                           "with its own --out-dir, joined with --merge)")
  parser.add_argument("--merge", action="append", default=[],
                      help="a curve results JSON whose runs join this one's")
  parser.add_argument("--pretrain-epochs", type=int, default=None,
                      help=f"default: the dataset's headline ({PRETRAIN_EPOCHS}, else "
                           f"{DEFAULT_PRETRAIN_EPOCHS})")
  parser.add_argument("--finetune-epochs", type=int, default=200)
  parser.add_argument("--patience", type=int, default=5)
  parser.add_argument("--run-args", default="",
                      help="more bench.quality.run options, one string (e.g. '--model-config X')")
  parser.add_argument("--import-full", default=None,
                      help="a quality-benchmark results JSON whose runs of the same recipe "
                           "stand for the 100%% point (default: bench/quality/results/"
                           "<dataset>.json); 'none' to run it")
  parser.add_argument("--out-dir", default=os.path.join("bench", "quality", "results"),
                      help="writes curve-<dataset>.{json,md,png} here (runs merged into it)")
  parser.add_argument("--work-dir", default=None,
                      help="data, run logs and saved pre-trainings (default: "
                           "outputs/bench/curve/<dataset>)")
  parser.add_argument("--shared", choices=("yes", "no", "auto"), default="auto",
                      help="say the cores were shared (auto: any run's epochs found them so)")
  parser.add_argument("--no-run", action="store_true",
                      help="train nothing: rewrite the report of the runs recorded")
  args = parser.parse_args(argv)
  if args.pretrain_epochs is None:
    args.pretrain_epochs = PRETRAIN_EPOCHS.get(args.dataset, DEFAULT_PRETRAIN_EPOCHS)
  args.work_dir = args.work_dir or os.path.join("outputs", "bench", "curve", args.dataset)
  if args.import_full is None:
    args.import_full = os.path.join("bench", "quality", "results", f"{args.dataset}.json")
  args.run_args = shlex.split(args.run_args)
  return args


def _meta(args, runs: List[dict]) -> dict:
  shared = (args.shared == "yes" or
            (args.shared == "auto" and any(r.get("shared_cores", True) for r in runs)))
  return {"dataset": args.dataset, "num_users": max((r["num_users"] for r in runs), default=0),
          "commit": run._commit(), "machine": run._machine(),  # pylint: disable=protected-access
          "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
          "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()), "shared": shared,
          "recipe": run_args(args, 1.0).model_config, "pretrain_epochs": args.pretrain_epochs,
          "args": vars(args)}


def main(argv: Optional[Sequence[str]] = None) -> int:
  args = parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
  prefix = os.path.join(args.out_dir, f"curve-{args.dataset}")
  result = load_result(prefix + ".json")
  runs = {_key_of(r): r for r in result["runs"]}
  fractions = [float(f) for f in args.fractions.split(",")]
  if 1.0 in fractions and args.import_full != "none":
    for r in import_full(args, args.import_full):
      runs.setdefault(_key_of(r), r)
  os.makedirs(os.path.join(args.work_dir, "runs"), exist_ok=True)
  for path in args.merge:
    for r in load_result(path)["runs"]:
      runs.setdefault(_key_of(r), r)
  runs = {_key_of(r): r for r in map(functools.partial(_rekeyed, args), runs.values())}
  for seed in range(args.first_seed, args.seeds + 1):   # seed-major: one pre-training serves every fraction
    for fraction in fractions:
      for variant in args.variants.split(","):
        settings = run._settings_key(run_args(args, fraction), variant)  # pylint: disable=protected-access
        key = run_key(fraction, variant, seed, settings)
        if key in runs or args.no_run:
          continue
        record = os.path.join(args.work_dir, "runs",
                              f"{fraction:g}-{variant}-seed{seed}-{settings}.json")
        logging.info("fraction %g %s seed %d: running", fraction, variant, seed)
        run_child(child_argv(args, fraction, variant, seed, record))
        with open(record) as f:
          runs[key] = {**json.load(f), "fraction": fraction, "settings_key": settings}
        write(_result(args, list(runs.values())), prefix)
  print(write(_result(args, list(runs.values())), prefix))
  return 0


def _result(args, runs: List[dict]) -> dict:
  """Every run recorded; the summary of those with the settings of ``args`` (runs of
  other settings stay in the file but out of the tables)."""
  current = [r for r in runs if r["settings_key"] == run._settings_key(  # pylint: disable=protected-access
      run_args(args, r["fraction"]), r["variant"])]
  return {"meta": _meta(args, current), "summary": summarize(current), "runs": runs}


if __name__ == "__main__":
  sys.exit(main())
