"""The printed run summary: overall metrics, beyond-accuracy rows and the slice table."""

from pipeline import summary

SLICES = {
    "popularity:tail": {"HR@10": 0.25, "NDCG@10": 0.125, "num_users": 4},
    "history_len:<=3": {"HR@10": 0.5, "NDCG@10": 0.25, "num_users": 8},
    "history_len:>15": {"num_users": 0},
}
EVALUATION = {
    "split": "test",
    "model": {"HR@10": 0.5, "NDCG@10": 0.25, "num_users": 12},
    "popularity": {"HR@10": 0.25, "NDCG@10": 0.125, "num_users": 12},
    "beyond_accuracy": {"model": {"novelty@10": 7.5, "diversity@10": 0.75},
                        "popularity": {"novelty@10": 2.5}},
    "slices": {"model": SLICES,
               "popularity": {name: {**row, "NDCG@10": 0.0} if "HR@10" in row else row
                              for name, row in SLICES.items()}},
    "gating": {"metric": "NDCG@10", "value": 0.25, "blessed": True, "reasons": []},
}


def _lines():
  text = summary.format_summary({"evaluation": EVALUATION, "pushed": False}, 1.0)
  return [line.split() for line in text.splitlines()]


def test_summary_shows_novelty_and_diversity_next_to_the_metrics():
  lines = _lines()
  assert ["novelty@10", "7.5000", "2.5000"] in lines
  assert ["diversity@10", "0.7500", "nan"] in lines


def test_summary_shows_one_row_per_slice_in_report_order():
  lines = _lines()
  start = lines.index(["per", "slice:"])
  assert lines[start + 1] == ["slice", "users", "model", "popularity"]
  assert lines[start + 2] == ["HR@10", "NDCG@10", "HR@10", "NDCG@10"]
  assert lines[start + 3] == ["history_len:<=3", "8", "0.5000", "0.2500", "0.5000", "0.0000"]
  assert lines[start + 4] == ["history_len:>15", "0", "-", "-", "-", "-"]
  assert lines[start + 5] == ["popularity:tail", "4", "0.2500", "0.1250", "0.2500", "0.0000"]


def test_summary_shows_the_text_baseline_and_the_cold_items_when_the_run_has_them():
  evaluation = {**EVALUATION, "text_similarity": {"HR@10": 0.375, "NDCG@10": 0.1875}}
  stats = {"num_interactions": 90, "num_users_kept": 12, "num_items": 20,
           "num_cold_items": 2, "num_test_targets_held_out": 3, "num_users_dropped_held_out": 1}
  text = summary.format_summary({"evaluation": evaluation, "sequences": stats}, 1.0)
  lines = [line.split() for line in text.splitlines()]
  assert ["metric", "model", "popularity", "text_similarity"] in lines
  assert ["NDCG@10", "0.2500", "0.1250", "0.1875"] in lines
  assert "cold items: 2 held out of training, the target of 3 test users" in text
  assert ["metric", "model", "popularity"] in _lines() and "cold items" not in str(_lines())
  noted = summary.format_summary({"evaluation": {**EVALUATION, "notes": ["no vectors"]}}, 1.0)
  assert "note: no vectors" in noted


def test_summary_of_an_evaluation_without_slices_has_no_slice_table():
  old = {key: value for key, value in EVALUATION.items()
         if key not in ("slices", "beyond_accuracy")}
  text = summary.format_summary({"evaluation": old, "pushed": False}, 1.0)
  assert "per slice" not in text and "NDCG@10" in text


def test_summary_names_the_bulk_recommendations_when_written():
  assert not any("bulk" in " ".join(line) for line in _lines())
  text = summary.format_summary(
      {"pushed": True, "pushed_destination": "serving/seqrec/7",
       "bulk_recommendations": {"uri": "out/BulkRecommender/recommendations/9", "users": 4,
                                "rows": 40, "k": 10}}, 1.0)
  assert ("bulk recommendations: 4 users, 40 rows (k=10) in "
          "out/BulkRecommender/recommendations/9") in text
