"""write_atomically: old or new content, never a part; no temp file left; identical content kept."""

import os

import pytest

from trainer import atomic_file


def test_a_failed_write_keeps_the_old_content_and_leaves_no_temp_file(tmp_path):
  path = tmp_path / "state.json"
  path.write_text("old")

  def fail(f):
    f.write("half")
    raise OSError("disk full")
  with pytest.raises(OSError, match="disk full"):
    atomic_file.write_atomically(str(path), fail)
  assert path.read_text() == "old"
  assert os.listdir(tmp_path) == ["state.json"]


def test_new_content_replaces_the_file(tmp_path):
  path = tmp_path / "sub" / "vectors.bin"
  atomic_file.write_atomically(str(path), lambda f: f.write(b"\x00\x01"), mode="wb")
  assert path.read_bytes() == b"\x00\x01"
  assert os.listdir(tmp_path / "sub") == ["vectors.bin"]


def test_identical_content_keeps_the_file_and_its_mtime_when_asked(tmp_path):
  path = tmp_path / "log.csv"
  path.write_text("a,b\n")
  os.utime(path, (1_000_000, 1_000_000))
  atomic_file.write_atomically(str(path), lambda f: f.write("a,b\n"), keep_identical=True)
  assert os.stat(path).st_mtime == 1_000_000
  atomic_file.write_atomically(str(path), lambda f: f.write("a,b\n"))
  assert os.stat(path).st_mtime != 1_000_000


def test_the_temp_file_can_live_elsewhere_on_the_same_file_system(tmp_path):
  (tmp_path / "read_by_examplegen").mkdir()
  path = tmp_path / "read_by_examplegen" / "log.csv"
  seen = []
  atomic_file.write_atomically(
      str(path), lambda f: seen.append(os.listdir(tmp_path / "read_by_examplegen")),
      tmp_dir=str(tmp_path))
  assert seen == [[]]   # no stray temp file where ExampleGen reads
