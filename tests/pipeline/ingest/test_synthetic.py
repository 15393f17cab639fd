"""Tests for the synthetic dataset generator (pipeline.ingest.synthetic)."""

import time

import numpy as np
import pandas as pd
import pytest

from pipeline import ingest
from pipeline.ingest import synthetic
from trainer import features


def _csv_bytes(df: pd.DataFrame) -> bytes:
  return df.to_csv(index=False).encode()


def test_same_seed_gives_identical_data_and_other_seed_differs():
  cfg = synthetic.SyntheticConfig.tiny()
  a_log, a_items = synthetic.generate(cfg, seed=7)
  b_log, b_items = synthetic.generate(cfg, seed=7)
  assert _csv_bytes(a_log) == _csv_bytes(b_log)
  assert _csv_bytes(a_items) == _csv_bytes(b_items)
  c_log, _ = synthetic.generate(cfg, seed=8)
  assert _csv_bytes(a_log) != _csv_bytes(c_log)


def test_default_size_is_generated_fast_with_expected_shape():
  start = time.perf_counter()
  log, items = ingest.generate(seed=0)
  elapsed = time.perf_counter() - start
  assert elapsed < 3.0, f"default generation took {elapsed:.2f}s"
  cfg = synthetic.SyntheticConfig()
  assert log.user_id.nunique() == cfg.num_users
  assert len(items) == cfg.num_items and items.item_id.is_unique
  assert set(log.item_id) <= set(items.item_id)
  lengths = log.groupby(features.LOG_USER_ID).size()
  assert lengths.min() >= cfg.min_seq_len and lengths.max() <= cfg.max_seq_len
  assert lengths.std() > 3  # Lengths vary.


def test_timestamps_increase_per_user_with_some_ties():
  log, _ = synthetic.generate(synthetic.SyntheticConfig(), seed=1)
  same_user = log.user_id.to_numpy()[1:] == log.user_id.to_numpy()[:-1]
  steps = np.diff(log.timestamp.to_numpy())[same_user]
  assert (steps >= 0).all()
  assert 0 < (steps == 0).mean() < 0.1
  assert log.timestamp.min() >= 1_500_000_000  # Realistic unix seconds.


def test_items_have_category_brand_and_readable_title():
  _, items = synthetic.generate(synthetic.SyntheticConfig.tiny(), seed=0)
  attributes = items.attributes.str.split(features.ATTRIBUTE_SEPARATOR)
  assert attributes.map(lambda a: a[0].startswith("category:")).all()
  assert attributes.map(lambda a: a[1].startswith("brand:")).all()
  categories = attributes.map(lambda a: a[0])
  assert categories.nunique() == synthetic.SyntheticConfig.tiny().num_categories
  assert items.title.str.match(r"^[A-Z][a-z]+ \w+ .+ \d{3}$").all()


def test_sizes_can_be_overridden_and_presets_scale():
  log, items = synthetic.generate(num_users=50, num_items=30,
                                  num_categories=3, seed=2)
  assert log.user_id.nunique() == 50 and len(items) == 30
  tiny = synthetic.SyntheticConfig.tiny()
  large = synthetic.SyntheticConfig.large()
  assert (tiny.num_users, tiny.num_items) == (200, 120)
  assert (large.num_users, large.num_items) == (20_000, 5_000)


def test_invalid_config_names_the_broken_constraint():
  with pytest.raises(ValueError, match=r"num_items >= 2 \* num_categories"):
    synthetic.SyntheticConfig(num_items=10, num_categories=8)
  with pytest.raises(ValueError, match=r"successor_weights"):
    synthetic.SyntheticConfig(num_successors=2)


def _hit_rates(log: pd.DataFrame, k: int = 10):
  """HR@k of a first-order Markov predictor and of popularity.

  Leave-one-out as in the pipeline: order by (timestamp, item_id), the last
  item of each user is the target, the rest is history; transitions and
  popularity are counted on histories only; history items are not ranked.
  """
  log = log.sort_values([features.LOG_USER_ID, features.LOG_TIMESTAMP,
                         features.LOG_ITEM_ID], kind="mergesort")
  codes, uniques = pd.factorize(log.item_id, sort=True)
  users = log.user_id.to_numpy()
  first = np.r_[True, users[1:] != users[:-1]]
  last = np.r_[users[1:] != users[:-1], True]
  user_index = np.cumsum(first) - 1
  num_users, num_items = user_index[-1] + 1, len(uniques)

  train = ~last
  pair_end = train & ~first  # Positions whose predecessor is in the history.
  transitions = np.zeros((num_items, num_items))
  np.add.at(transitions, (codes[np.r_[pair_end[1:], False]], codes[pair_end]),
            1.0)
  popularity = np.bincount(codes[train], minlength=num_items).astype(float)
  seen = np.zeros((num_users, num_items), dtype=bool)
  seen[user_index[train], codes[train]] = True
  target = codes[last]
  previous = codes[np.r_[last[1:], False]]

  def hit_rate(scores):
    scores = np.where(seen, -np.inf, scores)
    target_score = scores[np.arange(num_users), target]
    # Pessimistic rank: ties with the target count against it.
    rank = (scores >= target_score[:, None]).sum(axis=1) - 1
    return float((rank < k).mean())

  tie_break = 1e-6 * popularity / popularity.max()
  markov = hit_rate(transitions[previous] + tie_break)
  popular = hit_rate(np.broadcast_to(popularity, (num_users, num_items)))
  return markov, popular


def test_markov_predictor_clearly_beats_popularity():
  log, _ = synthetic.generate(synthetic.SyntheticConfig(), seed=0)
  markov, popular = _hit_rates(log)
  assert popular > 0.01  # Popularity is a real (skewed) baseline ...
  assert markov >= 2 * popular and markov > 0.3, (markov, popular)


def test_markov_signal_also_holds_on_tiny_preset():
  log, _ = synthetic.generate(synthetic.SyntheticConfig.tiny(), seed=3)
  markov, popular = _hit_rates(log)
  assert markov >= 2 * popular, (markov, popular)


def test_item_transitions_carry_most_of_the_sequential_signal():
  # Control: without the planted item-to-item transitions only the users'
  # interest categories remain, and the Markov predictor falls far behind.
  with_transitions, _ = _hit_rates(
      synthetic.generate(synthetic.SyntheticConfig(), seed=0)[0])
  without, _ = _hit_rates(synthetic.generate(
      synthetic.SyntheticConfig(p_transition=0.0), seed=0)[0])
  assert with_transitions > without + 0.15, (with_transitions, without)


def test_generated_data_writes_as_canonical(tmp_path):
  log, items = synthetic.generate(synthetic.SyntheticConfig.tiny(), seed=0)
  data = ingest.write_canonical(log, items, str(tmp_path))
  assert data.num_users == 200 and data.num_catalogue_items == 120
  assert data.num_interactions == len(log)
  back = ingest.read_interactions(data.interactions_path)
  assert back.user_id.iloc[0] == "u001" and back.item_id.str.match(
      r"^i\d{3}$").all()
