"""Pseudonymised user ids at ingestion, and dropping the users of the forgotten-users ledger.

With a key, each user id becomes HMAC-SHA256(key, id), its first 128 bits in hex. The
key is read at run time from an environment variable or a file and stored nowhere.
"""

import argparse
import hashlib
import hmac
import json
import os
from typing import Optional, Tuple

import pandas as pd

from components.sequence_builder import forgotten_users
from pipeline.ingest.errors import IngestError
from trainer import atomic_file
from trainer import features

KEY_ENV_FLAG = "--pseudonymize-key-env"
KEY_FILE_FLAG = "--pseudonymize-key-file"
MIN_KEY_BYTES = 16
PSEUDONYM_HEX_CHARS = 32
# In the data root: that its user ids are pseudonymised, and a check value of
# the key (an HMAC of a constant, which does not reveal the key).
MARKER_FILE = "pseudonymization.json"
_METHOD = "hmac-sha256-128"
_KEY_CHECK_MESSAGE = b"seqrec-ssl pseudonymization key check"
_KEY_FLAGS = f"{KEY_ENV_FLAG} / {KEY_FILE_FLAG}"


def add_key_flags(parser: argparse.ArgumentParser) -> None:
  """The two ways to give the key; at most one."""
  group = parser.add_mutually_exclusive_group()
  group.add_argument(KEY_ENV_FLAG, metavar="NAME",
                     help="pseudonymise user ids with the HMAC key in this environment "
                          "variable (never stored with the outputs)")
  group.add_argument(KEY_FILE_FLAG, metavar="PATH",
                     help="as --pseudonymize-key-env, with the key read from this file")


def read_key(env_name: Optional[str], file_path: Optional[str]) -> Optional[bytes]:
  """The key from the named environment variable or file; None when neither is given.

  Raises:
    IngestError: the variable is unset, the file unreadable, or the key empty or
      shorter than ``MIN_KEY_BYTES`` (surrounding whitespace is not part of it).
  """
  if env_name:
    value = os.environ.get(env_name)
    if value is None:
      raise IngestError(f"{KEY_ENV_FLAG}: environment variable {env_name} is not set")
    key, source = value.encode("utf-8").strip(), f"environment variable {env_name}"
  elif file_path:
    try:
      with open(file_path, "rb") as f:
        key = f.read().strip()
    except OSError as e:
      raise IngestError(f"{KEY_FILE_FLAG}: cannot read {file_path}: {e.strerror}") from e
    source = f"key file {file_path}"
  else:
    return None
  if len(key) < MIN_KEY_BYTES:
    raise IngestError(f"the pseudonymisation key in {source} is "
                      f"{'empty' if not key else f'shorter than {MIN_KEY_BYTES} bytes'}; "
                      "make one with e.g. `openssl rand -hex 32`")
  return key


def key_from_flags(args: argparse.Namespace) -> Optional[bytes]:
  return read_key(args.pseudonymize_key_env, args.pseudonymize_key_file)


def pseudonym(user_id: str, key: bytes) -> str:
  """The pseudonym of one canonical user id."""
  digest = hmac.new(key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()
  return digest[:PSEUDONYM_HEX_CHARS]


def pseudonymize(user_ids: pd.Series, key: bytes) -> pd.Series:
  """Every id replaced by its pseudonym (computed once per distinct id)."""
  codes, uniques = pd.factorize(user_ids)
  table = pd.Series([pseudonym(u, key) for u in uniques], dtype=object)
  return pd.Series(table.to_numpy()[codes], index=user_ids.index, dtype=object)


def _key_check(key: bytes) -> str:
  return hmac.new(key, _KEY_CHECK_MESSAGE, hashlib.sha256).hexdigest()[:16]


def _read_marker(data_root: str) -> Optional[dict]:
  path = os.path.join(data_root, MARKER_FILE)
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def check_key(data_root: str, key: Optional[bytes], holds_logs: bool) -> None:
  """Refuses a key that would not give the pseudonyms already in ``data_root``.

  Earlier spans and the ledger hold ids as the first ingestion wrote them: a
  different key (or none, or one where there was none) would split each user in
  two and let forgotten users back in under new ids.

  Args:
    data_root: the canonical data folder.
    key: this ingestion's key, or None.
    holds_logs: whether ``data_root`` already holds a canonical log.
  """
  marker = _read_marker(data_root)
  if marker is not None and key is None:
    raise IngestError(f"{data_root} holds pseudonymised user ids ({MARKER_FILE}): give "
                      f"the same key with {_KEY_FLAGS}")
  if marker is not None and marker.get("key_check") != _key_check(key):
    raise IngestError(f"the pseudonymisation key differs from the one that wrote "
                      f"{data_root}: give the same key, or ingest into a new --output-dir")
  if marker is None and key is not None and holds_logs:
    raise IngestError(f"{data_root} holds user ids that are not pseudonymised, so a key "
                      "does not apply to it; to pseudonymise, ingest with the key into a new "
                      "--output-dir")


def record_key(data_root: str, key: Optional[bytes]) -> None:
  """Marks ``data_root`` as pseudonymised with ``key`` (the key is not stored).

  Atomically: a half-written marker would make every later ingestion refuse the key.
  """
  if key is None:
    return

  def write(f):
    json.dump({"user_ids": _METHOD, "key_check": _key_check(key)}, f, indent=2)
    f.write("\n")
  atomic_file.write_atomically(os.path.join(data_root, MARKER_FILE), write, encoding="utf-8")


def ledger_path(data_root: str) -> str:
  return os.path.join(data_root, forgotten_users.LEDGER_FILE)


def drop_forgotten(log: pd.DataFrame, data_root: str) -> Tuple[pd.DataFrame, int]:
  """The log without the users of ``data_root``'s ledger, and how many rows went.

  Raises:
    IngestError: an unreadable ledger.
  """
  try:
    hashes = forgotten_users.forgotten_hashes(ledger_path(data_root))
  except ValueError as e:
    raise IngestError(str(e)) from e
  if not hashes:
    return log, 0
  codes, uniques = pd.factorize(log[features.LOG_USER_ID])
  forgotten = pd.Series([forgotten_users.user_hash(u) in hashes for u in uniques],
                        dtype=bool).to_numpy()
  dropped = forgotten[codes]
  return log.loc[~dropped].reset_index(drop=True), int(dropped.sum())
