"""bench.serving.bulk: a small bulk throughput run and its report."""

import json

from bench.serving import bulk


def test_small_run_reports_users_per_second_for_every_batch_size(tmp_path):
  code = bulk.main(["--items", "200", "--users", "60", "-k", "5", "--batch-sizes", "8", "32",
                    "--max-history", "20", "--out-dir", str(tmp_path), "--label", "small"])
  assert code == 0
  report = json.loads((tmp_path / "small.json").read_text())
  assert [r["batch_size"] for r in report["results"]] == [8, 32]
  assert all(r["users"] == 60 and r["rows"] == 300 and r["users_per_s"] > 0
             for r in report["results"])
  text = (tmp_path / "small.md").read_text()
  assert "(shared cores)" in text
  assert "| mode | batch size | users | rows | model calls | seconds | users/s |" in text


def test_per_user_rules_are_measured_next_to_plain_runs(tmp_path):
  code = bulk.main(["--items", "100", "--users", "40", "-k", "5", "--batch-sizes", "16",
                    "--modes", "plain", "per-user-rules", "--max-history", "10",
                    "--out-dir", str(tmp_path)])
  assert code == 0
  report = json.loads((tmp_path / "bulk.json").read_text())
  plain, per_user = report["results"]
  assert plain["mode"] == "plain" and plain["users_with_rules"] == 0
  assert per_user["mode"] == "per-user-rules" and per_user["users_with_rules"] == 40
  assert per_user["rows"] == 200 and per_user["model_calls"] == plain["model_calls"] == 3
