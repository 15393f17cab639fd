"""The nightly retrain benchmark: its three trainings per seed and its comparison tables."""

import json

import pytest

from bench.quality import nightly
from bench.quality import run


def _record(values, seconds=None, hr=0.1, shared=True):
  seconds = seconds or [10.0 * (i + 1) for i in range(len(values))]
  best = max(range(len(values)), key=lambda i: values[i])
  return {"finetune_history": {"val_NDCG@10": values}, "best_epoch": best + 1,
          "finetune_epochs_run": len(values), "epoch_end_seconds": seconds,
          "test": {"HR@10": hr, "NDCG@10": hr / 2, "MRR": 0.0}, "shared_cores": shared,
          "num_users": 5, "num_items": 7, "warm_start": {"items_kept": 6}}


SCRATCH = _record([0.02, 0.04, 0.05, 0.057, 0.06, 0.059, 0.058], hr=0.08)
WARM = _record([0.055, 0.058, 0.0605, 0.066], seconds=[12.0, 25.0, 37.0, 50.0], hr=0.09)


def test_compare_counts_the_warm_runs_epochs_to_the_scratch_runs_best():
  row = nightly.compare(SCRATCH, WARM)
  assert row["scratch_best"] == 0.06 and row["scratch_best_epoch"] == 5
  # 100%: scratch reached 0.06 at epoch 5; warm first reaches 0.06 at epoch 3.
  assert row["100%"] == {"scratch_epochs": 5, "warm_epochs": 3, "scratch_seconds": 50.0,
                         "warm_seconds": 37.0, "ratio": 0.6, "bar_met": False}
  # 95% of 0.06 = 0.057: scratch at epoch 4, warm at epoch 2 (0.058).
  assert row["95%"] == {"scratch_epochs": 4, "warm_epochs": 2, "scratch_seconds": 40.0,
                        "warm_seconds": 25.0, "ratio": 0.5, "bar_met": True}
  assert row["warm_best"] == 0.066 and row["warm_best_epoch"] == 4
  assert row["scratch_test"] == {"HR@10": 0.08, "NDCG@10": 0.04}
  assert row["warm_test"] == {"HR@10": 0.09, "NDCG@10": 0.045}
  assert row["warm_history"] == [0.055, 0.058, 0.0605, 0.066]


def test_a_warm_run_below_the_scratch_best_never_reaches_it():
  row = nightly.compare(SCRATCH, _record([0.05, 0.059, 0.058]))
  assert row["100%"]["warm_epochs"] is None and row["100%"]["ratio"] is None
  assert not row["100%"]["bar_met"] and row["95%"]["warm_epochs"] == 2
  summary = nightly.summarize({1: row, 2: nightly.compare(SCRATCH, WARM)})
  assert summary["100% warm_epochs"] == {"median": None, "mean": None}
  assert summary["95% warm_epochs"] == {"median": 2.0, "mean": 2.0}
  assert summary["95% bar_met"] == 2 and summary["100% bar_met"] == 0


def _result(rows):
  return {"meta": {"dataset": "toy", "recipe": "configs/toy.json", "patience": 5,
                   "warm": "warm", "commit": "abc", "date": "2026-12-01",
                   "machine": {"cpu": "cpu", "cores": 2}, "shared_cores": True},
          "rows": rows, "summary": nightly.summarize(rows)}


def test_markdown_has_a_row_per_seed_then_median_and_mean():
  fast = _record([0.06, 0.061, 0.05], seconds=[11.0, 22.0, 33.0])
  rows = {1: nightly.compare(SCRATCH, WARM), 2: nightly.compare(SCRATCH, fast)}
  three = nightly.summarize({**rows, 3: nightly.compare(SCRATCH, fast)})
  assert three["100% warm_epochs"] == {"median": 1.0, "mean": pytest.approx(5 / 3)}
  summary = nightly.summarize(rows)
  assert summary["100% ratio"] == {"median": pytest.approx(0.4), "mean": pytest.approx(0.4)}
  assert summary["100% warm_epochs"] == {"median": 2.0, "mean": 2.0}
  table = nightly.markdown(json.loads(json.dumps(_result(rows))))   # as read from the JSON
  assert "shared cores" in table
  assert ("| 1 | 0.0600 | 5 | 3 | 0.60 | no | 50 | 37 | 0.0800 / 0.0400 | 0.0900 / 0.0450 | "
          "0.0660 (4) |") in table
  assert "| 2 | 0.0600 | 5 | 1 | 0.20 | yes | 50 | 11 |" in table
  assert "| median | 0.0600 | 5 | 2 | 0.40 | 1 of 2 | 50 | 24 |" in table
  assert "| mean | 0.0600 | 5 | 2 | 0.40 | 1 of 2 | 50 | 24 |" in table
  assert "| 2 | 0.0600 | 4 | 1 | 0.25 | yes | 40 | 11 |" in table   # the 95% table
  assert "- seed 1: 0.0550, 0.0580, 0.0605, 0.0660\n" in table
  never = nightly.markdown(_result({1: nightly.compare(SCRATCH, _record([0.05]))}))
  assert "| 1 | 0.0600 | 5 | not reached | not reached | no | 50 | – |" in never


def test_each_seed_trains_day1_then_day2_warm_from_it_and_from_scratch(tmp_path, monkeypatch):
  calls = []

  def fake_run(args, variant, seed):
    calls.append((args, variant, seed))
    name = args.out_dir.split("/")[-1]
    return {"day1": _record([0.05]), "day2-scratch": SCRATCH, "day2-warm": WARM,
            "day2-warm-lr-0.0002": WARM}[name]

  monkeypatch.setattr(run, "run_or_reuse", fake_run)
  monkeypatch.setattr(run, "prepare_once", lambda args: None)
  out, results = tmp_path / "out", tmp_path / "res" / "nightly-beauty"
  assert nightly.main(["--dataset", "beauty", "--seeds", "1,2", "--out-dir", str(out),
                       "--results", str(results)]) == 0
  assert [(c[0].out_dir.split("/")[-1], c[2]) for c in calls] == [
      ("day1", 1), ("day2-warm", 1), ("day2-scratch", 1),
      ("day1", 2), ("day2-warm", 2), ("day2-scratch", 2)]
  day1, warm, scratch = (c[0] for c in calls[:3])
  assert day1.drop_last_items == 1 and not warm.drop_last_items and not scratch.drop_last_items
  assert day1.save_warm_start == warm.warm_start_from == nightly.day1_model(
      nightly.parse_args(["--out-dir", str(out)]), 1)
  assert scratch.warm_start_from is None and warm.save_warm_start is None
  assert day1.model_config == warm.model_config == scratch.model_config == run.recipe_path(
      "beauty")
  assert {c[1] for c in calls} == {"finetune_only"}
  assert calls[3][0].save_warm_start != day1.save_warm_start   # one day-1 model per seed
  saved = json.loads(results.with_suffix(".json").read_text())
  assert sorted(saved["rows"]) == ["1", "2"] and saved["summary"]["100% bar_met"] == 0
  assert saved["day1"]["1"]["best_val_NDCG@10"] == 0.05
  assert "| median | 0.0600 | 5 | 3 | 0.60 | 0 of 2 |" in results.with_suffix(".md").read_text()

  calls.clear()
  assert nightly.main(["--dataset", "beauty", "--seeds", "1", "--out-dir", str(out),
                       "--warm-learning-rate", "2e-4", "--results", str(results)]) == 0
  warm_lr = calls[1][0]
  assert warm_lr.out_dir.endswith("day2-warm-lr-0.0002")
  config = json.loads(warm_lr.model_config)
  recipe = run.load_model_config(run.recipe_path("beauty")).to_dict()
  assert config["warm_start"]["warm_learning_rate"] == 2e-4   # run_fn.warm_start_schedule's
  assert config["schedule"] == recipe["schedule"]
  assert {**config, "warm_start": None} == {**recipe, "warm_start": None}
  assert calls[2][0].model_config == run.recipe_path("beauty")   # scratch keeps the recipe
  assert nightly.parse_args(["--dataset", "lastfm", "--warm-learning-rate", "2e-4"]).results \
      .endswith("nightly-lastfm-warm-lr-0.0002")


@pytest.fixture(name="calls")
def _calls(monkeypatch):
  """The bench.quality.run args of each training a test's nightly run asks for."""
  calls = []
  monkeypatch.setattr(run, "run_or_reuse", lambda a, variant, seed: calls.append(a) or WARM)
  monkeypatch.setattr(run, "prepare_once", lambda args: None)
  return calls


def test_shrink_reaches_the_warm_runs_child_and_names_its_rows(tmp_path, calls):
  args = nightly.parse_args(["--dataset", "beauty", "--warm-shrink", "0.6",
                             "--out-dir", str(tmp_path)])
  assert args.results.endswith("nightly-beauty-warm-shrink-0.6")
  records = nightly.seed_records(args, 1)
  assert sorted(records) == ["day1", "nights", "scratch", "warm shrink 0.6"]
  day1, warm, scratch = calls
  assert warm.warm_start_shrink == 0.6
  assert day1.warm_start_shrink is scratch.warm_start_shrink is None
  # The flag sets the warm run's warm_start.shrink over the recipe's, as the Trainer reads it.
  assert run.run_model_config(warm).warm_start.shrink == 0.6
  assert run.run_model_config(scratch).warm_start.shrink == 0.7   # configs/beauty.json
  with pytest.raises(ValueError, match="WarmStartConfig.shrink must be in"):
    run.run_model_config(nightly._run_args(args, "x", ["--warm-start-shrink", "0"]))  # pylint: disable=protected-access
  # The recipe's shrink changes only the warm runs' key: day 1 and scratch keep theirs.
  recipe = run.load_model_config(run.recipe_path("beauty")).to_dict()
  unshrunk = json.dumps({**recipe, "warm_start": {**recipe["warm_start"], "shrink": 1.0}})
  for a in (day1, scratch, warm):
    other = run.parse_args(run._child_argv(a, "finetune_only", 1, "r.json")[3:]  # pylint: disable=protected-access
                           + ["--model-config", unshrunk])
    same = run._settings_key(a, "finetune_only") == run._settings_key(other, "finetune_only")  # pylint: disable=protected-access
    assert same == (a is not warm)
  assert warm.out_dir.endswith("day2-warm-shrink-0.6")
  child = run._child_argv(warm, "finetune_only", 1, "r.json")  # pylint: disable=protected-access
  assert child[child.index("--warm-start-shrink") + 1] == "0.6"
  assert "--warm-start-shrink" not in run._child_argv(scratch, "finetune_only", 1, "r.json")  # pylint: disable=protected-access


def test_no_run_prepares_no_data_and_tables_only_complete_seeds(tmp_path, monkeypatch):
  def no_data(args):
    raise AssertionError("--no-run rewrote a run's data")
  monkeypatch.setattr(run, "prepare_once", no_data)
  monkeypatch.setattr(run, "run_or_reuse", lambda a, variant, seed: {
      ("day1", 1): _record([0.05]), ("day2-scratch", 1): SCRATCH, ("day2-warm", 1): WARM,
      ("day1", 2): _record([0.05])}.get((a.out_dir.split("/")[-1], seed)))
  results = tmp_path / "nightly"
  assert nightly.main(["--seeds", "1,2", "--out-dir", str(tmp_path / "out"), "--no-run",
                       "--results", str(results)]) == 0
  saved = json.loads(results.with_suffix(".json").read_text())
  assert sorted(saved["rows"]) == ["1"] and sorted(saved["day1"]) == ["1", "2"]


def test_keep_and_schedule_reach_only_the_warm_runs_child_and_name_its_rows(tmp_path, calls):
  args = nightly.parse_args(["--dataset", "lastfm", "--warm-keep", "items",
                             "--warm-warmup-steps", "50", "--warm-decay-epochs", "4",
                             "--out-dir", str(tmp_path)])
  assert args.results.endswith("nightly-lastfm-warm-keep-items-warmup-50-cosine-4")
  records = nightly.seed_records(args, 1)
  assert sorted(records) == ["day1", "nights", "scratch", "warm keep items warmup 50 cosine 4"]
  day1, warm, scratch = calls
  assert warm.out_dir.endswith("day2-warm-keep-items-warmup-50-cosine-4")
  assert (warm.warm_start_keep, warm.warm_start_warmup_steps,
          warm.warm_start_decay_epochs) == ("items", 50, 4)
  child = run._child_argv(warm, "finetune_only", 1, "r.json")  # pylint: disable=protected-access
  for flag, value in (("--warm-start-keep", "items"), ("--warm-start-warmup-steps", "50"),
                      ("--warm-start-decay-epochs", "4")):
    assert child[child.index(flag) + 1] == value
  for other in (day1, scratch):   # their settings (and cached records) are the plain ones
    argv = run._child_argv(other, "finetune_only", 1, "r.json")  # pylint: disable=protected-access
    assert not any(a.startswith("--warm-start-") and a != "--warm-start-from" for a in argv)
  assert run._settings_key(warm, "finetune_only") != run._settings_key(  # pylint: disable=protected-access
      nightly._run_args(args, "x", ["--warm-start-from", warm.warm_start_from]),  # pylint: disable=protected-access
      "finetune_only")


def test_scratch_from_an_earlier_result_replaces_the_scratch_run_when_day1_matches(
    tmp_path, monkeypatch):
  trained = []
  day1 = {"day1": _record([0.05, 0.052])}

  def fake_run(args, variant, seed):
    name = args.out_dir.split("/")[-1]
    trained.append(name)
    return {**day1, "day2-scratch": SCRATCH, "day2-warm": WARM,
            "day2-warm-cosine-3": _record([0.059, 0.0601, 0.061])}[name]

  monkeypatch.setattr(run, "run_or_reuse", fake_run)
  monkeypatch.setattr(run, "prepare_once", lambda args: None)
  out, earlier = tmp_path / "out", tmp_path / "nightly-lastfm"
  assert nightly.main(["--dataset", "lastfm", "--seeds", "1", "--out-dir", str(out),
                       "--results", str(earlier)]) == 0
  trained.clear()
  later = tmp_path / "nightly-lastfm-warm-cosine-3"
  assert nightly.main(["--dataset", "lastfm", "--seeds", "1", "--out-dir", str(out),
                       "--warm-decay-epochs", "3", "--scratch-from", str(earlier) + ".json",
                       "--results", str(later)]) == 0
  assert trained == ["day1", "day2-warm-cosine-3"]   # no scratch run
  row = json.loads(later.with_suffix(".json").read_text())["rows"]["1"]
  assert row == json.loads(json.dumps(nightly.compare(SCRATCH, _record([0.059, 0.0601, 0.061]))))
  assert row["100%"]["warm_epochs"] == 2 and row["100%"]["scratch_epochs"] == 5
  assert "not rerun" in later.with_suffix(".md").read_text()

  day1["day1"] = _record([0.05, 0.051])   # another day 1: the scratch run would differ too
  with pytest.raises(ValueError, match="seed 1's day 1 reached 0.052000 at epoch 2"):
    nightly.main(["--dataset", "lastfm", "--seeds", "1", "--out-dir", str(out),
                  "--warm-decay-epochs", "3", "--scratch-from", str(earlier) + ".json",
                  "--results", str(later)])


def test_the_optimizer_flag_reaches_only_the_warm_runs_child_and_names_its_rows(tmp_path, calls):
  args = nightly.parse_args(["--dataset", "lastfm", "--warm-optimizer", "--warm-shrink", "0.45",
                             "--out-dir", str(tmp_path)])
  assert args.results.endswith("nightly-lastfm-warm-shrink-0.45-adam")
  assert sorted(nightly.seed_records(args, 1)) == ["day1", "nights", "scratch",
                                                   "warm shrink 0.45 adam"]
  day1, warm, scratch = calls
  assert warm.warm_start_optimizer and not day1.warm_start_optimizer
  child = run._child_argv(warm, "finetune_only", 1, "r.json")  # pylint: disable=protected-access
  assert run.parse_args(child[3:]).warm_start_optimizer
  scratch_argv = run._child_argv(scratch, "finetune_only", 1, "r.json")  # pylint: disable=protected-access
  assert "--warm-start-optimizer" not in scratch_argv
  # The recipe's warm_start.carry_optimizer decides unless a flag says either way.
  recipe = run.parse_args(["--dataset", "beauty"])
  assert run.run_model_config(recipe).warm_start.carry_optimizer   # configs/beauty.json
  assert run.run_model_config(run.parse_args(["--dataset", "lastfm"])).warm_start == (
      run.run_model_config(run.parse_args(["--dataset", "lastfm", "--no-warm-start-optimizer"]))
      .warm_start)
  assert run.run_model_config(run.parse_args(
      ["--dataset", "lastfm", "--warm-start-optimizer"])).warm_start.carry_optimizer
  off = nightly.parse_args(["--dataset", "beauty", "--no-warm-optimizer",
                            "--out-dir", str(tmp_path / "off")])
  assert off.results.endswith("nightly-beauty-warm-no-adam")
  child = run._child_argv(nightly._run_args(  # pylint: disable=protected-access
      off, "x", ["--warm-start-from", "m", *nightly.warm_options(off)]), "finetune_only", 1,
                          "r.json")
  assert "--no-warm-start-optimizer" in child
  assert not run.run_model_config(run.parse_args(child[3:])).warm_start.carry_optimizer


def test_targets_change_only_the_warm_runs_retrieval_config_and_name_its_rows(tmp_path, calls):
  args = nightly.parse_args(["--dataset", "lastfm", "--warm-targets", "last_position",
                             "--out-dir", str(tmp_path)])
  assert args.results.endswith("nightly-lastfm-warm-targets-last_position")
  nightly.seed_records(args, 1)
  children = [run.parse_args(run._child_argv(a, "finetune_only", 1, "r.json")[3:])  # pylint: disable=protected-access
              for a in calls]
  day1, warm, scratch = [run.retrieval_config_of(child).targets for child in children]
  assert (day1, warm, scratch) == ("prefixes", "last_position", "prefixes")
  assert len({run._settings_key(a, "finetune_only") for a in calls}) == 3  # pylint: disable=protected-access


def test_merge_joins_seeds_run_apart_and_refuses_another_setting_or_a_seed_twice(tmp_path,
                                                                               monkeypatch):
  monkeypatch.setattr(run, "prepare_once", lambda args: None)
  pieces = {}
  for seed in (1, 2):   # each seed in its own out-dir, as parallel runs are
    monkeypatch.setattr(run, "run_or_reuse", lambda a, variant, s: {
        "day1": _record([0.05]), "day2-scratch": SCRATCH, "day2-warm": WARM}.get(
            a.out_dir.split("/")[-1]))
    pieces[seed] = tmp_path / f"seed{seed}"
    assert nightly.main(["--seeds", str(seed), "--out-dir", str(tmp_path / f"out{seed}"),
                         "--results", str(pieces[seed])]) == 0
  merged = tmp_path / "merged"
  assert nightly.main(["--seeds", "1", "--out-dir", str(tmp_path / "out1"), "--no-run",
                       "--merge", f"{pieces[2]}.json", "--results", str(merged)]) == 0
  saved = json.loads(merged.with_suffix(".json").read_text())
  assert sorted(saved["rows"]) == ["1", "2"] and sorted(saved["day1"]) == ["1", "2"]
  assert "| median | 0.0600 | 5 | 3 | 0.60 | 0 of 2 |" in merged.with_suffix(".md").read_text()
  with pytest.raises(ValueError, match="seeds \\[1\\] are in this run's rows too"):
    nightly.main(["--seeds", "1", "--out-dir", str(tmp_path / "out1"), "--no-run",
                  "--merge", f"{pieces[1]}.json", "--results", str(merged)])
  with pytest.raises(ValueError, match="this run is .*'warm': 'warm adam'"):
    nightly.main(["--seeds", "1", "--out-dir", str(tmp_path / "out1"), "--no-run",
                  "--warm-optimizer", "--merge", f"{pieces[2]}.json", "--results", str(merged)])


def test_a_warm_epoch_makes_day1_save_every_epoch_and_the_warm_run_start_from_it(
    tmp_path, calls):
  args = nightly.parse_args(["--dataset", "beauty", "--warm-epoch", "4",
                             "--out-dir", str(tmp_path)])
  assert args.results.endswith("nightly-beauty-warm-epoch-4")
  assert sorted(nightly.seed_records(args, 1)) == ["day1", "nights", "scratch", "warm epoch 4"]
  day1, warm, scratch = calls
  assert day1.save_warm_start_each_epoch and not warm.save_warm_start_each_epoch
  assert (warm.warm_start_epoch, day1.warm_start_epoch, scratch.warm_start_epoch) == (4, 0, 0)
  plain = nightly._run_args(args, "day1", ["--drop-last-items", "1",  # pylint: disable=protected-access
                                           "--save-warm-start", day1.save_warm_start])
  assert run._settings_key(day1, "finetune_only") != run._settings_key(  # pylint: disable=protected-access
      plain, "finetune_only")   # the plain day 1 saved no epochs
  child = run.parse_args(run._child_argv(day1, "finetune_only", 1, "r.json")[3:])  # pylint: disable=protected-access
  assert child.save_warm_start_each_epoch


def test_a_chain_of_nights_starts_each_warm_run_from_the_night_befores_model(tmp_path,
                                                                            monkeypatch):
  calls = []
  night1 = _record([0.05, 0.055, 0.058], hr=0.07)
  monkeypatch.setattr(run, "prepare_once", lambda args: None)
  monkeypatch.setattr(run, "run_or_reuse", lambda a, variant, seed: calls.append(a) or {
      "day1-drop2": _record([0.04]), "chain2-night1-warm": night1, "day1": SCRATCH,
      "chain2-night2-warm": WARM, "day2-scratch": _record([0.05, 0.062])}[
          a.out_dir.split("/")[-1]])
  out, results = tmp_path / "out", tmp_path / "nightly-chain"
  assert nightly.main(["--dataset", "beauty", "--nights", "2", "--out-dir", str(out),
                       "--results", str(results)]) == 0
  names = [a.out_dir.split("/")[-1] for a in calls]
  assert names == ["day1-drop2", "chain2-night1-warm", "day1", "chain2-night2-warm",
                   "day2-scratch"]
  first, warm1, scratch1, warm2, scratch2 = calls
  assert [a.drop_last_items for a in calls] == [2, 1, 1, 0, 0]
  assert warm1.warm_start_from == first.save_warm_start
  assert warm2.warm_start_from == warm1.save_warm_start != first.save_warm_start
  assert warm2.save_warm_start is None and scratch2.save_warm_start is None
  assert scratch1.warm_start_from is None and scratch2.warm_start_from is None
  # Night 1's scratch run is the one-night benchmark's day 1, so its recorded run is reused.
  one_night = nightly.parse_args(["--dataset", "beauty", "--out-dir", str(out)])
  monkeypatch.setattr(run, "run_or_reuse", lambda a, variant, seed: calls.append(a) or WARM)
  calls.clear()
  nightly.seed_records(one_night, 1)
  assert run._settings_key(calls[0], "finetune_only") == run._settings_key(  # pylint: disable=protected-access
      scratch1, "finetune_only")
  saved = json.loads(results.with_suffix(".json").read_text())
  assert saved["meta"]["nights"] == 2
  row = saved["rows"]["1"]
  # The headline row is the last night's; each night is compared with its own scratch run.
  assert row["scratch_best"] == 0.062 and [n["scratch_best"] for n in row["nights"]] == [
      0.06, 0.062]
  assert row["nights"][0]["100%"]["warm_epochs"] is None   # night 1 peaked at 0.058 < 0.06
  assert row["nights"][1]["100%"]["warm_epochs"] == 4 and row["100%"]["warm_epochs"] == 4
  table = results.with_suffix(".md").read_text()
  assert "a chain of 2 nights" in table
  assert ("| 1 | 1 | 0.0600 (5) | 0.0500, 0.0550, 0.0580 | not reached | not reached | "
          "0.0800 / 0.0400 | 0.0700 / 0.0350 |") in table
  assert "| mean | 2 | 0.0620 | best 0.0660 | | bar met 0 of 1 |" in table
  assert nightly.parse_args(["--dataset", "beauty", "--nights", "2"]).results.endswith(
      "nightly-beauty-chain-2")
  for refused in (["--scratch-from", "x.json"], ["--warm-epoch", "5"], []):
    with pytest.raises(SystemExit):
      nightly.parse_args(["--nights", "2" if refused else "0", *refused])


def test_from_first_day_starts_every_nights_warm_run_from_the_first_days_model(tmp_path, calls):
  args = nightly.parse_args(["--dataset", "beauty", "--nights", "3", "--from-first-day",
                             "--out-dir", str(tmp_path)])
  assert args.results.endswith("nightly-beauty-chain-3-from-day1")
  nightly.seed_records(args, 1)
  first, *rest = calls
  warm = [a for a in rest if a.warm_start_from]
  assert [a.out_dir.split("/")[-1] for a in warm] == [
      "chain3-night1-warm", "chain3-night2-from-day1-warm", "chain3-night3-from-day1-warm"]
  assert {a.warm_start_from for a in warm} == {first.save_warm_start}
  assert [a.drop_last_items for a in warm] == [2, 1, 0]
  # Only night 1's model is read again (it is the plain chain's night 1, folder and key).
  assert [bool(a.save_warm_start) for a in warm] == [True, False, False]
  with pytest.raises(SystemExit):
    nightly.parse_args(["--from-first-day"])
