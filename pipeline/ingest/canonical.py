"""The canonical interaction log and item table that ExampleGen reads.

Canonical interaction log (CSV, one row per interaction)::

    user_id,item_id,timestamp[,weight][,event_type]

``user_id`` / ``item_id`` are non-empty strings, ``timestamp`` is a number
(integer or float, e.g. unix seconds; only its order matters), ``weight`` is an
optional number (e.g. a rating) and ``event_type`` an optional string.

Canonical item table (CSV, optional, one row per catalogue item)::

    item_id,title,attributes[,text]

``attributes`` is a ``|``-separated list (``features.ATTRIBUTE_SEPARATOR``) and
may be empty; titles hold no newlines. The optional ``text`` is the item's free
text for a sentence encoder (``trainer.item_text``), one line, may be empty.

On disk each table lives alone in its own folder (a TFX ``CsvExampleGen``
``input_base`` reads every file of a folder)::

    out_dir/interactions/interactions.csv
    out_dir/items/items.csv
"""

import csv
import filecmp
import hashlib
import dataclasses
import os
import tempfile
from typing import Callable, Optional

import numpy as np
import pandas as pd

from trainer import features

SUPPORTED_LOG_EXTENSIONS = (".csv", ".tsv", ".parquet")

INTERACTIONS_DIR = "interactions"
INTERACTIONS_FILE = "interactions.csv"
ITEMS_DIR = "items"
ITEMS_FILE = "items.csv"

_OPTIONAL_LOG_COLUMNS = (features.LOG_WEIGHT, features.LOG_EVENT_TYPE)
_LOG_COLUMNS = features.LOG_REQUIRED_COLUMNS + _OPTIONAL_LOG_COLUMNS
_ITEM_COLUMNS = (features.ITEM_TABLE_ID, features.ITEM_TABLE_TITLE,
                 features.ITEM_TABLE_ATTRIBUTES)
# Columns read as text from CSV/TSV files (never parsed as numbers).
_TEXT_COLUMNS = (features.LOG_USER_ID, features.LOG_ITEM_ID,
                 features.LOG_EVENT_TYPE) + _ITEM_COLUMNS + (
                     features.ITEM_TABLE_TEXT,)


class IngestError(ValueError):
  """Input data that cannot be turned into the canonical format.

  The message names the file (or DataFrame), the row or field and what was
  expected, so that a user can fix the input.
  """


@dataclasses.dataclass(frozen=True)
class CanonicalData:
  """Where ``write_canonical`` put the canonical tables, and their sizes.

  Attributes:
    out_dir: the folder given to ``write_canonical``.
    interactions_path: ``out_dir/interactions/interactions.csv``.
    items_path: ``out_dir/items/items.csv``, or None without an item table.
    num_users: distinct users in the interaction log.
    num_items: distinct items in the interaction log.
    num_interactions: rows of the interaction log.
    has_items: whether an item table was written.
    num_catalogue_items: rows of the item table (0 without one).
  """
  out_dir: str
  interactions_path: str
  items_path: Optional[str]
  num_users: int
  num_items: int
  num_interactions: int
  has_items: bool
  num_catalogue_items: int = 0

  @property
  def interactions_dir(self) -> str:
    """The folder to pass as ExampleGen ``input_base`` for the log."""
    return os.path.dirname(self.interactions_path)

  @property
  def items_dir(self) -> Optional[str]:
    """The folder to pass as ExampleGen ``input_base`` for the items."""
    return os.path.dirname(self.items_path) if self.items_path else None


# ----------------------------------------------------------------------------
# Reading user files.


def _extension(path: str) -> str:
  return os.path.splitext(path)[1].lower()


def _read_table(path: str, what: str):
  """Reads a .csv/.tsv/.parquet file.

  Args:
    path: the file.
    what: what the file should hold, for messages ("interaction log").

  Returns:
    (df, row_label): for CSV/TSV, ``df`` holds the id, label, title and
    attribute columns as written (str) and other columns as numbers when every
    cell parses, else as str ("" for an empty cell, NaN for a missing one);
    for Parquet, the stored types. Blank lines are dropped; ``row_label(i)`` names the row at position ``i`` of ``df`` as a
    user sees it in the file ("line 7" counting the header as line 1, or
    "row 6" for Parquet).

  Raises:
    IngestError: missing or unreadable file, unsupported extension, no rows.
  """
  if not os.path.exists(path):
    raise IngestError(f"{what} file not found: {path}")
  if os.path.isdir(path):
    raise IngestError(f"{what} path {path} is a folder; expected a "
                      f"{'/'.join(SUPPORTED_LOG_EXTENSIONS)} file")
  ext = _extension(path)
  if ext not in SUPPORTED_LOG_EXTENSIONS:
    raise IngestError(
        f"{what} file {path} has unsupported extension '{ext or '(none)'}'; "
        f"supported formats: {', '.join(SUPPORTED_LOG_EXTENSIONS)}")
  if os.path.getsize(path) == 0:
    raise IngestError(f"{what} file {path} is empty; expected a header and "
                      "at least one data row")
  if ext == ".parquet":
    try:
      df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several unrelated types.
      raise IngestError(f"could not read {what} file {path} as Parquet: "
                        f"{e}") from e
    df = df.reset_index(drop=True)
    labels = np.arange(1, len(df) + 1)
    row_label = lambda i: f"row {labels[i]}"
  else:
    try:
      # Ids and labels stay text; numeric columns are parsed by the C reader
      # (any odd cell leaves them text, and validation names the cell).
      df = pd.read_csv(path, sep="\t" if ext == ".tsv" else ",",
                       dtype={c: str for c in _TEXT_COLUMNS},
                       keep_default_na=False, skip_blank_lines=False,
                       encoding="utf-8-sig")
    except pd.errors.EmptyDataError as e:
      raise IngestError(f"{what} file {path} is empty; expected a header and "
                        "at least one data row") from e
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
      raise IngestError(f"could not parse {what} file {path}: {e}") from e
    # With skip_blank_lines=False, position i is line i + 2 of the file;
    # blank lines come back as rows of empty cells and are dropped here.
    lines = np.arange(2, len(df) + 2)
    first = df.iloc[:, 0]
    candidates = np.flatnonzero((first.isna() | (first == "")).to_numpy())
    blank = np.zeros(len(df), dtype=bool)
    if len(candidates):
      rows = df.iloc[candidates]
      blank[candidates] = (rows.isna() | (rows == "")).all(axis=1).to_numpy()
    if blank.any():
      df = df.loc[~blank].reset_index(drop=True)
      lines = lines[~blank]
    row_label = lambda i: f"line {lines[i]}"
  df.columns = [str(c).strip() for c in df.columns]
  if df.empty:
    raise IngestError(f"{what} file {path} has no data rows (columns found: "
                      f"{list(df.columns)})")
  return df, row_label


def _id_strings(values: pd.Series) -> pd.Series:
  """Ids as stripped strings; integral floats lose their '.0'; missing -> ''.

  Works on the distinct values only (ids repeat a lot), so it stays fast on
  millions of rows.
  """
  codes, uniques = pd.factorize(values, use_na_sentinel=True)
  uniques = pd.Series(uniques)
  if pd.api.types.is_float_dtype(uniques.dtype):
    finite = uniques[np.isfinite(uniques)]
    if (finite == np.floor(finite)).all():
      text = [str(int(v)) if np.isfinite(v) else str(v) for v in uniques]
    else:
      text = [str(v) for v in uniques]
  else:
    text = [str(v).strip() for v in uniques]
  # Missing values (code -1) map to the trailing "".
  table = np.array(text + [""], dtype=object)
  return pd.Series(table[codes], index=values.index, dtype=object)


def _numbers(values: pd.Series, source: str, column: str,
             row_label: Callable[[int], str]) -> pd.Series:
  """Parses a numeric column; int64 when every value is integral."""
  if pd.api.types.is_bool_dtype(values.dtype):
    raise IngestError(f"{source}: column '{column}' holds booleans; expected "
                      "numbers")
  if pd.api.types.is_integer_dtype(values.dtype):
    return values.astype(np.int64)
  if pd.api.types.is_numeric_dtype(values.dtype):
    parsed = values.astype(np.float64)
  else:
    # Surrounding spaces are accepted; empty and unparsable cells -> NaN.
    parsed = pd.to_numeric(values, errors="coerce")
  if parsed.dtype.kind in "iu":
    return parsed.astype(np.int64)
  # NaN (empty or unparsable) and +-inf are rejected.
  bad = ~np.isfinite(parsed.to_numpy(dtype=np.float64, na_value=np.nan))
  if bad.any():
    i = int(np.argmax(bad))
    value = values.iloc[i]
    if value is None or (isinstance(value, float) and np.isnan(value)) or (
        isinstance(value, str) and not value.strip()):
      raise IngestError(f"{source}, {row_label(i)}: column '{column}' is "
                        "empty; expected a number")
    raise IngestError(
        f"{source}, {row_label(i)}: column '{column}' has value "
        f"{value!r}; expected a number")
  if parsed.dtype.kind == "f":
    as_float = parsed.to_numpy(dtype=np.float64)
    if (np.all(as_float == np.floor(as_float)) and
        np.all(np.abs(as_float) < 2**62)):
      return pd.Series(as_float.astype(np.int64), index=values.index)
    return pd.Series(as_float, index=values.index)
  return parsed.astype(np.int64)


def validate_interactions(
    df: pd.DataFrame,
    source: str = "interactions DataFrame",
    row_label: Optional[Callable[[int], str]] = None) -> pd.DataFrame:
  """Checks an interaction log and returns it in canonical form.

  Args:
    df: one row per interaction with at least the columns
      ``features.LOG_REQUIRED_COLUMNS``; other columns besides ``weight`` and
      ``event_type`` are dropped.
    source: names the data in error messages (e.g. the file path).
    row_label: names the row at position ``i`` in messages; default "row i+1".

  Returns:
    A new DataFrame with columns ``user_id``, ``item_id`` (str),
    ``timestamp`` (int64, or float64 if not all integral) and, when present,
    ``weight`` (int64/float64) and ``event_type`` (str); same row order.

  Raises:
    IngestError: a missing column, an empty id, a non-numeric
      timestamp/weight, or no rows.
  """
  if row_label is None:
    row_label = lambda i: f"row {i + 1}"
  missing = [c for c in features.LOG_REQUIRED_COLUMNS if c not in df.columns]
  if missing:
    raise IngestError(
        f"{source}: missing required column(s) {missing}; columns found: "
        f"{list(df.columns)}; expected {list(features.LOG_REQUIRED_COLUMNS)} "
        f"and optionally {list(_OPTIONAL_LOG_COLUMNS)}")
  if df.empty:
    raise IngestError(f"{source} has no rows")
  df = df.reset_index(drop=True)
  out = {}
  for column in (features.LOG_USER_ID, features.LOG_ITEM_ID):
    ids = _id_strings(df[column])
    empty = (ids == "").to_numpy()
    if empty.any():
      i = int(np.argmax(empty))
      raise IngestError(f"{source}, {row_label(i)}: column '{column}' is "
                        "empty; expected a non-empty id")
    out[column] = ids
  out[features.LOG_TIMESTAMP] = _numbers(df[features.LOG_TIMESTAMP], source,
                                         features.LOG_TIMESTAMP, row_label)
  if features.LOG_WEIGHT in df.columns:
    out[features.LOG_WEIGHT] = _numbers(df[features.LOG_WEIGHT], source,
                                        features.LOG_WEIGHT, row_label)
  if features.LOG_EVENT_TYPE in df.columns:
    out[features.LOG_EVENT_TYPE] = _id_strings(df[features.LOG_EVENT_TYPE])
  return pd.DataFrame(out)


def read_interactions(path: str) -> pd.DataFrame:
  """Reads and validates a user's own interaction log (.csv, .tsv, .parquet).

  Args:
    path: a file with a header naming at least ``user_id``, ``item_id`` and
      ``timestamp`` (optionally ``weight``, ``event_type``; others ignored).

  Returns:
    The log in canonical form, see ``validate_interactions``.

  Raises:
    IngestError: naming the file, and the line and value where relevant.
  """
  path = os.fspath(path)
  df, row_label = _read_table(path, "interaction log")
  return validate_interactions(df, source=f"interaction log {path}",
                               row_label=row_label)


def _attribute_string(value) -> str:
  """One attribute cell ('a|b', a list, or empty) as canonical 'a|b'."""
  if value is None or (isinstance(value, float) and np.isnan(value)):
    return ""
  if isinstance(value, (list, tuple, np.ndarray)):
    parts = [str(v) for v in value]
  else:
    parts = str(value).split(features.ATTRIBUTE_SEPARATOR)
  parts = [_one_line(p).strip() for p in parts]
  # A set of attributes: drop empties and repeats, keep first-seen order.
  return features.ATTRIBUTE_SEPARATOR.join(dict.fromkeys(p for p in parts if p))


def _one_line(text) -> str:
  if text is None or (isinstance(text, float) and np.isnan(text)):
    return ""
  return " ".join(str(text).splitlines()).replace("\r", " ").strip()


def validate_items(
    df: pd.DataFrame,
    source: str = "items DataFrame",
    row_label: Optional[Callable[[int], str]] = None) -> pd.DataFrame:
  """Checks an item table and returns it in canonical form.

  Args:
    df: one row per item, column ``item_id`` and optionally ``title``,
      ``attributes`` (a ``|``-separated string or a list per row) and ``text``.
    source: names the data in error messages.
    row_label: names the row at position ``i`` in messages.

  Returns:
    A new DataFrame with str columns ``item_id``, ``title`` (one line, ""
    when unknown) and ``attributes`` (canonical ``a|b|c``, "" when none), and
    ``text`` (one line) when ``df`` has that column.

  Raises:
    IngestError: missing ``item_id`` column, empty or duplicated ids.
  """
  if row_label is None:
    row_label = lambda i: f"row {i + 1}"
  if features.ITEM_TABLE_ID not in df.columns:
    raise IngestError(
        f"{source}: missing required column '{features.ITEM_TABLE_ID}'; "
        f"columns found: {list(df.columns)}; expected {list(_ITEM_COLUMNS)}")
  df = df.reset_index(drop=True)
  ids = _id_strings(df[features.ITEM_TABLE_ID])
  empty = (ids == "").to_numpy()
  if empty.any():
    i = int(np.argmax(empty))
    raise IngestError(f"{source}, {row_label(i)}: column "
                      f"'{features.ITEM_TABLE_ID}' is empty; expected an id")
  duplicated = ids.duplicated().to_numpy()
  if duplicated.any():
    i = int(np.argmax(duplicated))
    first = int(np.argmax((ids == ids.iloc[i]).to_numpy()))
    raise IngestError(f"{source}, {row_label(i)}: item_id {ids.iloc[i]!r} "
                      f"already appeared at {row_label(first)}; expected "
                      "one row per item")
  if features.ITEM_TABLE_TITLE in df.columns:
    titles = df[features.ITEM_TABLE_TITLE].map(_one_line)
  else:
    titles = pd.Series([""] * len(df))
  if features.ITEM_TABLE_ATTRIBUTES in df.columns:
    attributes = df[features.ITEM_TABLE_ATTRIBUTES].map(_attribute_string)
  else:
    attributes = pd.Series([""] * len(df))
  table = pd.DataFrame({
      features.ITEM_TABLE_ID: ids,
      features.ITEM_TABLE_TITLE: titles.astype(object),
      features.ITEM_TABLE_ATTRIBUTES: attributes.astype(object),
  })
  if features.ITEM_TABLE_TEXT in df.columns:
    table[features.ITEM_TABLE_TEXT] = df[features.ITEM_TABLE_TEXT].map(
        _one_line).astype(object)
  return table


def read_items(path: str) -> pd.DataFrame:
  """Reads and validates an item table (.csv, .tsv, .parquet).

  Args:
    path: a file with a header naming ``item_id`` and optionally ``title``,
      ``attributes``, ``text``.

  Returns:
    The table in canonical form, see ``validate_items``.

  Raises:
    IngestError: naming the file and the offending line.
  """
  path = os.fspath(path)
  df, row_label = _read_table(path, "item table")
  return validate_items(df, source=f"item table {path}", row_label=row_label)


# ----------------------------------------------------------------------------
# Writing.


def _sort_key(ids: pd.Series) -> np.ndarray:
  """Order ranks of ids: numeric order when every id is an integer, else
  string order. Computed on the distinct ids only."""
  codes, uniques = pd.factorize(ids)
  numbers = pd.to_numeric(pd.Series(uniques), errors="coerce")
  if not numbers.isna().any() and (numbers == np.floor(numbers)).all():
    order = np.argsort(numbers.to_numpy(), kind="stable")
  else:
    order = np.argsort(np.asarray(uniques, dtype=str), kind="stable")
  rank = np.empty(len(uniques), dtype=np.int64)
  rank[order] = np.arange(len(uniques))
  return rank[codes]


def sort_interactions(df: pd.DataFrame) -> pd.DataFrame:
  """Canonical order: by user_id, timestamp, item_id (ids numerically if all
  integers); stable, so exact duplicates keep their input order."""
  keys = pd.DataFrame({
      "u": _sort_key(df[features.LOG_USER_ID]),
      "t": df[features.LOG_TIMESTAMP],
      "i": _sort_key(df[features.LOG_ITEM_ID]),
  })
  order = keys.sort_values(["u", "t", "i"], kind="mergesort").index
  return df.loc[order].reset_index(drop=True)


def file_digest(path: str, algorithm: str = "sha256") -> str:
  """Hex digest of a file's bytes, read in 1 MiB blocks."""
  digest = hashlib.new(algorithm)
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _check_folder(folder: str, file_name: str) -> None:
  """The folder may hold only our file: ExampleGen would read any other."""
  if not os.path.isdir(folder):
    return
  others = sorted(f for f in os.listdir(folder) if f != file_name)
  if others:
    raise IngestError(
        f"output folder {folder} already holds other files {others[:5]}; "
        f"ExampleGen reads every file of it, so it must hold only "
        f"{file_name}. Choose an empty output folder or remove them.")


def _write_csv_atomically(df: pd.DataFrame, out_dir: str, folder: str,
                          file_name: str) -> str:
  """Writes ``df`` to ``out_dir/folder/file_name`` via a temp file + rename.

  The temp file lives in ``out_dir`` (not in ``folder``) so that a crash never
  leaves a stray file where ExampleGen reads.
  """
  target_dir = os.path.join(out_dir, folder)
  os.makedirs(target_dir, exist_ok=True)
  target = os.path.join(target_dir, file_name)
  fd, tmp = tempfile.mkstemp(prefix=f".{file_name}.", suffix=".tmp",
                             dir=out_dir)
  try:
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
      df.to_csv(f, index=False, quoting=csv.QUOTE_MINIMAL,
                lineterminator="\n")
    if os.path.exists(target) and filecmp.cmp(tmp, target, shallow=False):
      # Same content: keep the file (and its mtime), so a rerun on unchanged
      # data is an ExampleGen cache hit rather than a new ingestion.
      os.remove(tmp)
    else:
      os.replace(tmp, target)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  return target


def write_canonical(interactions: pd.DataFrame,
                    items: Optional[pd.DataFrame],
                    out_dir: str, span: Optional[int] = None) -> CanonicalData:
  """Validates and writes the canonical tables for ExampleGen.

  Args:
    interactions: the log, columns as in ``validate_interactions``.
    items: the item table (see ``validate_items``) or None.
    out_dir: created if needed; receives ``interactions/interactions.csv``
      and, with ``items``, ``items/items.csv``. A previous ``items/items.csv``
      is removed when ``items`` is None, so the folder always matches.
    span: for daily partitions: the log goes to
      ``interactions/span-<span>/interactions.csv`` (what ExampleGen's
      ``span-{SPAN}`` pattern reads) and earlier spans stay as they are.

  Returns:
    CanonicalData with the paths and counts.

  Raises:
    IngestError: invalid tables, or output folders holding foreign files.
  """
  out_dir = os.fspath(out_dir)
  log = sort_interactions(validate_interactions(interactions))
  columns = [c for c in _LOG_COLUMNS if c in log.columns]
  log = log[columns]
  table = validate_items(items) if items is not None else None

  os.makedirs(out_dir, exist_ok=True)
  log_folder = INTERACTIONS_DIR
  if span is not None:
    if isinstance(span, bool) or not isinstance(span, int) or span < 0:
      raise IngestError(f"span must be a non-negative integer, got {span!r}")
    log_folder = os.path.join(INTERACTIONS_DIR, f"span-{span}")
  _check_folder(os.path.join(out_dir, log_folder), INTERACTIONS_FILE)
  _check_folder(os.path.join(out_dir, ITEMS_DIR), ITEMS_FILE)

  interactions_path = _write_csv_atomically(log, out_dir, log_folder,
                                            INTERACTIONS_FILE)
  items_path = None
  if table is not None:
    table = table.iloc[np.argsort(_sort_key(table[features.ITEM_TABLE_ID]),
                                  kind="stable")].reset_index(drop=True)
    items_path = _write_csv_atomically(table, out_dir, ITEMS_DIR, ITEMS_FILE)
  else:
    stale = os.path.join(out_dir, ITEMS_DIR, ITEMS_FILE)
    if os.path.exists(stale):
      os.remove(stale)
      os.rmdir(os.path.dirname(stale))

  return CanonicalData(
      out_dir=out_dir,
      interactions_path=interactions_path,
      items_path=items_path,
      num_users=int(log[features.LOG_USER_ID].nunique()),
      num_items=int(log[features.LOG_ITEM_ID].nunique()),
      num_interactions=int(len(log)),
      has_items=table is not None,
      num_catalogue_items=0 if table is None else int(len(table)),
  )

