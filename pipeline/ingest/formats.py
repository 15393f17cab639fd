"""Adapters from public dataset layouts to the canonical tables.

Every loader returns ``(interactions, items)``; the kinds are in docs/data.md, "Input formats".
"""

import glob
import io
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from pipeline.ingest import canonical
from pipeline.ingest import unisrec
from pipeline.ingest.canonical import IngestError
from trainer import features
from trainer import item_text

ML_100K = "ml-100k"
ML_1M = "ml-1m"
ML_LATEST = "ml-latest"
S3REC = "s3rec"
CSV = "csv"
UNISREC = unisrec.UNISREC
DATASET_KINDS = (ML_100K, ML_1M, ML_LATEST, S3REC, CSV, UNISREC)
AUTO = "auto"  # load_dataset(AUTO, path) detects the kind with detect_format.

S3REC_ATTRIBUTES_SUFFIX = "_item2attributes.json"

# MovieLens 100K genre flags in u.item order, used when u.genre is absent.
_ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's",
                  "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
                  "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
                  "Sci-Fi", "Thriller", "War", "Western")
# Genre labels that mean "no genre" and become an empty attribute list.
_NO_GENRE = frozenset({"unknown", "(no genres listed)"})

Frames = Tuple[pd.DataFrame, Optional[pd.DataFrame]]


# ----------------------------------------------------------------------------
# Helpers.


def _require_file(folder: str, name: str, kind: str) -> str:
  path = os.path.join(folder, name)
  if not os.path.isfile(path):
    found = sorted(os.listdir(folder))[:20] if os.path.isdir(folder) else []
    raise IngestError(f"{kind}: expected file {path} (files found in "
                      f"{folder}: {found})")
  return path


def _require_folder(path: str, kind: str) -> str:
  path = os.fspath(path)
  if not os.path.exists(path):
    raise IngestError(f"{kind}: data folder not found: {path}")
  if not os.path.isdir(path):
    raise IngestError(f"{kind}: expected a folder, got the file {path}")
  return path


def _read_lines(path: str, encoding: str) -> List[str]:
  """Lines of a text file without line ends (a final newline adds none)."""
  try:
    with open(path, encoding=encoding, newline="") as f:
      text = f.read()
  except UnicodeDecodeError as e:
    raise IngestError(f"{path}: not valid {encoding} text ({e})") from e
  lines = text.splitlines()
  if not any(line.strip() for line in lines):
    raise IngestError(f"{path} is empty; expected at least one record")
  return lines


def _split_records(path: str, lines: Sequence[str], sep: str, num_fields: int,
                   layout: str) -> Tuple[List[List[str]], np.ndarray]:
  """Splits non-blank lines into exactly ``num_fields`` fields.

  Returns:
    (records, line_numbers): the fields of each record and its 1-based line.

  Raises:
    IngestError: naming the file and line of a record with another count.
  """
  records, numbers = [], []
  for n, line in enumerate(lines, start=1):
    if not line.strip():
      continue
    fields = line.split(sep)
    if len(fields) != num_fields:
      raise IngestError(
          f"{path}, line {n}: expected {num_fields} fields separated by "
          f"{sep!r} ({layout}), found {len(fields)}: {line[:200]!r}")
    records.append(fields)
    numbers.append(n)
  return records, np.asarray(numbers, dtype=np.int64)


def _integers(path: str, values: Sequence[str], line_numbers: np.ndarray,
              field: str) -> np.ndarray:
  """Parses integer fields; an error names the file, line and value."""
  parsed = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
  if parsed.dtype.kind in "iu":
    return parsed.to_numpy(dtype=np.int64)
  as_float = parsed.to_numpy(dtype=np.float64)
  bad = ~np.isfinite(as_float) | (as_float != np.floor(as_float))
  if bad.any():
    i = int(np.argmax(bad))
    raise IngestError(f"{path}, line {line_numbers[i]}: field '{field}' has "
                      f"value {values[i]!r}; expected an integer")
  return as_float.astype(np.int64)


def _numbers(path: str, values: Sequence[str], line_numbers: np.ndarray,
             field: str) -> np.ndarray:
  """Parses numeric fields; an error names the file, line and value."""
  parsed = pd.to_numeric(pd.Series(values, dtype=object).str.strip(),
                         errors="coerce").to_numpy(dtype=np.float64)
  bad = ~np.isfinite(parsed)
  if bad.any():
    i = int(np.argmax(bad))
    raise IngestError(f"{path}, line {line_numbers[i]}: field '{field}' has "
                      f"value {values[i]!r}; expected a number")
  if np.all(parsed == np.floor(parsed)):
    return parsed.astype(np.int64)
  return parsed


def _id_strings(ids: np.ndarray) -> np.ndarray:
  """Integer ids as an object array of str (converted once per distinct id)."""
  codes, uniques = pd.factorize(np.asarray(ids))
  return np.asarray(uniques).astype(str).astype(object)[codes]


def _read_numeric_fast(path: str, sep: str, num_fields: int,
                       encoding: str) -> Optional[pd.DataFrame]:
  """Fast path for a well-formed headerless file of numbers.

  Parses with pandas' C reader; returns None when the file is anything but
  clean (wrong field count, non-numbers, empty, bad encoding), and the caller
  then takes the line-by-line path, which names the offending line.

  Returns:
    A DataFrame with columns 0..num_fields-1 (int64 or float64), or None.
  """
  try:
    if len(sep) > 1:  # The C reader takes one-character separators only.
      with open(path, encoding=encoding) as f:
        text = f.read()
      if "\t" in text:
        return None
      source = io.StringIO(text.replace(sep, "\t"))
      sep = "\t"
    else:
      source = path
    df = pd.read_csv(source, sep=sep, header=None, encoding=encoding,
                     engine="c", skip_blank_lines=True)
  except Exception:  # pylint: disable=broad-except
    return None
  if (df.shape[1] != num_fields or df.empty or
      not all(pd.api.types.is_numeric_dtype(t) for t in df.dtypes) or
      df.isna().any().any()):
    return None
  return df


def _log_frame(users: np.ndarray, items: np.ndarray, timestamps: np.ndarray,
               weights: Optional[np.ndarray] = None) -> pd.DataFrame:
  columns = {
      features.LOG_USER_ID: _id_strings(users),
      features.LOG_ITEM_ID: _id_strings(items),
      features.LOG_TIMESTAMP: timestamps,
  }
  if weights is not None:
    columns[features.LOG_WEIGHT] = weights
  return pd.DataFrame(columns)


def _items_frame(ids: np.ndarray, titles: Sequence[str],
                 attributes: Sequence[Sequence[str]]) -> pd.DataFrame:
  """Item table from ids, raw titles and per-item attribute lists."""
  return canonical.validate_items(pd.DataFrame({
      features.ITEM_TABLE_ID: _id_strings(np.asarray(ids)),
      features.ITEM_TABLE_TITLE: list(titles),
      features.ITEM_TABLE_ATTRIBUTES: [
          features.ATTRIBUTE_SEPARATOR.join(a for a in attrs
                                            if a and a not in _NO_GENRE)
          for attrs in attributes],
  }))


def _check_unique_ids(path: str, ids: np.ndarray,
                      line_numbers: np.ndarray) -> None:
  duplicated = pd.Series(ids).duplicated().to_numpy()
  if duplicated.any():
    i = int(np.argmax(duplicated))
    first = int(np.argmax(ids == ids[i]))
    raise IngestError(f"{path}, line {line_numbers[i]}: id {ids[i]} already "
                      f"appeared on line {line_numbers[first]}; expected one "
                      "line per item")


def _read_ratings(path: str, sep: str, names: Sequence[str]) -> pd.DataFrame:
  """A headerless MovieLens ratings file: user, item, rating, timestamp.

  Returns:
    Interactions with ``weight`` = rating.

  Raises:
    IngestError: naming the file, line and field of a malformed record.
  """
  df = _read_numeric_fast(path, sep, 4, "latin-1")
  if df is not None:
    integral = [pd.api.types.is_integer_dtype(df[c]) for c in (0, 1, 3)]
    if all(integral):
      rating = df[2].to_numpy()
      if rating.dtype.kind == "f" and np.all(rating == np.floor(rating)):
        rating = rating.astype(np.int64)
      return _log_frame(df[0].to_numpy(), df[1].to_numpy(), df[3].to_numpy(),
                        rating)
  # Slow path: finds and names the first malformed line.
  records, numbers = _split_records(path, _read_lines(path, "latin-1"), sep, 4,
                                    sep.join(names))
  columns = list(zip(*records))
  return _log_frame(
      _integers(path, columns[0], numbers, names[0]),
      _integers(path, columns[1], numbers, names[1]),
      _integers(path, columns[3], numbers, names[3]),
      _numbers(path, columns[2], numbers, names[2]))


# ----------------------------------------------------------------------------
# MovieLens 100K.


def _ml100k_genres(folder: str) -> Tuple[str, ...]:
  """Genre names by flag position, from u.genre ('name|index')."""
  path = os.path.join(folder, "u.genre")
  if not os.path.isfile(path):
    return _ML100K_GENRES
  records, numbers = _split_records(path, _read_lines(path, "latin-1"), "|", 2,
                                    "genre|index")
  indices = _integers(path, [r[1] for r in records], numbers, "index")
  if sorted(indices.tolist()) != list(range(len(records))):
    raise IngestError(f"{path}: genre indices {sorted(indices.tolist())} are "
                      f"not 0..{len(records) - 1}")
  names = [""] * len(records)
  for (name, _), index in zip(records, indices):
    names[index] = name.strip()
  return tuple(names)


def load_ml100k(folder: str) -> Frames:
  """MovieLens 100K: every rating of ``u.data`` is an interaction.

  Args:
    folder: holds ``u.data`` (user \\t item \\t rating \\t unix time),
      ``u.item`` (id|title|release|video release|url|genre flags...,
      Latin-1) and
      optionally ``u.genre`` (genre names; the built-in list otherwise).

  Returns:
    interactions with ``weight`` = rating, and items whose attributes are the
    movie's genres (the "unknown" genre gives no attribute).
  """
  folder = _require_folder(folder, ML_100K)
  data_path = _require_file(folder, "u.data", ML_100K)
  interactions = _read_ratings(data_path, "\t",
                                ("user id", "item id", "rating", "timestamp"))

  item_path = os.path.join(folder, "u.item")
  if not os.path.isfile(item_path):
    return interactions, None
  genres = _ml100k_genres(folder)
  num_fields = 5 + len(genres)
  records, numbers = _split_records(
      item_path, _read_lines(item_path, "latin-1"), "|", num_fields,
      f"id|title|release date|video release date|URL|{len(genres)} genre "
      "flags")
  ids = _integers(item_path, [r[0] for r in records], numbers, "movie id")
  _check_unique_ids(item_path, ids, numbers)
  flags = np.array([r[5:] for r in records], dtype=object)
  bad = ~np.isin(flags, ["0", "1"])
  if bad.any():
    row, col = np.argwhere(bad)[0]
    raise IngestError(f"{item_path}, line {numbers[row]}: genre flag "
                      f"'{genres[col]}' has value {flags[row, col]!r}; "
                      "expected 0 or 1")
  attributes = [[g for g, f in zip(genres, row) if f == "1"] for row in flags]
  items = _items_frame(ids, [r[1] for r in records], attributes)
  return interactions, items


# ----------------------------------------------------------------------------
# MovieLens 1M.


def load_ml1m(folder: str) -> Frames:
  """MovieLens 1M: every rating of ``ratings.dat`` is an interaction.

  Args:
    folder: holds ``ratings.dat`` (``UserID::MovieID::Rating::Timestamp``) and
      optionally ``movies.dat`` (``MovieID::Title::Genres``, genres
      ``|``-separated), both Latin-1.

  Returns:
    interactions with ``weight`` = rating, and items with genre attributes.
  """
  folder = _require_folder(folder, ML_1M)
  path = _require_file(folder, "ratings.dat", ML_1M)
  interactions = _read_ratings(path, "::",
                                ("UserID", "MovieID", "Rating", "Timestamp"))

  movies_path = os.path.join(folder, "movies.dat")
  if not os.path.isfile(movies_path):
    return interactions, None
  lines = _read_lines(movies_path, "latin-1")
  records, numbers = [], []
  for n, line in enumerate(lines, start=1):
    if not line.strip():
      continue
    parts = line.split("::")
    if len(parts) < 3:
      raise IngestError(
          f"{movies_path}, line {n}: expected 3 fields separated by '::' "
          f"(MovieID::Title::Genres), found {len(parts)}: {line[:200]!r}")
    # A title holding '::' keeps it: id first, genres last.
    records.append((parts[0], "::".join(parts[1:-1]), parts[-1]))
    numbers.append(n)
  numbers = np.asarray(numbers, dtype=np.int64)
  ids = _integers(movies_path, [r[0] for r in records], numbers, "MovieID")
  _check_unique_ids(movies_path, ids, numbers)
  items = _items_frame(ids, [r[1] for r in records],
                       [r[2].split("|") for r in records])
  return interactions, items


# ----------------------------------------------------------------------------
# MovieLens latest (small, full, 20M, 25M).


def _read_movielens_csv(path: str, columns: Sequence[str]) -> pd.DataFrame:
  """A MovieLens CSV with a header, all cells as str, checked columns."""
  try:
    df = pd.read_csv(path, dtype=str, keep_default_na=False,
                     encoding="utf-8-sig")
  except pd.errors.EmptyDataError as e:
    raise IngestError(f"{path} is empty; expected a header "
                      f"{','.join(columns)} and data rows") from e
  except pd.errors.ParserError as e:
    raise IngestError(f"{path}: malformed CSV ({e}); expected columns "
                      f"{','.join(columns)}") from e
  if not isinstance(df.index, pd.RangeIndex):
    # Every row has more fields than the header: pandas took the surplus
    # leading fields as the index, shifting every column.
    header = ",".join(df.columns)
    raise IngestError(f"{path}, line 2: expected {len(df.columns)} fields "
                      f"({header}), found {len(df.columns) + df.index.nlevels}; "
                      "quote a field that holds ','")
  df.columns = [c.strip() for c in df.columns]
  missing = [c for c in columns if c not in df.columns]
  if missing:
    raise IngestError(f"{path}: missing column(s) {missing}; columns found: "
                      f"{list(df.columns)}")
  if df.empty:
    raise IngestError(f"{path} has no data rows")
  # Too-short lines come back with NaN (missing) cells.
  missing_cells = df[list(columns)].isna().any(axis=1).to_numpy()
  if missing_cells.any():
    i = int(np.argmax(missing_cells))
    raise IngestError(f"{path}, line {i + 2}: expected {len(columns)} fields "
                      f"({','.join(columns)}), found fewer")
  return df


def load_ml_latest(folder: str) -> Frames:
  """MovieLens latest-small / latest / 20M / 25M.

  Args:
    folder: holds ``ratings.csv`` (userId,movieId,rating,timestamp) and
      optionally ``movies.csv`` (movieId,title,genres; genres ``|``-separated,
      "(no genres listed)" for none) and ``tags.csv``
      (userId,movieId,tag,timestamp).

  Returns:
    interactions with ``weight`` = rating, and items with genre attributes and
    ``text`` = ``item_text.compose(title, genres, tags)``, the movie's distinct
    tags most frequent first.
  """
  folder = _require_folder(folder, ML_LATEST)
  path = _require_file(folder, "ratings.csv", ML_LATEST)
  names = ("userId", "movieId", "rating", "timestamp")
  try:  # Fast path for a clean file; anything odd goes the checked way.
    fast = pd.read_csv(path, usecols=list(names), encoding="utf-8-sig")
  except Exception:  # pylint: disable=broad-except
    fast = None
  if (fast is not None and not fast.empty and
      isinstance(fast.index, pd.RangeIndex) and
      all(pd.api.types.is_integer_dtype(fast[c])
          for c in ("userId", "movieId", "timestamp")) and
      pd.api.types.is_numeric_dtype(fast["rating"]) and
      not fast["rating"].isna().any()):
    rating = fast["rating"].to_numpy()
    if rating.dtype.kind == "f" and np.all(rating == np.floor(rating)):
      rating = rating.astype(np.int64)
    interactions = _log_frame(fast["userId"].to_numpy(),
                              fast["movieId"].to_numpy(),
                              fast["timestamp"].to_numpy(), rating)
    return interactions, _read_ml_latest_movies(folder)
  df = _read_movielens_csv(path, names)
  numbers = np.arange(2, len(df) + 2)
  interactions = _log_frame(
      _integers(path, df["userId"].tolist(), numbers, "userId"),
      _integers(path, df["movieId"].tolist(), numbers, "movieId"),
      _integers(path, df["timestamp"].tolist(), numbers, "timestamp"),
      _numbers(path, df["rating"].tolist(), numbers, "rating"))
  return interactions, _read_ml_latest_movies(folder)


def _read_ml_latest_movies(folder: str) -> Optional[pd.DataFrame]:
  """movies.csv (movieId,title,genres) as an item table, None if absent."""
  movies_path = os.path.join(folder, "movies.csv")
  if not os.path.isfile(movies_path):
    return None
  movies = _read_movielens_csv(movies_path, ("movieId", "title", "genres"))
  numbers = np.arange(2, len(movies) + 2)
  ids = _integers(movies_path, movies["movieId"].tolist(), numbers, "movieId")
  _check_unique_ids(movies_path, ids, numbers)
  items = _items_frame(ids, movies["title"].tolist(),
                       [g.split("|") for g in movies["genres"]])
  return _with_tag_texts(folder, items)


def _with_tag_texts(folder: str, items: pd.DataFrame) -> pd.DataFrame:
  """Adds ``text`` = title, genres and the movie's tags (tags.csv, if present)."""
  tags = _ml_latest_tags(folder)
  items[features.ITEM_TABLE_TEXT] = [
      item_text.compose(title, attributes.split(features.ATTRIBUTE_SEPARATOR)
                        if attributes else [], tags.get(item, []))
      for item, title, attributes in zip(items[features.ITEM_TABLE_ID],
                                         items[features.ITEM_TABLE_TITLE],
                                         items[features.ITEM_TABLE_ATTRIBUTES])]
  return items


def _ml_latest_tags(folder: str) -> Dict[str, List[str]]:
  """movieId -> its distinct tags (case-insensitive), most frequent first, then
  first seen; empty without tags.csv."""
  path = os.path.join(folder, "tags.csv")
  if not os.path.isfile(path):
    return {}
  df = _read_movielens_csv(path, ("userId", "movieId", "tag", "timestamp"))
  movies = _id_strings(_integers(path, df["movieId"].tolist(),
                                 np.arange(2, len(df) + 2), "movieId"))
  tags = pd.DataFrame({"movie": movies,
                       "tag": [" ".join(t.split()) for t in df["tag"]]})
  tags = tags[tags["tag"] != ""]
  tags["key"] = tags["tag"].str.lower()
  tags["first"] = np.arange(len(tags))
  counted = tags.groupby(["movie", "key"], sort=False).agg(
      tag=("tag", "first"), count=("tag", "size"), first=("first", "min"))
  counted = counted.reset_index().sort_values(["movie", "count", "first"],
                                              ascending=[True, False, True])
  return counted.groupby("movie", sort=False)["tag"].agg(list).to_dict()


# ----------------------------------------------------------------------------
# S3-Rec sequences.


def find_s3rec_name(folder: str) -> str:
  """The dataset name ``Name`` of a folder with ``Name.txt`` and
  ``Name_item2attributes.json``.

  Raises:
    IngestError: no such pair, or more than one.
  """
  folder = _require_folder(folder, S3REC)
  names = sorted(
      os.path.basename(p)[:-len(S3REC_ATTRIBUTES_SUFFIX)]
      for p in glob.glob(os.path.join(glob.escape(folder),
                                      "*" + S3REC_ATTRIBUTES_SUFFIX)))
  pairs = [n for n in names if os.path.isfile(os.path.join(folder, n + ".txt"))]
  if not pairs:
    raise IngestError(
        f"{S3REC}: no Name.txt with a matching Name{S3REC_ATTRIBUTES_SUFFIX} "
        f"in {folder} (attribute files found: "
        f"{[n + S3REC_ATTRIBUTES_SUFFIX for n in names]}; files: "
        f"{sorted(os.listdir(folder))[:20]})")
  if len(pairs) > 1:
    raise IngestError(
        f"{S3REC}: several datasets in {folder}: {pairs}; put each "
        "Name.txt / Name_item2attributes.json pair in its own folder")
  return pairs[0]


def load_s3rec(folder: str) -> Frames:
  """S3-Rec preprocessed sequences (Beauty, LastFM, Sports, Toys, Yelp).

  Args:
    folder: holds ``Name.txt`` (one line per user: ``user item item ...``,
      items in time order, integer ids) and ``Name_item2attributes.json``
      (``{"item": [attribute ids]}``).

  Returns:
    interactions whose ``timestamp`` is the item's position in its line
    (0, 1, 2, ...), and items with ``title`` "" and the attribute ids as
    attributes.
  """
  name = find_s3rec_name(folder)
  path = os.path.join(folder, name + ".txt")
  lines = _read_lines(path, "utf-8")
  users, tokens, lengths, numbers = [], [], [], []
  for n, line in enumerate(lines, start=1):
    fields = line.split()
    if not fields:
      continue
    if len(fields) < 2:
      raise IngestError(f"{path}, line {n}: expected 'user item item ...', "
                        f"found only {line.strip()!r}")
    users.append(fields[0])
    tokens.extend(fields[1:])
    lengths.append(len(fields) - 1)
    numbers.append(n)
  numbers = np.asarray(numbers, dtype=np.int64)
  lengths = np.asarray(lengths, dtype=np.int64)
  user_ids = _integers(path, users, numbers, "user id")
  _check_unique_user_lines(path, user_ids, numbers)
  token_lines = np.repeat(numbers, lengths)
  item_ids = _integers(path, tokens, token_lines, "item id")
  # Position within the line: 0 .. length-1 for each user.
  starts = np.cumsum(lengths) - lengths
  positions = np.arange(len(tokens), dtype=np.int64) - np.repeat(starts,
                                                                 lengths)
  interactions = _log_frame(np.repeat(user_ids, lengths), item_ids, positions)

  items = _read_s3rec_attributes(
      os.path.join(folder, name + S3REC_ATTRIBUTES_SUFFIX))
  return interactions, items


def _check_unique_user_lines(path: str, user_ids: np.ndarray,
                             numbers: np.ndarray) -> None:
  duplicated = pd.Series(user_ids).duplicated().to_numpy()
  if duplicated.any():
    i = int(np.argmax(duplicated))
    first = int(np.argmax(user_ids == user_ids[i]))
    raise IngestError(f"{path}, line {numbers[i]}: user {user_ids[i]} already "
                      f"has line {numbers[first]}; expected one line per user")


def _read_s3rec_attributes(path: str) -> pd.DataFrame:
  try:
    with open(path, encoding="utf-8") as f:
      mapping = json.load(f)
  except json.JSONDecodeError as e:
    raise IngestError(f"{path}: not valid JSON ({e}); expected "
                      '{"item id": [attribute ids], ...}') from e
  if not isinstance(mapping, dict):
    raise IngestError(f"{path}: top level is {type(mapping).__name__}; "
                      'expected an object {"item id": [attribute ids], ...}')
  ids, attributes = [], []
  for key, values in mapping.items():
    if not str(key).strip().lstrip("+-").isdigit():
      raise IngestError(f"{path}: item id {key!r} is not an integer")
    if not isinstance(values, list):
      raise IngestError(f"{path}: item {key!r} has {values!r}; expected a "
                        "list of attribute ids")
    ids.append(int(key))
    attributes.append([str(v) for v in values])
  order = np.argsort(np.asarray(ids, dtype=np.int64), kind="stable")
  ids_sorted = np.asarray(ids, dtype=np.int64)[order]
  if len(ids_sorted) and (np.diff(ids_sorted) == 0).any():
    dup = ids_sorted[np.argmax(np.diff(ids_sorted) == 0)]
    raise IngestError(f"{path}: item id {dup} appears twice")
  return _items_frame(ids_sorted, [""] * len(ids),
                      [attributes[i] for i in order])


# ----------------------------------------------------------------------------
# Plain logs.


def _single_log_file(folder: str) -> str:
  candidates = sorted(
      f for f in os.listdir(folder)
      if os.path.splitext(f)[1].lower() in canonical.SUPPORTED_LOG_EXTENSIONS
      and os.path.isfile(os.path.join(folder, f)))
  if len(candidates) != 1:
    raise IngestError(
        f"{CSV}: folder {folder} holds {len(candidates)} "
        f"{'/'.join(canonical.SUPPORTED_LOG_EXTENSIONS)} files "
        f"{candidates[:10]}; expected exactly one interaction log (or pass "
        "the file itself)")
  return os.path.join(folder, candidates[0])


def load_log(path: str, items_path: Optional[str] = None) -> Frames:
  """A user's own log, see ``canonical.read_interactions``.

  Args:
    path: a .csv/.tsv/.parquet file, or a folder holding exactly one.
    items_path: optional item table file (``item_id[,title][,attributes]``).
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    path = _single_log_file(path)
  interactions = canonical.read_interactions(path)
  items = canonical.read_items(items_path) if items_path else None
  return interactions, items


# ----------------------------------------------------------------------------
# Dispatch.


def detect_format(path: str) -> str:
  """Guesses the dataset kind from the files present.

  Args:
    path: a data folder, or a single log file.

  Returns:
    One of ``DATASET_KINDS``: ``u.data`` -> ml-100k, ``ratings.dat`` -> ml-1m,
    ``ratings.csv`` -> ml-latest, ``*_item2attributes.json`` -> s3rec,
    ``*.train.inter`` -> unisrec, a .csv/.tsv/.parquet file (or a folder with
    exactly one) -> csv.

  Raises:
    IngestError: the path is missing or matches no known layout.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise IngestError(f"data path not found: {path}")
  if os.path.isfile(path):
    if os.path.splitext(path)[1].lower() in canonical.SUPPORTED_LOG_EXTENSIONS:
      return CSV
    raise IngestError(
        f"cannot tell the format of file {path}: supported log files are "
        f"{', '.join(canonical.SUPPORTED_LOG_EXTENSIONS)}; for a dataset "
        "folder pass the folder")
  files = set(os.listdir(path))
  if "u.data" in files:
    return ML_100K
  if "ratings.dat" in files:
    return ML_1M
  if "ratings.csv" in files:
    return ML_LATEST
  if any(f.endswith(S3REC_ATTRIBUTES_SUFFIX) for f in files):
    return S3REC
  if any(f.endswith(".train.inter") for f in files):
    return UNISREC
  supported = canonical.SUPPORTED_LOG_EXTENSIONS
  logs = [f for f in files if os.path.splitext(f)[1].lower() in supported]
  if len(logs) == 1:
    return CSV
  raise IngestError(
      f"cannot tell the dataset format of folder {path} (files: "
      f"{sorted(files)[:20]}): expected u.data (ml-100k), ratings.dat "
      f"(ml-1m), ratings.csv (ml-latest), Name{S3REC_ATTRIBUTES_SUFFIX} "
      f"(s3rec), Name.train.inter ({UNISREC}) or exactly one "
      f"{'/'.join(canonical.SUPPORTED_LOG_EXTENSIONS)} log (csv); pass the kind "
      "explicitly")


def load_dataset(kind: str, path: str,
                 items_path: Optional[str] = None) -> Frames:
  """Loads a dataset of the given kind into canonical DataFrames.

  Args:
    kind: one of ``DATASET_KINDS``, or ``"auto"`` to use ``detect_format``.
    path: the dataset folder (or, for ``csv``, the log file).
    items_path: item table file; only for kind ``csv``.

  Returns:
    (interactions, items or None), see the module docstring.

  Raises:
    IngestError: unknown kind, or invalid data.
  """
  path = os.fspath(path)
  if kind == AUTO:
    kind = detect_format(path)
  loaders = {ML_100K: load_ml100k, ML_1M: load_ml1m, ML_LATEST: load_ml_latest,
             S3REC: load_s3rec, UNISREC: unisrec.load_unisrec}
  if kind == CSV:
    return load_log(path, items_path)
  if kind not in loaders:
    raise IngestError(f"unknown dataset kind {kind!r}; expected one of "
                      f"{', '.join(DATASET_KINDS)} (or {AUTO})")
  if items_path:
    raise IngestError(f"an item table file ({items_path}) is only read for "
                      f"kind {CSV}; {kind} takes items from its own folder")
  return loaders[kind](path)
