"""Full-ranking metrics for next-item recommendation, in plain numpy.

The protocol (candidates, tie rule, targets outside the catalogue): docs/architecture.md.
"""

import math
from typing import Dict, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

# Target index of a target that is not in the catalogue.
MISSING = -1

MRR_KEY = "MRR"
NUM_USERS_KEY = "num_users"
NUM_MISSING_TARGETS_KEY = "num_missing_targets"


def hr_key(k: int) -> str:
  return f"HR@{k}"


def ndcg_key(k: int) -> str:
  return f"NDCG@{k}"


def coverage_key(k: int) -> str:
  return f"coverage@{k}"


def metric_names(ks: Sequence[int], with_coverage: bool = True):
  """Names of the quality metrics ``summarize`` reports for ``ks`` (higher is better)."""
  names = [hr_key(k) for k in ks] + [ndcg_key(k) for k in ks] + [MRR_KEY]
  if with_coverage:
    names += [coverage_key(k) for k in ks]
  return names


def check_ks(ks: Sequence[int]) -> tuple:
  """``ks`` as a tuple of distinct positive ints, or a ValueError saying why not."""
  if isinstance(ks, (str, bytes)) or not isinstance(ks, Iterable):
    raise ValueError(f"ks must be a list of positive ints, got {ks!r}")
  ks = tuple(ks)
  if not ks:
    raise ValueError("ks must hold at least one cut-off, got an empty list")
  for k in ks:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
      raise ValueError(f"ks must be positive ints, got {k!r} in {list(ks)}")
  if len(set(ks)) != len(ks):
    raise ValueError(f"ks must not repeat a cut-off, got {list(ks)}")
  return tuple(int(k) for k in ks)


def _check_k(k: int) -> int:
  if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
    raise ValueError(f"k must be a positive int, got {k!r}")
  return int(k)


def _clean_scores(scores, ndim: int) -> np.ndarray:
  """Float scores with NaN replaced by -inf (the worst score)."""
  scores = np.asarray(scores)
  if scores.ndim != ndim:
    raise ValueError(f"scores must be a {ndim}-D array, got shape {scores.shape}")
  if not np.issubdtype(scores.dtype, np.floating):
    scores = scores.astype(np.float64)
  nan = np.isnan(scores)
  if nan.any():
    scores = np.where(nan, -np.inf, scores)
  return scores


def _check_targets(targets, batch: int, num_items: int) -> np.ndarray:
  targets = np.asarray(targets)
  if targets.shape != (batch,):
    raise ValueError(f"targets must have shape [{batch}], got {targets.shape}")
  if targets.size and not np.issubdtype(targets.dtype, np.integer):
    raise ValueError(f"targets must be int catalogue indices, got dtype {targets.dtype}")
  targets = targets.astype(np.int64)
  bad = (targets >= num_items) | (targets < MISSING)
  if bad.any():
    row = int(np.argmax(bad))
    raise ValueError(
        f"target index {int(targets[row])} of row {row} is outside the catalogue "
        f"[0, {num_items}) (use {MISSING} for a target not in the catalogue)")
  return targets


def exclusion_mask(exclude_lists: Sequence[Iterable[int]], num_items: int,
                   keep: Optional[Sequence[int]] = None) -> np.ndarray:
  """Boolean mask [B, num_items], True for the excluded items of each row.

  Args:
    exclude_lists: B iterables of catalogue indices in ``[0, num_items)``
      (map items outside the catalogue away before calling).
    num_items: catalogue size N.
    keep: optional [B] indices never excluded (the targets); ``MISSING`` entries
      are ignored.
  """
  exclude_lists = [np.fromiter((int(i) for i in items), dtype=np.int64)
                   for items in exclude_lists]
  batch = len(exclude_lists)
  mask = np.zeros((batch, num_items), dtype=bool)
  if batch:
    lengths = [len(items) for items in exclude_lists]
    cols = np.concatenate(exclude_lists) if sum(lengths) else np.zeros(0, np.int64)
    bad = (cols < 0) | (cols >= num_items)
    if bad.any():
      row = int(np.repeat(np.arange(batch), lengths)[np.argmax(bad)])
      raise ValueError(
          f"excluded item index {int(cols[np.argmax(bad)])} of row {row} is outside "
          f"the catalogue [0, {num_items})")
    mask[np.repeat(np.arange(batch), lengths), cols] = True
  if keep is not None:
    keep = _check_targets(keep, batch, num_items)
    rows = np.flatnonzero(keep != MISSING)
    mask[rows, keep[rows]] = False
  return mask


def ranks_with_mask(scores, targets, excluded: np.ndarray) -> np.ndarray:
  """Ranks [B] (float, ``inf`` for ``MISSING`` targets) given an exclusion mask.

  Args:
    scores: [B, N] scores, higher is better.
    targets: [B] catalogue indices or ``MISSING``.
    excluded: [B, N] bool, True for items that are not candidates. A target's
      own entry is ignored (the target is always ranked).
  """
  scores = _clean_scores(scores, 2)
  batch, num_items = scores.shape
  targets = _check_targets(targets, batch, num_items)
  excluded = np.asarray(excluded, dtype=bool)
  if excluded.shape != scores.shape:
    raise ValueError(f"exclusion mask shape {excluded.shape} != scores shape {scores.shape}")
  known = targets != MISSING
  safe = np.where(known, targets, 0)
  target_scores = scores[np.arange(batch), safe][:, None]
  ahead = (scores > target_scores) | (
      (scores == target_scores) & (np.arange(num_items)[None, :] < safe[:, None]))
  ahead &= ~excluded
  ranks = 1.0 + ahead.sum(axis=1, dtype=np.int64).astype(np.float64)
  return np.where(known, ranks, np.inf)


def ranks_of_targets(scores, targets, exclude_lists: Sequence[Iterable[int]]) -> np.ndarray:
  """Batched ``rank_of_target``: scores [B, N], targets [B] -> ranks [B] (float).

  ``exclude_lists[b]`` holds row b's history as catalogue indices; the target is
  never excluded. ``MISSING`` targets get rank ``inf``.
  """
  scores = np.asarray(scores)
  if scores.ndim != 2:
    raise ValueError(f"scores must be a 2-D array [B, N], got shape {scores.shape}")
  if len(exclude_lists) != scores.shape[0]:
    raise ValueError(
        f"got {len(exclude_lists)} exclusion lists for {scores.shape[0]} score rows")
  mask = exclusion_mask(exclude_lists, scores.shape[1], keep=targets)
  return ranks_with_mask(scores, targets, mask)


def rank_of_target(scores, target: Optional[int],
                   exclude: Iterable[int] = ()) -> Union[int, float]:
  """1-based rank of ``target`` among the items of ``scores`` [N] not excluded.

  Args:
    scores: [N] float scores of every catalogue item, higher is better.
    target: catalogue index of the held-out item; ``None`` or ``MISSING`` when
      it is not in the catalogue.
    exclude: catalogue indices of the user's history. The target is ranked even
      if it is among them.
  Returns:
    The rank as an int, or ``math.inf`` for a missing target.
  """
  scores = np.asarray(scores)
  if scores.ndim != 1:
    raise ValueError(f"scores must be a 1-D array [N], got shape {scores.shape}")
  target = MISSING if target is None else target
  rank = ranks_of_targets(scores[None, :], np.array([target]), [list(exclude)])[0]
  return math.inf if math.isinf(rank) else int(rank)


def top_k_with_mask(scores, k: int, excluded: np.ndarray) -> np.ndarray:
  """Top-k catalogue indices [B, k] of the non-excluded items of each row.

  Ordered by score descending, then index ascending (the ranking's tie rule).
  Rows with fewer than k candidates are padded with ``MISSING``.
  """
  k = _check_k(k)
  scores = _clean_scores(scores, 2)
  excluded = np.asarray(excluded, dtype=bool)
  if excluded.shape != scores.shape:
    raise ValueError(f"exclusion mask shape {excluded.shape} != scores shape {scores.shape}")
  batch, num_items = scores.shape
  if batch == 0 or num_items == 0:
    return np.full((batch, k), MISSING, dtype=np.int64)
  width = min(k, num_items)
  key = np.where(excluded, -np.inf, scores)
  kth = np.partition(key, num_items - width, axis=1)[:, num_items - width]
  # Candidates: items scoring at least the k-th largest score. All of those
  # strictly above it are in the top k (at most k - 1 of them); the ties at the
  # k-th score fill the remaining places in index order.
  rows, cols = np.nonzero((key >= kth[:, None]) & ~excluded)  # row-major: index order
  values = key[rows, cols]
  tied = values == kth[rows]
  row_starts = np.searchsorted(rows, np.arange(batch))
  tied_before = np.concatenate([[0], np.cumsum(tied)])
  tie_rank = tied_before[1:] - tied_before[row_starts][rows]   # 1-based within the row
  free = width - np.bincount(rows[~tied], minlength=batch)
  keep = ~tied | (tie_rank <= free[rows])
  rows, cols, values = rows[keep], cols[keep], values[keep]
  order = np.lexsort((cols, -values, rows))
  rows, cols = rows[order], cols[order]
  positions = np.arange(rows.size) - np.searchsorted(rows, np.arange(batch))[rows]
  top = np.full((batch, k), MISSING, dtype=np.int64)
  top[rows, positions] = cols
  return top


def top_k_items(scores, k: int, exclude_lists: Sequence[Iterable[int]]) -> np.ndarray:
  """Top-k [B, k] catalogue indices per row, every item of ``exclude_lists[b]`` left out."""
  scores = np.asarray(scores)
  if scores.ndim != 2:
    raise ValueError(f"scores must be a 2-D array [B, N], got shape {scores.shape}")
  return top_k_with_mask(scores, k, exclusion_mask(exclude_lists, scores.shape[1]))


def _check_ranks(ranks) -> np.ndarray:
  ranks = np.asarray(ranks, dtype=np.float64)
  if ranks.ndim != 1:
    raise ValueError(f"ranks must be a 1-D array, got shape {ranks.shape}")
  if ranks.size == 0:
    raise ValueError("no ranks: the metric of zero users is undefined")
  if np.isnan(ranks).any() or (ranks < 1).any():
    bad = int(np.argmax(np.isnan(ranks) | (ranks < 1)))
    raise ValueError(f"ranks must be >= 1 (or inf), got {ranks[bad]} at position {bad}")
  return ranks


def hit_rate_at_k(ranks, k: int) -> float:
  """Fraction of users whose target ranks within the top k."""
  return float(np.mean(_check_ranks(ranks) <= _check_k(k)))


def ndcg_at_k(ranks, k: int) -> float:
  """Mean NDCG@k with one relevant item: 1/log2(rank + 1) if rank <= k, else 0."""
  ranks = _check_ranks(ranks)
  k = _check_k(k)
  gains = np.zeros_like(ranks)
  hit = ranks <= k
  gains[hit] = 1.0 / np.log2(ranks[hit] + 1.0)
  return float(np.mean(gains))


def mrr(ranks) -> float:
  """Mean reciprocal rank over the full ranking (a missing target adds 0)."""
  return float(np.mean(1.0 / _check_ranks(ranks)))


def coverage_at_k(topk_item_lists, num_items: int) -> float:
  """Distinct items recommended over all users' top-k lists / catalogue size.

  Args:
    topk_item_lists: per user, the catalogue indices of its top-k list (an
      array [U, k] or a list of lists); ``MISSING`` entries are padding.
    num_items: catalogue size.
  """
  if isinstance(num_items, bool) or not isinstance(num_items, (int, np.integer)) \
      or num_items < 1:
    raise ValueError(f"num_items must be a positive int, got {num_items!r}")
  if isinstance(topk_item_lists, np.ndarray):
    values = topk_item_lists.reshape(-1)
  else:
    values = np.fromiter((int(i) for items in topk_item_lists for i in items), np.int64)
  values = values[values != MISSING]
  if values.size and (values.min() < 0 or values.max() >= num_items):
    bad = values[(values < 0) | (values >= num_items)][0]
    raise ValueError(f"recommended item index {int(bad)} is outside the catalogue "
                     f"[0, {num_items})")
  return float(np.unique(values).size / num_items)


def summarize(ranks, ks: Sequence[int] = (5, 10, 20),
              top_items: Optional[np.ndarray] = None,
              num_items: Optional[int] = None) -> Dict[str, float]:
  """All metrics of one ranking run.

  Args:
    ranks: [U] ranks, one per evaluated user (``inf`` for missing targets).
    ks: cut-offs.
    top_items: optional [U, >= max(ks)] top lists (best first, ``MISSING``
      padding); with ``num_items`` adds ``coverage@k``.
    num_items: catalogue size, needed with ``top_items``.
  Returns:
    ``{"HR@k", "NDCG@k", "MRR", "coverage@k" (optional), "num_users",
    "num_missing_targets"}``.
  """
  ks = check_ks(ks)
  ranks = _check_ranks(ranks)
  result = {}
  for k in ks:
    result[hr_key(k)] = hit_rate_at_k(ranks, k)
  for k in ks:
    result[ndcg_key(k)] = ndcg_at_k(ranks, k)
  result[MRR_KEY] = mrr(ranks)
  if top_items is not None:
    if num_items is None:
      raise ValueError("num_items is required to compute coverage from top_items")
    top_items = np.asarray(top_items)
    if top_items.ndim != 2 or top_items.shape[0] != ranks.size or \
        top_items.shape[1] < max(ks):
      raise ValueError(
          f"top_items must have shape [{ranks.size}, >= {max(ks)}], got {top_items.shape}")
    for k in ks:
      result[coverage_key(k)] = coverage_at_k(top_items[:, :k], num_items)
  result[NUM_USERS_KEY] = int(ranks.size)
  result[NUM_MISSING_TARGETS_KEY] = int(np.isinf(ranks).sum())
  return result


def popularity_scores(train_item_counts: Mapping[int, float], num_items: int) -> np.ndarray:
  """Popularity baseline scores [num_items]: training count of each catalogue item.

  Args:
    train_item_counts: catalogue index -> number of training interactions.
      Items absent from the mapping score 0; ties follow the ranking's index rule.
    num_items: catalogue size.
  """
  if isinstance(num_items, bool) or not isinstance(num_items, (int, np.integer)) \
      or num_items < 1:
    raise ValueError(f"num_items must be a positive int, got {num_items!r}")
  scores = np.zeros(num_items, dtype=np.float64)
  for index, count in train_item_counts.items():
    if not 0 <= int(index) < num_items:
      raise ValueError(f"item index {index} is outside the catalogue [0, {num_items})")
    if not count >= 0:
      raise ValueError(f"count of item {index} must be >= 0, got {count!r}")
    scores[int(index)] = float(count)
  return scores


# Beyond-accuracy metrics of the top-k lists (as RecBole / Microsoft Recommenders
# report them). Both skip ``MISSING`` padding and average per user, then over users.

def novelty_key(k: int) -> str:
  return f"novelty@{k}"


def diversity_key(k: int) -> str:
  return f"diversity@{k}"


def self_information(train_item_counts, total_interactions: int) -> np.ndarray:
  """``-log2 p(i)`` per item, ``p(i) = max(count_i, 1) / total_interactions``.

  An item without training interactions counts as seen once: it scores as the
  rarest observed item, not as infinitely novel.
  """
  counts = np.asarray(train_item_counts, dtype=np.float64)
  if counts.ndim != 1 or (counts < 0).any():
    raise ValueError(f"train item counts must be a 1-D array of counts >= 0, got {counts}")
  if isinstance(total_interactions, bool) or \
      not isinstance(total_interactions, (int, np.integer)) or total_interactions < 1 \
      or counts.size and counts.max() > total_interactions:
    raise ValueError(f"total_interactions must be a positive int >= every count, "
                     f"got {total_interactions!r}")
  return np.log2(total_interactions / np.maximum(counts, 1.0))


def _top_lists(top_items, k: int, num_items: int) -> np.ndarray:
  top = np.asarray(top_items)
  if top.ndim != 2 or top.shape[1] < _check_k(k):
    raise ValueError(f"top_items must have shape [U, >= {k}], got {top.shape}")
  top = top[:, :k].astype(np.int64)
  if ((top < MISSING) | (top >= num_items)).any():
    raise ValueError(f"top_items hold indices outside the catalogue [0, {num_items})")
  return top


def novelty_at_k(top_items, item_information, k: int) -> Optional[float]:
  """Mean over users of the mean self-information of their top-k items.

  Args:
    top_items: [U, >= k] catalogue indices, best first, ``MISSING`` padding.
    item_information: [N] self-information per catalogue item
      (``self_information``).
    k: cut-off.
  Returns:
    The novelty, or None when no user has a recommended item.
  """
  information = np.asarray(item_information, dtype=np.float64)
  top = _top_lists(top_items, k, information.size)
  present = top != MISSING
  per_item = np.where(present, information[np.where(present, top, 0)], 0.0)
  counts = present.sum(axis=1)
  users = counts > 0
  if not users.any():
    return None
  return float(np.mean(per_item[users].sum(axis=1) / counts[users]))


def jaccard_distances(attribute_sets: Sequence[Iterable]) -> np.ndarray:
  """[k, k] pairwise ``1 - |A & B| / |A | B|``; NaN on the diagonal and for any
  pair with an empty set (no attributes: no distance)."""
  sets = [frozenset(s) for s in attribute_sets]
  vocabulary = {a: j for j, a in enumerate(frozenset().union(*sets))}
  matrix = np.zeros((len(sets), len(vocabulary)), dtype=np.float64)
  for row, attributes in enumerate(sets):
    matrix[row, [vocabulary[a] for a in attributes]] = 1.0
  intersection = matrix @ matrix.T
  sizes = matrix.sum(axis=1)
  union = sizes[:, None] + sizes[None, :] - intersection
  with np.errstate(invalid="ignore", divide="ignore"):
    distances = 1.0 - intersection / union
  distances[(sizes[:, None] == 0) | (sizes[None, :] == 0)] = np.nan
  np.fill_diagonal(distances, np.nan)
  return distances


def intra_list_diversity(top_items, item_attributes: Sequence[Iterable],
                         ks: Sequence[int]) -> Dict[int, Optional[float]]:
  """Intra-list diversity at every k of ``ks``.

  Per user: the mean ``jaccard_distances`` over the pairs of its top-k items
  that both have attributes (items without attributes are left out of the
  pairs); then the mean over users with at least one such pair. None at a k
  where no user has one (e.g. k = 1, or no item has attributes).

  Args:
    top_items: [U, >= max(ks)] catalogue indices, best first, ``MISSING`` padding.
    item_attributes: per catalogue index, that item's attributes.
    ks: cut-offs.
  """
  ks = check_ks(ks)
  width = max(ks)
  top = _top_lists(top_items, width, len(item_attributes))
  distances = np.full((top.shape[0], width, width), np.nan)
  for user, items in enumerate(top):
    items = items[items != MISSING]
    distances[user, :items.size, :items.size] = jaccard_distances(
        [item_attributes[i] for i in items])
  result = {}
  for k in ks:
    block = distances[:, :k, :k][:, np.triu(np.ones((k, k), dtype=bool), 1)]
    pairs = (~np.isnan(block)).sum(axis=1)
    users = pairs > 0
    result[k] = float(np.mean(np.nansum(block[users], axis=1) / pairs[users])) \
        if users.any() else None
  return result
