"""Item vectors: embedding item texts through a cache, precomputed vector files, the output file."""

import dataclasses
import hashlib
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from trainer import atomic_file
from trainer import features
from trainer.item_text import ItemTextError
from trainer.text_encoder import Progress, TextEncoder

VECTORS_FILE = "item_vectors.parquet"
VECTOR_COLUMN = "vector"
VECTOR_FILE_EXTENSIONS = (".parquet", ".csv", ".tsv", ".npz")


@dataclasses.dataclass(frozen=True)
class ItemVectors:
  """One vector per item.

  Attributes:
    item_ids: the items, in the order of ``vectors``' rows.
    vectors: float32 [len(item_ids), dim].
    source: the encoder identity, or the precomputed file the vectors came from.
    num_cached: items whose vector came from the cache.
    num_embedded: distinct texts the encoder ran on.
  """
  item_ids: List[str]
  vectors: np.ndarray
  source: str
  num_cached: int = 0
  num_embedded: int = 0

  @property
  def dim(self) -> int:
    return int(self.vectors.shape[1])


def text_key(identity: str, text: str) -> str:
  """The cache key of ``text`` under an encoder: the hex sha256 of both."""
  return hashlib.sha256(identity.encode("utf-8") + b"\0" + text.encode("utf-8")).hexdigest()


class EmbeddingCache:
  """Vectors of texts embedded before, keyed by ``text_key``.

  Kept in one .npz per encoder in ``folder``; with ``folder`` None, in memory only.
  """

  def __init__(self, folder: Optional[str], identity: str, dim: int):
    self.identity = identity
    self.dim = dim
    self.path = None
    self._vectors: Dict[str, np.ndarray] = {}
    if folder is not None:
      name = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]
      self.path = os.path.join(os.fspath(folder), f"text-embeddings-{name}.npz")
      if os.path.exists(self.path):
        self._load()

  def _load(self) -> None:
    try:
      with np.load(self.path) as data:
        keys, vectors = data["key"], data["vector"]
    except (OSError, ValueError, KeyError) as e:
      raise ItemTextError(f"embedding cache {self.path} is unreadable ({e}); delete it to "
                          "re-embed every text") from e
    if vectors.ndim != 2 or vectors.shape != (len(keys), self.dim):
      raise ItemTextError(f"embedding cache {self.path} holds vectors of shape {vectors.shape}; "
                          f"expected [{len(keys)}, {self.dim}]: delete it to re-embed")
    self._vectors = dict(zip(keys.tolist(), vectors))

  def __contains__(self, key: str) -> bool:
    return key in self._vectors

  def __len__(self) -> int:
    return len(self._vectors)

  def get(self, key: str) -> np.ndarray:
    return self._vectors[key]

  def add(self, keys: Sequence[str], vectors: np.ndarray) -> None:
    self._vectors.update(zip(keys, np.asarray(vectors, np.float32)))

  def save(self) -> None:
    """Writes the cache file atomically (temp file + rename); nothing in memory-only mode."""
    if self.path is None:
      return
    keys = np.array(list(self._vectors), dtype=str)
    vectors = np.stack(list(self._vectors.values())) if self._vectors else np.zeros(
        (0, self.dim), np.float32)

    def write(f):
      np.savez(f, key=keys, vector=vectors.astype(np.float32))
    atomic_file.write_atomically(self.path, write, mode="wb")


def embed_texts(item_ids: Sequence[str], texts: Sequence[str], encoder: TextEncoder,
                cache: Optional[EmbeddingCache] = None,
                progress: Optional[Progress] = None) -> ItemVectors:
  """Vectors of the items' texts; only texts not in ``cache`` go to the encoder.

  Each distinct text is embedded once; the cache (if any) gains the new texts and is saved.
  """
  if cache is None:
    cache = EmbeddingCache(None, encoder.identity, encoder.dim)
  if cache.identity != encoder.identity:
    raise ValueError("the cache belongs to another encoder")
  keys = [text_key(encoder.identity, text) for text in texts]
  new = {}
  for key, text in zip(keys, texts):
    if key not in cache and key not in new:
      new[key] = text
  num_cached = sum(key in cache for key in keys)
  if new:
    cache.add(list(new), encoder.encode(list(new.values()), progress))
    cache.save()
  vectors = np.stack([cache.get(key) for key in keys]) if keys else np.zeros(
      (0, encoder.dim), np.float32)
  return ItemVectors(list(item_ids), vectors, encoder.identity, num_cached, len(new))


def write_vectors(vectors: ItemVectors, out_dir: str) -> str:
  """Writes ``out_dir/item_vectors.parquet`` (``item_id``, fixed-size ``vector``) atomically."""
  out_dir = os.fspath(out_dir)
  os.makedirs(out_dir, exist_ok=True)
  flat = pa.array(np.ascontiguousarray(vectors.vectors, np.float32).reshape(-1))
  table = pa.table({
      features.ITEM_TABLE_ID: pa.array(vectors.item_ids, pa.string()),
      VECTOR_COLUMN: pa.FixedSizeListArray.from_arrays(flat, vectors.dim),
  }).replace_schema_metadata({"source": vectors.source, "dim": str(vectors.dim)})
  target = os.path.join(out_dir, VECTORS_FILE)
  atomic_file.write_atomically(target, lambda f: pq.write_table(table, f), mode="wb")
  return target



def read_vectors(path: str, item_ids: Optional[Sequence[str]] = None) -> ItemVectors:
  """Reads precomputed item vectors (e.g. a user's own LLM embeddings), as given.

  Layouts: .parquet with ``item_id`` and a list column ``vector`` (what ``write_vectors``
  writes) or one numeric column per dimension; .csv/.tsv with ``item_id`` and either a
  ``vector`` column of numbers separated by spaces or commas (``[...]`` allowed) or one
  numeric column per dimension; .npz with arrays ``item_id`` [n] and ``vector`` [n, dim].

  Args:
    path: the file.
    item_ids: when given, the result holds exactly these items, in this order.

  Raises:
    ItemTextError: one line naming the file and the row of the first problem (an
      unreadable file, empty or repeated id, non-numeric or non-finite value, a row of
      another dimension), or an item of ``item_ids`` without a vector.
  """
  path = os.fspath(path)
  ids, vectors, row_label = _read_vector_file(path)
  _check_ids(path, ids, row_label)
  bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
  if len(bad):
    raise ItemTextError(f"vector file {path}, {row_label(bad[0])}: item {ids[bad[0]]!r} has a "
                        "non-finite value (NaN or inf)")
  if item_ids is not None:
    index = {item: i for i, item in enumerate(ids)}
    missing = [item for item in item_ids if item not in index]
    if missing:
      raise ItemTextError(f"vector file {path} has no vector for {len(missing)} of "
                          f"{len(item_ids)} items, first item_id {missing[0]!r}")
    vectors = vectors[[index[item] for item in item_ids]]
    ids = list(item_ids)
  return ItemVectors(list(ids), vectors.astype(np.float32), path)


def align_to_vocabulary(vectors: ItemVectors,
                        item_vocab: Sequence[str]) -> Tuple[np.ndarray, List[str]]:
  """(float32 [V, dim], row j the vector of ``item_vocab[j]``; the ids without one, zero rows).

  Items are matched by raw id; vectors of items outside the vocabulary are not used.
  """
  index = {item: i for i, item in enumerate(vectors.item_ids)}
  rows = np.zeros([len(item_vocab), vectors.dim], np.float32)
  missing = []
  for j, item in enumerate(item_vocab):
    i = index.get(item)
    if i is None:
      missing.append(item)
    else:
      rows[j] = vectors.vectors[i]
  return rows, missing


def _read_vector_file(path: str):
  """(ids, float64 [n, dim], row_label) from any supported layout."""
  if not os.path.isfile(path):
    raise ItemTextError(f"vector file not found: {path}")
  ext = os.path.splitext(path)[1].lower()
  if ext not in VECTOR_FILE_EXTENSIONS:
    hint = (" (a .npy holds no item ids: save np.savez(path, item_id=ids, vector=matrix))"
            if ext == ".npy" else "")
    raise ItemTextError(f"vector file {path} has extension '{ext or '(none)'}'; supported: "
                        f"{', '.join(VECTOR_FILE_EXTENSIONS)}{hint}")
  try:
    if ext == ".npz":
      return _read_npz(path)
    if ext == ".parquet":
      df = pd.read_parquet(path)
      return _vectors_from_frame(path, df, lambda i: f"row {i + 1}")
    df = pd.read_csv(path, sep="\t" if ext == ".tsv" else ",", keep_default_na=False,
                     dtype={features.ITEM_TABLE_ID: str, VECTOR_COLUMN: str})
    return _vectors_from_frame(path, df, lambda i: f"line {i + 2}")
  except ItemTextError:
    raise
  except Exception as e:  # pandas, pyarrow and numpy raise many unrelated types.
    raise ItemTextError(f"could not read vector file {path}: {str(e).splitlines()[0]}") from e


def _read_npz(path: str):
  with np.load(path, allow_pickle=False) as data:
    if features.ITEM_TABLE_ID not in data or VECTOR_COLUMN not in data:
      raise ItemTextError(f"vector file {path} holds arrays {sorted(data.keys())}; expected "
                          f"'{features.ITEM_TABLE_ID}' [n] and '{VECTOR_COLUMN}' [n, dim]")
    ids, vectors = data[features.ITEM_TABLE_ID], data[VECTOR_COLUMN]
  if vectors.ndim != 2 or len(vectors) != len(ids) or vectors.dtype.kind not in "fiu":
    raise ItemTextError(f"vector file {path}: '{VECTOR_COLUMN}' has shape {vectors.shape} "
                        f"({vectors.dtype}); expected numbers of shape [{len(ids)}, dim]")
  return [str(i).strip() for i in ids.tolist()], vectors.astype(np.float64), (
      lambda i: f"row {i + 1}")


def _vectors_from_frame(path: str, df: pd.DataFrame, row_label):
  df.columns = [str(c).strip() for c in df.columns]
  if features.ITEM_TABLE_ID not in df.columns:
    raise ItemTextError(f"vector file {path} has no '{features.ITEM_TABLE_ID}' column "
                        f"(columns: {list(df.columns)[:10]})")
  if df.empty:
    raise ItemTextError(f"vector file {path} has no rows")
  ids = ["" if v is None else str(v).strip() for v in df[features.ITEM_TABLE_ID]]
  if VECTOR_COLUMN in df.columns:
    rows = [_parse_vector(path, cell, row_label(i)) for i, cell in enumerate(df[VECTOR_COLUMN])]
  else:
    numbers = df.drop(columns=[features.ITEM_TABLE_ID]).apply(pd.to_numeric, errors="coerce")
    if numbers.shape[1] == 0:
      raise ItemTextError(f"vector file {path} has only an '{features.ITEM_TABLE_ID}' column; "
                          f"expected a '{VECTOR_COLUMN}' column or one column per dimension")
    bad = numbers.isna().to_numpy()
    if bad.any():
      row, col = np.argwhere(bad)[0]
      raise ItemTextError(f"vector file {path}, {row_label(row)}: column "
                          f"'{numbers.columns[col]}' has value {df.iloc[row, col + 1]!r}; "
                          "expected a number")
    rows = list(numbers.to_numpy(np.float64))
  dims = np.array([len(r) for r in rows])
  other = np.flatnonzero(dims != dims[0])
  if len(other) or dims[0] == 0:
    i = int(other[0]) if len(other) else 0
    raise ItemTextError(f"vector file {path}, {row_label(i)}: item {ids[i]!r} has {dims[i]} "
                        f"values; expected {dims[0] if len(other) else 'at least 1'} like the "
                        "first row")
  return ids, np.stack(rows), row_label


def _parse_vector(path: str, cell, label: str) -> np.ndarray:
  """One ``vector`` cell: a list/array, or numbers separated by spaces or commas."""
  if isinstance(cell, (list, tuple, np.ndarray)):
    values = list(cell)
  else:
    values = str(cell).strip().strip("[]").replace(",", " ").split()
  try:
    return np.array(values, dtype=np.float64)
  except (TypeError, ValueError) as e:
    raise ItemTextError(f"vector file {path}, {label}: '{VECTOR_COLUMN}' is not a list of "
                        f"numbers ({str(cell)[:80]!r})") from e


def _check_ids(path: str, ids: List[str], row_label) -> None:
  empty = [i for i, item in enumerate(ids) if not item]
  if empty:
    raise ItemTextError(f"vector file {path}, {row_label(empty[0])}: "
                        f"'{features.ITEM_TABLE_ID}' is empty")
  first: Dict[str, int] = {}
  for i, item in enumerate(ids):
    if item in first:
      raise ItemTextError(f"vector file {path}, {row_label(i)}: item_id {item!r} already has "
                          f"a vector at {row_label(first[item])}")
    first[item] = i

