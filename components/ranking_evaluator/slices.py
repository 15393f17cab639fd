"""Evaluation slices: which test users each slice holds, and the metrics per slice.

A slice is named ``<family>:<value>``; every family splits all users, so a user
is in exactly one slice of each family. Plain numpy, usable without TFX.
"""

from typing import Collection, Dict, Hashable, List, Mapping, Optional, Sequence

import numpy as np

from components.ranking_evaluator import metrics

HISTORY_LENGTH = "history_len"
POPULARITY = "popularity"
COLD_START = "cold_start"
HEAD, TORSO, TAIL = "head", "torso", "tail"
COLD_ITEMS, WARM_ITEMS = "cold_items", "warm_items"
# Users by history length: <=3, 4-7, 8-15, >15 items.
HISTORY_LENGTH_BOUNDS = (3, 7, 15)


def slice_key(family: str, value: str) -> str:
  return f"{family}:{value}"


def history_length_values(bounds: Sequence[int] = HISTORY_LENGTH_BOUNDS) -> List[str]:
  """Bucket names of increasing upper ``bounds``: ``<=b0``, ``b0+1-b1``, ..., ``>bn``."""
  bounds = list(bounds)
  if not bounds or bounds != sorted(set(bounds)) or bounds[0] < 0:
    raise ValueError(f"history length bounds must increase from >= 0, got {bounds}")
  values = [f"<={bounds[0]}"]
  values += [f"{low + 1}-{high}" for low, high in zip(bounds, bounds[1:])]
  return values + [f">{bounds[-1]}"]


def slice_names(bounds: Sequence[int] = HISTORY_LENGTH_BOUNDS) -> List[str]:
  """Every slice ``assign`` reports, in report order."""
  return ([slice_key(HISTORY_LENGTH, v) for v in history_length_values(bounds)]
          + [slice_key(POPULARITY, v) for v in (HEAD, TORSO, TAIL)]
          + [slice_key(COLD_START, v) for v in (COLD_ITEMS, WARM_ITEMS)])


def popularity_bands(train_item_counts: Mapping[Hashable, int]) -> Dict[Hashable, str]:
  """Head / torso / tail of every item with training interactions.

  Items sorted by training count descending (ties: by id ascending); an item is
  head while the interactions of the items before it are below 1/3 of all,
  torso while below 2/3, else tail. So the item that passes a third's mark
  belongs to the band it completes. Items not in the result (no training
  interactions) are tail.
  """
  total = sum(train_item_counts.values())
  bands, before = {}, 0
  for item, count in sorted(train_item_counts.items(), key=lambda kv: (-kv[1], kv[0])):
    if count <= 0:
      continue
    bands[item] = HEAD if 3 * before < total else TORSO if 3 * before < 2 * total else TAIL
    before += count
  return bands


def assign(history_lengths: Sequence[int], targets: Sequence[Hashable],
           train_item_counts: Mapping[Hashable, int],
           cold_items: Optional[Collection[Hashable]] = None,
           bounds: Sequence[int] = HISTORY_LENGTH_BOUNDS) -> Dict[str, np.ndarray]:
  """Boolean user mask [U] of every slice of ``slice_names(bounds)``.

  Args:
    history_lengths: [U] history length of each user's evaluated row.
    targets: [U] raw id of each user's held-out item.
    train_item_counts: raw item id -> training interactions (popularity bands).
    cold_items: ids of the cold items; None: the targets without training
      interactions are cold. Every other target is warm.
    bounds: history length bucket bounds (``history_length_values``).
  """
  lengths = np.asarray(history_lengths, dtype=np.int64)
  if lengths.shape != (len(targets),):
    raise ValueError(f"got {lengths.shape} history lengths for {len(targets)} targets")
  values = history_length_values(bounds)
  bucket = np.searchsorted(np.asarray(bounds), lengths, side="left")
  masks = {slice_key(HISTORY_LENGTH, v): bucket == b for b, v in enumerate(values)}
  bands = popularity_bands(train_item_counts)
  band = np.array([bands.get(t, TAIL) for t in targets], dtype=object)
  for value in (HEAD, TORSO, TAIL):
    masks[slice_key(POPULARITY, value)] = band == value
  if cold_items is None:
    cold = np.array([train_item_counts.get(t, 0) <= 0 for t in targets], dtype=bool)
  else:
    cold_items = frozenset(cold_items)
    cold = np.array([t in cold_items for t in targets], dtype=bool)
  masks[slice_key(COLD_START, COLD_ITEMS)] = cold
  masks[slice_key(COLD_START, WARM_ITEMS)] = ~cold
  return masks


def slice_metrics(ranks, masks: Mapping[str, np.ndarray],
                  ks: Sequence[int]) -> Dict[str, Dict[str, float]]:
  """``metrics.summarize`` of the users of each slice; ``num_users`` 0 alone if none."""
  ranks = np.asarray(ranks, dtype=np.float64)
  result = {}
  for name, mask in masks.items():
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != ranks.shape:
      raise ValueError(f"slice {name!r}: mask shape {mask.shape} != ranks {ranks.shape}")
    result[name] = (metrics.summarize(ranks[mask], ks) if mask.any()
                    else {metrics.NUM_USERS_KEY: 0})
  return result


def report_order(names: Collection[str]) -> List[str]:
  """``names`` in ``slice_names`` order, unknown names after them by name."""
  known = slice_names()
  return sorted(names, key=lambda n: (known.index(n), "") if n in known else (len(known), n))


def format_table(slices_by_scorer: Mapping[str, Mapping[str, Mapping[str, float]]],
                 metric_names: Sequence[str]) -> str:
  """One row per slice (in ``slice_names`` order, others after): its users, then
  ``metric_names`` of each scorer."""
  scorers = list(slices_by_scorer)
  if not scorers:
    return ""
  names = report_order(slices_by_scorer[scorers[0]])   # e.g. after a JSON round trip
  width = max(len("slice"), *(len(n) for n in names)) + 2
  group = 9 * len(metric_names)
  lines = [f"{'slice':<{width}}{'users':>7}" + "".join(f"{s:>{group}}" for s in scorers),
           " " * (width + 7) + "".join(f"{m:>9}" for m in metric_names) * len(scorers)]
  for name in names:
    users = slices_by_scorer[scorers[0]][name].get(metrics.NUM_USERS_KEY, 0)
    cells = []
    for scorer in scorers:
      row = slices_by_scorer[scorer].get(name, {})
      cells += [f"{row[m]:>9.4f}" if m in row else f"{'-':>9}" for m in metric_names]
    lines.append(f"{name:<{width}}{users:>7d}" + "".join(cells))
  return "\n".join(lines)
