"""Forgets users: deletes their events from every canonical log and records them in the ledger.

Later ingestions and the SequenceBuilder drop the ledger's users; see docs/data.md, "Privacy".
"""

import argparse
import dataclasses
import datetime
import json
import os
import sys
from typing import Dict, List, Optional, Sequence

import pandas as pd

from components.sequence_builder import forgotten_users
from pipeline import configs
from pipeline.ingest import canonical
from pipeline.ingest import privacy
from pipeline.ingest.errors import IngestError
from trainer import atomic_file
from trainer import features

EXAMPLES = """examples:
  python -m pipeline.forget_user --output-dir OUT --user ID [--user ID ...] \\
      [--pseudonymize-key-env NAME | --pseudonymize-key-file PATH]
"""


@dataclasses.dataclass(frozen=True)
class Forgotten:
  """What ``forget`` did: events removed per canonical user id, files rewritten, the ledger."""
  events_removed: Dict[str, int]
  files_rewritten: List[str]
  ledger: str


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m pipeline.forget_user", description=__doc__,
                                   epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--output-dir", required=True,
                      help="the --output-dir of the runs (its data/ holds the canonical copy)")
  parser.add_argument("--user", action="append", required=True, metavar="ID",
                      help="a user id as in the input logs; repeatable")
  privacy.add_key_flags(parser)
  return parser.parse_args(argv)


def canonical_ids(user_ids: Sequence[str], key: Optional[bytes]) -> List[str]:
  """The ids as the canonical copy holds them: pseudonyms with a key, else as given."""
  ids = [u.strip() for u in user_ids]
  if not all(ids):
    raise IngestError("--user: an empty user id")
  return [privacy.pseudonym(u, key) for u in ids] if key is not None else ids


def _read_users(path: str) -> pd.Series:
  return pd.read_csv(path, usecols=[features.LOG_USER_ID], dtype=str,
                     keep_default_na=False)[features.LOG_USER_ID]


def _write_ledger(path: str, entries: List[dict]) -> None:
  """Writes the ledger atomically: a synced temp file, then a rename."""

  def write(f):
    json.dump({forgotten_users.ENTRIES_KEY: entries}, f, indent=2)
    f.write("\n")
  atomic_file.write_atomically(path, write, encoding="utf-8")


def _record(ledger: str, removed: Dict[str, int], now: datetime.datetime) -> None:
  """Adds each user to the ledger (a user forgotten again keeps one entry)."""
  entries = forgotten_users.read_entries(ledger)
  by_hash = {e[forgotten_users.HASH_KEY]: e for e in entries}
  for user, count in removed.items():
    digest = forgotten_users.user_hash(user)
    if digest in by_hash:
      by_hash[digest]["events_removed"] = by_hash[digest].get("events_removed", 0) + count
    else:
      entry = {forgotten_users.HASH_KEY: digest,
               "forgotten_at": now.isoformat(timespec="seconds"), "events_removed": count}
      entries.append(entry)
      by_hash[digest] = entry
  _write_ledger(ledger, entries)


def forget(data_root: str, user_ids: Sequence[str],
           now: Optional[datetime.datetime] = None) -> Forgotten:
  """Deletes the users' events from every canonical log under ``data_root``.

  The ledger is written first: if this stops half-way, ingestion and the
  SequenceBuilder already drop the users, and running it again finishes the files.

  Args:
    data_root: the canonical data folder (``<output-dir>/data``).
    user_ids: canonical user ids (pseudonyms when the folder is pseudonymised).
    now: the time recorded in the ledger (default: now, UTC).
  """
  logs = canonical.canonical_logs(data_root)
  if not logs:
    raise IngestError(f"no canonical interaction log under {data_root}; expected "
                      f"{canonical.INTERACTIONS_DIR}/[span-N/]{canonical.INTERACTIONS_FILE}")
  ids = set(user_ids)
  removed = dict.fromkeys(user_ids, 0)
  affected = []
  for path in logs:
    counts = _read_users(path).value_counts()
    hits = {u: int(counts[u]) for u in ids if u in counts.index}
    for user, count in hits.items():
      removed[user] += count
    if hits:
      affected.append(path)
  ledger = privacy.ledger_path(data_root)
  _record(ledger, removed, now or datetime.datetime.now(datetime.timezone.utc))
  for path in affected:
    log = pd.read_csv(path, dtype=str, keep_default_na=False)
    kept = log.loc[~log[features.LOG_USER_ID].isin(ids)]
    canonical.write_csv_atomically(kept, data_root, os.path.relpath(os.path.dirname(path),
                                                                    data_root),
                                   canonical.INTERACTIONS_FILE)
  return Forgotten(events_removed=removed, files_rewritten=affected, ledger=ledger)


def main(argv: Optional[List[str]] = None) -> int:
  args = parse_args(argv)
  data_root = configs.data_root_of(args.output_dir)
  try:
    key = privacy.key_from_flags(args)
    privacy.check_key(data_root, key, holds_logs=True)
    ids = canonical_ids(args.user, key)
    result = forget(data_root, ids)
  except (IngestError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  for given, user in zip(args.user, ids):
    if not result.events_removed[user]:
      print(f"note: user {given} has no events in {data_root}; recorded anyway, so later "
            "logs drop them", flush=True)
  print(f"Forgot {len(set(ids))} user(s): removed {sum(result.events_removed.values())} "
        f"events from {len(result.files_rewritten)} canonical log file(s); ledger: "
        f"{result.ledger}", flush=True)
  print("The next run trains without them; until then earlier runs' artifacts and the "
        "served model still derive from their events (docs/data.md, \"Privacy\").", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
