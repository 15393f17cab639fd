"""bench.serving.rules: the rule modes and a tiny end-to-end run (MMR quality: test_mmr.py)."""

import json

from bench.serving import bench_model
from bench.serving import rules


def test_catalogue_attributes_give_each_item_its_cluster_and_a_brand():
  values, rows = rules.catalogue_attributes(300, seed=2)
  clusters = bench_model.item_clusters(300, seed=2)
  assert len(rows) == 300
  assert [values[row[0]] for row in rows] == [f"category_{c}" for c in clusters]
  assert all(values[row[1]].startswith("brand_") for row in rows)


def test_tiny_run_writes_a_report_marked_shared(tmp_path):
  code = rules.main(["--items", "60", "--requests", "4", "--rounds", "2", "--concurrency",
                     "1", "--warmup", "1", "--quality-users", "20", "--history-length", "5",
                     "--out-dir", str(tmp_path)])
  assert code == 0
  report = json.loads((tmp_path / "rules.json").read_text())
  assert report["shared_cores"] is True
  assert set(report["latency"]) == {"serving_default", "recommend-no-rules", "recommend-rules",
                                    "recommend-allow", "recommend-mmr"}
  assert all(entry["results"][0]["requests"] == 8 and entry["results"][0]["errors"] == 0
             for entry in report["latency"].values())
  assert [row["diversity_weight"] for row in report["quality"]] == list(rules.MMR_WEIGHTS)
  assert set(report["in_process"]) == set(report["latency"])
  assert report["in_process"]["recommend-rules"]["requests"] == 8
  assert "Shared cores" in (tmp_path / "rules.md").read_text()
