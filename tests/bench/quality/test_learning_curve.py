"""The learning-curve driver's paired gains, resumable runs and report (training: test_run.py)."""

import json
import os

import pytest

from bench.quality import learning_curve as curve
from bench.quality import run

# NDCG@10 by seed; pre-trained - fine-tune only = 0.03, 0.01, 0.04 at 10%:
# mean 0.02667, sample std sqrt(((1/300)^2 + (1/60)^2 + (2/150)^2) / 2) = 0.015275.
FT = {1: 0.10, 2: 0.12, 3: 0.11}
PRE = {1: 0.13, 2: 0.13, 3: 0.15}


def _record(fraction, variant, seed, ndcg, tail=None):
  record = {"fraction": fraction, "variant": variant, "seed": seed, "settings_key": "k",
            "num_users": 100, "train_users": round(100 * fraction), "shared_cores": True,
            "test": {"HR@10": 2 * ndcg, "NDCG@10": ndcg, "HR@20": 3 * ndcg,
                     "NDCG@20": ndcg, "MRR": ndcg},
            "median_epoch_seconds": 2.0, "train_predictions_per_second": 10.0,
            "peak_rss_mb": 1.0, "finetune_seconds": 10.0, "best_epoch": 3,
            "finetune_history": {"val_NDCG@10": [ndcg / 2, ndcg]}}
  if tail is not None:
    record["test_slices"] = {
        "history_len:<=3": {"num_users": 40, "NDCG@10": ndcg, "HR@10": ndcg},
        "popularity:tail": {"num_users": 30, "NDCG@10": tail, "HR@10": 2 * tail}}
  return record


def _runs():
  runs = []
  for seed in (1, 2, 3):
    runs.append(_record(0.1, "finetune_only", seed, FT[seed], tail=0.01 * seed))
    runs.append(_record(0.1, "pretrain_finetune", seed, PRE[seed], tail=0.01 * seed + 0.02))
    runs.append(_record(1.0, "finetune_only", seed, 0.2 + 0.001 * seed))
  runs.append(_record(1.0, "pretrain_finetune", 1, 0.3))
  return runs


def test_paired_gains_by_fraction_and_slice():
  summary = curve.summarize(_runs())
  assert list(summary) == ["0.1", "1"]
  gain = summary["0.1"]["gain NDCG@10"]
  assert gain["mean"] == pytest.approx(0.08 / 3)
  assert gain["std"] == pytest.approx(0.015275, abs=1e-6)
  assert gain["seeds"] == [1, 2, 3] and not gain["above_2_std"] and not gain["bar_met"]
  assert summary["0.1"]["gain HR@10"]["mean"] == pytest.approx(0.16 / 3)
  assert summary["0.1"]["variants"]["finetune_only"]["NDCG@10"]["mean"] == pytest.approx(0.11)
  assert summary["0.1"]["train_users"] == 10
  # The tail slice: the same +0.02 on every seed, std 0: above twice its std.
  tail = summary["0.1"]["slices"]["popularity:tail"]
  assert tail["num_users"] == 30
  assert tail["gain NDCG@10"]["mean"] == pytest.approx(0.02)
  assert tail["gain NDCG@10"]["std"] == pytest.approx(0.0, abs=1e-12)
  assert tail["gain NDCG@10"]["bar_met"]
  assert tail["finetune_only NDCG@10"]["mean"] == pytest.approx(0.02)
  # Only seed 1 has both variants at 100%: a gain of one pair, no verdict.
  full = summary["1"]["gain NDCG@10"]
  assert full["seeds"] == [1] and full["mean"] == pytest.approx(0.099)
  assert not full["above_2_std"] and summary["1"]["slices"] == {}


def test_paired_gain_needs_three_seeds_for_the_bar():
  two = curve.paired_gain({1: 0.1, 2: 0.1}, {1: 0.2, 2: 0.21})
  assert two["above_2_std"] and not two["bar_met"]
  assert curve.paired_gain({1: 0.1}, {2: 0.2}) is None


def _result():
  runs = _runs()
  runs[-1]["imported_from"] = "bench/quality/results/x.json"
  return {"meta": {"dataset": "toy", "num_users": 100, "commit": "abc1234",
                   "machine": {"cpu": "Test CPU", "cores": 2}, "date": "2026-12-01",
                   "load_average": "3.00 3.00 3.00", "shared": True,
                   "recipe": "configs/default.json", "pretrain_epochs": 10},
          "summary": curve.summarize(runs), "runs": runs}


def test_report_tables_and_plot(tmp_path):
  table = curve.write(_result(), str(tmp_path / "out" / "curve-toy"))
  assert "commit `abc1234`; Test CPU, 2 cores; load average 3.00 3.00 3.00 (shared cores)" in table
  assert ("| 10% (10) | 3 | 0.1100 ± 0.0100 | 0.1367 ± 0.0115 | +0.0267 ± 0.0153 | no |"
          in table)
  assert "| 100% (100) (imported) | 3 |" in table
  assert "| 0.3000 | +0.0990 | – |" in table   # one pair: no std, no verdict
  assert "runs of bench/quality/results/x.json" in table
  assert ("| 10% | popularity:tail | 30 | 0.0200 ± 0.0100 | 0.0400 ± 0.0100 | +0.0200 ± 0.0000 "
          "| **yes** |") in table
  assert (tmp_path / "out" / "curve-toy.md").read_text() == table
  assert json.loads((tmp_path / "out" / "curve-toy.json").read_text())["meta"]["commit"] == "abc1234"
  png = (tmp_path / "out" / "curve-toy.png").read_bytes()
  assert png.startswith(b"\x89PNG") and len(png) > 1000


def test_resumes_and_reuses_one_pre_training_per_seed(tmp_path, monkeypatch):
  out, work = tmp_path / "results", tmp_path / "work"
  argv = ["--dataset", "synthetic", "--fractions", "0.1,0.5", "--seeds", "1",
          "--out-dir", str(out), "--work-dir", str(work), "--import-full", "none"]
  calls = []

  def fake_run(argv_):
    calls.append(argv_)
    folder = argv_[argv_.index("--save-pretrained") + 1] if "--save-pretrained" in argv_ else None
    if folder:
      os.makedirs(folder)
    variant, seed = argv_[argv_.index("--variant") + 1], int(argv_[argv_.index("--seed") + 1])
    fraction = float(argv_[argv_.index("--train-user-fraction") + 1])
    with open(argv_[argv_.index("--record") + 1], "w") as f:
      json.dump({k: v for k, v in _record(fraction, variant, seed, 0.1).items()
                 if k not in ("fraction", "settings_key")}, f)

  monkeypatch.setattr(curve, "run_child", fake_run)
  curve.main(argv)
  assert len(calls) == 4
  pre = [c for c in calls if "pretrain_finetune" in c]
  assert "--save-pretrained" in pre[0] and "--pretrained-from" in pre[1]
  assert pre[0][pre[0].index("--save-pretrained") + 1] == pre[1][pre[1].index("--pretrained-from") + 1]
  curve.main(argv[:3] + ["0.1,0.25"] + argv[4:])   # only 0.25 is new
  assert len(calls) == 6
  result = json.loads((out / "curve-synthetic.json").read_text())
  assert sorted(result["summary"]) == ["0.1", "0.25", "0.5"] and len(result["runs"]) == 6
  assert all(r["settings_key"] == run._settings_key(curve.run_args(  # pylint: disable=protected-access
      curve.parse_args(argv), r["fraction"]), r["variant"]) for r in result["runs"])


def test_full_data_point_imports_runs_of_the_same_recipe(tmp_path):
  args = curve.parse_args(["--dataset", "beauty", "--seeds", "2"])
  full = curve.run_args(args, 1.0)
  model = run.load_model_config(full.model_config)
  runs = [{"variant": v, "seed": s, "model_config": model.to_dict(),
           "retrieval_config": run.load_json_object(full.retrieval_config),
           "pretrain_config": {"schedule": {"epochs": epochs}}}
          for v, epochs in (("finetune_only", None), ("pretrain_finetune", 10),
                            ("pretrain_finetune", 3)) for s in (1, 2, 3)]
  path = tmp_path / "beauty.json"
  path.write_text(json.dumps({"runs": runs}))
  imported = curve.import_full(args, str(path))
  assert [(r["variant"], r["seed"]) for r in imported] == [
      ("finetune_only", 1), ("finetune_only", 2), ("pretrain_finetune", 1),
      ("pretrain_finetune", 2)]
  assert all(r["fraction"] == 1.0 and r["imported_from"] == str(path) for r in imported)


def test_pieces_run_in_parallel_merge(tmp_path, monkeypatch):
  def fake_run(argv_):
    variant, seed = argv_[argv_.index("--variant") + 1], int(argv_[argv_.index("--seed") + 1])
    with open(argv_[argv_.index("--record") + 1], "w") as f:
      json.dump(_record(0.1, variant, seed, 0.1 * seed), f)

  monkeypatch.setattr(curve, "run_child", fake_run)
  common = ["--dataset", "synthetic", "--fractions", "0.1", "--variants", "finetune_only",
            "--work-dir", str(tmp_path / "work"), "--import-full", "none"]
  curve.main(common + ["--seeds", "1", "--out-dir", str(tmp_path / "a")])
  curve.main(common + ["--first-seed", "2", "--seeds", "3", "--out-dir", str(tmp_path / "b")])
  b = json.loads((tmp_path / "b" / "curve-synthetic.json").read_text())
  assert sorted(r["seed"] for r in b["runs"]) == [2, 3]
  curve.main(common + ["--seeds", "3", "--out-dir", str(tmp_path / "a"), "--no-run",
                       "--merge", str(tmp_path / "b" / "curve-synthetic.json")])
  a = json.loads((tmp_path / "a" / "curve-synthetic.json").read_text())
  assert a["summary"]["0.1"]["variants"]["finetune_only"]["seeds"] == [1, 2, 3]


def test_runs_recorded_before_a_config_field_was_added_stay_in_the_curve(tmp_path, monkeypatch):
  """A run whose key changed only because a field was added since with its default is
  neither rerun nor dropped from the tables; one of another recipe value is."""
  monkeypatch.setattr(curve, "run_child", lambda argv_: pytest.fail(f"reran {argv_}"))
  argv = ["--dataset", "synthetic", "--fractions", "0.1", "--variants", "finetune_only",
          "--seeds", "1", "--out-dir", str(tmp_path), "--work-dir", str(tmp_path / "w"),
          "--import-full", "none"]
  args = curve.parse_args(argv)
  model = run.load_model_config(curve.run_args(args, 0.1).model_config).to_dict()
  del model["encoder"]["id_dropout"]   # as recorded before the field existed
  old = {**_record(0.1, "finetune_only", 1, 0.1), "settings_key": "older",
         "model_config": model, "retrieval_config": {}}
  (tmp_path / "curve-synthetic.json").write_text(json.dumps({"runs": [old]}))
  curve.main(argv)
  result = json.loads((tmp_path / "curve-synthetic.json").read_text())
  assert list(result["summary"]) == ["0.1"] and len(result["runs"]) == 1
  assert result["runs"][0]["recorded_settings_key"] == "older"

  model["encoder"]["dropout"] += 0.1   # another recipe: out of the tables, and rerun
  (tmp_path / "curve-synthetic.json").write_text(json.dumps({"runs": [{**old, "model_config": model}]}))
  curve.main(argv + ["--no-run"])
  assert json.loads((tmp_path / "curve-synthetic.json").read_text())["summary"] == {}
