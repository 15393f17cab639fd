"""bench.serving.soak: a seconds-long soak against a server subprocess, and its bookkeeping."""

import json

from bench.serving import soak


def test_short_soak_pushes_versions_refuses_bad_requests_and_reports(tmp_path):
  code = soak.main(["--toy-items", "30", "--minutes", "0.2", "--push-every", "4",
                    "--concurrency", "2", "--bad-fraction", "0.2", "--warmup-seconds", "2",
                    "--window-seconds", "4", "--rss-interval", "1", "--poll-seconds", "0.5",
                    "--out-dir", str(tmp_path), "--label", "short"])
  report = json.loads((tmp_path / "short.json").read_text())
  assert report["failed_valid"] == 0 and report["bad_not_invalid_argument"] == 0
  assert code == (0 if report["passed"] else 1)
  assert report["requests"] > 0 and report["versions_pushed"] >= 2
  answered = {v for w in report["windows"] for v in w["versions"]}
  assert {1, 2} <= answered
  assert set(report["codes"]) > {"valid"}      # bad requests were sent
  assert all(set(c) == {"INVALID_ARGUMENT"} for k, c in report["codes"].items() if k != "valid")
  assert report["rss"]["warm_mb"] > 0 and report["machine"]["git_commit"]
  text = (tmp_path / "short.md").read_text()
  assert "| until s | valid | failed | bad | p50 ms | p99 ms |" in text
  assert "failed valid requests 0 (bar 0)" in text


def _recorder(requests, rss):
  recorder = soak.Recorder()
  recorder.requests = requests
  recorder.rss = rss
  return recorder


def test_windows_split_requests_by_time_without_a_sliver_at_the_end():
  requests = [(0.5, True, "valid", "OK", 0.010, 1), (1.5, True, "valid", "OK", 0.020, 1),
              (2.5, False, "zero-k", "INVALID_ARGUMENT", 0.001, 0),
              (3.9, True, "valid", "UNAVAILABLE", 0.001, 0),
              (4.01, True, "valid", "OK", 0.030, 2)]
  rows = soak.windows(_recorder(requests, [(1.0, 2 ** 20), (3.0, 3 * 2 ** 20)]), 2.0, 1)
  assert [(r["valid"], r["valid_failed"], r["bad"]) for r in rows] == [(2, 0, 0), (2, 1, 1)]
  assert rows[0]["versions"] == [1] and rows[1]["versions"] == [2]
  assert rows[0]["rss_mb"] == 1.0 and rows[1]["rss_mb"] == 3.0
  assert rows[1]["p50_ms"] == 30.0


def test_rss_growth_compares_the_floor_after_warm_up_and_at_the_end():
  mb = 2 ** 20
  samples = [(0, 50), (5, 180), (6, 100), (7, 120), (8, 104), (9, 300), (10, 280), (11, 105)]
  growth = soak.rss_growth([(t, b * mb) for t, b in samples], 5, 3)
  # Versions loading (180, 300, 280 MB) decide neither end.
  assert growth == {"warm_mb": 100.0, "end_mb": 105.0, "peak_mb": 300.0, "growth_pct": 5.0}
  assert soak.rss_growth([(1, mb)], 5, 3)["growth_pct"] is None


def test_codes_count_each_kind_separately():
  recorder = _recorder([(0, True, "valid", "OK", 0, 1), (1, True, "valid", "OK", 0, 1),
                        (2, False, "oversize-id", "INVALID_ARGUMENT", 0, 0)], [])
  assert soak.codes(recorder) == {"oversize-id": {"INVALID_ARGUMENT": 1}, "valid": {"OK": 2}}
