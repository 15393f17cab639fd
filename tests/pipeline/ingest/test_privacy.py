"""Pseudonymised user ids at ingestion: keyed, consistent, and the key and raw ids stored nowhere."""

import json
from pathlib import Path

import pandas as pd
import pytest

from components.sequence_builder import forgotten_users
from pipeline import local_runner
from pipeline.ingest import canonical
from pipeline.ingest import privacy
from pipeline.ingest.errors import IngestError

KEY = "k3y-0f-the-n1ght1y-j0b-7f3a9c21"
USERS = ["alice@example.com", "bob@example.com", "carol.0042"]
KEY_ENV = "SEQREC_TEST_PSEUDONYMIZATION_KEY"


def _log(path: Path, users=USERS, start: int = 1_700_000_000) -> Path:
  rows = [(u, f"item-{k}", start + 10 * k + j) for j, u in enumerate(users) for k in range(6)]
  pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(path, index=False)
  return path


def _ingest(tmp_path, monkeypatch, *flags, log=None, span=None):
  monkeypatch.setattr(local_runner, "run", lambda config: {})   # ingestion only
  monkeypatch.setenv(KEY_ENV, KEY)
  argv = ["--dataset", "csv", "--data-dir", str(log or _log(tmp_path / "log.csv")),
          "--output-dir", str(tmp_path / "out"), *flags]
  if span is not None:
    argv += ["--span", str(span)]
  return local_runner.main(argv)


def _every_file(root: Path):
  return [p for p in root.rglob("*") if p.is_file()]


def test_pseudonymised_output_holds_neither_the_key_nor_a_raw_user_id(tmp_path, monkeypatch,
                                                                      capsys):
  assert _ingest(tmp_path, monkeypatch, "--pseudonymize-key-env", KEY_ENV) == 0
  out = tmp_path / "out"
  files = _every_file(out)
  assert out / local_runner.CONFIG_FILE in files and len(files) >= 3
  for path in files:
    data = path.read_bytes()
    assert KEY.encode() not in data, path
    for user in USERS:
      assert user.encode() not in data, (path, user)
  log = pd.read_csv(out / "data" / "interactions" / "interactions.csv", dtype=str)
  assert set(log.user_id) == {privacy.pseudonym(u, KEY.encode()) for u in USERS}
  assert log.user_id.str.fullmatch(r"[0-9a-f]{32}").all()
  assert "3 users" in capsys.readouterr().out


def test_a_key_file_gives_the_same_pseudonyms_as_the_variable(tmp_path):
  key_file = tmp_path / "key"
  key_file.write_text(KEY + "\n")   # a trailing newline is not part of the key
  assert privacy.read_key(None, str(key_file)) == KEY.encode()


@pytest.mark.parametrize("env, file_text, message", [
    ("UNSET", None, "environment variable SEQREC_TEST_UNSET_KEY is not set"),
    ("EMPTY", None, "key in environment variable SEQREC_TEST_EMPTY_KEY is empty"),
    (None, "", "is empty; make one with e.g. `openssl rand -hex 32`"),
    (None, "short", "is shorter than 16 bytes"),
])
def test_a_missing_or_weak_key_is_one_error_line(tmp_path, monkeypatch, capsys, env, file_text,
                                                message):
  monkeypatch.setattr(local_runner, "run", lambda config: {})
  monkeypatch.setenv("SEQREC_TEST_EMPTY_KEY", "  ")
  monkeypatch.delenv("SEQREC_TEST_UNSET_KEY", raising=False)
  if env:
    flags = ["--pseudonymize-key-env", f"SEQREC_TEST_{env}_KEY"]
  else:
    (tmp_path / "key").write_text(file_text)
    flags = ["--pseudonymize-key-file", str(tmp_path / "key")]
  code = local_runner.main(["--dataset", "csv", "--data-dir", str(_log(tmp_path / "l.csv")),
                            "--output-dir", str(tmp_path / "out"), *flags])
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 1 and len(err) == 1 and err[0].startswith("error: ")
  assert message in err[0]
  assert not (tmp_path / "out" / "data" / "interactions").exists()


def test_a_missing_key_file_is_one_error_line(tmp_path):
  with pytest.raises(IngestError, match=r"--pseudonymize-key-file: cannot read .*/nope: "):
    privacy.read_key(None, str(tmp_path / "nope"))


def test_later_spans_must_use_the_same_key(tmp_path, monkeypatch, capsys):
  flags = ("--pseudonymize-key-env", KEY_ENV)
  assert _ingest(tmp_path, monkeypatch, *flags, span=1) == 0
  capsys.readouterr()
  assert _ingest(tmp_path, monkeypatch, span=2) == 1
  assert "holds pseudonymised user ids" in capsys.readouterr().err
  monkeypatch.setenv("OTHER_KEY", "another-key-of-enough-length")
  code = local_runner.main(["--dataset", "csv", "--data-dir", str(tmp_path / "log.csv"),
                            "--output-dir", str(tmp_path / "out"), "--span", "2",
                            "--pseudonymize-key-env", "OTHER_KEY"])
  assert code == 1
  assert "key differs from the one that wrote" in capsys.readouterr().err
  assert _ingest(tmp_path, monkeypatch, *flags, span=2) == 0
  assert [s for s, _ in canonical.span_logs(str(tmp_path / "out/data/interactions"))] == [1, 2]


def test_a_key_is_refused_on_data_ingested_without_one(tmp_path, monkeypatch, capsys):
  assert _ingest(tmp_path, monkeypatch, span=1) == 0
  assert _ingest(tmp_path, monkeypatch, "--pseudonymize-key-env", KEY_ENV, span=2) == 1
  assert "not pseudonymised, so a key does not apply" in capsys.readouterr().err


def _ledger(data_root: Path, *canonical_ids: str) -> None:
  entries = [{"user_hash": forgotten_users.user_hash(u), "forgotten_at": "2026-11-27T00:00:00"}
             for u in canonical_ids]
  (data_root / forgotten_users.LEDGER_FILE).write_text(json.dumps({"forgotten": entries}))


def test_ingestion_drops_users_of_the_ledger(tmp_path):
  data_root = tmp_path / "data"
  data_root.mkdir()
  _ledger(data_root, "bob@example.com")
  log = pd.read_csv(_log(tmp_path / "log.csv"), dtype={"user_id": str})
  data = canonical.write_canonical(log, None, str(data_root), span=3)
  assert data.num_users == 2 and data.num_forgotten_interactions == 6
  written = pd.read_csv(data.interactions_path, dtype=str)
  assert "bob@example.com" not in set(written.user_id)
  assert "6 interactions of forgotten users dropped" in local_runner.describe_data("csv", data)


def test_the_ledger_matches_pseudonyms_when_ingesting_with_a_key(tmp_path):
  data_root = tmp_path / "data"
  data_root.mkdir()
  _ledger(data_root, privacy.pseudonym("alice@example.com", KEY.encode()))
  log = pd.read_csv(_log(tmp_path / "log.csv"), dtype={"user_id": str})
  data = canonical.write_canonical(log, None, str(data_root), span=1,
                                   pseudonymize_key=KEY.encode())
  assert data.num_forgotten_interactions == 6 and data.num_users == 2


def test_a_log_of_forgotten_users_only_is_refused(tmp_path):
  data_root = tmp_path / "data"
  data_root.mkdir()
  _ledger(data_root, *USERS)
  log = pd.read_csv(_log(tmp_path / "log.csv"), dtype={"user_id": str})
  with pytest.raises(IngestError, match="every user of the interaction log .18 rows. is in "
                                        "the forgotten-users ledger"):
    canonical.write_canonical(log, None, str(data_root))


def test_an_unreadable_ledger_stops_ingestion(tmp_path):
  data_root = tmp_path / "data"
  data_root.mkdir()
  (data_root / forgotten_users.LEDGER_FILE).write_text("{not json")
  log = pd.read_csv(_log(tmp_path / "log.csv"), dtype={"user_id": str})
  with pytest.raises(IngestError, match="ledger .* is unreadable .*restore it from a backup"):
    canonical.write_canonical(log, None, str(data_root))


def test_a_marker_write_that_fails_midway_leaves_the_previous_marker(tmp_path, monkeypatch):
  data_root = tmp_path / "data"
  data_root.mkdir()
  privacy.record_key(str(data_root), KEY.encode())
  before = (data_root / privacy.MARKER_FILE).read_bytes()

  def dump_then_fail(value, f, **kwargs):   # e.g. the disk fills up after a few bytes
    f.write(json.dumps(value)[:5])
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(privacy.json, "dump", dump_then_fail)
  with pytest.raises(OSError, match="No space left"):
    privacy.record_key(str(data_root), KEY.encode())
  monkeypatch.undo()
  assert (data_root / privacy.MARKER_FILE).read_bytes() == before
  assert [p.name for p in data_root.iterdir()] == [privacy.MARKER_FILE]
  privacy.check_key(str(data_root), KEY.encode(), holds_logs=True)   # still readable
