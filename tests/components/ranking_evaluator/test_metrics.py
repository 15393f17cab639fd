"""Full-ranking metrics against hand-computed values."""

import math

import numpy as np
import pytest

from components.ranking_evaluator import gating
from components.ranking_evaluator import metrics

INF = math.inf


def test_hit_rate_ndcg_mrr_match_hand_computed_values():
  ranks = [1, 2, 11, INF]
  assert metrics.hit_rate_at_k(ranks, 10) == pytest.approx(0.5)
  assert metrics.hit_rate_at_k(ranks, 1) == pytest.approx(0.25)
  assert metrics.hit_rate_at_k(ranks, 11) == pytest.approx(0.75)
  assert metrics.ndcg_at_k(ranks, 10) == pytest.approx((1 + 1 / math.log2(3)) / 4)
  assert metrics.ndcg_at_k(ranks, 20) == pytest.approx(
      (1 + 1 / math.log2(3) + 1 / math.log2(12)) / 4)
  assert metrics.mrr(ranks) == pytest.approx((1 + 1 / 2 + 1 / 11 + 0) / 4)


def test_summarize_reports_every_cutoff_users_and_missing_targets():
  summary = metrics.summarize([1, 2, 11, INF], ks=(1, 10))
  assert summary == pytest.approx({
      "HR@1": 0.25, "HR@10": 0.5,
      "NDCG@1": 0.25, "NDCG@10": (1 + 1 / math.log2(3)) / 4,
      "MRR": (1 + 1 / 2 + 1 / 11) / 4,
      "num_users": 4, "num_missing_targets": 1})
  assert isinstance(summary["num_users"], int)


def test_summarize_adds_coverage_from_top_lists():
  top = np.array([[0, 1, 2], [0, 3, -1]])
  summary = metrics.summarize([1, 3], ks=(1, 3), top_items=top, num_items=8)
  assert summary["coverage@1"] == pytest.approx(1 / 8)
  assert summary["coverage@3"] == pytest.approx(4 / 8)


def test_rank_counts_only_strictly_higher_scores_when_no_ties():
  scores = np.array([0.1, 0.9, 0.5, 0.7, 0.3])
  assert metrics.rank_of_target(scores, 2, []) == 3
  assert metrics.rank_of_target(scores, 1, []) == 1
  assert metrics.rank_of_target(scores, 0, []) == 5


def test_excluded_history_item_with_higher_score_does_not_push_target_down():
  scores = np.array([0.1, 0.9, 0.5, 0.7, 0.3])
  assert metrics.rank_of_target(scores, 2, [1]) == 2
  assert metrics.rank_of_target(scores, 2, [1, 3]) == 1
  # Excluding lower-scored items changes nothing.
  assert metrics.rank_of_target(scores, 2, [0, 4]) == 3


def test_target_in_history_is_still_ranked():
  scores = np.array([0.1, 0.9, 0.5, 0.7, 0.3])
  # History = [1, 2, 3]; target 2 was consumed before: 1 and 3 are excluded only.
  assert metrics.rank_of_target(scores, 2, [1, 2, 3]) == 1
  # History = [2, 1]: item 1 is excluded, item 3 (0.7) still ranks ahead.
  ranks = metrics.ranks_of_targets(scores[None, :], [2], [[2, 1]])
  np.testing.assert_array_equal(ranks, [2.0])


def test_ties_count_items_with_lower_index_only():
  scores = np.array([0.5, 0.5, 0.9, 0.5, 0.5])
  assert metrics.rank_of_target(scores, 0, []) == 2   # behind item 2 only
  assert metrics.rank_of_target(scores, 3, []) == 4   # behind 2, and tied 0, 1
  assert metrics.rank_of_target(scores, 4, []) == 5
  # Excluded tied items with a lower index do not count either.
  assert metrics.rank_of_target(scores, 3, [0]) == 3


def test_nan_score_counts_as_worst():
  scores = np.array([np.nan, 0.2, -5.0, np.nan])
  assert metrics.rank_of_target(scores, 0, []) == 3
  assert metrics.rank_of_target(scores, 3, []) == 4
  assert metrics.rank_of_target(scores, 2, []) == 2
  assert metrics.rank_of_target(np.array([0.3, np.nan, 0.1]), 2, []) == 2


def test_missing_target_is_a_miss():
  scores = np.array([0.5, 0.1])
  assert metrics.rank_of_target(scores, None, []) == INF
  assert metrics.rank_of_target(scores, metrics.MISSING, [0]) == INF
  assert metrics.hit_rate_at_k([INF], 10) == 0.0
  assert metrics.mrr([INF, 1]) == pytest.approx(0.5)


def test_batched_ranks_equal_single_row_ranks():
  rng = np.random.default_rng(0)
  scores = rng.integers(0, 4, size=(40, 15)).astype(np.float32)  # many ties
  scores[3, 5] = np.nan
  targets = rng.integers(-1, 15, size=40)
  histories = [rng.choice(15, size=rng.integers(0, 6), replace=False) for _ in range(40)]
  batched = metrics.ranks_of_targets(scores, targets, histories)
  single = [metrics.rank_of_target(scores[b], int(targets[b]), histories[b])
            for b in range(40)]
  np.testing.assert_array_equal(batched, np.array(single, dtype=float))
  for b in range(40):  # brute force: position in a (-score, index) sort.
    if targets[b] < 0:
      continue
    keep = [i for i in range(15) if i == targets[b] or i not in set(histories[b])]
    clean = np.where(np.isnan(scores[b]), -np.inf, scores[b])
    order = sorted(keep, key=lambda i: (-clean[i], i))
    assert batched[b] == order.index(targets[b]) + 1


def test_top_k_leaves_out_history_and_orders_ties_by_index():
  scores = np.array([[0.5, 0.9, 0.5, 0.1, 0.5],
                     [0.2, 0.2, 0.2, 0.2, 0.2]])
  top = metrics.top_k_items(scores, 3, [[1], [0, 3]])
  np.testing.assert_array_equal(top, [[0, 2, 4], [1, 2, 4]])


def test_top_k_pads_rows_with_fewer_candidates_than_k():
  scores = np.array([[0.3, -np.inf, 0.1]])
  top = metrics.top_k_items(scores, 4, [[2]])
  np.testing.assert_array_equal(top, [[0, 1, -1, -1]])


def test_top_k_matches_a_full_sort():
  rng = np.random.default_rng(1)
  scores = rng.integers(0, 5, size=(60, 12)).astype(np.float64)
  scores[rng.random(scores.shape) < 0.2] = -np.inf
  scores[rng.random(scores.shape) < 0.1] = np.nan     # NaN ranks with -inf, by index
  histories = [rng.choice(12, size=rng.integers(0, 10), replace=False) for _ in range(60)]
  top = metrics.top_k_items(scores, 5, histories)
  clean = np.where(np.isnan(scores), -np.inf, scores)
  for b in range(60):
    keep = [i for i in range(12) if i not in set(histories[b])]
    expected = sorted(keep, key=lambda i: (-clean[b, i], i))[:5]
    expected += [-1] * (5 - len(expected))
    assert list(top[b]) == expected


def test_coverage_counts_distinct_items_over_catalogue():
  assert metrics.coverage_at_k([[0, 1], [1, 2], [2, 0]], 10) == pytest.approx(0.3)
  assert metrics.coverage_at_k(np.array([[4, -1], [4, 4]]), 5) == pytest.approx(0.2)
  with pytest.raises(ValueError, match="outside the catalogue"):
    metrics.coverage_at_k([[7]], 5)


def test_popularity_scores_are_training_counts():
  np.testing.assert_array_equal(metrics.popularity_scores({0: 3, 2: 1}, 4), [3, 0, 1, 0])
  with pytest.raises(ValueError, match="outside the catalogue"):
    metrics.popularity_scores({4: 1}, 4)


def test_bad_inputs_raise_clear_errors():
  with pytest.raises(ValueError, match="no ranks"):
    metrics.mrr([])
  with pytest.raises(ValueError, match=">= 1"):
    metrics.hit_rate_at_k([0, 1], 5)
  with pytest.raises(ValueError, match="positive int"):
    metrics.ndcg_at_k([1], 0)
  with pytest.raises(ValueError, match="outside the catalogue"):
    metrics.rank_of_target(np.zeros(3), 3, [])
  with pytest.raises(ValueError, match="row 1"):
    metrics.ranks_of_targets(np.zeros((2, 3)), [0, 0], [[], [5]])
  with pytest.raises(ValueError, match="must not repeat"):
    metrics.check_ks([5, 5])


def test_gating_lists_every_failed_condition():
  model = {"NDCG@10": 0.05}
  decision = gating.decide(model, {"NDCG@10": 0.06}, {"NDCG@10": 0.2}, "NDCG@10",
                           min_value=0.1, must_beat_popularity=True,
                           baseline_tolerance=0.5)
  assert not decision["blessed"]
  assert len(decision["reasons"]) == 3
  assert "min_value" in decision["reasons"][0]
  assert "popularity" in decision["reasons"][1]
  assert "baseline" in decision["reasons"][2]
  blessed = gating.decide(model, {"NDCG@10": 0.04}, {"NDCG@10": 0.1}, "NDCG@10",
                          min_value=0.05, must_beat_popularity=True,
                          baseline_tolerance=0.5)
  assert blessed["blessed"] and blessed["reasons"] == []


def test_gating_metric_must_be_computed_for_the_cutoffs():
  assert gating.check_gating_metric("HR@5", (5, 10)) == "HR@5"
  with pytest.raises(ValueError, match="NDCG@20"):
    gating.check_gating_metric("NDCG@20", (5, 10))


def test_self_information_counts_an_unseen_item_as_seen_once():
  np.testing.assert_allclose(metrics.self_information([4, 2, 1, 0], 8), [1, 2, 3, 3])
  with pytest.raises(ValueError, match="total_interactions"):
    metrics.self_information([4, 2], 3)


def test_novelty_is_the_mean_over_users_of_their_mean_self_information():
  information = np.array([1.0, 2.0, 3.0, 3.0])
  top = np.array([[0, 1], [2, 3], [1, -1]])
  # Per user at k = 2: (1 + 2) / 2, (3 + 3) / 2, 2 (padding skipped).
  assert metrics.novelty_at_k(top, information, 2) == pytest.approx((1.5 + 3 + 2) / 3)
  assert metrics.novelty_at_k(top, information, 1) == pytest.approx((1 + 3 + 2) / 3)
  # A user with nothing recommended is left out; nobody at all: undefined.
  assert metrics.novelty_at_k(np.array([[0, 1], [-1, -1]]), information, 2) == \
      pytest.approx(1.5)
  assert metrics.novelty_at_k(np.array([[-1]]), information, 1) is None


def test_jaccard_distances_of_attribute_sets():
  distances = metrics.jaccard_distances([{"a"}, {"a", "b"}, {"b"}, set()])
  expected = np.array([[np.nan, 0.5, 1.0, np.nan],
                       [0.5, np.nan, 0.5, np.nan],
                       [1.0, 0.5, np.nan, np.nan],
                       [np.nan, np.nan, np.nan, np.nan]])
  np.testing.assert_allclose(distances, expected)


def test_intra_list_diversity_skips_items_without_attributes():
  attributes = [["a"], ["a", "b"], ["b"], [], ["c"]]
  top = np.array([[0, 1, 2], [3, 4, 0], [3, -1, -1]])
  diversity = metrics.intra_list_diversity(top, attributes, ks=(1, 2, 3))
  assert diversity[1] is None                     # no pairs in a list of one
  assert diversity[2] == pytest.approx(0.5)       # user 0 only: (0, 1); item 3 has none
  # User 0: (0.5 + 1 + 0.5) / 3; user 1: pair (4, 0) = 1; user 2: no pair.
  assert diversity[3] == pytest.approx((2 / 3 + 1) / 2)
  assert metrics.intra_list_diversity(top, [[]] * 5, ks=(3,)) == {3: None}
