"""trainer.item_vectors: the embedding cache, precomputed vector files and the output file."""

import hashlib
import os

import numpy as np
import pandas as pd
import pytest

from trainer import item_vectors
from trainer.item_text import ItemTextError


class FakeEncoder:
  """Deterministic unit vectors from the text's hash; records what it was asked to embed."""

  dim = 4

  def __init__(self, identity: str = "fake-v1"):
    self.identity = identity
    self.calls = []

  def encode(self, texts, progress=None):
    self.calls.append(list(texts))
    rows = [np.frombuffer(hashlib.sha256(t.encode()).digest()[:16], np.uint32) for t in texts]
    vectors = np.array(rows, np.float64) + 1.0
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def _embed(folder, ids, texts, encoder=None):
  encoder = encoder or FakeEncoder()
  cache = item_vectors.EmbeddingCache(str(folder), encoder.identity, encoder.dim)
  return item_vectors.embed_texts(ids, texts, encoder, cache), encoder


def test_a_second_run_embeds_nothing_and_a_changed_text_embeds_one(tmp_path):
  ids, texts = ["a", "b", "c"], ["Heat.", "Up.", "Heat."]
  first, encoder = _embed(tmp_path, ids, texts)
  assert (first.num_cached, first.num_embedded) == (0, 2)   # "Heat." embedded once
  assert encoder.calls == [["Heat.", "Up."]]
  np.testing.assert_array_equal(first.vectors[0], first.vectors[2])

  second, encoder = _embed(tmp_path, ids, texts)   # a new process: the cache file is reread
  assert (second.num_cached, second.num_embedded) == (3, 0) and encoder.calls == []
  np.testing.assert_array_equal(second.vectors, first.vectors)

  third, encoder = _embed(tmp_path, ids, ["Heat.", "Up (2009).", "Heat."])
  assert (third.num_cached, third.num_embedded) == (2, 1)
  assert encoder.calls == [["Up (2009)."]]
  assert not (third.vectors[1] == first.vectors[1]).all()


def test_every_cache_key_survives_the_cache_file(tmp_path):
  texts = [f"item {i}" for i in range(2000)]   # some sha256 digests end in zero bytes
  _embed(tmp_path, texts, texts)
  again, _ = _embed(tmp_path, texts, texts)
  assert again.num_embedded == 0


def test_another_encoder_does_not_reuse_the_cache(tmp_path):
  _embed(tmp_path, ["a"], ["Heat."])
  other, encoder = _embed(tmp_path, ["a"], ["Heat."], FakeEncoder("fake-v2"))
  assert other.num_embedded == 1 and encoder.calls == [["Heat."]]
  assert len(os.listdir(tmp_path)) == 2


def test_an_unreadable_cache_file_names_itself(tmp_path):
  cache = item_vectors.EmbeddingCache(str(tmp_path), "fake-v1", 4)
  with open(cache.path, "wb") as f:
    f.write(b"not an npz")
  with pytest.raises(ItemTextError, match="embedding cache .* is unreadable.*delete it"):
    item_vectors.EmbeddingCache(str(tmp_path), "fake-v1", 4)


def test_without_a_cache_folder_duplicates_are_still_embedded_once():
  encoder = FakeEncoder()
  result = item_vectors.embed_texts(["a", "b"], ["x.", "x."], encoder)
  assert result.num_embedded == 1 and result.vectors.shape == (2, 4)


# ----------------------------------------------------------------------------
# Vector files.


def _frame_vectors():
  return item_vectors.ItemVectors(["i1", "i2", "i3"],
                                  np.arange(9, dtype=np.float32).reshape(3, 3), "test")


def test_written_vectors_read_back_in_the_requested_item_order(tmp_path):
  path = item_vectors.write_vectors(_frame_vectors(), str(tmp_path))
  assert path == str(tmp_path / item_vectors.VECTORS_FILE)
  assert os.listdir(tmp_path) == [item_vectors.VECTORS_FILE]
  read = item_vectors.read_vectors(path, ["i3", "i1"])
  assert read.item_ids == ["i3", "i1"] and read.vectors.dtype == np.float32
  np.testing.assert_array_equal(read.vectors, [[6, 7, 8], [0, 1, 2]])


@pytest.mark.parametrize("name, content", [
    ("v.csv", 'item_id,vector\ni1,"0 1 2"\ni2,"[3, 4, 5]"\n'),
    ("v.tsv", "item_id\td0\td1\td2\ni1\t0\t1\t2\ni2\t3\t4\t5\n"),
])
def test_csv_vectors_in_one_column_or_one_column_per_dimension(tmp_path, name, content):
  (tmp_path / name).write_text(content)
  read = item_vectors.read_vectors(str(tmp_path / name))
  assert read.item_ids == ["i1", "i2"]
  np.testing.assert_array_equal(read.vectors, [[0, 1, 2], [3, 4, 5]])


def test_npz_and_numeric_column_parquet_vectors(tmp_path):
  np.savez(tmp_path / "v.npz", item_id=np.array(["i1", "i2"]), vector=np.eye(2))
  pd.DataFrame({"item_id": [7, 8], "a": [1.0, 0.0], "b": [0.0, 1.0]}).to_parquet(
      tmp_path / "v.parquet")
  npz = item_vectors.read_vectors(str(tmp_path / "v.npz"))
  np.testing.assert_array_equal(npz.vectors, np.eye(2))
  assert item_vectors.read_vectors(str(tmp_path / "v.parquet"), ["8"]).vectors.tolist() == [[0, 1]]


@pytest.mark.parametrize("content, message", [
    ("item_id,vector\ni1,0 1\ni2,0 1 2\n", r"v.csv, line 3: item 'i2' has 3 values; expected 2"),
    ("item_id,vector\ni1,0 1\ni1,1 0\n",
     r"v.csv, line 3: item_id 'i1' already has a vector at line 2"),
    ("item_id,vector\ni1,0 x\n", r"v.csv, line 2: 'vector' is not a list of numbers"),
    ("item_id,a,b\ni1,0,1\ni2,oops,1\n",
     r"v.csv, line 3: column 'a' has value 'oops'; expected a number"),
    ("item_id,vector\ni1,0 nan\n", r"v.csv, line 2: item 'i1' has a non-finite value"),
    ("item_id,vector\n,0 1\n", r"v.csv, line 2: 'item_id' is empty"),
    ("id,vector\ni1,0 1\n", r"v.csv has no 'item_id' column"),
])
def test_bad_vector_files_get_one_line_naming_file_and_row(tmp_path, content, message):
  (tmp_path / "v.csv").write_text(content)
  with pytest.raises(ItemTextError, match=message) as error:
    item_vectors.read_vectors(str(tmp_path / "v.csv"))
  assert "\n" not in str(error.value)


def test_items_without_a_vector_and_unsupported_files_are_named(tmp_path):
  (tmp_path / "v.csv").write_text("item_id,vector\ni1,0 1\n")
  with pytest.raises(ItemTextError, match=r"no vector for 2 of 3 items, first item_id 'i2'"):
    item_vectors.read_vectors(str(tmp_path / "v.csv"), ["i1", "i2", "i3"])
  np.save(tmp_path / "v.npy", np.eye(2))
  with pytest.raises(ItemTextError, match=r"extension '.npy'.*np.savez"):
    item_vectors.read_vectors(str(tmp_path / "v.npy"))
  with pytest.raises(ItemTextError, match="vector file not found"):
    item_vectors.read_vectors(str(tmp_path / "missing.parquet"))
