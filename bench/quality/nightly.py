"""Nightly retrain cost: warm starts from the last model vs from scratch, in epochs.

Protocol and commands: bench/quality/results/README.md, "Nightly retrain".
"""

import argparse
import datetime
import json
import logging
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from bench.quality import run
from trainer import ranking_validation
from trainer import warm_start
from trainer.config import load_model_config

VARIANT = "finetune_only"
DAY1_DROP = 1   # day 1 = every sequence without its last item
BAR = 0.5       # warm epochs to the scratch best / the scratch run's best epoch
FRACTIONS = (1.0, 0.95)
NDCG = ranking_validation.ndcg_name(10)


def warm_label(learning_rate: Optional[float], settings: Dict[str, object]) -> str:
  """The warm-start row's name: ``warm``, plus ``lr <x>`` with its own learning rate and
  each of ``settings`` (``run.warm_start_settings``) by its word and value, e.g.
  ``shrink 0.6``, ``keep items``, ``warmup 50``, ``cosine 5``, ``adam``, ``no adam``."""
  words = [("no " if value is False else "") + run.WARM_START_OPTIONS[name][1] + (
      "" if isinstance(value, bool) else f" {value:g}" if isinstance(value, float)
      else f" {value}") for name, value in settings.items()]
  return " ".join(["warm", *([f"lr {learning_rate:g}"] if learning_rate is not None else []),
                   *words])


def _label(args) -> str:
  return warm_label(args.warm_learning_rate, run.warm_start_settings(args, "warm"))


def warm_options(args) -> List[str]:
  """run.py's options of the warm runs besides ``--warm-start-from``: those set."""
  return run.warm_start_argv(run.warm_start_settings(args, "warm"))


def _run_args(args, name: str, extra: List[str]):
  """bench.quality.run's settings of one of the three trainings, outputs under ``name``."""
  out = os.path.join(args.out_dir, name)
  return run.parse_args(
      ["--dataset", args.dataset, *(["--data-dir", args.data_dir] if args.data_dir else []),
       "--variants", VARIANT, "--finetune-epochs", str(args.finetune_epochs),
       "--patience", str(args.patience), "--out-dir", out,
       "--work-dir", os.path.join(out, "work"), *extra])


def scratch_name(drop: int) -> str:
  """The folder of the scratch run on every sequence without its last ``drop`` items: day
  2's (0), day 1 (1) or the first day of a chain of nights (``--nights``)."""
  return {0: "day2-scratch", 1: "day1"}.get(drop, f"day1-drop{drop}")


def warm_name(label: str, night: int, nights: int, from_first_day: bool = False) -> str:
  """The folder of the warm run of ``night`` (1 to ``nights``), ``label`` its setting;
  ``from_first_day``: it starts from the first day's model, whatever the night."""
  prefix = "day2" if nights == 1 else f"chain{nights}-night{night}"
  start = "-from-day1" if from_first_day and night > 1 else ""
  return f"{prefix}{start}-{label.replace(' ', '-')}"


def saved_model(args, name: str, seed: int) -> str:
  """Where the run in folder ``name`` saves its model of ``seed`` (``--save-warm-start``)."""
  return os.path.join(args.out_dir, name, f"model-seed{seed}", "serving")


def day1_model(args, seed: int) -> str:
  """Where the day-1 model of ``seed`` is saved."""
  return saved_model(args, "day1", seed)


# The meta fields a nightly result written before chains lacks, at the value it had.
BEFORE_CHAINS = {"nights": 1, "from_first_day": False}


def _meta(meta: dict, key: str):
  """``meta[key]`` of a nightly result, ``BEFORE_CHAINS``' value for an older one."""
  return meta.get(key, BEFORE_CHAINS.get(key))


def _drop(drop: int) -> List[str]:
  return ["--drop-last-items", str(drop)] if drop else []


def warm_model_config(args) -> List[str]:
  """``--model-config`` of the warm runs: the recipe with ``--warm-learning-rate`` as its
  ``warm_start.warm_learning_rate``, if set (the rate of a warm run, run_fn.warm_start_schedule)."""
  if args.warm_learning_rate is None:
    return []
  config = load_model_config(run.recipe_path(args.dataset)).to_dict()
  config["warm_start"]["warm_learning_rate"] = args.warm_learning_rate
  return ["--model-config", json.dumps(config, sort_keys=True)]


def train(args, name: str, seed: int, extra: List[str]) -> Optional[dict]:
  """One training's record (reused when recorded; None under --no-run when not)."""
  run_args = _run_args(args, name, [*extra, *(["--no-run"] if args.no_run else [])])
  if not args.no_run:   # --no-run leaves the data a running child may be reading alone
    run.prepare_once(run_args)
  return run.run_or_reuse(run_args, VARIANT, seed)


def seed_records(args, seed: int) -> Dict[str, object]:
  """Of one seed: the first day from scratch (saved), then each night a run warm-started
  from the last night's model (the first day's on night 1, and every night with
  ``--from-first-day``) and one from scratch on the same data; by default one night:
  day 1 = every sequence without its last item, day 2 the full data. ``day1``,
  ``scratch`` and the warm setting's label name the first day and the last night's two
  runs; ``nights`` lists each night's ``scratch`` and ``warm``."""
  nights, label = args.nights, _label(args)
  each_epoch = ["--save-warm-start-each-epoch"] if args.warm_epoch else []

  def scratch(drop: int) -> Optional[dict]:
    name = scratch_name(drop)
    saved = ["--save-warm-start", saved_model(args, name, seed)] if drop else []
    return train(args, name, seed, [*_drop(drop), *saved,
                                    *(each_epoch if drop == nights else [])])

  first = previous = scratch(nights)
  model, chain = saved_model(args, scratch_name(nights), seed), []
  for night in range(1, nights + 1):
    drop, name = nights - night, warm_name(label, night, nights, args.from_first_day)
    warm = None
    if previous is not None:   # recorded, so its model is saved
      read = drop and (night == 1 or not args.from_first_day)   # by the next night
      saved = ["--save-warm-start", saved_model(args, name, seed)] if read else []
      warm = train(args, name, seed, [*_drop(drop), "--warm-start-from", model,
                                      *warm_model_config(args), *warm_options(args), *saved])
    last = drop == 0 and args.scratch_from
    chain.append({"warm": warm, "scratch": None if last else scratch(drop)})
    if not args.from_first_day:
      previous, model = warm, saved_model(args, name, seed)
  return {"day1": first, "scratch": chain[-1]["scratch"], label: chain[-1]["warm"],
          "nights": chain}


def earlier_scratch(path: str, args, day1: Dict[int, dict]) -> Dict[int, dict]:
  """The scratch side of the rows of an earlier nightly result (``--scratch-from``), per
  seed of ``day1`` (this run's day-1 records, the seeds with one).

  Training is seeded and runs the same on the same commit's code, so the earlier scratch
  runs are this run's; a day-1 run that differs from the earlier one (best validation
  NDCG@10 or its epoch) says they would not be, and is an error.
  """
  with open(path) as f:
    earlier = json.load(f)
  same = {"dataset": args.dataset, "patience": args.patience,
          "finetune_epochs": args.finetune_epochs}
  theirs = {k: earlier["meta"]["args"][k] for k in same}
  same["nights"], theirs["nights"] = 1, _meta(earlier["meta"], "nights")
  if theirs != same:
    raise ValueError(f"{path}: recorded with {theirs}, this run is {same}")
  references = {}
  for seed, record in day1.items():
    row, old = earlier["rows"].get(str(seed)), earlier["day1"].get(str(seed))
    if row is None or old is None:
      raise ValueError(f"{path}: no row of seed {seed}; run without --scratch-from")
    ours = (max(record["finetune_history"][NDCG]), record["best_epoch"])
    if ours != (old["best_val_NDCG@10"], old["best_epoch"]):
      raise ValueError(f"{path}: seed {seed}'s day 1 reached {old['best_val_NDCG@10']:.6f} at "
                       f"epoch {old['best_epoch']}, this run's {ours[0]:.6f} at epoch "
                       f"{ours[1]}: its scratch run is not this run's; run without "
                       "--scratch-from")
    references[seed] = {**{k: row[k] for k in ("scratch_best", "scratch_best_epoch",
                                               "scratch_epochs_run", "scratch_test")},
                        "scratch_shared_cores": row["shared_cores"],
                        **{f"{f:.0%}": {k: row[f"{f:.0%}"][k]
                                        for k in ("scratch_epochs", "scratch_seconds")}
                           for f in FRACTIONS}}
  return references


# ----------------------------------------------------------------------------
# The comparison.


def merge_result(path: str, dataset: str, patience: int, label: str, rows: Dict[int, dict],
                 day1: Dict[int, dict], nights: int = 1, from_first_day: bool = False
                 ) -> Tuple[Dict[int, dict], Dict[int, dict]]:
  """``rows`` and ``day1`` joined with those of the nightly result ``path`` (``--merge``:
  seeds run in parallel, each with its own ``--out-dir``); it must have the same dataset,
  patience, warm setting and nights (and their start), and no seed of ``rows``."""
  with open(path) as f:
    other = json.load(f)
  ours = {"dataset": dataset, "patience": patience, "warm": label, "nights": nights,
          "from_first_day": from_first_day}
  theirs = {k: _meta(other["meta"], k) for k in ours}
  if theirs != ours:
    raise ValueError(f"{path}: recorded with {theirs}, this run is {ours}")
  both = sorted(set(rows) & {int(seed) for seed in other["rows"]})
  if both:
    raise ValueError(f"{path}: seeds {both} are in this run's rows too")
  merged = {**rows, **{int(seed): row for seed, row in other["rows"].items()}}
  return ({seed: merged[seed] for seed in sorted(merged)},
          {**day1, **{int(seed): r for seed, r in other["day1"].items()}})


def _test(record: dict) -> Dict[str, float]:
  return {k: record["test"][k] for k in ("HR@10", "NDCG@10")}


def _seconds_to(record: dict, epoch: Optional[int]) -> Optional[float]:
  """Wall seconds from the start of training to the end of ``epoch`` (validation
  included), None for no epoch or a record without the timings."""
  ends = record.get("epoch_end_seconds")
  if epoch is None or not ends:
    return None
  return ends[epoch - 1]


def scratch_reference(scratch: dict) -> dict:
  """What the comparison takes from a scratch run: its best validation NDCG@10, the
  epochs (and seconds) it needed to reach it and 95% of it, its test metrics."""
  history = scratch["finetune_history"]
  reference = {"scratch_best": max(history[NDCG]), "scratch_best_epoch": scratch["best_epoch"],
               "scratch_epochs_run": scratch["finetune_epochs_run"],
               "scratch_test": _test(scratch),
               "scratch_shared_cores": scratch.get("shared_cores", True)}
  for fraction in FRACTIONS:
    own = run.epochs_to_reach(history, fraction)
    reference[f"{fraction:.0%}"] = {"scratch_epochs": own,
                                    "scratch_seconds": _seconds_to(scratch, own)}
  return reference


def compare(scratch: dict, warm: dict) -> dict:
  """How fast the warm run reaches the scratch run's best validation NDCG@10 (and
  95% of it) against the epochs the scratch run needed; test metrics of both.
  ``scratch`` is the scratch run's record or its ``scratch_reference``."""
  if "finetune_history" in scratch:
    scratch = scratch_reference(scratch)
  best = scratch["scratch_best"]
  row = {**{k: scratch[k] for k in ("scratch_best", "scratch_best_epoch",
                                    "scratch_epochs_run", "scratch_test")},
         "warm_best": max(warm["finetune_history"][NDCG]),
         "warm_best_epoch": warm["best_epoch"], "warm_epochs_run": warm["finetune_epochs_run"],
         "warm_test": _test(warm), "warm_start": warm.get("warm_start", {}),
         "warm_history": list(warm["finetune_history"][NDCG]),
         "shared_cores": scratch["scratch_shared_cores"] or warm.get("shared_cores", True)}
  for fraction in FRACTIONS:
    key = f"{fraction:.0%}"
    own = scratch[key]["scratch_epochs"]
    epochs = run.epochs_to_reach(warm["finetune_history"], fraction, best)
    row[key] = {"scratch_epochs": own, "warm_epochs": epochs,
                "scratch_seconds": scratch[key]["scratch_seconds"],
                "warm_seconds": _seconds_to(warm, epochs),
                "ratio": None if epochs is None else epochs / own}
    row[key]["bar_met"] = row[key]["ratio"] is not None and row[key]["ratio"] <= BAR
  return row


def _stats(values: Sequence[Optional[float]]) -> Dict[str, Optional[float]]:
  """Median and mean of the values; None when any is None (a warm run that never got there)."""
  if not values or any(v is None for v in values):
    return {"median": None, "mean": None}
  return {"median": float(np.median(values)), "mean": float(np.mean(values))}


def summarize(rows: Dict[int, dict]) -> dict:
  """Median and mean over seeds of every number of ``compare``'s rows."""
  group = list(rows.values())
  summary = {key: _stats([r[key] for r in group])
             for key in ("scratch_best", "scratch_best_epoch", "warm_best", "warm_best_epoch")}
  for fraction in FRACTIONS:
    key = f"{fraction:.0%}"
    for field in ("scratch_epochs", "warm_epochs", "scratch_seconds", "warm_seconds", "ratio"):
      summary[f"{key} {field}"] = _stats([r[key][field] for r in group])
    summary[f"{key} bar_met"] = sum(r[key]["bar_met"] for r in group)
  for start in ("scratch", "warm"):
    for metric in ("HR@10", "NDCG@10"):
      summary[f"{start} test {metric}"] = _stats([r[f"{start}_test"][metric] for r in group])
  summary["seeds"] = sorted(rows)
  summary["shared_cores"] = any(r["shared_cores"] for r in group)
  return summary


def _num(value: Optional[float], digits: int = 4) -> str:
  return "not reached" if value is None else f"{value:.{digits}f}"


def _epochs(value: Optional[float]) -> str:
  return "not reached" if value is None else f"{value:g}"


def _seconds(value: Optional[float]) -> str:
  return "–" if value is None else f"{value:.0f}"


def _scratch_source(meta: dict) -> str:
  path = meta.get("scratch_from")
  return (f"scratch runs (and their seconds) from `{os.path.basename(path)}`, not rerun "
          f"(this run's day 1 matched that one's on every seed); " if path else "")


def markdown(result: dict) -> str:
  """The readable tables of a nightly result: one row per seed, then median and mean."""
  meta = result["meta"]
  nights = _meta(meta, "nights")
  days = ("day 1 = every sequence without its last item, day 2 = the full data" if nights == 1
          else f"a chain of {nights} nights: the first day every sequence without its last "
               f"{nights} items, each night one item more, the last night the full data; each "
               "night's warm run starts from "
               + ("the first day's model" if _meta(meta, "from_first_day") else
                  "the last night's model") + "; the tables below are the last night's")
  lines = [f"Dataset **{meta['dataset']}**, {days}; fine-tune only, recipe `{meta['recipe']}`, "
           f"patience "
           f"{meta['patience']}; warm runs: {meta['warm']}; "
           f"{_scratch_source(meta)}commit `{meta['commit']}`; "
           f"{meta['machine']['cpu']}, {meta['machine']['cores']} cores "
           f"({'shared cores' if meta['shared_cores'] else 'cores alone'}: seconds are upper "
           f"bounds, epochs do not depend on the load); {meta['date']}. Bar: warm epochs to "
           f"the scratch best ≤ {BAR:g} × the scratch run's best epoch.", ""]
  for fraction in FRACTIONS:
    key = f"{fraction:.0%}"
    lines += [f"**To {key} of the scratch run's best validation NDCG@10**", "",
              "| seed | scratch best val NDCG@10 | scratch epochs | warm epochs | warm/scratch "
              "| bar met | scratch s | warm s | scratch test HR@10 / NDCG@10 | warm test HR@10 "
              "/ NDCG@10 | warm best val NDCG@10 (epoch) |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for seed, row in result["rows"].items():
      cell = row[key]
      lines.append(
          f"| {seed} | {row['scratch_best']:.4f} | {_epochs(cell['scratch_epochs'])} | "
          f"{_epochs(cell['warm_epochs'])} | {_num(cell['ratio'], 2)} | "
          f"{'yes' if cell['bar_met'] else 'no'} | {_seconds(cell['scratch_seconds'])} | "
          f"{_seconds(cell['warm_seconds'])} | {row['scratch_test']['HR@10']:.4f} / "
          f"{row['scratch_test']['NDCG@10']:.4f} | {row['warm_test']['HR@10']:.4f} / "
          f"{row['warm_test']['NDCG@10']:.4f} | {row['warm_best']:.4f} "
          f"({row['warm_best_epoch']}) |")
    summary = result["summary"]
    if summary:
      for stat in ("median", "mean"):
        s = {k: v[stat] for k, v in summary.items() if isinstance(v, dict)}
        lines.append(
            f"| {stat} | {_num(s['scratch_best'])} | {_epochs(s[f'{key} scratch_epochs'])} | "
            f"{_epochs(s[f'{key} warm_epochs'])} | {_num(s[f'{key} ratio'], 2)} | "
            f"{summary[f'{key} bar_met']} of {len(summary['seeds'])} | "
            f"{_seconds(s[f'{key} scratch_seconds'])} | {_seconds(s[f'{key} warm_seconds'])} | "
            f"{_num(s['scratch test HR@10'])} / {_num(s['scratch test NDCG@10'])} | "
            f"{_num(s['warm test HR@10'])} / {_num(s['warm test NDCG@10'])} | "
            f"{_num(s['warm_best'])} ({_epochs(s['warm_best_epoch'])}) |")
    lines.append("")
  histories = [f"- seed {seed}: " + ", ".join(f"{v:.4f}" for v in row["warm_history"])
               for seed, row in result["rows"].items() if "warm_history" in row]
  if histories:
    lines += ["**The warm runs' validation NDCG@10, epoch by epoch**", "", *histories, ""]
  return "\n".join(lines + chain_markdown(result["rows"]))


def chain_markdown(rows: Dict[int, dict]) -> List[str]:
  """The table of a chain of nights (``--nights``): each night of each seed, then each
  night's mean; nothing for one night."""
  chains = {seed: row["nights"] for seed, row in rows.items() if "nights" in row}
  if not chains:
    return []
  lines = ["**Night by night** (the warm run of night 1 starts from the first day's model, "
           "each later one from the night before's unless the header says otherwise; the "
           "scratch run trains on the same data)",
           "", "| seed | night | scratch best val NDCG@10 (epoch) | warm val NDCG@10 by epoch | "
           "warm epochs to the scratch best | warm/scratch | scratch test HR@10 / NDCG@10 | "
           "warm test HR@10 / NDCG@10 |", "|---|---|---|---|---|---|---|---|"]
  for seed, chain in chains.items():
    for night, row in enumerate(chain, 1):
      cell = row["100%"]
      lines.append(
          f"| {seed} | {night} | {row['scratch_best']:.4f} ({row['scratch_best_epoch']}) | "
          + ", ".join(f"{v:.4f}" for v in row["warm_history"])
          + f" | {_epochs(cell['warm_epochs'])} | {_num(cell['ratio'], 2)} | "
          f"{row['scratch_test']['HR@10']:.4f} / {row['scratch_test']['NDCG@10']:.4f} | "
          f"{row['warm_test']['HR@10']:.4f} / {row['warm_test']['NDCG@10']:.4f} |")
  for night in range(len(next(iter(chains.values())))):
    group = {seed: chain[night] for seed, chain in chains.items()}
    s = summarize(group)
    lines.append(
        f"| mean | {night + 1} | {_num(s['scratch_best']['mean'])} | "
        f"best {_num(s['warm_best']['mean'])} | | bar met {s['100% bar_met']} of {len(group)} | "
        f"{_num(s['scratch test HR@10']['mean'])} / {_num(s['scratch test NDCG@10']['mean'])} | "
        f"{_num(s['warm test HR@10']['mean'])} / {_num(s['warm test NDCG@10']['mean'])} |")
  return [*lines, ""]


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--dataset", default="synthetic", choices=sorted(run.data_lib.DATASETS))
  parser.add_argument("--data-dir", default=None)
  parser.add_argument("--seeds", default="1", help="comma-separated seeds, e.g. 1,2,3")
  parser.add_argument("--finetune-epochs", type=int, default=200)
  parser.add_argument("--patience", type=int, default=5)
  parser.add_argument("--warm-learning-rate", type=float, default=None,
                      help="the warm runs' learning rate (default: the recipe's "
                           "warm_start.warm_learning_rate, else its schedule's, as the "
                           "pipeline's nightly retrain uses its --model-config)")
  run.add_warm_start_options(parser, "warm")   # the warm runs' --warm-start-* of run.py
  parser.add_argument("--nights", type=int, default=1,
                      help="a chain of this many nightly warm runs, each from the last one's "
                           "model: the first day is every sequence without its last N items, "
                           "each night adds one item to every sequence; each night's warm run "
                           "is compared with a scratch run on the same data (default 1: day 1 "
                           "and day 2)")
  parser.add_argument("--from-first-day", action="store_true",
                      help="with --nights: every night's warm run starts from the first day's "
                           "model (trained from scratch), not from the night before's")
  parser.add_argument("--scratch-from", default=None,
                      help="an earlier nightly result's JSON: take the scratch side of each "
                           "seed's row from it instead of training day 2 from scratch again "
                           "(an error unless this run's day 1 of that seed matches its own)")
  parser.add_argument("--merge", action="append", default=[],
                      help="a nightly result's JSON of the same warm setting whose seeds join "
                           "this one's table (seeds run in parallel, each with its own "
                           "--out-dir and --results)")
  parser.add_argument("--out-dir", default=None, help="default: outputs/bench/nightly/<dataset>")
  parser.add_argument("--results", default=None,
                      help="default: bench/quality/results/nightly-<dataset>[-warm-<knobs>], e.g. "
                           "nightly-lastfm-warm-shrink-0.6")
  parser.add_argument("--no-run", action="store_true",
                      help="train nothing: table the seeds whose three runs are recorded")
  args = parser.parse_args(argv)
  if args.nights < 1:
    parser.error(f"--nights {args.nights}: expected 1 or more")
  if args.from_first_day and args.nights < 2:
    parser.error("--from-first-day needs --nights 2 or more")
  if args.nights > 1 and (args.scratch_from or args.warm_epoch):
    parser.error("--nights above 1 takes neither --scratch-from (its first day is another "
                 "run) nor --warm-epoch (the later nights start from a warm run's best epoch)")
  args.out_dir = args.out_dir or os.path.join("outputs", "bench", "nightly", args.dataset)
  if args.results is None:
    suffix = _label(args).replace("warm", "", 1).replace(" ", "-")
    chain = (f"-chain-{args.nights}{'-from-day1' if args.from_first_day else ''}"
             if args.nights > 1 else "")
    args.results = os.path.join("bench", "quality", "results",
                                f"nightly-{args.dataset}{chain}"
                                f"{'-warm' + suffix if suffix else ''}")
  return args


def main(argv: Optional[Sequence[str]] = None) -> int:
  args = parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
  label = _label(args)
  records, rows = {}, {}
  for seed in [int(s) for s in args.seeds.split(",")]:
    records[seed] = seed_records(args, seed)
  scratch = {seed: r["scratch"] for seed, r in records.items() if r["scratch"] is not None}
  if args.scratch_from:
    scratch = earlier_scratch(args.scratch_from, args, {
        seed: r["day1"] for seed, r in records.items() if r["day1"] is not None})
  for seed, record in records.items():
    chain = record["nights"][:-1]   # the last night's scratch run may be --scratch-from's
    if (seed in scratch and record[label] is not None
        and all(n["scratch"] is not None and n["warm"] is not None for n in chain)):
      last = compare(scratch[seed], record[label])
      rows[seed] = {**last, "nights": [*(compare(n["scratch"], n["warm"]) for n in chain),
                                       last]} if chain else last
  day1 = {seed: {"best_val_NDCG@10": max(r["day1"]["finetune_history"][NDCG]),
                 "best_epoch": r["day1"]["best_epoch"], "test": _test(r["day1"]),
                 "num_users": r["day1"]["num_users"], "num_items": r["day1"]["num_items"]}
          for seed, r in records.items() if r["day1"] is not None}
  for path in args.merge:
    rows, day1 = merge_result(path, args.dataset, args.patience, label, rows, day1,
                              args.nights, args.from_first_day)
  result = {"meta": {"dataset": args.dataset, "recipe": run.recipe_path(args.dataset),
                     "patience": args.patience, "warm": label, "nights": args.nights,
                     "from_first_day": args.from_first_day,
                     "commit": run._commit(),  # pylint: disable=protected-access
                     "machine": run._machine(),  # pylint: disable=protected-access
                     "date": datetime.date.today().isoformat(), "args": vars(args),
                     "scratch_from": args.scratch_from,
                     "shared_cores": any(r["shared_cores"] for r in rows.values())},
            "rows": rows, "summary": summarize(rows) if rows else {}, "day1": day1}
  print(run.write_tables(result, args.results, markdown))
  return 0


if __name__ == "__main__":
  sys.exit(main())
