"""The slice gate of the blessing: checked per slice against the reference scorer."""

import json

import pytest

from components.ranking_evaluator import gating

TAIL = "popularity:tail"
SLICES = {
    "model": {TAIL: {"NDCG@10": 0.10, "num_users": 5}, "history_len:>15": {"num_users": 0}},
    "popularity": {TAIL: {"NDCG@10": 0.20, "num_users": 5},
                   "history_len:>15": {"num_users": 0}},
    "baseline": {TAIL: {"NDCG@10": 0.12, "num_users": 5},
                 "history_len:>15": {"num_users": 0}},
}
OVERALL = {"NDCG@10": 0.3}


def _decide(gates, with_baseline):
  return gating.decide(OVERALL, {"NDCG@10": 0.1}, OVERALL if with_baseline else None,
                       "NDCG@10", min_value=0.0, must_beat_popularity=True,
                       slice_gates=gating.check_slice_gates(gates, (10,)),
                       slice_metrics=SLICES)


def _gate(max_drop, name=TAIL):
  return [{"slice": name, "metric": "NDCG@10", "max_drop": max_drop}]


def test_slice_gate_compares_with_the_baseline_model_when_there_is_one():
  # 0.10 >= 0.12 - 0.05.
  blessed = _decide(_gate(0.05), with_baseline=True)
  assert blessed["blessed"] and blessed["reasons"] == []
  check = blessed["slice_gates"][0]
  assert check["passed"] and check["reference"] == "baseline model"
  assert check["value"] == 0.10 and check["reference_value"] == 0.12
  # 0.10 < 0.12 - 0.01.
  refused = _decide(_gate(0.01), with_baseline=True)
  assert not refused["blessed"]
  assert refused["reasons"] == [
      "slice popularity:tail: NDCG@10 = 0.1000 is more than 0.01 below the baseline "
      "model's 0.1200"]


def test_slice_gate_compares_with_popularity_without_a_baseline():
  refused = _decide(_gate(0.05), with_baseline=False)
  assert not refused["blessed"]
  assert "popularity baseline's 0.2000" in refused["reasons"][0]
  assert _decide(_gate(0.15), with_baseline=False)["blessed"]


def test_slice_gate_on_a_slice_without_users_is_skipped():
  decision = _decide(_gate(0.0, "history_len:>15"), with_baseline=False)
  assert decision["blessed"]
  assert decision["slice_gates"][0]["reason"] == "skipped: no users in the slice"


def test_no_slice_gates_no_checks():
  assert _decide([], with_baseline=False)["slice_gates"] == []


def test_slice_gates_are_checked_and_accept_json():
  gates = json.dumps(_gate(0))
  assert gating.check_slice_gates(gates, (10,)) == [
      {"slice": TAIL, "metric": "NDCG@10", "max_drop": 0.0}]
  assert gating.check_slice_gates(None, (10,)) == []
  with pytest.raises(ValueError, match="unknown slice"):
    gating.check_slice_gates(_gate(0.1, "popularity:tial"), (10,))
  with pytest.raises(ValueError, match="NDCG@20"):
    gating.check_slice_gates(
        [{"slice": TAIL, "metric": "NDCG@20", "max_drop": 0.1}], (10,))
  with pytest.raises(ValueError, match="max_drop"):
    gating.check_slice_gates(_gate(-0.1), (10,))
  with pytest.raises(ValueError, match="exactly the keys"):
    gating.check_slice_gates([{"slice": TAIL, "metric": "NDCG@10"}], (10,))
  with pytest.raises(ValueError, match="JSON list"):
    gating.check_slice_gates("[{", (10,))
