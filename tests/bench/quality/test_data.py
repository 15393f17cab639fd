"""The nightly benchmark's day-1 data: every sequence without its last item."""

import json

import pytest
import tensorflow as tf

from bench.quality import data as data_lib


def test_drop_last_items_drops_the_tail_and_empties_short_sequences():
  sequences = [["a", "b", "c", "d"], ["e"], [], ["f", "g"]]
  assert data_lib.drop_last_items(sequences, 1) == [["a", "b", "c"], [], [], ["f"]]
  assert data_lib.drop_last_items(sequences, 2) == [["a", "b"], [], [], []]
  assert data_lib.drop_last_items(sequences, 0) == sequences
  assert sequences[0] == ["a", "b", "c", "d"]   # the input is left alone
  with pytest.raises(ValueError):
    data_lib.drop_last_items(sequences, -1)


def _folder(tmp_path):
  # Every position of every sequence holds its own item (user u's k-th item is uk), so an
  # item names its position.
  folder = tmp_path / "days"
  folder.mkdir()
  (folder / "Days.txt").write_text("1 11 12 13 14 15 16\n2 21 22 23 24\n3 31 32 33\n")
  (folder / "Days_item2attributes.json").write_text(json.dumps(
      {"11": [1], "16": [3], "22": [2]}))
  return folder


def _raw(data, split):
  """Per user: the raw ids of a split's history and its target."""
  return [([data.item_ids[i] for i in history], data.item_ids[target])
          for history, target in zip(data.histories[split], data.targets[split])]


def test_day1_has_the_shorter_sequences_and_none_of_day2s_evaluation_targets(tmp_path,
                                                                             monkeypatch):
  monkeypatch.setitem(data_lib.DATASETS, "days", ("s3rec", str(_folder(tmp_path))))
  day2 = data_lib.prepare("days", str(tmp_path / "day2"))
  day1 = data_lib.prepare("days", str(tmp_path / "day1"), drop_last=1)
  # User 3 (3 items) keeps 2 on day 1: too short for three splits, so left out.
  assert day2.num_users == 3 and day1.num_users == 2
  assert _raw(day1, "train") == [(["11", "12"], "13"), ([], "21")]
  assert _raw(day1, "eval") == [(["11", "12", "13"], "14"), (["21"], "22")]
  assert _raw(day1, "test") == [(["11", "12", "13", "14"], "15"), (["21", "22"], "23")]
  # Day 1 trains on every prefix of history + target of its training split: no item of
  # day 2's validation or test targets is among them, nor in day 1's vocabulary when
  # only the last item held it.
  trained = {item for history, target in _raw(day1, "train") for item in history + [target]}
  day2_eval = {target for _, target in _raw(day2, "eval") + _raw(day2, "test")}
  assert trained and not trained & day2_eval
  assert "16" not in day1.item_ids and "24" not in day1.item_ids and "16" in day2.item_ids
  assert sorted(day1.item_ids) == ["11", "12", "13", "14", "15", "21", "22", "23"]
  # Attribute values in index order (what warm start matches by value); 3 only on day 2.
  assert day1.attribute_vocab == ["1", "2"] and day2.attribute_vocab == ["1", "2", "3"]
  assert day1.attributes.num_attributes == 2


def test_preparing_again_never_shows_readers_a_partly_written_split(tmp_path, monkeypatch):
  """Runs side by side (run --jobs) each prepare the same files while others train."""
  monkeypatch.setitem(data_lib.DATASETS, "days", ("s3rec", str(_folder(tmp_path))))
  first = data_lib.prepare("days", str(tmp_path / "work"))

  def rows(path):
    return sum(1 for _ in tf.data.TFRecordDataset(path, compression_type="GZIP"))
  expected = {split: rows(path) for split, path in first.files.items()}
  seen = []
  writer = tf.io.TFRecordWriter

  class Reading(writer):   # a reader opening every split while one is being written
    def write(self, record):
      seen.append({split: rows(path) for split, path in first.files.items()})
      super().write(record)
  monkeypatch.setattr(tf.io, "TFRecordWriter", Reading)
  data_lib.prepare("days", str(tmp_path / "work"))
  assert seen and all(counts == expected for counts in seen)
  assert sorted(p.name for p in (tmp_path / "work").iterdir()) == sorted(
      [*(p.rsplit("/", 1)[1] for p in first.files.values()), "item_vocab.txt", "summary.json"])


def test_a_split_whose_write_fails_stays_as_it_was_and_leaves_no_temp_file(tmp_path,
                                                                          monkeypatch):
  monkeypatch.setitem(data_lib.DATASETS, "days", ("s3rec", str(_folder(tmp_path))))
  data_lib.prepare("days", str(tmp_path / "work"))
  before = {p.name: p.read_bytes() for p in (tmp_path / "work").iterdir()}

  class Failing(tf.io.TFRecordWriter):   # the disk fills up half-way through a split
    def write(self, record):
      raise OSError("No space left on device")
  monkeypatch.setattr(tf.io, "TFRecordWriter", Failing)
  with pytest.raises(OSError, match="No space"):
    data_lib.prepare("days", str(tmp_path / "work"))
  assert {p.name: p.read_bytes() for p in (tmp_path / "work").iterdir()} == before
