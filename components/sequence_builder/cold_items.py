"""Cold-item evaluation split: a seeded fraction of items held out of training entirely.

Selection, hold-out rule and the ``cold_items.json`` file: docs/data.md, "Cold items".
"""

import dataclasses
import hashlib
import json
import os
from typing import Callable, FrozenSet, List, Optional, Sequence

COLD_ITEMS_FILE = "cold_items.json"  # in the output Examples' uri
# An item is cold when its fingerprint falls in the first fraction of this many buckets.
BUCKETS = 10 ** 6


def validate(fraction: float, seed: int) -> None:
  """Raises ValueError unless ``fraction`` is in [0, 1) and ``seed`` is an int >= 0."""
  if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not (
      0 <= fraction < 1):
    raise ValueError(f"cold_item_fraction must be a number in [0, 1) (0: off), got {fraction!r}")
  if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
    raise ValueError(f"cold_item_seed must be an int >= 0, got {seed!r}")


def fingerprint(seed: int, item_id: bytes) -> int:
  """The unsigned 64-bit fingerprint of ``seed ‖ item_id``: the first 8 bytes (big-endian)
  of sha256(decimal seed, NUL, raw id bytes)."""
  digest = hashlib.sha256(str(seed).encode("ascii") + b"\0" + item_id).digest()
  return int.from_bytes(digest[:8], "big")


@dataclasses.dataclass(frozen=True)
class ColdItemSelector:
  """Which items are cold: a function of the id, seed and fraction alone (no order, no state)."""
  fraction: float
  seed: int = 0

  def __post_init__(self):
    validate(self.fraction, self.seed)

  def is_cold(self, item_id: bytes) -> bool:
    return fingerprint(self.seed, item_id) % BUCKETS < round(self.fraction * BUCKETS)

  def hold_out(self, items: Sequence[bytes]) -> List[bytes]:
    """One user's time-ordered items without the cold ones, except the last.

    The last item (the test target) stays even when cold; every earlier cold item
    goes, so no train or eval history or target and no test history holds one.
    """
    if not items:
      return []
    return [item for item in items[:-1] if not self.is_cold(item)] + [items[-1]]


def to_json(selector: ColdItemSelector, item_ids: Sequence[bytes]) -> str:
  """``cold_items.json``: the selection and the sorted held-out catalogue ids (UTF-8,
  undecodable bytes as surrogate escapes)."""
  return json.dumps({
      "fraction": selector.fraction, "seed": selector.seed,
      "item_ids": sorted(i.decode("utf-8", "surrogateescape") for i in item_ids),
  }, indent=1)


def read(examples_uri: str, exists: Callable[[str], bool] = os.path.exists,
         open_fn: Callable = open) -> Optional[FrozenSet[bytes]]:
  """The held-out item ids of a SequenceBuilder output, or None when it held none out."""
  path = os.path.join(examples_uri, COLD_ITEMS_FILE)
  if not exists(path):
    return None
  with open_fn(path, "r") as f:
    data = json.load(f)
  return frozenset(i.encode("utf-8", "surrogateescape") for i in data["item_ids"])
