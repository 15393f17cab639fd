"""Deterministic synthetic interaction logs: the built-in default dataset.

It plants the structure a sequential recommender should find (docs/data.md, "Synthetic data").
"""

import dataclasses
from typing import Optional, Tuple

import numpy as np
import pandas as pd

from trainer import features

_CATEGORIES = (
    ("kitchen", ("Kettle", "Pan", "Knife Set", "Blender")),
    ("garden", ("Hose", "Shears", "Planter", "Rake")),
    ("outdoor", ("Tent", "Backpack", "Lantern", "Sleeping Bag")),
    ("books", ("Novel", "Cookbook", "Atlas", "Biography")),
    ("music", ("Headphones", "Speaker", "Turntable", "Guitar Strings")),
    ("beauty", ("Serum", "Lipstick", "Face Cream", "Shampoo")),
    ("toys", ("Puzzle", "Building Set", "Plush Bear", "Board Game")),
    ("sports", ("Running Shoes", "Yoga Mat", "Dumbbells", "Tennis Racket")),
    ("office", ("Notebook", "Desk Lamp", "Fountain Pen", "Stapler")),
    ("pets", ("Dog Leash", "Cat Tree", "Pet Bed", "Aquarium Filter")),
    ("baby", ("Stroller", "Bottle Set", "Baby Monitor", "Play Mat")),
    ("tools", ("Drill", "Screwdriver Set", "Tape Measure", "Workbench")),
    ("grocery", ("Coffee Beans", "Olive Oil", "Green Tea", "Pasta")),
    ("computers", ("Keyboard", "Mouse", "Monitor", "USB Hub")),
    ("phones", ("Phone Case", "Charger", "Power Bank", "Screen Protector")),
    ("fashion", ("Jacket", "Sneakers", "Scarf", "Wallet")),
    ("home", ("Throw Pillow", "Rug", "Curtains", "Wall Clock")),
    ("health", ("Vitamins", "Thermometer", "First Aid Kit", "Massage Gun")),
    ("auto", ("Car Vacuum", "Dash Cam", "Seat Cover", "Tire Inflator")),
    ("games", ("Controller", "Gaming Headset", "Strategy Game", "Racing Game")),
    ("crafts", ("Yarn", "Paint Set", "Sewing Kit", "Sketchbook")),
    ("travel", ("Suitcase", "Neck Pillow", "Packing Cubes", "Travel Adapter")),
    ("photo", ("Tripod", "Camera Bag", "Lens Cap", "Memory Card")),
    ("bath", ("Towel Set", "Bath Mat", "Shower Head", "Soap Dish")),
)
_ADJECTIVES = ("Classic", "Compact", "Deluxe", "Eco", "Pro", "Mini", "Ultra",
               "Smart", "Essential", "Premium", "Everyday", "Vintage")
_TAGS = ("eco", "premium", "budget", "bestseller", "new", "gift", "compact",
         "handmade", "bundle", "limited")
_SYLLABLES = ("nor", "vik", "lu", "ma", "tek", "so", "ra", "zen", "kor", "al",
              "bri", "do", "fen", "ix", "ca", "mo", "ver", "ta")


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """Sizes and dynamics of the synthetic dataset.

  Attributes:
    num_users: users, each with one sequence.
    num_items: catalogue size (every item gets a row in the item table).
    num_categories: item categories (latent user interests).
    num_brands: distinct brands over the catalogue.
    brands_per_category: brands one category's items are drawn from.
    min_interests / max_interests: categories a user is interested in.
    min_seq_len / max_seq_len: interactions per user (inclusive bounds).
    mean_extra_len: mean of the geometric part of a length above min_seq_len.
    num_successors: likely successors of each item.
    successor_weights: relative probability of following successor k.
    p_transition: probability that a step follows a successor of the
      previous item.
    p_same_category_successor: probability a successor shares the category.
    p_switch_interest: probability that a step switches to another interest
      (and picks a popular item there); otherwise it picks a popular item of
      the current interest.
    zipf_exponent: popularity within a category ~ 1 / rank**zipf_exponent.
    category_zipf_exponent: how much more often popular categories are
      chosen as interests.
    repeat_retries: re-draws of an already seen item before accepting it.
    start_time: earliest unix timestamp (2020-01-01 00:00 UTC by default).
    span_days: window over which users start.
    mean_gap_seconds: mean time between two interactions of a user.
    tie_probability: probability that an interaction shares its timestamp
      with the previous one (exercises tie-breaking downstream).
  """
  num_users: int = 2000
  num_items: int = 800
  num_categories: int = 20
  num_brands: int = 60
  brands_per_category: int = 5
  min_interests: int = 1
  max_interests: int = 3
  min_seq_len: int = 5
  max_seq_len: int = 40
  mean_extra_len: float = 10.0
  num_successors: int = 3
  successor_weights: Tuple[float, ...] = (0.6, 0.3, 0.1)
  p_transition: float = 0.6
  p_same_category_successor: float = 0.85
  p_switch_interest: float = 0.1
  zipf_exponent: float = 1.0
  category_zipf_exponent: float = 0.5
  repeat_retries: int = 3
  start_time: int = 1_577_836_800
  span_days: int = 365
  mean_gap_seconds: float = 6 * 3600.0
  tie_probability: float = 0.03

  def __post_init__(self):
    checks = [
        (self.num_users >= 1, "num_users >= 1"),
        (self.num_categories >= 1, "num_categories >= 1"),
        (self.num_items >= 2 * self.num_categories,
         "num_items >= 2 * num_categories"),
        (self.num_brands >= 1, "num_brands >= 1"),
        (1 <= self.brands_per_category <= self.num_brands,
         "1 <= brands_per_category <= num_brands"),
        (1 <= self.min_interests <= self.max_interests <= self.num_categories,
         "1 <= min_interests <= max_interests <= num_categories"),
        (2 <= self.min_seq_len <= self.max_seq_len,
         "2 <= min_seq_len <= max_seq_len"),
        (self.mean_extra_len >= 0, "mean_extra_len >= 0"),
        (self.num_successors >= 1 and
         len(self.successor_weights) == self.num_successors and
         min(self.successor_weights) >= 0 and sum(self.successor_weights) > 0,
         "num_successors >= 1 and successor_weights has num_successors "
         "non-negative values with a positive sum"),
        (0 <= self.p_transition and 0 <= self.p_switch_interest and
         self.p_transition + self.p_switch_interest <= 1,
         "p_transition, p_switch_interest >= 0 with sum <= 1"),
        (0 <= self.p_same_category_successor <= 1,
         "0 <= p_same_category_successor <= 1"),
        (0 <= self.tie_probability < 1, "0 <= tie_probability < 1"),
        (self.repeat_retries >= 0, "repeat_retries >= 0"),
        (self.mean_gap_seconds > 0 and self.span_days >= 0,
         "mean_gap_seconds > 0 and span_days >= 0"),
    ]
    failed = [text for ok, text in checks if not ok]
    if failed:
      raise ValueError(f"invalid SyntheticConfig {self}: need "
                       f"{'; '.join(failed)}")

  @classmethod
  def tiny(cls) -> "SyntheticConfig":
    """~200 users x 120 items: end-to-end tests in seconds."""
    return cls(num_users=200, num_items=120, num_categories=6, num_brands=12,
               brands_per_category=3, max_seq_len=20, mean_extra_len=6.0)

  @classmethod
  def default(cls) -> "SyntheticConfig":
    """~2000 users x 800 items: the built-in demo dataset."""
    return cls()

  @classmethod
  def large(cls) -> "SyntheticConfig":
    """~20k users x 5k items: benchmarks."""
    return cls(num_users=20_000, num_items=5_000, num_categories=50,
               num_brands=300, max_seq_len=50, mean_extra_len=12.0)


def _names(rng: np.random.Generator, count: int) -> list:
  """``count`` distinct capitalised pseudo-words (brand names)."""
  names, seen = [], set()
  while len(names) < count:
    n = int(rng.integers(2, 4))
    word = "".join(_SYLLABLES[i] for i in
                   rng.integers(0, len(_SYLLABLES), size=n)).capitalize()
    if word in seen:
      word = f"{word}{len(names)}"
    seen.add(word)
    names.append(word)
  return names


class _Catalogue:
  """Items, their categories, popularity and successors (arrays of size V)."""

  def __init__(self, cfg: SyntheticConfig, rng: np.random.Generator):
    v, c = cfg.num_items, cfg.num_categories
    # Balanced, shuffled categories; every category has >= 2 items.
    self.category = rng.permutation(np.arange(v) % c)
    self.by_category = np.argsort(self.category, kind="stable")  # items
    counts = np.bincount(self.category, minlength=c)
    self.offsets = np.concatenate([[0], np.cumsum(counts)])
    self.counts = counts

    # Zipf popularity within category, random rank order; cumulative
    # probabilities shifted by the category index so that one searchsorted
    # samples every category at once.
    cum = np.empty(v)
    self.popularity = np.empty(v)
    for k in range(c):
      lo, hi = self.offsets[k], self.offsets[k + 1]
      ranks = rng.permutation(hi - lo)
      w = 1.0 / (ranks + 1.0) ** cfg.zipf_exponent
      w /= w.sum()
      self.popularity[self.by_category[lo:hi]] = w
      cum[lo:hi] = k + np.cumsum(w)
      cum[hi - 1] = k + 1.0
    self.shifted_cum = cum

    # Successors: mostly uniform in the own category, never the item itself.
    s = cfg.num_successors
    same = rng.random((v, s)) < cfg.p_same_category_successor
    own = self.category[:, None]
    pos = (rng.random((v, s)) * counts[own]).astype(np.int64)
    same_pick = self.by_category[self.offsets[own] + pos]
    other_pick = rng.integers(0, v, size=(v, s))
    succ = np.where(same, same_pick, other_pick)
    is_self = succ == np.arange(v)[:, None]
    # Replace self by the next item of the same category (cyclically).
    next_pos = (pos + 1) % counts[own]
    succ[is_self] = self.by_category[self.offsets[own] + next_pos][is_self]
    self.successors = succ
    w = np.asarray(cfg.successor_weights, dtype=np.float64)
    self.successor_cum = np.cumsum(w / w.sum())
    self.successor_cum[-1] = 1.0

  def sample_popular(self, rng: np.random.Generator,
                     categories: np.ndarray) -> np.ndarray:
    """One item per entry, Zipf-popular within the given category."""
    u = rng.random(len(categories))
    idx = np.searchsorted(self.shifted_cum, categories + u, side="right")
    idx = np.minimum(idx, self.offsets[categories + 1] - 1)
    return self.by_category[idx]

  def sample_successor(self, rng: np.random.Generator,
                       items: np.ndarray) -> np.ndarray:
    k = np.searchsorted(self.successor_cum, rng.random(len(items)),
                        side="right")
    return self.successors[items, np.minimum(k, self.successors.shape[1] - 1)]


def _item_table(cfg: SyntheticConfig, rng: np.random.Generator,
                cat: _Catalogue, item_ids: np.ndarray) -> pd.DataFrame:
  """item_id, title, attributes (category, brand, tags) for every item."""
  v, c = cfg.num_items, cfg.num_categories
  base = len(_CATEGORIES)
  category_names = [_CATEGORIES[k % base][0] + ("" if k < base else
                                                f"-{k // base + 1}")
                    for k in range(c)]
  brand_names = _names(rng, cfg.num_brands)
  category_brands = np.stack([
      rng.choice(cfg.num_brands, size=cfg.brands_per_category, replace=False)
      for _ in range(c)])
  brand = category_brands[cat.category,
                          rng.integers(0, cfg.brands_per_category, size=v)]
  noun = rng.integers(0, 4, size=v)
  adjective = rng.integers(0, len(_ADJECTIVES), size=v)
  model = rng.integers(100, 1000, size=v)
  num_tags = rng.choice(3, size=v, p=[0.4, 0.4, 0.2])
  tag_a = rng.integers(0, len(_TAGS), size=v)
  tag_b = (tag_a + rng.integers(1, len(_TAGS), size=v)) % len(_TAGS)

  titles, attributes = [], []
  for i in range(v):
    k = int(cat.category[i])
    titles.append(f"{brand_names[brand[i]]} {_ADJECTIVES[adjective[i]]} "
                  f"{_CATEGORIES[k % base][1][noun[i]]} {model[i]}")
    attrs = [f"category:{category_names[k]}",
             f"brand:{brand_names[brand[i]].lower()}"]
    attrs += [f"tag:{_TAGS[t]}" for t in (tag_a[i], tag_b[i])[:num_tags[i]]]
    attributes.append(features.ATTRIBUTE_SEPARATOR.join(attrs))
  return pd.DataFrame({
      features.ITEM_TABLE_ID: item_ids,
      features.ITEM_TABLE_TITLE: titles,
      features.ITEM_TABLE_ATTRIBUTES: attributes,
  })


def generate(config: Optional[SyntheticConfig] = None, *, seed: int = 0,
             **overrides) -> Tuple[pd.DataFrame, pd.DataFrame]:
  """Generates a synthetic interaction log and item table.

  Args:
    config: sizes and dynamics; ``SyntheticConfig()`` when None.
    seed: the only source of randomness.
    **overrides: SyntheticConfig fields replacing those of ``config``, e.g.
      ``generate(num_users=500, num_items=200, num_categories=8)``.

  Returns:
    (interactions, items):
      interactions: columns ``user_id`` ("u0001".."uN"), ``item_id``
        ("i0001".."iV"), ``timestamp`` (int64 unix seconds, non-decreasing
        per user); rows grouped by user in generation order.
      items: one row per catalogue item: ``item_id``, ``title``,
        ``attributes`` ("category:x|brand:y[|tag:z...]").
  """
  cfg = config or SyntheticConfig()
  if overrides:
    cfg = dataclasses.replace(cfg, **overrides)
  rng = np.random.default_rng(seed)
  cat = _Catalogue(cfg, rng)
  n, c = cfg.num_users, cfg.num_categories

  # Interests: Gumbel top-k over Zipf-weighted categories, 1..max per user.
  category_weight = 1.0 / (rng.permutation(c) + 1.0)**cfg.category_zipf_exponent
  keys = np.log(category_weight)[None, :] + rng.gumbel(size=(n, c))
  interests = np.argsort(-keys, axis=1, kind="stable")[:, :cfg.max_interests]
  num_interests = rng.integers(cfg.min_interests, cfg.max_interests + 1,
                               size=n)

  # Lengths: min + geometric extra, capped.
  if cfg.mean_extra_len > 0:
    extra = rng.geometric(1.0 / (cfg.mean_extra_len + 1.0), size=n) - 1
  else:
    extra = np.zeros(n, dtype=np.int64)
  lengths = np.minimum(cfg.min_seq_len + extra, cfg.max_seq_len)
  max_len = int(lengths.max())

  users = np.arange(n)
  history = np.full((n, max_len), -1, dtype=np.int64)
  current_cat = interests[users, rng.integers(0, num_interests)]
  for t in range(max_len):
    active = users[lengths > t]
    if t == 0:
      chosen = cat.sample_popular(rng, current_cat)
    else:
      prev = history[active, t - 1]
      r = rng.random(len(active))
      follow = r < cfg.p_transition
      switch = (~follow) & (r < cfg.p_transition + cfg.p_switch_interest)
      switch_to = interests[active, rng.integers(0, num_interests[active])]
      current_cat[active[switch]] = switch_to[switch]
      chosen = cat.sample_popular(rng, current_cat[active])
      chosen[follow] = cat.sample_successor(rng, prev[follow])
      for _ in range(cfg.repeat_retries):
        seen = (history[active, :t] == chosen[:, None]).any(axis=1)
        if not seen.any():
          break
        chosen[seen] = cat.sample_popular(rng, current_cat[active[seen]])
      current_cat[active] = cat.category[chosen]
    history[active, t] = chosen

  # Timestamps: random start, exponential gaps, occasional ties.
  starts = cfg.start_time + rng.integers(0, cfg.span_days * 86400 + 1, size=n)
  gaps = np.maximum(1, rng.exponential(cfg.mean_gap_seconds,
                                       size=(n, max_len))).astype(np.int64)
  gaps[rng.random((n, max_len)) < cfg.tie_probability] = 0
  gaps[:, 0] = 0
  times = starts[:, None] + np.cumsum(gaps, axis=1)

  mask = np.arange(max_len)[None, :] < lengths[:, None]
  user_width = len(str(n))
  item_width = len(str(cfg.num_items))
  user_ids = np.array([f"u{u + 1:0{user_width}d}" for u in range(n)],
                      dtype=object)
  item_ids = np.array([f"i{i + 1:0{item_width}d}"
                       for i in range(cfg.num_items)], dtype=object)
  interactions = pd.DataFrame({
      features.LOG_USER_ID: np.repeat(user_ids, lengths),
      features.LOG_ITEM_ID: item_ids[history[mask]],
      features.LOG_TIMESTAMP: times[mask].astype(np.int64),
  })
  items = _item_table(cfg, rng, cat, item_ids)
  return interactions, items
