"""UniSRec's preprocessed Amazon datasets (e.g. Scientific): leave-one-out files plus item text."""

import glob
import os
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from pipeline.ingest import canonical
from pipeline.ingest.canonical import IngestError
from trainer import features

UNISREC = "unisrec"
TEXT_SUFFIX = ".text"
SPLITS = ("train", "valid", "test")

# One row of a Name.<split>.inter file: (user index, history indices, target index, line).
_Row = Tuple[int, List[int], int, int]


def find_name(folder: str) -> str:
  """The dataset name ``Name`` of a folder with ``Name.text`` and ``Name.train.inter``.

  Raises:
    IngestError: no such pair, or more than one.
  """
  names = sorted(os.path.basename(p)[:-len(TEXT_SUFFIX)]
                 for p in glob.glob(os.path.join(glob.escape(folder), "*" + TEXT_SUFFIX)))
  pairs = [n for n in names if os.path.isfile(os.path.join(folder, f"{n}.train.inter"))]
  if len(pairs) != 1:
    raise IngestError(
        f"{UNISREC}: expected one Name{TEXT_SUFFIX} with Name.train.inter, Name.valid.inter, "
        f"Name.test.inter and Name.item2index in {folder}; found datasets {pairs} (files: "
        f"{sorted(os.listdir(folder))[:20]})")
  return pairs[0]


def load_unisrec(folder: str) -> Tuple[pd.DataFrame, pd.DataFrame]:
  """UniSRec's downstream datasets (Scientific, Pantry, Instruments, Office, ...).

  Args:
    folder: holds ``Name.item2index`` / ``Name.user2index`` (``raw id \\t index``),
      ``Name.text`` (header, then ``raw item id \\t text``) and
      ``Name.{train,valid,test}.inter`` (header, then ``user \\t history \\t target``
      with space-separated item indices, oldest first, at most the last 50).

  Returns:
    interactions with raw user and item ids (user indices when ``Name.user2index`` is
    absent) and ``timestamp`` = the position in the user's rebuilt sequence (the files
    hold no times); items with every indexed item, ``title`` and ``attributes`` empty and
    ``text`` from ``Name.text`` ("" for an item without a row there).
  """
  if not os.path.isdir(folder):
    raise IngestError(f"{UNISREC}: data folder not found: {folder}")
  name = find_name(folder)
  path = lambda suffix: os.path.join(folder, name + suffix)
  item_ids = _read_index(path(".item2index"), required=True)
  user_ids = _read_index(path(".user2index"), required=False)
  rows = {split: _read_inter(path(f".{split}.inter"), len(item_ids)) for split in SPLITS}
  sequences = rebuild_sequences(rows, {split: path(f".{split}.inter") for split in SPLITS})
  users = np.repeat(np.fromiter(sequences, np.int64), [len(s) for s in sequences.values()])
  items = np.concatenate([np.asarray(s, np.int64) for s in sequences.values()])
  positions = np.concatenate([np.arange(len(s), dtype=np.int64) for s in sequences.values()])
  if user_ids is not None and len(users) and users.max() >= len(user_ids):
    raise IngestError(f"{path('.user2index')}: has {len(user_ids)} users; the .inter files "
                      f"use user index {users.max()}")
  interactions = pd.DataFrame({
      features.LOG_USER_ID: (np.asarray(user_ids, object)[users] if user_ids is not None
                             else users.astype(str).astype(object)),
      features.LOG_ITEM_ID: np.asarray(item_ids, object)[items],
      features.LOG_TIMESTAMP: positions,
  })
  texts = _read_texts(path(TEXT_SUFFIX))
  table = canonical.validate_items(pd.DataFrame({
      features.ITEM_TABLE_ID: item_ids,
      features.ITEM_TABLE_TEXT: [texts.get(item, "") for item in item_ids],
  }), source=path(".item2index"))
  return interactions, table


def rebuild_sequences(rows: Dict[str, List[_Row]],
                      paths: Dict[str, str]) -> Dict[int, List[int]]:
  """Each user's full item sequence from UniSRec's prefix rows.

  The ``train`` rows of a user are its prefixes, longest first; the last one's history
  plus the train targets read bottom-up, then the ``valid`` and ``test`` targets, is the
  whole sequence (the valid and test histories are cut at 50 items, so they are only
  checked against it).

  Returns:
    user index -> item indices, oldest first, users in increasing index order.

  Raises:
    IngestError: a user with two valid or test rows, or a valid/test history that is not
      the end of the rebuilt sequence.
  """
  train: Dict[int, List[_Row]] = {}
  for row in rows["train"]:
    train.setdefault(row[0], []).append(row)
  last = {split: _one_row_per_user(rows[split], paths[split]) for split in ("valid", "test")}
  sequences = {}
  for user in sorted(set(train) | set(last["valid"]) | set(last["test"])):
    if user in train:
      sequence = list(train[user][-1][1]) + [row[2] for row in reversed(train[user])]
    else:
      sequence = list((last["valid"].get(user) or last["test"][user])[1])
    for split in ("valid", "test"):
      row = last[split].get(user)
      if row is None:
        continue
      _, history, target, line = row
      if history and sequence[-len(history):] != history:
        raise IngestError(f"{paths[split]}, line {line}: the history of user {user} is not "
                          "the end of its sequence rebuilt from the earlier files")
      sequence.append(target)
    sequences[user] = sequence
  return sequences


def _one_row_per_user(rows: List[_Row], path: str) -> Dict[int, _Row]:
  by_user: Dict[int, _Row] = {}
  for row in rows:
    if row[0] in by_user:
      raise IngestError(f"{path}, line {row[3]}: user {row[0]} already has line "
                        f"{by_user[row[0]][3]}; expected one row per user")
    by_user[row[0]] = row
  return by_user


def _read_lines(path: str) -> List[Tuple[int, str]]:
  """(line number, line) of the non-blank lines of a UTF-8 file."""
  if not os.path.isfile(path):
    raise IngestError(f"{UNISREC}: expected file {path}")
  try:
    with open(path, encoding="utf-8-sig", newline="") as f:
      lines = f.read().splitlines()
  except UnicodeDecodeError as e:
    raise IngestError(f"{path}: not valid UTF-8 text ({e})") from e
  return [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]


def _read_index(path: str, required: bool) -> Optional[List[str]]:
  """``raw id \\t index`` lines as the list of raw ids in index order (0 .. N-1)."""
  if not required and not os.path.isfile(path):
    return None
  ids: Dict[int, str] = {}
  for n, line in _read_lines(path):
    fields = line.split("\t")
    if len(fields) != 2 or not fields[0].strip() or not fields[1].strip().isdigit():
      raise IngestError(f"{path}, line {n}: expected 'raw id<TAB>index', found {line[:200]!r}")
    index = int(fields[1])
    if index in ids:
      raise IngestError(f"{path}, line {n}: index {index} already belongs to {ids[index]!r}")
    ids[index] = fields[0].strip()
  if sorted(ids) != list(range(len(ids))):
    gap = next(i for i in range(len(ids) + 1) if i not in ids)
    raise IngestError(f"{path}: indices must run 0 .. {len(ids) - 1}; index {gap} is missing")
  return [ids[i] for i in range(len(ids))]


def _read_inter(path: str, num_items: int) -> List[_Row]:
  """The rows of a ``.inter`` file (header ``user_id:token ...`` skipped)."""
  rows = []
  for n, line in _read_lines(path):
    if n == 1 and line.startswith("user_id"):
      continue
    fields = line.split("\t")
    if len(fields) != 3:
      raise IngestError(f"{path}, line {n}: expected 3 tab-separated fields (user, history, "
                        f"target), found {len(fields)}: {line[:200]!r}")
    try:
      user, target = int(fields[0]), int(fields[2])
      history = [int(token) for token in fields[1].split()]
    except ValueError as e:
      raise IngestError(f"{path}, line {n}: expected integer indices ({e})") from e
    out_of_range = [i for i in history + [target] if not 0 <= i < num_items]
    if out_of_range or user < 0:
      raise IngestError(f"{path}, line {n}: index {out_of_range[0] if out_of_range else user} "
                        f"is out of range (items 0 .. {num_items - 1})")
    rows.append((user, history, target, n))
  return rows


def _read_texts(path: str) -> Dict[str, str]:
  """``raw item id \\t text`` lines (header ``item_id:token ...`` skipped)."""
  texts: Dict[str, str] = {}
  for n, line in _read_lines(path):
    if n == 1 and line.startswith("item_id"):
      continue
    item, sep, text = line.partition("\t")
    if not sep or not item.strip():
      raise IngestError(f"{path}, line {n}: expected 'item id<TAB>text', found {line[:200]!r}")
    if item.strip() in texts:
      raise IngestError(f"{path}, line {n}: item {item.strip()!r} already has a text")
    texts[item.strip()] = text.strip()
  return texts
