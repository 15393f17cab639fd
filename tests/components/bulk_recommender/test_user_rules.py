"""Per-user rules of the bulk job on the real ``recommend`` signature, against a brute-force reference."""

import json

import apache_beam as beam
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from bench.serving import bench_model
from components.bulk_recommender import recommend
from components.bulk_recommender import saved_model
from components.bulk_recommender import user_rules
from serving import contract
from tests.trainer import test_rules

NUM_ITEMS = 40
K = 5
NUM_USERS = 36
BATCH = 8
LISTS = contract.RULE_LIST_INPUTS
GLOBAL = {**user_rules.RULE_DEFAULTS, contract.INPUT_EXCLUDE_IDS: ["item_3", "no-such-id"],
          contract.INPUT_EXCLUDE_ATTRIBUTES: ["brand_0"]}


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
  return test_rules._export(tmp_path_factory.mktemp("bulk_rules"), NUM_ITEMS, 0)  # pylint: disable=protected-access


def random_histories(seed: int):
  rng = np.random.default_rng(seed)
  ids = bench_model.item_ids(NUM_ITEMS)
  return [(f"u{u}", tuple(rng.choice(ids, size=rng.integers(0, 8), replace=False).tolist()))
          for u in range(NUM_USERS)]


def random_user_rules(catalogue, seed: int, scalars: bool = True):
  """A rules line for about two users in three; the rest get the global rules."""
  rng = np.random.default_rng([seed, 1])
  ids = bench_model.item_ids(NUM_ITEMS) + ["unknown-id"]
  values = catalogue["values"] + ["unknown-value"]
  lines = {}
  for u in range(NUM_USERS):
    if rng.random() < 0.33:
      continue
    line = {}
    if rng.random() < 0.5:
      line[contract.INPUT_EXCLUDE_IDS] = rng.choice(ids, size=rng.integers(1, 6)).tolist()
    if rng.random() < 0.3:
      line[contract.INPUT_ALLOW_IDS] = rng.choice(ids, size=rng.integers(1, 20)).tolist()
    if rng.random() < 0.2:
      line[contract.INPUT_REQUIRE_ATTRIBUTES] = rng.choice(values, size=1).tolist()
    if rng.random() < 0.3:
      line[contract.INPUT_EXCLUDE_ATTRIBUTES] = rng.choice(values, size=2).tolist()
    if scalars and rng.random() < 0.4:
      line[contract.INPUT_KEEP_HISTORY] = bool(rng.random() < 0.5)
    if scalars and rng.random() < 0.2:
      line[contract.INPUT_DIVERSITY] = 0.5
    lines[f"u{u}"] = line
  lines["user-without-history"] = {contract.INPUT_EXCLUDE_IDS: ["item_1"]}
  return lines


def write_rules(path, lines) -> str:
  with open(path, "w", encoding="utf-8") as f:
    for user, line in lines.items():
      f.write(json.dumps({"user_id": user, **line}) + "\n")
  return str(path)


def expected_rules(user_line):
  """The documented merge, written out: lists extend the global lists, scalars replace."""
  rules = {name: list(GLOBAL[name]) + list((user_line or {}).get(name, [])) for name in LISTS}
  for name in (contract.INPUT_KEEP_HISTORY, contract.INPUT_DIVERSITY):
    rules[name] = (user_line or {}).get(name, GLOBAL[name])
  return rules


def _run(catalogue, tmp_path, histories, rules_file, batch_size=BATCH):
  settings = recommend.BulkSettings(
      model_dir=catalogue["path"], k=K, signature=contract.RULES_SIGNATURE,
      extra_inputs=GLOBAL, output_format="csv", batch_size=batch_size, rules_file=rules_file)
  result = recommend.run(settings, beam.Create(histories), str(tmp_path / "out"))
  table = pd.concat(pd.read_csv(f, dtype={"user_id": str, "item_id": str},
                                keep_default_na=False) for f in result.files)
  return result, table


@pytest.mark.parametrize("seed", [0, 1])
def test_each_user_gets_exactly_their_rules(catalogue, tmp_path, seed):
  histories = random_histories(seed)
  lines = random_user_rules(catalogue, seed)
  result, table = _run(catalogue, tmp_path, histories,
                       write_rules(tmp_path / "rules.jsonl", lines))
  assert result.users == NUM_USERS
  assert result.users_with_rules == len(lines) - 1 and result.rules_without_history == 1
  index = {item: i for i, item in enumerate(bench_model.item_ids(NUM_ITEMS))}
  expected_rows = 0
  for user, history in histories:
    rules = expected_rules(lines.get(user))
    inputs = test_rules.rules_inputs(
        [list(history)], K, exclude=[rules[contract.INPUT_EXCLUDE_IDS]],
        allow=[rules[contract.INPUT_ALLOW_IDS]], require=[rules[contract.INPUT_REQUIRE_ATTRIBUTES]],
        exclude_attributes=[rules[contract.INPUT_EXCLUDE_ATTRIBUTES]],
        keep_history=rules[contract.INPUT_KEEP_HISTORY])
    eligible, scores, top, _ = test_rules.reference(catalogue, inputs)[0]
    got = table[table.user_id == user].sort_values("rank")
    served = [index[i] for i in got.item_id]
    # k rows whenever k eligible items exist, all eligible (so no history item unless
    # kept), each once, ranks 1..n.
    assert len(served) == min(K, len(eligible)), (user, rules, len(eligible))
    assert set(served) <= eligible and len(set(served)) == len(served), (user, rules)
    assert got["rank"].tolist() == list(range(1, len(served) + 1))
    if not rules[contract.INPUT_KEEP_HISTORY]:
      assert not set(history) & set(got.item_id), (user, history)
    np.testing.assert_allclose(got.score, scores[served], rtol=1e-4, atol=1e-5)
    if rules[contract.INPUT_DIVERSITY] == 0.0:
      np.testing.assert_allclose(got.score, top, rtol=1e-4, atol=1e-5)
    expected_rows += len(served)
  assert result.rows == len(table) == expected_rows


def test_list_only_rules_keep_one_model_call_per_batch(catalogue, tmp_path):
  histories = random_histories(2)
  lines = random_user_rules(catalogue, 2, scalars=False)
  with_rules, _ = _run(catalogue, tmp_path / "a", histories,
                       write_rules(tmp_path / "rules.jsonl", lines))
  assert with_rules.calls == -(-NUM_USERS // BATCH)


def test_rows_with_different_scalar_rules_are_split_into_one_call_each():
  specs = {contract.INPUT_EXCLUDE_IDS: saved_model.InputSpec(tf.string, 2),
           contract.INPUT_DIVERSITY: saved_model.InputSpec(tf.float32, 0)}
  base = {contract.INPUT_EXCLUDE_IDS: ["a"], contract.INPUT_DIVERSITY: 0.0}
  users = [None, {contract.INPUT_EXCLUDE_IDS: ["b", "a"]}, {contract.INPUT_DIVERSITY: 0.5},
           {contract.INPUT_DIVERSITY: 0.0, contract.INPUT_EXCLUDE_IDS: ["c"]}]
  groups = user_rules.row_values(base, users, specs)
  assert sorted(positions for positions, _ in groups.values()) == [[0, 1, 3], [2]]
  rows = dict(zip(*groups[(json.dumps(0.0),)]))
  assert rows[1][contract.INPUT_EXCLUDE_IDS] == ["a", "b"]
  assert rows[3][contract.INPUT_EXCLUDE_IDS] == ["a", "c"]


@pytest.mark.parametrize("lines, message", [
    (['{"user_id": "u1"}', '{"user_id": "u2", '],
     r"line 2: not a JSON object \(Expecting property name"),
    (['["u1"]'], r"line 1: not a JSON object but \[\"u1\"\]"),
    (['{"exclude_ids": ["item_1"]}'], r"line 1, field 'user_id': expected a non-empty string"),
    (['{"user_id": 7}'], r"line 1, field 'user_id': expected a non-empty string, got 7"),
    (['{"user_id": "u1", "exclude": ["item_1"]}'],
     r"line 1, field 'exclude': not an input of the signature; fields: \['user_id', "
     r"'allow_ids'"),
    (['', '{"user_id": "u1", "exclude_ids": "item_1"}'],
     r"line 2, field 'exclude_ids': expected a list of string values, got \"item_1\""),
    (['{"user_id": "u1", "allow_ids": ["item_1", 2]}'],
     r"line 1, field 'allow_ids': expected a string, got 2"),
    (['{"user_id": "u1", "keep_history": "yes"}'],
     r"line 1, field 'keep_history': expected a bool, got \"yes\""),
    (['{"user_id": "u1", "diversity": 1.5}'],
     r"line 1, field 'diversity': must be between 0 and 1, got 1.5"),
    (['{"user_id": "u1", "diversity": true}'],
     r"line 1, field 'diversity': expected a float32, got true"),
    (['{"user_id": "u1"}', '{"user_id": "u2"}', '{"user_id": "u1"}'],
     r"line 3, field 'user_id': user 'u1' again \(first on line 1\)"),
])
def test_a_malformed_rules_file_is_refused_naming_file_line_and_field(catalogue, tmp_path,
                                                                      lines, message):
  path = tmp_path / "rules.jsonl"
  path.write_text("\n".join(lines) + "\n")
  settings = recommend.BulkSettings(model_dir=catalogue["path"], k=K,
                                    signature=contract.RULES_SIGNATURE, extra_inputs=GLOBAL,
                                    rules_file=str(path))
  with pytest.raises(user_rules.RulesFileError, match=f"^rules file {path}, " + message) as e:
    settings.check()
  assert "\n" not in str(e.value)


def test_a_missing_rules_file_or_a_signature_without_rule_inputs_is_refused(catalogue,
                                                                              tmp_path):
  settings = recommend.BulkSettings(model_dir=catalogue["path"], k=K,
                                    signature=contract.RULES_SIGNATURE, extra_inputs=GLOBAL,
                                    rules_file=str(tmp_path / "nope.jsonl"))
  with pytest.raises(user_rules.RulesFileError, match=r"nope.jsonl: no such file"):
    settings.check()
  path = write_rules(tmp_path / "rules.jsonl", {"u1": {}})
  settings = recommend.BulkSettings(model_dir=catalogue["path"], k=K, rules_file=path)
  with pytest.raises(ValueError, match=r"'serving_default' takes no inputs a rules file"):
    settings.check()


def test_the_recommend_signature_inputs_default_to_no_rule():
  assert user_rules.with_rule_defaults(contract.RULES_SIGNATURE, {"diversity": 0.2}) == {
      **{name: [] for name in LISTS}, "keep_history": False, "diversity": 0.2}
  assert user_rules.with_rule_defaults("other", {"x": 1}) == {"x": 1}
