"""The canonical interaction log and item table that ExampleGen reads.

Columns, value rules and the on-disk layout: docs/data.md, "Canonical layout".
"""

import csv
import hashlib
import dataclasses
import os
import re
import time
from typing import Callable, List, Optional, Tuple

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from pipeline.ingest import privacy
from pipeline.ingest.errors import IngestError
from trainer import atomic_file
from trainer import features

SUPPORTED_LOG_EXTENSIONS = (".csv", ".tsv", ".parquet")

# Timestamps may be this far ahead of the clock of the machine that ingests
# them (a user's clock running ahead, a time zone applied twice); later ones
# are refused.
FUTURE_TOLERANCE_SECONDS = 24 * 3600

INTERACTIONS_DIR = "interactions"
INTERACTIONS_FILE = "interactions.csv"
ITEMS_DIR = "items"
ITEMS_FILE = "items.csv"

_OPTIONAL_LOG_COLUMNS = (features.LOG_WEIGHT, features.LOG_EVENT_TYPE)
_LOG_COLUMNS = features.LOG_REQUIRED_COLUMNS + _OPTIONAL_LOG_COLUMNS
_ITEM_COLUMNS = (features.ITEM_TABLE_ID, features.ITEM_TABLE_TITLE,
                 features.ITEM_TABLE_ATTRIBUTES)


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
    num_forgotten_interactions: rows dropped because their user is in the
      forgotten-users ledger (``pipeline.forget_user``).
  """
  out_dir: str
  interactions_path: str
  items_path: Optional[str]
  num_users: int
  num_items: int
  num_interactions: int
  has_items: bool
  num_catalogue_items: int = 0
  num_forgotten_interactions: int = 0

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


def _one_line_error(error: BaseException) -> str:
  return " ".join(str(error).split())


def _read_parquet(path: str, what: str) -> pd.DataFrame:
  """A Parquet file as a DataFrame with its stored types.

  Read through pyarrow directly: ``pd.read_parquet`` on a file that is not
  Parquet raises, and then the process aborts at exit.
  """
  try:
    return pq.read_table(path).to_pandas().reset_index(drop=True)
  except Exception as e:  # pyarrow raises several unrelated types.
    raise IngestError(f"could not read {what} file {path} as Parquet: "
                      f"{_one_line_error(e)}") from e


def _field_count_error(path: str, what: str, sep: str,
                       encoding: str) -> Optional[str]:
  """Names the first line whose field count differs from the header's."""
  with open(path, encoding=encoding, newline="") as f:
    rows = csv.reader(f, delimiter=sep)
    header = next(rows, [])
    for row in rows:
      if row and len(row) != len(header):
        shown = sep.join(row)[:200]
        return (f"{what} file {path}, line {rows.line_num}: expected "
                f"{len(header)} fields ({sep.join(header)}), found {len(row)}: "
                f"{shown!r}; quote a field that holds {sep!r}")
  return None


def _read_delimited(path: str, what: str,
                    sep: str) -> Tuple[pd.DataFrame, np.ndarray]:
  """A CSV/TSV file as text cells, each data row with the header's field count.

  The header is read as a data row: the C reader then refuses any line with
  more fields than it, where ``header=0`` would silently take a surplus first
  field as the row index and shift every column.

  Returns:
    (df, lines): one str cell per field ("" when empty or missing), blank
    lines dropped, and the 1-based line number of each row.
  """
  encoding = "utf-8-sig"
  try:
    raw = pd.read_csv(path, sep=sep, header=None, dtype=str, index_col=False,
                      keep_default_na=False, skip_blank_lines=False,
                      encoding=encoding)
  except pd.errors.EmptyDataError as e:
    raise IngestError(f"{what} file {path} is empty; expected a header and "
                      "at least one data row") from e
  except UnicodeDecodeError as e:
    raise IngestError(f"could not parse {what} file {path}: "
                      f"{_one_line_error(e)}") from e
  except pd.errors.ParserError as e:
    raise IngestError(
        _field_count_error(path, what, sep, encoding) or
        f"could not parse {what} file {path}: {_one_line_error(e)}") from e
  header = [str(c).strip() for c in raw.iloc[0].fillna("")]
  repeated = sorted({c for c in header if header.count(c) > 1})
  if repeated:
    raise IngestError(f"{what} file {path}, line 1: column(s) {repeated} "
                      f"appear more than once in the header {header}")
  df = raw.iloc[1:].reset_index(drop=True)
  df.columns = header
  lines = np.arange(2, len(df) + 2)
  # A blank line is a row of empty cells (a short line's missing cells are
  # empty too: validation names the first one).
  blank = (df == "").to_numpy().all(axis=1)
  return df.loc[~blank].reset_index(drop=True), lines[~blank]


def _read_table(path: str, what: str):
  """Reads a .csv/.tsv/.parquet file.

  Args:
    path: the file.
    what: what the file should hold, for messages ("interaction log").

  Returns:
    (df, row_label): for CSV/TSV, ``df`` holds every cell as written (str,
    "" when empty; numbers are parsed by validation, which names the cell);
    for Parquet, the stored types. Blank lines are dropped; ``row_label(i)``
    names the row at position ``i`` of ``df`` as a user sees it in the file
    ("line 7" counting the header as line 1, or "row 6" for Parquet).

  Raises:
    IngestError: missing or unreadable file, unsupported extension, a line
      whose field count differs from the header's, no rows.
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
    df = _read_parquet(path, what)
    labels = np.arange(1, len(df) + 1)
    row_label = lambda i: f"row {labels[i]}"
  else:
    df, lines = _read_delimited(path, what, "\t" if ext == ".tsv" else ",")
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


def _exact_floats(texts: pd.Series, parsed: np.ndarray) -> np.ndarray:
  """The correctly rounded floats of number texts that ``pd.to_numeric`` parsed.

  Its fast parser can be one unit in the last place off ("90071992.56640625"
  becomes ...24), which would change the value in the canonical copy.
  """
  try:
    return texts.to_numpy(dtype=object).astype(np.float64)
  except (TypeError, ValueError):   # a form only pandas reads: keep its value
    return parsed


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
    if values.dtype == object:
      as_float = _exact_floats(values, as_float)
    if (np.all(as_float == np.floor(as_float)) and
        np.all(np.abs(as_float) < 2**62)):
      return pd.Series(as_float.astype(np.int64), index=values.index)
    return pd.Series(as_float, index=values.index)
  return parsed.astype(np.int64)


def latest_timestamp(now: Optional[float] = None) -> int:
  """The largest accepted timestamp: ``now`` plus ``FUTURE_TOLERANCE_SECONDS``."""
  return int(time.time() if now is None else now) + FUTURE_TOLERANCE_SECONDS


def check_timestamps(timestamps: pd.Series, source: str,
                     row_label: Callable[[int], str],
                     now: Optional[float] = None) -> None:
  """Refuses a timestamp outside ``[0, latest_timestamp(now)]``, naming its row.

  Timestamps are seconds: unix time, or an order such as 0, 1, 2 (S3-Rec
  positions). Milliseconds, a value before 1970 or years ahead are input
  mistakes that would otherwise reorder a user's events or fail deep in the
  pipeline.
  """
  latest = latest_timestamp(now)
  values = timestamps.to_numpy()
  bad = (values < 0) | (values > latest)
  if bad.any():
    i = int(np.argmax(bad))
    raise IngestError(
        f"{source}, {row_label(i)}: column '{features.LOG_TIMESTAMP}' has "
        f"value {values[i].item()!r}; expected unix seconds (or an order 0, 1, 2, "
        f"...) from 0 to {latest} (now + {FUTURE_TOLERANCE_SECONDS // 3600} "
        "h); divide milliseconds by 1000")


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
  check_timestamps(out[features.LOG_TIMESTAMP], source, row_label)
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


def write_csv_atomically(df: pd.DataFrame, out_dir: str, folder: str,
                          file_name: str) -> str:
  """Writes ``df`` to ``out_dir/folder/file_name`` via a temp file + rename.

  The temp file lives in ``out_dir`` (not in ``folder``) so that a crash never
  leaves a stray file where ExampleGen reads.
  """
  target_dir = os.path.join(out_dir, folder)
  os.makedirs(target_dir, exist_ok=True)
  target = os.path.join(target_dir, file_name)
  # Same content: the file (and its mtime) stay, so a rerun on unchanged data is
  # an ExampleGen cache hit rather than a new ingestion.
  atomic_file.write_atomically(
      target, lambda f: df.to_csv(f, index=False, quoting=csv.QUOTE_MINIMAL,
                                  lineterminator="\n"),
      tmp_dir=out_dir, keep_identical=True, encoding="utf-8", newline="")
  return target


def write_canonical(interactions: pd.DataFrame,
                    items: Optional[pd.DataFrame],
                    out_dir: str, span: Optional[int] = None,
                    pseudonymize_key: Optional[bytes] = None) -> CanonicalData:
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
    pseudonymize_key: when given, user ids are written as their pseudonyms
      (``privacy.pseudonym``); every ingestion into ``out_dir`` must then use
      the same key. Users of ``out_dir``'s forgotten-users ledger are dropped
      either way.

  Returns:
    CanonicalData with the paths and counts.

  Raises:
    IngestError: invalid tables, output folders holding foreign files, a key
      that differs from the earlier ingestions', or only forgotten users.
  """
  out_dir = os.fspath(out_dir)
  log = validate_interactions(interactions)
  privacy.check_key(out_dir, pseudonymize_key,
                    holds_logs=bool(canonical_logs(out_dir)))
  if pseudonymize_key is not None:
    log[features.LOG_USER_ID] = privacy.pseudonymize(log[features.LOG_USER_ID],
                                                     pseudonymize_key)
  log, forgotten = privacy.drop_forgotten(log, out_dir)
  if log.empty:
    raise IngestError(f"every user of the interaction log ({forgotten} rows) is in "
                      f"the forgotten-users ledger {privacy.ledger_path(out_dir)}")
  log = sort_interactions(log)
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

  interactions_path = write_csv_atomically(log, out_dir, log_folder,
                                            INTERACTIONS_FILE)
  privacy.record_key(out_dir, pseudonymize_key)
  items_path = None
  if table is not None:
    table = table.iloc[np.argsort(_sort_key(table[features.ITEM_TABLE_ID]),
                                  kind="stable")].reset_index(drop=True)
    items_path = write_csv_atomically(table, out_dir, ITEMS_DIR, ITEMS_FILE)
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
      num_forgotten_interactions=forgotten,
  )


def span_logs(interactions_root: str) -> List[Tuple[int, str]]:
  """(span, path) of every ``span-N/interactions.csv`` under the folder, by span."""
  spans = []
  if os.path.isdir(interactions_root):
    for name in os.listdir(interactions_root):
      match = re.fullmatch(r"span-(\d+)", name)
      path = os.path.join(interactions_root, name, INTERACTIONS_FILE)
      if match and os.path.isfile(path):
        spans.append((int(match.group(1)), path))
  return sorted(spans)


def canonical_logs(out_dir: str) -> List[str]:
  """Every canonical log file under ``out_dir``: the unpartitioned one and all spans."""
  root = os.path.join(out_dir, INTERACTIONS_DIR)
  single = os.path.join(root, INTERACTIONS_FILE)
  return ([single] if os.path.isfile(single) else []) + [p for _, p in span_logs(root)]


def _window_logs(data: CanonicalData, span_window: int) -> List[str]:
  """The log files the pipeline trains on: this log, or with daily spans the
  newest ``span_window`` span folders holding one (what the span resolver
  gathers)."""
  if span_window <= 0:
    return [data.interactions_path]
  root = os.path.dirname(data.interactions_dir)
  return [path for _, path in span_logs(root)[-span_window:]]


def check_trainable(data: CanonicalData, min_interactions: int,
                    span_window: int = 0) -> int:
  """Refuses canonical data on which no user has ``min_interactions`` events.

  SequenceBuilder drops every user with fewer events, and with none left the
  pipeline fails long after ingestion; this says so before it starts.

  Args:
    data: what ``write_canonical`` wrote.
    min_interactions: the pipeline's ``SequenceConfig.min_interactions``.
    span_window: the pipeline's span window (0: no daily spans); the events of
      the newest ``span_window`` spans are counted together.

  Returns:
    The number of users with at least ``min_interactions`` events.

  Raises:
    IngestError: no such user.
  """
  paths = _window_logs(data, span_window)
  users = pd.concat(
      [pd.read_csv(p, usecols=[features.LOG_USER_ID], dtype=str,
                   keep_default_na=False)[features.LOG_USER_ID]
       for p in paths], ignore_index=True)
  counts = users.value_counts()
  kept = int((counts >= min_interactions).sum())
  if kept == 0:
    where = (paths[0] if len(paths) == 1 else
             f"{len(paths)} spans {os.path.dirname(os.path.dirname(paths[0]))}"
             f"/span-*")
    raise IngestError(
        f"interaction log {where}: 0 of {len(counts)} users have at least "
        f"min_interactions={min_interactions} events (the most any user has "
        f"is {int(counts.max())}); training needs at least one such user: "
        "lower --min-interactions or add events")
  return kept
