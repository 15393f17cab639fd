"""The ledger of forgotten users (``<data_root>/forgotten_users.json``): SHA-256 hashes, never ids.

Ingestion and the SequenceBuilder drop its users; docs/data.md, "Privacy".
"""

import hashlib
import json
import os
from typing import Any, Callable, Dict, FrozenSet, List, Union

LEDGER_FILE = "forgotten_users.json"
ENTRIES_KEY = "forgotten"
HASH_KEY = "user_hash"


def user_hash(user_id: Union[str, bytes]) -> str:
  """Hex SHA-256 of a canonical user id (as stored: raw or pseudonymised)."""
  data = user_id.encode("utf-8") if isinstance(user_id, str) else user_id
  return hashlib.sha256(data).hexdigest()


def read_entries(path: str, exists: Callable[[str], bool] = os.path.exists,
                 open_fn: Callable = open) -> List[Dict[str, Any]]:
  """The ledger's entries (``user_hash``, ``forgotten_at``, ...); [] without a ledger.

  ``exists`` and ``open_fn`` read the file (``tfx.dsl.io.fileio``'s for remote
  roots; the local ones by default, so ingestion does not import TensorFlow).

  Raises:
    ValueError: the file exists but is not a ledger (refusing beats training on
      users someone asked to forget).
  """
  if not exists(path):
    return []
  with open_fn(path, "r") as f:
    text = f.read()
  try:
    entries = json.loads(text)[ENTRIES_KEY]
    if not all(isinstance(e[HASH_KEY], str) for e in entries):
      raise TypeError("user_hash is not a string")
  except (ValueError, KeyError, TypeError) as e:
    raise ValueError(f"the forgotten-users ledger {path} is unreadable ({e}); restore it "
                     f"from a backup: without it forgotten users would come back") from e
  return entries


def forgotten_hashes(path: str, exists: Callable[[str], bool] = os.path.exists,
                     open_fn: Callable = open) -> FrozenSet[str]:
  """The ``user_hash`` of every forgotten user in the ledger at ``path``."""
  return frozenset(e[HASH_KEY] for e in read_entries(path, exists, open_fn))
