"""Benchmark data: a dataset's sequences as leave-one-out splits in the Trainer's format.

The same splits and vocabulary order as the pipeline's SequenceBuilder and Transform.
"""

import collections
import dataclasses
import json
import os
from typing import Dict, FrozenSet, List, Optional

import numpy as np
import tensorflow as tf

from components.sequence_builder.cold_items import ColdItemSelector
from pipeline.ingest import formats
from pipeline.ingest import synthetic
from trainer import features
from trainer.atomic_file import write_atomically
from trainer.pretraining.item_attributes import ItemAttributeTable

DATASETS = {
    # name: (loader kind, default folder relative to the repository)
    "beauty": (formats.S3REC, "../shared/data/beauty"),
    "lastfm": (formats.S3REC, "../shared/data/lastfm"),
    "ml-100k": (formats.ML_100K, "../shared/data/ml-100k"),
    "ml-latest-small": (formats.ML_LATEST, "../shared/data/ml-latest-small"),
    "scientific": (formats.UNISREC, "../shared/data/scientific"),
    "synthetic": ("synthetic", None),
}
SPEC = {
    features.HISTORY_IDS: tf.io.VarLenFeature(tf.int64),
    features.TARGET_ID: tf.io.FixedLenFeature([], tf.int64),
}


@dataclasses.dataclass
class BenchData:
  """Leave-one-out splits of one dataset, on disk and in memory."""
  name: str
  num_items: int
  num_users: int
  num_interactions: int
  files: Dict[str, str]                 # split -> TFRecord path
  histories: Dict[str, List[List[int]]]  # split -> per-user history (vocabulary indices)
  targets: Dict[str, np.ndarray]         # split -> int64 [users]
  attributes: Optional[ItemAttributeTable]
  train_labels: int                      # labelled positions per training epoch (L <= max_seq_len)
  cold_items: FrozenSet[int] = frozenset()  # vocabulary indices of the held-out items
  item_ids: List[str] = dataclasses.field(default_factory=list)  # raw ids, vocabulary order
  attribute_vocab: List[str] = dataclasses.field(default_factory=list)  # values, index order


def dataset_folder(name: str, data_dir: Optional[str]) -> str:
  """The folder of dataset ``name`` (``data_dir`` or its default); checked to exist."""
  if name not in DATASETS:
    raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
  folder = data_dir or DATASETS[name][1]
  if not folder or not os.path.isdir(folder):
    raise FileNotFoundError(f"dataset folder {folder} not found (dataset {name}); "
                            f"pass --data-dir or see `make download`")
  return folder


def _load_frames(name: str, data_dir: Optional[str]):
  if name in DATASETS and DATASETS[name][0] == "synthetic":
    return synthetic.generate(seed=0)
  return formats.load_dataset(DATASETS[name][0], dataset_folder(name, data_dir))


def user_sequences(interactions) -> List[List[str]]:
  """Raw item ids per user in time order (stable for equal timestamps)."""
  frame = interactions.sort_values([features.LOG_USER_ID, features.LOG_TIMESTAMP],
                                   kind="stable")
  return [list(items) for _, items in
          frame.groupby(features.LOG_USER_ID, sort=True)[features.LOG_ITEM_ID]]


def _write(path: str, histories: List[List[int]], targets: np.ndarray) -> None:
  """Writes the rows to a temp file renamed to ``path``: runs side by side (``run
  --jobs``) prepare the same files while the others read them. A failed write leaves
  ``path`` as it was and no temp file (TF's writer takes a path, not the file object
  ``trainer.atomic_file.write_atomically`` hands over)."""
  options = tf.io.TFRecordOptions(compression_type="GZIP")
  tmp = f"{path}.{os.getpid()}.tmp"
  try:
    with tf.io.TFRecordWriter(tmp, options) as writer:
      for history, target in zip(histories, targets):
        example = tf.train.Example(features=tf.train.Features(feature={
            features.HISTORY_IDS: tf.train.Feature(int64_list=tf.train.Int64List(value=history)),
            features.TARGET_ID: tf.train.Feature(int64_list=tf.train.Int64List(value=[target])),
        }))
        writer.write(example.SerializeToString())
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def hold_out(sequences: List[List[str]], cold: ColdItemSelector) -> List[List[str]]:
  """The SequenceBuilder's cold-item hold-out (``ColdItemSelector.hold_out``) of raw ids."""
  return [[item.decode("utf-8") for item in cold.hold_out([i.encode("utf-8") for i in s])]
          for s in sequences]


def drop_last_items(sequences: List[List[str]], count: int) -> List[List[str]]:
  """Each sequence without its last ``count`` items: the data as it stood ``count``
  days earlier when every user gains one item a day (the nightly benchmark's day 1).

  A sequence with ``count`` or fewer items becomes empty (``prepare`` then drops the
  user, as it drops every user with fewer than 3 items).
  """
  if count < 0:
    raise ValueError(f"count must be >= 0, got {count!r}")
  return [s[:len(s) - count] for s in sequences]


def prepare(name: str, work_dir: str, data_dir: Optional[str] = None,
            max_seq_len: int = 50, cold_item_fraction: float = 0.0,
            cold_item_seed: int = 0, drop_last: int = 0) -> BenchData:
  """Loads ``name``, builds the splits and writes them under ``work_dir``.

  With ``cold_item_fraction`` > 0 the items the pipeline's SequenceBuilder would hold
  out with that fraction and seed leave every sequence but stay test targets and
  candidates (docs/data.md, "Cold items"). With ``drop_last`` > 0 every sequence loses
  its last ``drop_last`` items first (``drop_last_items``), so the splits are those of
  the shorter sequences and the items only those sequences hold.
  """
  interactions, items = _load_frames(name, data_dir)
  full = [s for s in drop_last_items(user_sequences(interactions), drop_last) if len(s) >= 3]
  cold = (ColdItemSelector(cold_item_fraction, cold_item_seed) if cold_item_fraction > 0
          else None)
  sequences = [s for s in hold_out(full, cold) if len(s) >= 3] if cold else full
  if not sequences:
    raise ValueError(f"dataset {name}: no user has 3 or more interactions")
  counts = collections.Counter(item for s in sequences for item in s[:-2])
  for s in full:  # held-out items stay in the catalogue
    counts.update({item: 0 for item in s})
  vocab = sorted(counts, key=lambda item: (-counts[item], item))
  index = {item: i for i, item in enumerate(vocab)}
  encoded = [[index[item] for item in s] for s in sequences]
  cuts = {features.TRAIN_SPLIT: 3, features.EVAL_SPLIT: 2, features.TEST_SPLIT: 1}
  os.makedirs(work_dir, exist_ok=True)
  files, histories, targets = {}, {}, {}
  for split, cut in cuts.items():
    histories[split] = [s[:-cut] for s in encoded]
    targets[split] = np.asarray([s[-cut] for s in encoded], dtype=np.int64)
    files[split] = os.path.join(work_dir, f"{split}.tfrecord.gz")
    _write(files[split], histories[split], targets[split])
  write_atomically(os.path.join(work_dir, "item_vocab.txt"),
                   lambda f: f.write("\n".join(vocab) + "\n"))

  attributes, attribute_vocab = None, []
  if items is not None:
    by_item = dict(zip(items[features.ITEM_TABLE_ID], items[features.ITEM_TABLE_ATTRIBUTES]))
    rows = [[a for a in str(by_item.get(item, "")).split(features.ATTRIBUTE_SEPARATOR) if a]
            for item in vocab]
    attribute_vocab = sorted({a for row in rows for a in row})
    if attribute_vocab:
      attribute_index = {a: i for i, a in enumerate(attribute_vocab)}
      attributes = ItemAttributeTable([[attribute_index[a] for a in row] for row in rows],
                                      len(attribute_vocab))
  train_labels = sum(min(len(s) - 3, max_seq_len) for s in encoded)
  data = BenchData(name=name, num_items=len(vocab), num_users=len(encoded),
                   num_interactions=sum(len(s) for s in encoded), files=files,
                   histories=histories, targets=targets, attributes=attributes,
                   train_labels=train_labels, item_ids=vocab,
                   attribute_vocab=attribute_vocab if attributes else [],
                   cold_items=frozenset(i for item, i in index.items()
                                        if cold and cold.is_cold(item.encode("utf-8"))))
  write_atomically(os.path.join(work_dir, "summary.json"), lambda f: json.dump(
      {"dataset": name, "users": data.num_users, "items": data.num_items,
       "interactions": data.num_interactions, "cold_items": len(data.cold_items),
       "items_with_attributes": attributes.num_items_with_attributes if attributes else 0},
      f, indent=1))
  return data


def sample_training_users(data: BenchData, fraction: float, seed: int, work_dir: str,
                          max_seq_len: int = 50) -> BenchData:
  """``data`` trained on a seeded ``fraction`` of its users; evaluation stays whole.

  Only the training split (its TFRecord, histories, targets and label count) is cut
  to the sampled users; every user's validation and test rows stay, so the metrics
  are over the same users at every fraction. At least one user is kept.
  """
  if not 0 < fraction <= 1:
    raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
  split = features.TRAIN_SPLIT
  users = len(data.targets[split])
  keep = np.sort(np.random.default_rng(seed).permutation(users)[:max(1, round(fraction * users))])
  histories = [data.histories[split][u] for u in keep]
  targets = data.targets[split][keep]
  os.makedirs(work_dir, exist_ok=True)
  path = os.path.join(work_dir, f"{split}-users{fraction:g}-seed{seed}.tfrecord.gz")
  _write(path, histories, targets)
  return dataclasses.replace(
      data, files={**data.files, split: path},
      histories={**data.histories, split: histories},
      targets={**data.targets, split: targets},
      train_labels=sum(min(len(h), max_seq_len) for h in histories))
