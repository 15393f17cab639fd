"""Bad input refused at ingestion with one line naming the file, row and what was expected."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from pipeline import ingest
from pipeline import local_runner
from pipeline.ingest import canonical
from pipeline.ingest.canonical import IngestError

REPO = Path(__file__).resolve().parents[3]


def _write(path: Path, text: str) -> Path:
  path.write_text(text, encoding="utf-8")
  return path


def _log(timestamps, users=None) -> pd.DataFrame:
  users = users or ["u"] * len(timestamps)
  return pd.DataFrame({"user_id": users,
                       "item_id": [f"i{k}" for k in range(len(timestamps))],
                       "timestamp": timestamps})


# ----------------------------------------------------------------------------
# Malformed files.


_HEADER = "user_id,item_id,timestamp\n"


@pytest.mark.parametrize("name, text, error", [
    # pandas would take the surplus first field as the index: user "Red", item "big mug".
    pytest.param("shifted.csv", _HEADER + "u1,Red, big mug,1\nu2,Blue, small cup,2\n",
                 "interaction log file {path}, line 2: expected 3 fields "
                 "(user_id,item_id,timestamp), found 4: 'u1,Red, big mug,1'; quote a field that "
                 "holds ','", id="unquoted-comma"),
    pytest.param("extra.csv", _HEADER + "1,2,3\n1,2,3,4\n",
                 "interaction log file {path}, line 3: expected 3 fields "
                 "(user_id,item_id,timestamp), found 4", id="extra-field"),
    pytest.param("short.csv", _HEADER + "1,2,3\n1,2\n",
                 "interaction log {path}, line 3: column 'timestamp' is empty; expected a number",
                 id="missing-field"),
    pytest.param("twice.csv", "user_id,item_id,timestamp,item_id\nu,i,1,j\n",
                 "interaction log file {path}, line 1: column(s) ['item_id'] appear more than "
                 "once", id="repeated-column"),
    pytest.param("log.csv", "user,item_id,timestamp\n1,2,3\n",
                 "interaction log {path}: missing required column(s) ['user_id']; columns found: "
                 "['user', 'item_id', 'timestamp']", id="missing-column"),
    # The header is line 1 and the blank line 3 still counts.
    pytest.param("log.csv", _HEADER + "1,2,100\n\n1,3,2024-01-01\n",
                 "interaction log {path}, line 4: column 'timestamp' has value '2024-01-01'; "
                 "expected a number", id="timestamp-not-a-number"),
    pytest.param("log.tsv", "user_id\titem_id\ttimestamp\n1\t2\t3\n \t2\t4\n",
                 "interaction log {path}, line 3: column 'user_id' is empty", id="empty-id"),
    pytest.param("empty.csv", "", "interaction log file {path} is empty", id="empty-file"),
    pytest.param("header.csv", _HEADER, "interaction log file {path} has no data rows",
                 id="header-only"),
    pytest.param("absent.csv", None, "interaction log file not found: {path}", id="no-file"),
    pytest.param("log.json", "[]", "interaction log file {path} has unsupported extension "
                 "'.json'; supported formats: .csv, .tsv, .parquet", id="unknown-extension"),
])
def test_malformed_log_is_refused_with_one_line_naming_file_and_line(tmp_path, name, text,
                                                                     error):
  path = tmp_path / name
  if text is not None:
    _write(path, text)
  with pytest.raises(IngestError) as e:
    ingest.read_interactions(str(path))
  assert str(e.value).startswith(error.format(path=path)) and "\n" not in str(e.value)


def test_ids_are_read_as_written(tmp_path):
  path = _write(tmp_path / "zeros.csv", "user_id,item_id,timestamp\n"
                "0042,007,1\n042,7,2\n42,7.0,3\n")
  log = ingest.read_interactions(str(path))
  assert log.user_id.tolist() == ["0042", "042", "42"]
  assert log.item_id.tolist() == ["007", "7", "7.0"]


def test_garbage_parquet_is_a_one_line_error_and_a_clean_exit(tmp_path):
  # pd.read_parquet raised here and the interpreter then aborted at exit.
  path = tmp_path / "log.parquet"
  path.write_bytes(os.urandom(3000))
  script = ("import sys\n"
            "from pipeline.ingest import canonical\n"
            "try:\n"
            f"  canonical.read_interactions({str(path)!r})\n"
            "except canonical.IngestError as e:\n"
            "  print(f'error: {e}', file=sys.stderr)\n"
            "  sys.exit(1)\n")
  result = subprocess.run([sys.executable, "-c", script], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 1, result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1
  assert lines[0].startswith(f"error: could not read interaction log file "
                             f"{path} as Parquet: ")


# ----------------------------------------------------------------------------
# Timestamps.


@pytest.mark.parametrize("value", [-1, -0.5, 1e300, 1_700_000_000_000])
def test_timestamps_outside_the_accepted_range_name_the_row(value):
  with pytest.raises(IngestError, match=(
      rf"row 2: column 'timestamp' has value {re.escape(repr(value))}; expected unix seconds "
      r"\(or an order 0, 1, 2, \.\.\.\) from 0 to \d+ \(now \+ 24 h\)")):
    ingest.validate_interactions(_log([5, value]))


def test_future_timestamps_are_accepted_within_a_day():
  now = time.time()
  log = ingest.validate_interactions(_log([0, now + 23 * 3600]))
  assert log.timestamp.tolist() == [0, now + 23 * 3600]
  with pytest.raises(IngestError, match="row 1: column 'timestamp'"):
    ingest.validate_interactions(_log([now + 25 * 3600]))


def test_fractional_timestamps_survive_the_canonical_copy(tmp_path):
  stamps = [1_700_000_000.001, 1_700_000_000.002, 1_700_000_000.123456]
  data = ingest.write_canonical(_log(stamps), None, str(tmp_path))
  assert ingest.read_interactions(data.interactions_path).timestamp.tolist() == (
      stamps)


# ----------------------------------------------------------------------------
# A log that cannot train.


def test_log_where_no_user_reaches_min_interactions_is_refused(tmp_path):
  data = ingest.write_canonical(
      _log([1, 2, 3, 4], users=["a", "a", "b", "c"]), None, str(tmp_path))
  assert canonical.check_trainable(data, min_interactions=2) == 1
  with pytest.raises(IngestError) as error:
    canonical.check_trainable(data, min_interactions=3)
  assert str(error.value) == (
      f"interaction log {data.interactions_path}: 0 of 3 users have at least "
      "min_interactions=3 events (the most any user has is 2); training needs "
      "at least one such user: lower --min-interactions or add events")


def test_span_window_counts_the_newest_spans_together(tmp_path):
  for span, users in ((1, ["a", "b"]), (2, ["a", "c"]), (3, ["a", "b"])):
    data = ingest.write_canonical(_log([span, span], users=users), None,
                                  str(tmp_path), span=span)
  # Spans 2 and 3: "a" has 2 events; spans 1-3: "a" 3, "b" 2.
  assert canonical.check_trainable(data, 2, span_window=2) == 1
  with pytest.raises(IngestError, match=r"2 spans .*/span-\*: 0 of 3 users"):
    canonical.check_trainable(data, 3, span_window=2)
  assert canonical.check_trainable(data, 3, span_window=3) == 1


def test_runner_refuses_a_one_row_log_before_the_pipeline(tmp_path, capsys):
  log = _write(tmp_path / "one.csv", "user_id,item_id,timestamp\nu,i,1\n")
  code = local_runner.main(["--dataset", "csv", "--data-dir", str(log),
                            "--output-dir", str(tmp_path / "out")])
  assert code == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert err == [f"error: interaction log {tmp_path}/out/data/interactions/"
                 "interactions.csv: 0 of 1 users have at least "
                 "min_interactions=5 events (the most any user has is 1); "
                 "training needs at least one such user: lower "
                 "--min-interactions or add events"]
