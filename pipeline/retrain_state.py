"""Makes nightly retraining idempotent: a span already trained on the same data is skipped."""

import json
import os
import sys
import time
from typing import Dict, Optional

from pipeline.ingest.canonical import file_digest
from trainer import atomic_file

STATE_FILE = "retrain_state.json"
CORRUPT_SUFFIX = ".corrupt"


def _read(path: str) -> Dict:
  """The state in ``path``; ValueError if it is not a JSON object of objects."""
  with open(path, "rb") as f:
    state = json.loads(f.read().decode("utf-8"))
  if not isinstance(state, dict) or not all(
      isinstance(entry, dict) for entry in state.values()):
    raise ValueError("expected a JSON object mapping spans to objects")
  return state


def _load(output_root: str) -> Dict:
  """The recorded state; a corrupt file is moved aside and counts as none.

  Refusing would stop every later nightly run until someone repairs the file;
  starting empty costs at most one rerun per span that already ran, which
  the pipeline cache keeps cheap, and the evidence is kept next to it.
  """
  path = os.path.join(output_root, STATE_FILE)
  if not os.path.exists(path):
    return {}
  try:
    return _read(path)
  except ValueError as e:  # JSONDecodeError and UnicodeDecodeError included.
    kept = f"{path}{CORRUPT_SUFFIX}-{int(time.time())}"
    os.replace(path, kept)
    print(f"warning: {path} is corrupt ({' '.join(str(e).split())}); moved "
          f"it to {kept} and continuing as if no span had run yet",
          file=sys.stderr, flush=True)
    return {}


def finished_run(output_root: str, span: Optional[int], data_path: str) -> Optional[Dict]:
  """The recorded outcome if ``span`` already ran on identical data, else None."""
  if span is None:
    return None
  entry = _load(output_root).get(str(span))
  if entry and entry.get("fingerprint") == file_digest(data_path):
    return entry
  return None


def record_run(output_root: str, span: Optional[int], data_path: str, summary: Dict) -> None:
  """Records a finished run of ``span`` (atomically: synced temp file + rename)."""
  if span is None:
    return
  state = _load(output_root)
  gating = (summary.get("evaluation") or {}).get("gating", {})
  state[str(span)] = {
      "fingerprint": file_digest(data_path),
      "blessed": bool(gating.get("blessed")),
      "pushed": bool(summary.get("pushed")),
      "pushed_destination": summary.get("pushed_destination"),
  }
  path = os.path.join(output_root, STATE_FILE)
  atomic_file.write_atomically(
      path, lambda f: json.dump(state, f, indent=2, sort_keys=True))
