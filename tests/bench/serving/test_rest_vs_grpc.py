"""bench.serving.rest_vs_grpc: a short comparison on the toy model."""

import json

from bench.serving import rest_vs_grpc


def test_rest_and_grpc_are_measured_on_the_same_answers(tmp_path):
  code = rest_vs_grpc.main(["--toy-items", "40", "--toy-dim", "8", "--requests", "20",
                            "--concurrency", "1", "2", "--history-length", "5", "-k", "4",
                            "--warmup", "1", "--out-dir", str(tmp_path), "--label", "run"])
  assert code == 0
  report = json.loads((tmp_path / "run.json").read_text())
  assert report["identical_answers"] and report["catalogue_size"] == 40
  assert [(r["api"], r["concurrency"]) for r in report["results"]] == [
      ("grpc", 1), ("rest", 1), ("grpc", 2), ("rest", 2)]
  assert all(r["requests"] == 20 and r["errors"] == 0 for r in report["results"])
  assert "| rest | 2 | 20 | 0 |" in (tmp_path / "run.md").read_text()
