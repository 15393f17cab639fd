"""Downloads a public MovieLens dataset, checks it and unpacks it.

    python -m pipeline.ingest.download ml-100k [--dest DIR] [--url URL]
"""

import argparse
import dataclasses
import os
import shutil
import socket
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from typing import List, Optional, Sequence

from pipeline.ingest.canonical import file_digest

_GROUPLENS = "https://files.grouplens.org/datasets/movielens"
_TIMEOUT_SECONDS = 60


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A downloadable dataset.

  Attributes:
    url: the zip file.
    folder: the folder the zip unpacks to (one top-level folder).
    required: files that must be inside ``folder``.
    kind: the ``load_dataset`` kind that reads the folder.
  """
  url: str
  folder: str
  required: Sequence[str]
  kind: str


DATASETS = {
    "ml-100k": Dataset(f"{_GROUPLENS}/ml-100k.zip", "ml-100k",
                       ("u.data", "u.item", "u.genre"), "ml-100k"),
    "ml-1m": Dataset(f"{_GROUPLENS}/ml-1m.zip", "ml-1m",
                     ("ratings.dat", "movies.dat"), "ml-1m"),
    "ml-latest-small": Dataset(f"{_GROUPLENS}/ml-latest-small.zip",
                               "ml-latest-small",
                               ("ratings.csv", "movies.csv"), "ml-latest"),
}


@dataclasses.dataclass(frozen=True)
class Downloaded:
  """The outcome of ``download``.

  Attributes:
    folder: the dataset folder, e.g. ``dest/ml-100k``.
    md5_checked: the zip matched GroupLens' published MD5 sum.
    already_present: the folder existed already; nothing was fetched.
  """
  folder: str
  md5_checked: bool
  already_present: bool


class DownloadError(Exception):
  """A failed download or check; the message is one line for the user."""


def _fetch(url: str, out_path: str) -> None:
  with urllib.request.urlopen(url, timeout=_TIMEOUT_SECONDS) as response, \
      open(out_path, "wb") as out:
    shutil.copyfileobj(response, out, length=1 << 20)


def _fetch_md5(url: str) -> Optional[str]:
  """The published MD5 of ``url`` (GroupLens' ``<zip>.md5``), or None."""
  try:
    with urllib.request.urlopen(url + ".md5",
                                timeout=_TIMEOUT_SECONDS) as response:
      text = response.read(4096).decode("ascii", errors="replace")
  except (OSError, ValueError):
    return None
  for token in text.replace("=", " ").split():
    token = token.strip().lower()
    if len(token) == 32 and all(c in "0123456789abcdef" for c in token):
      return token
  return None


def _reason(error: BaseException) -> str:
  if isinstance(error, urllib.error.HTTPError):
    return f"HTTP {error.code} {error.reason}"
  if isinstance(error, urllib.error.URLError):
    return str(error.reason)
  if isinstance(error, socket.timeout):
    return f"timed out after {_TIMEOUT_SECONDS}s"
  return str(error) or type(error).__name__


def _unpack(zip_path: str, name: str, dataset: Dataset, url: str,
            work_dir: str) -> str:
  """Checks and unpacks the zip into ``work_dir``; returns the data folder."""
  try:
    with zipfile.ZipFile(zip_path) as archive:
      broken = archive.testzip()
      if broken is not None:
        raise DownloadError(f"{name} from {url}: member {broken} of the zip "
                            "is corrupt")
      members = archive.namelist()
      root = os.path.realpath(work_dir)
      for member in members:
        target = os.path.realpath(os.path.join(work_dir, member))
        if os.path.commonpath([root, target]) != root:
          raise DownloadError(f"{name} from {url}: zip member {member!r} "
                              "would be written outside the target folder")
      missing = [f for f in dataset.required
                 if f"{dataset.folder}/{f}" not in members]
      if missing:
        raise DownloadError(
            f"{name} from {url}: the zip lacks "
            f"{', '.join(dataset.folder + '/' + f for f in missing)}; is the "
            "URL the right dataset?")
      archive.extractall(work_dir)
  except zipfile.BadZipFile as e:
    raise DownloadError(f"{name} from {url} is not a valid zip file "
                        f"({e})") from e
  return os.path.join(work_dir, dataset.folder)


def download(name: str, dest: str, url: Optional[str] = None) -> Downloaded:
  """Downloads, checks and unpacks dataset ``name`` into ``dest/folder``.

  Args:
    name: a key of ``DATASETS``.
    dest: parent folder (created if needed).
    url: overrides the official URL (e.g. a mirror).

  Returns:
    Where the data is, and whether the MD5 sum was checked. An existing
    complete folder is kept as is.

  Raises:
    DownloadError: with a one-line message.
  """
  if name not in DATASETS:
    raise DownloadError(f"unknown dataset {name!r}; available: "
                        f"{', '.join(DATASETS)}")
  dataset = DATASETS[name]
  url = url or dataset.url
  final = os.path.join(dest, dataset.folder)
  if all(os.path.isfile(os.path.join(final, f)) for f in dataset.required):
    return Downloaded(final, md5_checked=False, already_present=True)
  if os.path.exists(final):
    raise DownloadError(f"{final} exists but lacks some of "
                        f"{list(dataset.required)}; remove it and retry")
  try:
    os.makedirs(dest, exist_ok=True)
  except OSError as e:
    raise DownloadError(f"cannot create {dest}: {_reason(e)}") from e

  work_dir = tempfile.mkdtemp(prefix=f".{name}-download-", dir=dest)
  try:
    zip_path = os.path.join(work_dir, os.path.basename(dataset.url))
    try:
      _fetch(url, zip_path)
    except (OSError, ValueError, urllib.error.URLError) as e:
      raise DownloadError(
          f"could not download {name} from {url}: {_reason(e)}. Download it "
          "by hand and pass its folder with --data-dir.") from e
    expected = _fetch_md5(url)
    actual = file_digest(zip_path, "md5")
    if expected is not None and actual != expected:
      raise DownloadError(f"{name} from {url}: MD5 {actual} differs "
                          f"from the published {expected}; retry the "
                          "download")
    unpacked = _unpack(zip_path, name, dataset, url, work_dir)
    os.replace(unpacked, final)
  finally:
    shutil.rmtree(work_dir, ignore_errors=True)
  return Downloaded(final, md5_checked=expected is not None,
                    already_present=False)


def main(argv: Optional[List[str]] = None) -> int:
  """Command line entry point; returns the exit code (0 ok, 1 failure)."""
  parser = argparse.ArgumentParser(
      prog="python -m pipeline.ingest.download",
      description="Download a public MovieLens dataset.")
  parser.add_argument("name", choices=sorted(DATASETS),
                      help="dataset to download")
  parser.add_argument("--dest", default="datasets",
                      help="parent folder for the dataset (default: "
                      "./datasets)")
  parser.add_argument("--url", default=None,
                      help="download from this URL instead of GroupLens")
  args = parser.parse_args(argv)
  try:
    result = download(args.name, args.dest, url=args.url)
  except DownloadError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  except OSError as e:  # e.g. disk full while unpacking.
    print(f"error: {args.name}: {_reason(e)}", file=sys.stderr)
    return 1
  if result.already_present:
    check = "already present"
  elif result.md5_checked:
    check = "zip and MD5 checked"
  else:
    check = "zip checked; no published MD5 found"
  kind = DATASETS[args.name].kind
  print(f"{args.name} ({check}): use --dataset {kind} --data-dir "
        f"{result.folder}", file=sys.stderr)
  print(result.folder)
  return 0


if __name__ == "__main__":
  sys.exit(main())
