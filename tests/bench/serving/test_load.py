"""bench.serving.load: a short run against an in-process server on the toy model."""

import json

import numpy as np
import pytest

from bench.serving import load
from serving import server as server_lib
from serving import testing
from serving.testing import toy_model


@pytest.fixture(scope="module")
def target(tmp_path_factory):
  root = tmp_path_factory.mktemp("bench")
  export = toy_model.export_toy_model(str(root / "export"), 30, seed=0)
  testing.push_version(export, str(root / "seqrec"), 1)
  server = server_lib.ModelServer("seqrec", str(root / "seqrec"), port=0,
                                  host=testing.LOOPBACK, poll_seconds=5).start()
  yield f"{testing.LOOPBACK}:{server.port}"
  server.stop(grace=1)


def test_percentile_summary_of_known_latencies():
  summary = load.percentile_summary([i / 1000 for i in range(1, 101)], elapsed_s=2.0,
                                    errors=1, batch_size=4)
  assert summary["requests"] == 100 and summary["errors"] == 1
  assert summary["p50_ms"] == pytest.approx(50.5)
  assert summary["p99_ms"] == pytest.approx(99.01)
  assert summary["throughput_rps"] == 50.0 and summary["histories_per_s"] == 200.0


def test_load_run_writes_json_and_markdown(target, tmp_path, capsys):
  code = load.main(["--server", target, "--requests", "30", "--concurrency", "1", "3",
                    "--batch-size", "2", "--history-length", "5", "-k", "4",
                    "--warmup", "1", "--out-dir", str(tmp_path), "--label", "run"])
  assert code == 0
  report = json.loads((tmp_path / "run.json").read_text())
  assert report["catalogue_size"] == 30
  assert [r["concurrency"] for r in report["results"]] == [1, 3]
  for result in report["results"]:
    assert result["requests"] == 30 and result["errors"] == 0
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["histories_per_s"] == pytest.approx(2 * result["throughput_rps"], rel=0.01)
  table = (tmp_path / "run.md").read_text()
  assert "| concurrency | requests | errors | p50 ms |" in table
  assert table.count("\n| ") == 3   # header + two levels
  assert "wrote" in capsys.readouterr().out


def test_load_stops_at_max_seconds(target, tmp_path):
  load.main(["--server", target, "--requests", "100000", "--concurrency", "2",
             "--max-seconds", "1", "--warmup", "0", "--out-dir", str(tmp_path),
             "--label", "short"])
  (result,) = json.loads((tmp_path / "short.json").read_text())["results"]
  assert 0 < result["requests"] < 100000
  assert result["elapsed_s"] < 5
  assert np.isfinite(result["p99_ms"])


def test_machine_info_names_cpu_cores_and_commit():
  info = load.machine_info()
  assert info["cpus"] >= 1 and info["cpu_model"]
  commit = info["git_commit"]
  assert commit == "unknown" or (len(commit) == 40 and int(commit, 16) >= 0)


def test_scann_flag_needs_the_encoder_model(capsys):
  with pytest.raises(SystemExit):
    load.parse_args(["--toy-items", "10", "--scann"])
  assert "--scann goes with --encoder-items" in capsys.readouterr().err


def test_git_commit_is_read_in_a_worktree_too(tmp_path):
  commit = "ab" * 20
  main_git = tmp_path / "main" / ".git"
  (main_git / "refs" / "heads").mkdir(parents=True)
  (main_git / "refs" / "heads" / "topic").write_text(commit + "\n")
  worktree_git = main_git / "worktrees" / "wt"
  worktree_git.mkdir(parents=True)
  (worktree_git / "HEAD").write_text("ref: refs/heads/topic\n")
  (worktree_git / "commondir").write_text("../..\n")
  (tmp_path / "wt").mkdir()
  (tmp_path / "wt" / ".git").write_text(f"gitdir: {worktree_git}\n")
  assert load.git_commit(str(tmp_path / "wt")) == commit
  assert load.git_commit(str(tmp_path / "nothing")) == "unknown"
