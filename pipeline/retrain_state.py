"""Makes nightly retraining idempotent: a span already trained on the same data is skipped.

``<output_root>/retrain_state.json`` maps each span to the fingerprint of its
canonical file and what its run did (blessed, pushed version). Cron may fire twice
or a failed night may be retried by hand: the second run on an unchanged span is a
no-op instead of a duplicate model.
"""

import json
import os
from typing import Dict, Optional

from pipeline.ingest.canonical import file_digest

STATE_FILE = "retrain_state.json"


def _load(output_root: str) -> Dict:
  path = os.path.join(output_root, STATE_FILE)
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def finished_run(output_root: str, span: Optional[int], data_path: str) -> Optional[Dict]:
  """The recorded outcome if ``span`` already ran on identical data, else None."""
  if span is None:
    return None
  entry = _load(output_root).get(str(span))
  if entry and entry.get("fingerprint") == file_digest(data_path):
    return entry
  return None


def record_run(output_root: str, span: Optional[int], data_path: str, summary: Dict) -> None:
  """Records a finished run of ``span`` (atomically: temp file + rename)."""
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
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(state, f, indent=2, sort_keys=True)
  os.replace(tmp, path)
