"""Writes a file so that readers see the old content or the new one, never a part."""

import filecmp
import os
import tempfile
from typing import Any, Callable, IO, Optional


def write_atomically(path: str, write: Callable[[IO[Any]], None], *, mode: str = "w",
                     tmp_dir: Optional[str] = None, keep_identical: bool = False,
                     **open_kwargs) -> None:
  """Calls ``write(file)`` on a synced temp file, then renames it to ``path``.

  Args:
    path: the file to replace.
    write: writes the whole content to the open temp file.
    mode: ``"w"`` or ``"wb"``; ``open_kwargs`` (encoding, newline) go to ``open``.
    tmp_dir: where the temp file lives (default: beside ``path``); the same file
      system as ``path``, e.g. to keep stray files out of a folder ExampleGen reads.
    keep_identical: leave ``path`` (and its mtime) alone when the new content is
      the same, so an unchanged rewrite is a cache hit downstream.

  The temp file is removed if anything fails, and synced before the rename, else a
  crash could leave the renamed file empty.
  """
  directory = os.path.dirname(path) or "."
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                             dir=tmp_dir or directory)
  try:
    with os.fdopen(fd, mode, **open_kwargs) as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    if keep_identical and os.path.exists(path) and filecmp.cmp(tmp, path, shallow=False):
      os.remove(tmp)
    else:
      os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
