"""python -m pipeline.forget_user: users leave every canonical span, the ledger keeps them out."""

import datetime
import json
from pathlib import Path

import pandas as pd
import pytest

from components.sequence_builder import forgotten_users
from pipeline import configs
from pipeline import forget_user
from pipeline import local_runner
from pipeline.ingest import canonical
from pipeline.ingest import privacy

KEY = "0123456789abcdef-forget-test-key"
KEY_ENV = "SEQREC_TEST_FORGET_KEY"


def _day(path: Path, users, day: int) -> Path:
  rows = [(u, f"i{(k * 7 + len(u)) % 5}", 1_700_000_000 + day * 86400 + 60 * k)
          for u in users for k in range(4)]
  pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(path, index=False)
  return path


def _nightly(tmp_path, monkeypatch, span: int, users, *flags) -> int:
  monkeypatch.setattr(local_runner, "run", lambda config: {})   # ingestion only
  return local_runner.main([
      "--dataset", "csv", "--data-dir", str(_day(tmp_path / f"{span}.csv", users, span)),
      "--output-dir", str(tmp_path / "out"), "--span", str(span), "--min-interactions", "3",
      *flags])


def _spans(tmp_path):
  return {s: pd.read_csv(p, dtype=str, keep_default_na=False)
          for s, p in canonical.span_logs(str(tmp_path / "out/data/interactions"))}


def test_forgetting_removes_the_user_from_every_span_and_later_logs(tmp_path, monkeypatch,
                                                                   capsys):
  for span in (1, 2):
    assert _nightly(tmp_path, monkeypatch, span, ["ann", "ben", "cy"]) == 0
  paths = dict(canonical.span_logs(str(tmp_path / "out/data/interactions")))
  before = {s: Path(p).read_text().splitlines() for s, p in paths.items()}
  capsys.readouterr()

  assert forget_user.main(["--output-dir", str(tmp_path / "out"), "--user", "ben"]) == 0
  out = capsys.readouterr().out
  assert "Forgot 1 user(s): removed 8 events from 2 canonical log file(s)" in out
  for span, log in _spans(tmp_path).items():
    assert "ben" not in set(log.user_id)
    # The other rows are kept byte for byte.
    after = Path(paths[span]).read_text().splitlines()
    assert after == [line for line in before[span] if not line.startswith("ben,")]

  ledger = json.loads((tmp_path / "out/data" / forgotten_users.LEDGER_FILE).read_text())
  [entry] = ledger["forgotten"]
  assert entry["user_hash"] == forgotten_users.user_hash("ben")
  assert entry["events_removed"] == 8
  assert datetime.datetime.fromisoformat(entry["forgotten_at"]).tzinfo is not None
  assert "ben" not in json.dumps(ledger)

  # The nightly job re-ingests a log that still holds ben: he stays out.
  assert _nightly(tmp_path, monkeypatch, 3, ["ann", "ben", "cy"]) == 0
  assert "4 interactions of forgotten users dropped" in capsys.readouterr().out
  assert "ben" not in set(_spans(tmp_path)[3].user_id)


def test_forgetting_again_keeps_one_ledger_entry(tmp_path, monkeypatch):
  assert _nightly(tmp_path, monkeypatch, 1, ["ann", "ben"]) == 0
  data_root = str(tmp_path / "out/data")
  first = forget_user.forget(data_root, ["ben", "zed"])
  assert first.events_removed == {"ben": 4, "zed": 0}
  again = forget_user.forget(data_root, ["ben"])
  assert again.events_removed == {"ben": 0} and again.files_rewritten == []
  entries = forgotten_users.read_entries(privacy.ledger_path(data_root))
  assert [e["events_removed"] for e in entries] == [4, 0]


def test_with_the_key_raw_ids_are_hashed_as_at_ingestion(tmp_path, monkeypatch, capsys):
  monkeypatch.setenv(KEY_ENV, KEY)
  key_flags = ["--pseudonymize-key-env", KEY_ENV]
  assert _nightly(tmp_path, monkeypatch, 1, ["ann", "ben"], *key_flags) == 0
  out_dir = str(tmp_path / "out")

  assert forget_user.main(["--output-dir", out_dir, "--user", "ben"]) == 1
  assert "holds pseudonymised user ids" in capsys.readouterr().err

  assert forget_user.main(["--output-dir", out_dir, "--user", "ben", *key_flags]) == 0
  assert "removed 4 events" in capsys.readouterr().out
  assert set(_spans(tmp_path)[1].user_id) == {privacy.pseudonym("ann", KEY.encode())}


def test_a_key_on_data_without_pseudonyms_is_refused(tmp_path, monkeypatch, capsys):
  monkeypatch.setenv(KEY_ENV, KEY)
  assert _nightly(tmp_path, monkeypatch, 1, ["ann", "ben"]) == 0
  code = forget_user.main(["--output-dir", str(tmp_path / "out"), "--user", "ben",
                           "--pseudonymize-key-env", KEY_ENV])
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 1 and len(err) == 1 and "not pseudonymised" in err[0]
  assert "ben" in set(_spans(tmp_path)[1].user_id)


@pytest.mark.parametrize("argv, message", [
    (["--user", " "], "error: --user: an empty user id"),
    (["--user", "ben"], "error: no canonical interaction log under"),
])
def test_bad_requests_are_one_error_line(tmp_path, capsys, argv, message):
  code = forget_user.main(["--output-dir", str(tmp_path / "nothing"), *argv])
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 1 and len(err) == 1 and err[0].startswith(message)


def test_forget_user_finds_the_data_wherever_the_runner_puts_it(tmp_path, monkeypatch, capsys):
  # One definition of <output-dir>/data serves both: moving it moves both.
  monkeypatch.setattr(configs, "DATA_DIR", "canonical")
  assert _nightly(tmp_path, monkeypatch, 1, ["ann", "ben", "cy"]) == 0
  [(_, path)] = canonical.span_logs(str(tmp_path / "out/canonical/interactions"))
  assert forget_user.main(["--output-dir", str(tmp_path / "out"), "--user", "ben"]) == 0
  assert "removed 4 events from 1 canonical log file(s)" in capsys.readouterr().out
  assert "ben" not in set(pd.read_csv(path, dtype=str).user_id)
  assert not (tmp_path / "out" / "data").exists()
