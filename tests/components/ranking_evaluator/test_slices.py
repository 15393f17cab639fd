"""Slice assignment and per-slice metrics against hand-computed values."""

import math

import numpy as np
import pytest

from components.ranking_evaluator import slices

INF = math.inf


def _members(masks, name):
  return list(np.flatnonzero(masks[name]))


def test_history_length_buckets_and_slice_names():
  assert slices.history_length_values() == ["<=3", "4-7", "8-15", ">15"]
  assert slices.slice_names() == [
      "history_len:<=3", "history_len:4-7", "history_len:8-15", "history_len:>15",
      "popularity:head", "popularity:torso", "popularity:tail",
      "cold_start:cold_items", "cold_start:warm_items"]
  with pytest.raises(ValueError, match="increase"):
    slices.history_length_values([7, 3])


def test_users_go_to_the_bucket_of_their_history_length():
  lengths = [0, 3, 4, 7, 8, 15, 16, 40]
  masks = slices.assign(lengths, [b"x"] * 8, {b"x": 1})
  assert _members(masks, "history_len:<=3") == [0, 1]
  assert _members(masks, "history_len:4-7") == [2, 3]
  assert _members(masks, "history_len:8-15") == [4, 5]
  assert _members(masks, "history_len:>15") == [6, 7]


def test_head_torso_tail_cut_where_cumulative_interactions_pass_thirds():
  # Sorted: c 6, then the tie a 3, b 3 by id. Of 12 interactions, before c: 0
  # (< 4: head), before a: 6 (< 8: torso), before b: 9 (tail).
  assert slices.popularity_bands({b"b": 3, b"a": 3, b"c": 6}) == {
      b"c": "head", b"a": "torso", b"b": "tail"}
  # Thirds exactly: each item completes one band.
  assert slices.popularity_bands({b"x": 4, b"y": 4, b"z": 4}) == {
      b"x": "head", b"y": "torso", b"z": "tail"}
  # The item that passes 1/3 belongs to the head; nothing is left for the torso.
  assert slices.popularity_bands({b"p": 2, b"q": 1, b"r": 0}) == {b"p": "head", b"q": "tail"}


def test_targets_get_the_band_of_their_item_and_unseen_targets_are_tail():
  counts = {b"a": 5, b"b": 3, b"c": 3, b"d": 2, b"e": 1, b"f": 1}   # 15: head a; torso b, c
  masks = slices.assign([1] * 5, [b"a", b"c", b"d", b"new", b"b"], counts)
  assert _members(masks, "popularity:head") == [0]
  assert _members(masks, "popularity:torso") == [1, 4]
  assert _members(masks, "popularity:tail") == [2, 3]


def test_cold_items_default_to_targets_unseen_in_training_or_the_given_set():
  counts = {b"a": 2, b"b": 1}
  targets = [b"a", b"new", b"b", b"other"]
  masks = slices.assign([1] * 4, targets, counts)
  assert _members(masks, "cold_start:cold_items") == [1, 3]
  assert _members(masks, "cold_start:warm_items") == [0, 2]
  held_out = slices.assign([1] * 4, targets, counts, cold_items={b"b", b"new"})
  assert _members(held_out, "cold_start:cold_items") == [1, 2]
  assert _members(held_out, "cold_start:warm_items") == [0, 3]


def test_slice_metrics_summarize_each_slice_and_report_empty_ones():
  ranks = [1, 3, INF, 2]
  masks = {"s1": np.array([True, False, True, False]),
           "s2": np.array([False, True, False, True]),
           "empty": np.zeros(4, dtype=bool)}
  result = slices.slice_metrics(ranks, masks, ks=(1, 3))
  assert result["s1"] == pytest.approx({
      "HR@1": 0.5, "HR@3": 0.5, "NDCG@1": 0.5, "NDCG@3": 0.5, "MRR": 0.5,
      "num_users": 2, "num_missing_targets": 1})
  assert result["s2"] == pytest.approx({
      "HR@1": 0.0, "HR@3": 1.0, "NDCG@1": 0.0, "NDCG@3": (0.5 + 1 / math.log2(3)) / 2,
      "MRR": (1 / 3 + 1 / 2) / 2, "num_users": 2, "num_missing_targets": 0})
  assert result["empty"] == {"num_users": 0}


def test_slice_table_shows_users_and_metrics_per_scorer():
  table = slices.format_table(
      {"model": {"a:x": {"num_users": 2, "HR@10": 0.5}, "a:y": {"num_users": 0}},
       "popularity": {"a:x": {"num_users": 2, "HR@10": 0.25}, "a:y": {"num_users": 0}}},
      ["HR@10"])
  lines = table.splitlines()
  assert "model" in lines[0] and "popularity" in lines[0]
  assert lines[2].split() == ["a:x", "2", "0.5000", "0.2500"]
  assert lines[3].split() == ["a:y", "0", "-", "-"]
