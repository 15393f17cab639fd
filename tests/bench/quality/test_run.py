"""The quality benchmark's data preparation and report (the training it drives is tested elsewhere)."""

import dataclasses
import json
import os
import pathlib
import shlex
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from bench.quality import data as data_lib
from bench.quality import run
from trainer import features
from trainer import inputs
from trainer.config import EncoderConfig
from trainer.config import RetrievalConfig
from trainer.config import load_model_config
from trainer.pretraining.config import PretrainConfig
from trainer.retrieval import RetrievalModel


REPO = pathlib.Path(run.__file__).resolve().parents[2]


def _s3rec_folder(tmp_path):
  folder = tmp_path / "toy"
  folder.mkdir()
  (folder / "Toy.txt").write_text("1 10 11 12 13\n2 11 12 14\n3 10 14\n")
  (folder / "Toy_item2attributes.json").write_text(json.dumps(
      {"10": [1], "11": [1, 2], "12": [], "13": [3], "14": [2]}))
  return folder


def test_leave_one_out_splits_vocabulary_and_attributes(tmp_path, monkeypatch):
  monkeypatch.setitem(data_lib.DATASETS, "toy", ("s3rec", str(_s3rec_folder(tmp_path))))
  data = data_lib.prepare("toy", str(tmp_path / "work"))
  # User 3 has only 2 items and is dropped.
  assert data.num_users == 2 and data.num_items == 5
  vocab = (tmp_path / "work" / "item_vocab.txt").read_text().split()
  # Training-part frequency first (11 twice), then ids.
  assert vocab[0] == "11"
  seq = [vocab[i] for i in data.histories["test"][0]] + [vocab[data.targets["test"][0]]]
  assert seq == ["10", "11", "12", "13"]
  assert [vocab[i] for i in data.histories["eval"][0]] == ["10", "11"]
  assert vocab[data.targets["eval"][0]] == "12"
  assert [vocab[i] for i in data.histories["train"][1]] == []
  assert vocab[data.targets["train"][1]] == "11"
  assert data.attributes.num_items == 5 and data.attributes.num_items_with_attributes == 4
  # The Trainer's input pipeline reads the files: user 1 learns 10 -> 11.
  batch = next(iter(inputs.make_dataset(data.files[features.TRAIN_SPLIT], data_lib.SPEC,
                                        data.num_items, 4, 8, training=False,
                                        bucket_by_length=False)))
  assert batch["labels"].numpy()[0, -1] == vocab.index("11")
  assert data.train_labels == 1


def test_cold_items_leave_the_sequences_but_stay_test_targets_and_candidates(tmp_path,
                                                                           monkeypatch):
  # Fraction 0.2, seed 20: of 10..14 only 12 is held out.
  folder = tmp_path / "cold"
  folder.mkdir()
  (folder / "Toy.txt").write_text("1 10 11 12 13\n2 11 12 14 10\n5 10 11 14 12\n")
  (folder / "Toy_item2attributes.json").write_text("{}")
  monkeypatch.setitem(data_lib.DATASETS, "cold", ("s3rec", str(folder)))
  data = data_lib.prepare("cold", str(tmp_path / "work"), cold_item_fraction=0.2,
                          cold_item_seed=20)
  vocab = (tmp_path / "work" / "item_vocab.txt").read_text().split()
  assert sorted(vocab) == ["10", "11", "12", "13", "14"]
  assert data.cold_items == {vocab.index("12")}
  test = {vocab[t]: [vocab[i] for i in h]
          for h, t in zip(data.histories["test"], data.targets["test"])}
  assert test == {"13": ["10", "11"], "10": ["11", "14"], "12": ["10", "11", "14"]}
  for split in ("train", "eval"):
    seen = {i for h in data.histories[split] for i in h} | set(data.targets[split].tolist())
    assert vocab.index("12") not in seen, split
  ranks = np.array([1.0, 2.0, 20.0])
  cold = data.targets["test"] == vocab.index("12")
  slices_ = run.cold_slices(data, ranks)
  assert slices_["cold_start:cold_items"]["num_users"] == 1
  assert slices_["cold_start:cold_items"]["HR@10"] == float(ranks[cold][0] <= 10)
  assert slices_["cold_start:warm_items"]["num_users"] == 2
  everything = run.test_slices(data, run.train_counts(data), ranks)   # the same slices
  assert slices_ == {name: everything[name] for name in run.COLD_SLICES}
  off = data_lib.prepare("cold", str(tmp_path / "off"))
  assert not off.cold_items and off.num_users == 3


def test_cold_item_runs_have_their_own_key_and_table():
  key = run._settings_key   # pylint: disable=protected-access
  base = run.parse_args(["--dataset", "beauty"])
  assert key(base, "finetune_only") == key(
      run.parse_args(["--dataset", "beauty", "--cold-item-seed", "3"]), "finetune_only")
  cold = run.parse_args(["--dataset", "beauty", "--cold-item-fraction", "0.1"])
  assert key(base, "finetune_only") != key(cold, "finetune_only")
  assert "0.1" in run._child_argv(cold, "finetune_only", 1, "r.json")  # pylint: disable=protected-access
  slice_metrics = {name: {"HR@10": 0.5, "NDCG@10": 0.25} for name in run.COLD_SLICES}
  runs = [{"variant": "finetune_only", "seed": s, "test": {k: 0.1 for k in
                                                          ("HR@10", "NDCG@10", "HR@20",
                                                           "NDCG@20", "MRR")},
           "test_slices": slice_metrics, "median_epoch_seconds": 1.0,
           "train_predictions_per_second": 1.0, "peak_rss_mb": 1.0, "finetune_seconds": 1.0,
           "best_epoch": 1, "finetune_history": {"val_NDCG@10": [0.1]}} for s in (1, 2)]
  summary = run.aggregate(runs)
  assert summary["finetune_only"]["cold_start:cold_items NDCG@10"] == {"mean": 0.25, "std": 0.0}
  table = run.markdown({"summary": summary, "meta": {
      "dataset": "x", "num_users": 1, "num_items": 1, "commit": "c", "date": "d",
      "machine": {"cpu": "cpu", "cores": 2}}})
  assert "| model | cold_start:cold_items HR@10 | cold_start:cold_items NDCG@10 |" in table
  assert "| finetune_only | 0.5000 ± 0.0000 | 0.2500 ± 0.0000 |" in table


def test_aggregate_and_table():
  def record(variant, seed, hr):
    return {"variant": variant, "seed": seed,
            "test": {"HR@10": hr, "NDCG@10": hr / 2, "HR@20": hr, "NDCG@20": hr / 2,
                     "MRR": hr / 3},
            "median_epoch_seconds": 10.0, "train_predictions_per_second": 1000.0,
            "peak_rss_mb": 900.0, "finetune_seconds": 100.0, "best_epoch": 7,
            "finetune_history": {"val_NDCG@10": [0.01, hr / 2 * 0.96, hr / 2]}}
  runs = [record("finetune_only", 1, 0.08), record("finetune_only", 2, 0.10),
          record("pretrain_finetune_ssl", 1, 0.11), record("finetune_ssl", 1, 0.07),
          record("finetune_ssl", 2, 0.07)]
  summary = run.aggregate(runs)
  assert np.isclose(summary["finetune_only"]["HR@10"]["mean"], 0.09)
  assert np.isclose(summary["finetune_only"]["HR@10"]["std"], np.std([0.08, 0.10], ddof=1))
  table = run.markdown({"summary": summary, "meta": {
      "dataset": "beauty", "num_users": 2, "num_items": 5, "commit": "abc",
      "machine": {"cpu": "cpu", "cores": 2}, "date": "2026-11-28"}})
  assert "| finetune_only | 2 | 0.0900 ± 0.0141 |" in table
  assert summary["finetune_only"]["epochs_to_95"] == 2
  assert "| pretrain_finetune_ssl | 1 | 0.1100 |" in table
  assert "| finetune_ssl | 2 | 0.0700 ± 0.0000 |" in table   # a spread of 0 is still shown
  assert "BSARec" in table


def test_epochs_to_reach_is_the_first_epoch_within_the_fraction_of_the_best():
  history = {"val_NDCG@10": [0.02, 0.05, 0.058, 0.061, 0.06]}
  assert run.epochs_to_reach(history) == 3            # 0.058 >= 0.95 * 0.061
  assert run.epochs_to_reach(history, fraction=1.0) == 4
  assert run.epochs_to_reach({"val_NDCG@10": [0.0]}) == 1


def test_epochs_to_reach_another_runs_best_or_none_when_never_reached():
  history = {"val_NDCG@10": [0.02, 0.05, 0.058, 0.061, 0.06]}
  assert run.epochs_to_reach(history, 1.0, best=0.055) == 3
  assert run.epochs_to_reach(history, 0.95, best=0.0631) == 4   # 0.061 >= 0.0599
  assert run.epochs_to_reach(history, 1.0, best=0.0611) is None


def test_day1_runs_have_their_own_key_and_child_option():
  key = run._settings_key   # pylint: disable=protected-access
  base = run.parse_args(["--dataset", "beauty"])
  day1 = run.parse_args(["--dataset", "beauty", "--drop-last-items", "1"])
  assert key(base, "finetune_only") != key(day1, "finetune_only")
  child = run._child_argv(day1, "finetune_only", 1, "r.json")  # pylint: disable=protected-access
  assert child[child.index("--drop-last-items") + 1] == "1"
  assert "--drop-last-items" not in run._child_argv(base, "finetune_only", 1, "r.json")  # pylint: disable=protected-access
  assert run._cold_args(day1)["drop_last"] == 1   # pylint: disable=protected-access


def test_cached_runs_depend_only_on_the_settings_their_variant_uses():
  base = run.parse_args(["--dataset", "beauty"])
  longer_pretraining = run.parse_args(["--dataset", "beauty", "--pretrain-epochs", "50"])
  other_auxiliary = run.parse_args(["--dataset", "beauty", "--auxiliary-config", "{}"])
  other_model = run.parse_args(["--dataset", "beauty", "--model-config", '{"dropout": 0.3}'])
  key = run._settings_key   # pylint: disable=protected-access
  assert key(base, "finetune_only") == key(longer_pretraining, "finetune_only")
  assert key(base, "finetune_only") == key(other_auxiliary, "finetune_only")
  assert key(base, "finetune_only") != key(other_model, "finetune_only")
  assert key(base, "pretrain_finetune") != key(longer_pretraining, "pretrain_finetune")
  assert key(base, "pretrain_finetune") == key(other_auxiliary, "pretrain_finetune")
  assert key(base, "finetune_ssl") != key(other_auxiliary, "finetune_ssl")


def test_default_variants_are_the_headline_and_one_ablation_per_pretraining_objective():
  used = [name for name in run.OBJECTIVES if getattr(PretrainConfig(), f"{name}_weight") > 0]
  assert used   # the default pre-training recipe has objectives to ablate
  assert run.DEFAULT_VARIANTS == run.HEADLINE + tuple(
      f"pretrain_finetune_without_{name}" for name in used)
  for name in used:
    variant = run.VARIANTS[f"pretrain_finetune_without_{name}"]
    assert variant.pretrain and not variant.auxiliary and variant.without == name


def _encoder(args):
  return load_model_config(args.model_config).encoder


def test_default_fine_tuning_recipes_are_valid_bidirectional_prefix_models():
  for dataset in sorted(data_lib.DATASETS):
    args = run.parse_args(["--dataset", dataset])
    encoder_config = _encoder(args)
    retrieval_config = RetrievalConfig.from_json(args.retrieval_config)
    assert encoder_config.attention == "bidirectional" and retrieval_config.targets == "prefixes"
    RetrievalModel(7, dataclasses.replace(encoder_config, max_seq_len=4), retrieval_config)
  # Beauty's recipe adds the frequency filter; an explicit --model-config wins.
  assert _encoder(run.parse_args(["--dataset", "beauty"])).filter_weight > 0
  assert _encoder(run.parse_args(["--dataset", "lastfm"])).filter_weight == 0
  assert run.parse_args(["--dataset", "beauty", "--model-config", "{}"]).model_config == "{}"


def test_each_recipe_file_is_a_valid_model_config():
  recipes = sorted((REPO / "configs").glob("*.json"))
  assert {path.stem for path in recipes} >= {"default", "beauty", "lastfm"}
  for path in recipes:
    load_model_config(str(path))
  assert run.recipe_path("beauty") == os.path.relpath(REPO / "configs" / "beauty.json")
  assert run.recipe_path("ml-100k") == os.path.relpath(REPO / "configs" / "default.json")


def test_make_run_beauty_and_the_benchmark_read_the_same_recipe_file():
  makefile = (REPO / "Makefile").read_text()
  command = shlex.split(makefile.split("\nrun-beauty:", 1)[1].split("\n")[1])
  recipe = REPO / command[command.index("--model-config") + 1]
  assert recipe.samefile(run.parse_args(["--dataset", "beauty"]).model_config)


def test_no_run_tables_the_recorded_runs_and_trains_nothing(tmp_path, monkeypatch):
  monkeypatch.setitem(data_lib.DATASETS, "toy", ("s3rec", str(_s3rec_folder(tmp_path))))
  argv = ["--dataset", "toy", "--variants", "finetune_only,pretrain_finetune", "--seeds", "2",
          "--out-dir", str(tmp_path / "out"), "--no-run"]
  args = run.parse_args(argv)
  record = {"variant": "finetune_only", "seed": 1,
            "test": {"HR@10": 0.5, "NDCG@10": 0.25, "HR@20": 0.5, "NDCG@20": 0.25, "MRR": 0.2},
            "median_epoch_seconds": 1.0, "train_predictions_per_second": 10.0,
            "peak_rss_mb": 100.0, "finetune_seconds": 5.0, "best_epoch": 3,
            "finetune_history": {"val_NDCG@10": [0.1, 0.2, 0.25]}}
  (tmp_path / "out" / "runs").mkdir(parents=True)
  name = f"finetune_only-seed1-{run._settings_key(args, 'finetune_only')}.json"   # pylint: disable=protected-access
  (tmp_path / "out" / "runs" / name).write_text(json.dumps(record))

  def no_training(*unused_args, **unused_kwargs):
    raise AssertionError("--no-run started a training run")
  monkeypatch.setattr(run, "_child_argv", no_training)
  assert run.main(argv) == 0
  result = json.loads((tmp_path / "out" / "results.json").read_text())
  assert [(r["variant"], r["seed"]) for r in result["runs"]] == [("finetune_only", 1)]
  assert "| finetune_only | 1 | 0.5000 |" in (tmp_path / "out" / "results.md").read_text()


def test_jobs_train_runs_at_once_and_table_them_in_order(tmp_path, monkeypatch):
  monkeypatch.setitem(data_lib.DATASETS, "toy", ("s3rec", str(_s3rec_folder(tmp_path))))
  together = threading.Barrier(3, timeout=30)   # passes only with 3 runs at once

  def fake_run(unused_args, variant, seed):
    together.wait()
    time.sleep(0.1 * (3 - seed))   # later seeds finish first
    return {"variant": variant, "seed": seed,
            "test": {"HR@10": 0.1 * seed, "NDCG@10": 0.1, "HR@20": 0.1, "NDCG@20": 0.1,
                     "MRR": 0.1},
            "median_epoch_seconds": 1.0, "train_predictions_per_second": 1.0,
            "peak_rss_mb": 1.0, "finetune_seconds": 1.0, "best_epoch": 1,
            "finetune_history": {"val_NDCG@10": [0.1]}}
  monkeypatch.setattr(run, "run_or_reuse", fake_run)
  assert run.main(["--dataset", "toy", "--variants", "finetune_only", "--seeds", "3",
                   "--jobs", "3", "--out-dir", str(tmp_path / "out")]) == 0
  result = json.loads((tmp_path / "out" / "results.json").read_text())
  assert [r["seed"] for r in result["runs"]] == [1, 2, 3]
  with pytest.raises(SystemExit):
    run.parse_args(["--jobs", "0"])


def test_epoch_timings_say_whether_the_cores_were_shared():
  assert not run.is_shared([[1.9, 2.4]], cores=2)
  assert run.is_shared([[1.9, 2.4], [2.0, 3.1]], cores=2)
  runs = [{"variant": "finetune_only", "seed": 1, "shared_cores": shared,
           "test": {k: 0.1 for k in ("HR@10", "NDCG@10", "HR@20", "NDCG@20", "MRR")},
           "median_epoch_seconds": 12.0, "train_predictions_per_second": 1.0,
           "peak_rss_mb": 1.0, "finetune_seconds": 1.0, "best_epoch": 1,
           "finetune_history": {"val_NDCG@10": [0.1]}} for shared in (False, None)]
  meta = {"dataset": "x", "num_users": 1, "num_items": 1, "commit": "c", "date": "d",
          "machine": {"cpu": "cpu", "cores": 2}}
  alone = run.markdown({"summary": run.aggregate(runs[:1]), "meta": meta})
  assert "| 12.0 alone |" in alone
  del runs[1]["shared_cores"]   # recorded before the load was: counts as shared
  assert "| 12.0 shared |" in run.markdown({"summary": run.aggregate(runs), "meta": meta})


def test_speed_settings_change_the_run_key_only_when_set():
  key = run._settings_key   # pylint: disable=protected-access
  base = run.parse_args(["--dataset", "ml-100k"])   # configs/default.json: no speed field set
  recipe = load_model_config(base.model_config).to_dict()
  model_key = run._model_key(load_model_config(base.model_config))   # pylint: disable=protected-access
  # Omitted at the values runs had before the setting existed; the default optimizer is new.
  assert set(recipe["schedule"]) - set(model_key["schedule"]) == {"mixed_precision",
                                                                   "jit_compile"}
  assert model_key["schedule"]["optimizer"] == "fused_adam"
  plain_adam = run.parse_args(["--dataset", "ml-100k", "--model-config", json.dumps(
      {**recipe, "schedule": {**recipe["schedule"], "optimizer": "adam"}})])
  assert "optimizer" not in run._model_key(load_model_config(plain_adam.model_config))[   # pylint: disable=protected-access
      "schedule"]
  bf16 = run.parse_args(["--dataset", "ml-100k", "--model-config",
                         json.dumps({**recipe, "schedule": {**recipe["schedule"],
                                                            "mixed_precision": "bfloat16"}})])
  assert key(base, "finetune_only") != key(bf16, "finetune_only")
  # warm_start.carry_optimizer: likewise omitted at its default, so older runs keep their key
  assert "carry_optimizer" not in model_key["warm_start"] and "shrink" not in model_key[
      "warm_start"]
  carry = run.parse_args(["--dataset", "ml-100k", "--model-config", json.dumps(
      {**recipe, "warm_start": {"carry_optimizer": True}})])
  assert key(base, "finetune_only") != key(carry, "finetune_only")


def _attribute_users(tmp_path, users=24):
  folder = tmp_path / "attr"
  folder.mkdir()
  lines = [f"{u} " + " ".join(str(100 + (u * 5 + 3 * j) % 11) for j in range(4 + u % 4))
           for u in range(1, users + 1)]
  (folder / "Attr.txt").write_text("\n".join(lines) + "\n")
  (folder / "Attr_item2attributes.json").write_text(json.dumps(
      {str(100 + i): [i % 3] for i in range(11)}))
  return folder


TINY = ["--model-config", '{"embedding_dim": 8, "ff_dim": 8, "max_seq_len": 8, "batch_size": 8}',
        "--pretrain-config", '{"batch_size": 8, "num_clusters": 2, "kmeans_iterations": 2}',
        "--pretrain-epochs", "1", "--finetune-epochs", "1", "--patience", "1"]


def _one_run(tmp_path, *extra):
  return run.parse_args(["--dataset", "attr", *TINY, "--variant", "pretrain_finetune",
                         "--seed", "1", "--out-dir", str(tmp_path / "out"),
                         "--train-user-fraction", "0.25", *extra])


def test_sampled_fine_tuning_pre_trains_on_every_user_and_slices_by_the_full_split(
    tmp_path, monkeypatch):
  monkeypatch.setitem(data_lib.DATASETS, "attr", ("s3rec", str(_attribute_users(tmp_path))))
  pretrained_on, counted = [], []
  real_pretrain, real_assign = run.pretrain, run.slices.assign
  monkeypatch.setattr(run, "pretrain", lambda files, *a, **k: (
      pretrained_on.append(files), real_pretrain(files, *a, **k))[1])
  monkeypatch.setattr(run.slices, "assign", lambda lengths, targets, counts, *a: (
      counted.append(dict(counts)), real_assign(lengths, targets, counts, *a))[1])
  record = run.run_one(_one_run(tmp_path))
  full = data_lib.prepare("attr", str(tmp_path / "full"))
  assert record["train_users"] == 6 and record["num_users"] == 24
  assert pretrained_on == [str(tmp_path / "out" / "work" / "data" / "train.tfrecord.gz")]
  assert counted == [run.train_counts(full)]
  assert set(record["test_slices"]) == set(run.slices.slice_names()) - set(run.COLD_SLICES)
  assert sum(record["test_slices"][f"popularity:{band}"]["num_users"]
             for band in ("head", "torso", "tail")) == 24


def test_train_counts_count_histories_and_targets():
  data = data_lib.BenchData(name="x", num_items=4, num_users=2, num_interactions=0, files={},
                            histories={"train": [[0, 1], []]},
                            targets={"train": np.array([1, 3])}, attributes=None,
                            train_labels=0)
  assert run.train_counts(data) == {0: 1, 1: 2, 3: 1}


def test_saved_pre_training_is_the_one_fine_tuning_took(tmp_path, monkeypatch):
  monkeypatch.setitem(data_lib.DATASETS, "attr", ("s3rec", str(_attribute_users(tmp_path))))
  made, transferred = [], []
  real_pretrain, real_transfer = run._pretrain, run.Pretrained.transfer_to  # pylint: disable=protected-access
  monkeypatch.setattr(run, "_pretrain", lambda *a: made.append(real_pretrain(*a)) or made[-1])

  def transfer_to(self, model):
    real_transfer(self, model)
    attributes = model.attribute_table.embeddings.numpy()
    transferred.append((model.encoder.get_weights(), attributes))

  monkeypatch.setattr(run.Pretrained, "transfer_to", transfer_to)
  folder = str(tmp_path / "pretrained")
  first = run.run_one(_one_run(tmp_path, "--save-pretrained", folder))
  loaded = run.Pretrained.load(folder)
  assert len(made) == 1 and made[0].attribute_embeddings is not None
  assert len(loaded.encoder_weights) == len(made[0].encoder_weights)
  for saved, kept in zip(loaded.encoder_weights, made[0].encoder_weights):
    np.testing.assert_array_equal(saved, kept)
  np.testing.assert_array_equal(loaded.attribute_embeddings, made[0].attribute_embeddings)
  assert loaded.record == json.loads(json.dumps(made[0].record))
  again = run.run_one(_one_run(tmp_path, "--pretrained-from", folder))
  assert len(made) == 1 and again["pretrained_from"] == folder   # not pre-trained again
  assert again["pretrain_seconds"] == first["pretrain_seconds"]
  assert again["test"] == first["test"]
  for weights, attributes in transferred:   # what fine-tuning started from, both times
    for got, saved in zip(weights, loaded.encoder_weights):
      np.testing.assert_array_equal(got, saved)
    np.testing.assert_array_equal(attributes, loaded.attribute_embeddings)
  assert len(transferred) == 2
  other = _one_run(tmp_path, "--pretrained-from", folder)
  other.pretrain_epochs = 2
  with pytest.raises(ValueError, match="pre-trained with"):
    run.run_one(other)
def test_epoch_timer_records_each_epochs_end_from_the_start_of_training():
  import tensorflow as tf   # pylint: disable=import-outside-toplevel

  class Slow(tf.keras.callbacks.Callback):   # stands in for validation after the timer
    def on_epoch_end(self, epoch, logs=None):
      time.sleep(0.05)

  model = tf.keras.Sequential([tf.keras.layers.Dense(1)])
  model.compile(optimizer="sgd", loss="mse")
  timer = run.EpochTimer()
  model.fit(np.zeros((4, 2)), np.zeros((4, 1)), epochs=3, verbose=0, callbacks=[timer, Slow()])
  assert len(timer.seconds) == len(timer.ends) == 3
  assert all(b - a >= 0.05 for a, b in zip([0.0] + timer.ends, timer.ends))
  assert all(end >= sum(timer.seconds[:i + 1]) for i, end in enumerate(timer.ends))


def _key_args(*extra):
  return run.parse_args(["--dataset", "lastfm", "--pretrain-epochs", "200", *extra])


def test_pretrained_key_keeps_through_an_added_default_field_and_fine_tuning_settings(
    monkeypatch):
  key = run.pretrained_key(_key_args(), "pretrain_finetune", 1)

  @dataclasses.dataclass
  class NewEncoder(EncoderConfig):
    new_field: int = 3

  @dataclasses.dataclass
  class NewPretrain(PretrainConfig):
    new_weight: float = 0.0

  real_load = run.load_model_config

  def load_with_new_field(source):
    config = real_load(source)
    config.encoder = NewEncoder(**dataclasses.asdict(config.encoder))
    return config

  monkeypatch.setattr(run, "load_model_config", load_with_new_field)
  monkeypatch.setattr(run, "PretrainConfig", NewPretrain)
  assert "new_field" in load_with_new_field(_key_args().model_config).encoder.to_dict()
  assert "new_weight" in run.pretrain_config_of(_key_args(), "pretrain_finetune", 1).to_dict()
  assert run.pretrained_key(_key_args(), "pretrain_finetune", 1) == key
  # Fine-tuning settings do not touch the pre-trained weights.
  recipe = load_model_config(_key_args().model_config).to_dict()
  recipe["schedule"]["learning_rate"] = 5e-4
  recipe["early_stopping_patience"] = 7
  for extra in (["--finetune-epochs", "30"], ["--patience", "9"],
                ["--train-user-fraction", "0.05"],
                ["--retrieval-config", '{"targets": "last_position"}'],
                ["--model-config", json.dumps(recipe)]):
    assert run.pretrained_key(_key_args(*extra), "pretrain_finetune", 1) == key, extra


def test_pretrained_key_changes_with_what_the_pre_training_depends_on():
  key = run.pretrained_key(_key_args(), "pretrain_finetune", 1)
  recipe = load_model_config(_key_args().model_config).to_dict()
  changed = [run.pretrained_key(_key_args(), "pretrain_finetune", 2),
             run.pretrained_key(_key_args(), run.DEFAULT_VARIANTS[2], 1),   # an ablation
             run.pretrained_key(_key_args("--pretrain-epochs", "100"), "pretrain_finetune", 1),
             run.pretrained_key(_key_args("--pretrain-config", '{"mask_probability": 0.3}'),
                                "pretrain_finetune", 1),
             run.pretrained_key(_key_args("--model-config", json.dumps(
                 {**recipe, "encoder": {**recipe["encoder"], "dropout": 0.2}})),
                 "pretrain_finetune", 1),
             run.pretrained_key(_key_args("--data-dir", "/elsewhere"), "pretrain_finetune", 1),
             run.pretrained_key(_key_args("--cold-item-fraction", "0.1"), "pretrain_finetune", 1)]
  assert len({key, *changed}) == len(changed) + 1


def test_a_saved_pre_training_differs_on_the_fields_both_name():
  encoder, pretrain = load_model_config(None).encoder, PretrainConfig()
  saved = run.Pretrained([], None, {"encoder_config": encoder.to_dict(),
                                    "pretrain_config": pretrain.to_dict()})
  assert saved.differences(encoder, pretrain) == {}
  # A default changed since the save: the key is the same, the full saved configs differ.
  assert saved.differences(dataclasses.replace(encoder, dropout=0.3), pretrain) == {
      "encoder_config.dropout": (encoder.dropout, 0.3)}
  older = run.Pretrained([], None, {"pretrain_config": {
      k: v for k, v in pretrain.to_dict().items() if k != "clustering_weight"}})
  assert older.differences(encoder, pretrain) == {}   # a field added since: not a difference


def test_with_newest_adds_repeated_passes_over_the_newest_rows_spread_over_the_epoch():
  prefixes = tf.data.Dataset.range(100).map(lambda i: {"b": i}).batch(1)
  newest = tf.data.Dataset.range(100, 120).map(lambda i: {"b": i}).batch(1)
  mixed = run.with_newest(prefixes, newest, 3, seed=1)
  for _ in range(2):   # every epoch, every batch of both: the prefixes once, the newest 3 times
    seen = [int(x["b"][0]) for x in mixed]
    assert sorted(seen) == sorted(list(range(100)) + 3 * list(range(100, 120)))
  positions = [i for i, b in enumerate(seen) if b >= 100]
  assert positions[0] < 40 and positions[-1] > 120   # spread, not all at one end


def test_newest_repeats_reach_only_the_warm_runs_child():
  args = run.parse_args(["--dataset", "synthetic", "--warm-start-from", "m",
                         "--warm-start-newest-repeats", "4"])
  child = run.parse_args(run._child_argv(args, "finetune_only", 1, "r.json")[3:])  # pylint: disable=protected-access
  assert child.warm_start_newest_repeats == 4
  plain = run.parse_args(["--dataset", "synthetic", "--warm-start-from", "m"])
  assert run._settings_key(args, "finetune_only") != run._settings_key(plain, "finetune_only")  # pylint: disable=protected-access


def test_a_training_sequence_read_as_an_evaluation_row_is_its_newest_prefix_row():
  history = tf.ragged.constant([[3, 1, 4, 1, 5], [9, 2]], dtype=tf.int64)
  target = tf.constant([6, 7], tf.int64)
  p_inputs, p_labels = inputs.batch_prefix_pairs(history, target, oov_index=20, max_seq_len=4)
  e_inputs, e_labels = inputs.batch_eval_pairs(history, target, oov_index=20, max_seq_len=4)
  newest = [4, 6]   # each sequence's last prefix row: 5 rows of the first, 2 of the second
  np.testing.assert_array_equal(tf.gather(p_inputs, newest), e_inputs)
  np.testing.assert_array_equal(tf.gather(p_labels, newest), e_labels)


def test_each_epochs_weights_are_saved_and_a_warm_run_starts_from_the_one_asked_for(
    tmp_path, monkeypatch):
  monkeypatch.setitem(data_lib.DATASETS, "attr", ("s3rec", str(_attribute_users(tmp_path))))
  model = str(tmp_path / "day1" / "serving")
  day1 = run.run_one(run.parse_args([
      "--dataset", "attr", *TINY, "--finetune-epochs", "3", "--patience", "5",
      "--variant", "finetune_only", "--seed", "1", "--out-dir", str(tmp_path / "out"),
      "--save-warm-start", model, "--save-warm-start-each-epoch"]))
  epochs = [run.warm_start.saved_weights(run.epoch_model(model, n)) for n in (1, 2, 3)]
  assert not os.path.exists(run.warm_start.warm_start_dir(run.epoch_model(model, 4)))
  assert any(not np.array_equal(a, b) for a, b in zip(epochs[0], epochs[2]))   # not one copy
  for final, best in zip(run.warm_start.saved_weights(model), epochs[day1["best_epoch"] - 1]):
    np.testing.assert_array_equal(final, best)   # the final save is the best epoch's

  sources = []
  real_restore = run.warm_start.restore
  monkeypatch.setattr(run.warm_start, "restore",
                      lambda m, vocab, base, *a, **k: sources.append(base) or real_restore(
                          m, vocab, base, *a, **k))

  def warm(*extra):
    return run.parse_args(["--dataset", "attr", *TINY, "--variant", "finetune_only", "--seed",
                           "1", "--out-dir", str(tmp_path / "out"), "--warm-start-from", model,
                           *extra])
  record = run.run_one(warm("--warm-start-epoch", "1"))
  assert sources == [run.epoch_model(model, 1)] and record["warm_start"]["weights"] > 0
  with pytest.raises(ValueError, match="--warm-start-epoch 4: no .*epoch-4"):
    run.run_one(warm("--warm-start-epoch", "4"))
  child = warm("--warm-start-epoch", "2")
  assert run.parse_args(run._child_argv(child, "finetune_only", 1, "r.json")[3:]  # pylint: disable=protected-access
                        ).warm_start_epoch == 2
  assert run._settings_key(child, "finetune_only") != run._settings_key(  # pylint: disable=protected-access
      warm(), "finetune_only")
  with pytest.raises(SystemExit):
    run.parse_args(["--dataset", "attr", "--save-warm-start-each-epoch"])
  with pytest.raises(SystemExit):
    run.parse_args(["--dataset", "attr", "--warm-start-epoch", "2"])
