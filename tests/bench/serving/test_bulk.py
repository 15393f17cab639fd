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
  assert "(shared cores)" in text and "| batch size | users | rows | seconds | users/s |" in text
