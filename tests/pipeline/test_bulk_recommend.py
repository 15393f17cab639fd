"""pipeline.bulk_recommend: the bulk recommendation command, on the toy SavedModel."""

import os

import pandas as pd
import pytest
import tensorflow as tf

from pipeline import bulk_recommend
from serving.testing import toy_model

NUM_ITEMS = 50
# user -> events in time order (the CSV below lists them shuffled).
HISTORIES = {
    "u1": ["item_3", "item_7", "item_1"],
    "u2": ["item_10"],
    "u,3": ["item_5", "item_6", "item_7", "item_8", "item_9", "item_0"],
    "u4": ["item_49", "item_48"],
}


@pytest.fixture(scope="module")
def model_base(tmp_path_factory):
  """A serving base with two versions; the newer one is the toy model."""
  base = tmp_path_factory.mktemp("serving") / "seqrec"
  toy_model.export_toy_model(str(base / "7"), num_items=NUM_ITEMS, seed=1)
  toy_model.export_toy_model(str(base / "12"), num_items=NUM_ITEMS, seed=0)
  return str(base)


@pytest.fixture(scope="module")
def events(tmp_path_factory):
  rows = [(user, item, 1000 + t) for user, items in HISTORIES.items()
          for t, item in enumerate(items)]
  frame = pd.DataFrame(rows[::-1], columns=["user_id", "item_id", "timestamp"])
  path = tmp_path_factory.mktemp("data") / "interactions.csv"
  frame.to_csv(path, index=False)
  return str(path)


def _run(capsys, *args):
  code = bulk_recommend.main([str(a) for a in args])
  out, err = capsys.readouterr()
  return code, out.strip(), err.strip()


def _read(output: str, fmt: str) -> pd.DataFrame:
  files = sorted(tf.io.gfile.glob(os.path.join(output, f"recommendations-*.{fmt}")))
  assert files, os.listdir(output)
  if fmt == "parquet":
    frames = [pd.read_parquet(f) for f in files]
  else:
    frames = [pd.read_csv(f, dtype={"user_id": str, "item_id": str}, keep_default_na=False)
              for f in files]
  return pd.concat(frames).sort_values(["user_id", "rank"]).reset_index(drop=True)


def _expected(users, k):
  recs = toy_model.expected_recommendations([HISTORIES[u] for u in users], k, NUM_ITEMS)
  return {u: r for u, r in zip(users, recs)}


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_every_user_gets_k_items_outside_their_history(model_base, events, tmp_path, capsys,
                                                       fmt):
  k = 5
  code, out, err = _run(capsys, "--model-dir", model_base, "--events", events,
                        "--output", tmp_path, "--k", k, "--format", fmt, "--num-shards", 2)
  assert code == 0, err
  table = _read(str(tmp_path), fmt)
  assert list(table.columns) == ["user_id", "rank", "item_id", "score"]
  assert len(table) == len(HISTORIES) * k
  for user, rows in table.groupby("user_id"):
    assert rows["rank"].tolist() == list(range(1, k + 1))
    assert not set(rows["item_id"]) & set(HISTORIES[user])
  expected = _expected(sorted(HISTORIES), k)
  for user, rows in table.groupby("user_id"):
    assert rows["item_id"].tolist() == [item for item, _ in expected[user]]
    assert rows["score"].tolist() == pytest.approx([s for _, s in expected[user]], rel=1e-5)
  assert len(tf.io.gfile.glob(str(tmp_path / f"recommendations-*-of-00002.{fmt}"))) == 2
  assert f"{len(HISTORIES)} users, {len(HISTORIES) * k} rows (k={k})" in out
  assert os.path.join(model_base, "12") in out   # the newest version


def test_progress_is_logged_while_users_are_done(model_base, events, tmp_path, capsys,
                                                 monkeypatch):
  from components.bulk_recommender import recommend   # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(recommend, "PROGRESS_SECONDS", 0.0)
  code, _, err = _run(capsys, "--model-dir", model_base, "--events", events,
                      "--output", tmp_path, "--batch-size", 1)
  assert code == 0, err
  assert f"bulk recommendations: {len(HISTORIES)} users done on this worker" in err


def test_a_users_file_restricts_the_output(model_base, events, tmp_path, capsys):
  users = tmp_path / "users.txt"
  users.write_text("user_id\nu,3\n\nu4\nnobody\n")
  code, out, err = _run(capsys, "--model-dir", model_base, "--events", events,
                        "--output", tmp_path / "out", "--users", users, "--k", 3)
  assert code == 0, err
  table = _read(str(tmp_path / "out"), "parquet")
  assert sorted(set(table["user_id"])) == ["u,3", "u4"] and len(table) == 2 * 3
  assert "note: 1 user(s)" in out and "have no history" in out


def test_k_beyond_the_eligible_items_gives_fewer_rows_never_history(tmp_path, capsys):
  model = toy_model.export_toy_model(str(tmp_path / "model"), num_items=4)
  log = tmp_path / "events.csv"
  log.write_text("user_id,item_id,timestamp\na,item_0,1\na,item_1,2\nb,item_2,1\n")
  code, _, err = _run(capsys, "--model-dir", model, "--events", log,
                      "--output", tmp_path / "out", "--k", 10, "--format", "csv")
  assert code == 0, err
  table = _read(str(tmp_path / "out"), "csv")
  assert sorted(table.loc[table.user_id == "a", "item_id"]) == ["item_2", "item_3"]
  assert sorted(table.loc[table.user_id == "b", "item_id"]) == ["item_0", "item_1", "item_3"]


@pytest.mark.parametrize("change, message", [
    ({"--model-dir": "/no/such/model"}, "error: --model-dir /no/such/model: no such folder"),
    ({"--format": "xml"}, "error: unknown format 'xml'; choose one of ['parquet', 'csv']"),
    ({"--k": "0"}, "error: k must be a positive integer, got 0"),
    ({"--events": "/no/such.csv"}, "error: --events /no/such.csv: no such file"),
    ({"--users": "/no/users.txt"}, "error: --users /no/users.txt: no such file"),
    ({"--signature": "recommend"}, "error: SavedModel {model} has no signature 'recommend'"),
    ({"--input": "exclude"}, "error: --input 'exclude': expected NAME=JSON"),
    ({"--input": "allow=[]"}, "error: signature 'serving_default' of {model} takes the inputs "
                              "['history', 'k']; extra inputs missing: [], unknown: ['allow']"),
])
def test_bad_inputs_give_a_one_line_error(model_base, events, tmp_path, capsys, change,
                                          message):
  flags = {"--model-dir": model_base, "--events": events, "--output": str(tmp_path / "o"),
           **change}
  code, out, err = _run(capsys, *[part for item in flags.items() for part in item])
  assert code == 1 and not out
  assert len(err.splitlines()) == 1
  assert err.startswith(message.format(model=os.path.join(model_base, "12"))), err
  assert not os.path.exists(tmp_path / "o")


def test_a_model_folder_without_a_saved_model_is_named(tmp_path, events, capsys):
  (tmp_path / "base" / "3").mkdir(parents=True)
  code, _, err = _run(capsys, "--model-dir", tmp_path / "base", "--events", events,
                      "--output", tmp_path / "o")
  assert code == 1 and len(err.splitlines()) == 1
  assert "no SavedModel there (saved_model.pb) and no numeric version folder" in err


def test_an_output_folder_with_earlier_recommendations_is_refused(model_base, events, tmp_path,
                                                                  capsys):
  (tmp_path / "recommendations-00000-of-00001.parquet").write_bytes(b"old")
  code, _, err = _run(capsys, "--model-dir", model_base, "--events", events,
                      "--output", tmp_path)
  assert code == 1 and "already holds recommendations" in err


@pytest.fixture(scope="module")
def rules_model(tmp_path_factory):
  """A real export with the ``recommend`` signature: items item_0 … item_39, attributes."""
  from tests.trainer import test_rules   # pylint: disable=g-import-not-at-top
  return test_rules._export(tmp_path_factory.mktemp("rules"), 40, 0)["path"]  # pylint: disable=protected-access


def test_per_user_rules_extend_the_global_ones(rules_model, tmp_path, capsys):
  log = tmp_path / "events.csv"
  log.write_text("user_id,item_id,timestamp\na,item_0,1\na,item_1,2\nb,item_2,1\nc,item_3,1\n")
  rules = tmp_path / "rules.jsonl"
  rules.write_text('{"user_id": "a", "allow_ids": ["item_0", "item_5", "item_6", "item_7"]}\n'
                   '\n{"user_id": "b", "keep_history": true, "allow_ids": ["item_2", "item_9"]}'
                   '\n{"user_id": "nobody", "exclude_ids": ["item_1"]}\n')
  code, out, err = _run(capsys, "--model-dir", rules_model, "--events", log, "--output",
                        tmp_path / "out", "--k", 3, "--format", "csv", "--rules", rules,
                        "--input", 'exclude_ids=["item_6"]')
  assert code == 0, err
  table = _read(str(tmp_path / "out"), "csv")
  got = {user: sorted(rows["item_id"]) for user, rows in table.groupby("user_id")}
  assert got["a"] == ["item_5", "item_7"]      # allowed, minus history and the global exclusion
  assert got["b"] == ["item_2", "item_9"]      # history kept
  assert len(got["c"]) == 3 and "item_6" not in got["c"] and "item_3" not in got["c"]
  assert "signature 'recommend'" in out and "per-user rules: 2 user(s) under their own" in out
  assert "note: 1 user(s) of" in out


def test_a_malformed_rules_file_is_a_one_line_error(rules_model, events, tmp_path, capsys):
  rules = tmp_path / "rules.jsonl"
  rules.write_text('{"user_id": "u1"}\n{"user_id": "u2", "require_attributes": "cat_1"}\n')
  code, out, err = _run(capsys, "--model-dir", rules_model, "--events", events,
                        "--output", tmp_path / "o", "--rules", rules)
  assert code == 1 and not out and len(err.splitlines()) == 1
  assert err == (f"error: rules file {rules}, line 2, field 'require_attributes': expected a "
                 'list of string values, got "cat_1"')
