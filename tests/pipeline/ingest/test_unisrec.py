"""pipeline.ingest.unisrec: UniSRec's Amazon datasets (Scientific) with item text."""

from pathlib import Path

import pytest

from pipeline import ingest
from pipeline.ingest import formats
from pipeline.ingest import unisrec
from pipeline.ingest.canonical import IngestError
from trainer import features

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token\n"


def _write(path: Path, text: str) -> Path:
  path.write_text(text, encoding="utf-8")
  return path


def _tiny(folder: Path, test_history: str = "1 2 3") -> Path:
  """User 0 saw items 0 1 2 3 4, user 1 saw 2 0 1 (index order); histories cut at 3."""
  _write(folder / "Tiny.item2index", "A0\t0\nA1\t1\nA2\t2\nA3\t3\nA4\t4\n")
  _write(folder / "Tiny.user2index", "U0\t0\nU1\t1\n")
  _write(folder / "Tiny.text", "item_id:token\ttext:token_seq\nA0\tPliers. Tools. \n"
         "A1\tTape. Adhesives. \nA2\tGlue. Adhesives. \nA3\t投影仪. Optics. \nA4\tSaw. Tools. \n")
  _write(folder / "Tiny.train.inter", HEADER + "0\t0 1\t2\n0\t0\t1\n")
  _write(folder / "Tiny.valid.inter", HEADER + "0\t0 1 2\t3\n1\t2\t0\n")
  _write(folder / "Tiny.test.inter", HEADER + f"0\t{test_history}\t4\n1\t2 0\t1\n")
  return folder


def test_sequences_are_rebuilt_from_the_prefix_rows_with_positions_as_time(tmp_path):
  folder = _tiny(tmp_path)
  assert formats.detect_format(str(folder)) == unisrec.UNISREC
  interactions, items = ingest.load_dataset("auto", str(folder))
  assert interactions.values.tolist() == [
      ["U0", "A0", 0], ["U0", "A1", 1], ["U0", "A2", 2], ["U0", "A3", 3], ["U0", "A4", 4],
      ["U1", "A2", 0], ["U1", "A0", 1], ["U1", "A1", 2]]
  assert items[features.ITEM_TABLE_ID].tolist() == ["A0", "A1", "A2", "A3", "A4"]
  assert items[features.ITEM_TABLE_TEXT].tolist()[2:4] == ["Glue. Adhesives.", "投影仪. Optics."]
  assert set(items[features.ITEM_TABLE_TITLE]) == {""}


def test_a_test_history_that_does_not_end_the_rebuilt_sequence_is_named(tmp_path):
  folder = _tiny(tmp_path, test_history="1 3 2")
  with pytest.raises(IngestError, match=r"Tiny\.test\.inter, line 2: the history of user 0 "
                                        "is not the end of its sequence"):
    unisrec.load_unisrec(str(folder))


def test_without_user2index_users_keep_their_indices(tmp_path):
  folder = _tiny(tmp_path)
  (folder / "Tiny.user2index").unlink()
  interactions, _ = unisrec.load_unisrec(str(folder))
  assert sorted(set(interactions[features.LOG_USER_ID])) == ["0", "1"]


@pytest.mark.parametrize("name, content, message", [
    ("Tiny.train.inter", HEADER + "0\t0 1\t9\n", r"Tiny\.train\.inter, line 2: index 9 is out "
                                                 r"of range \(items 0 \.\. 4\)"),
    ("Tiny.valid.inter", HEADER + "0\t0 x\t3\n", r"Tiny\.valid\.inter, line 2: expected integer"),
    ("Tiny.valid.inter", HEADER + "0\t0 1 2\t3\n0\t0 1 2\t3\n",
     r"Tiny\.valid\.inter, line 3: user 0 already has line 2"),
    ("Tiny.item2index", "A0\t0\nA1\t2\n", r"Tiny\.item2index: indices must run 0 \.\. 1; "
                                          "index 1 is missing"),
    ("Tiny.text", "item_id:token\ttext:token_seq\nA0 no tab\n",
     r"Tiny\.text, line 2: expected 'item id<TAB>text'"),
])
def test_malformed_files_are_named_with_their_line(tmp_path, name, content, message):
  folder = _tiny(tmp_path)
  _write(folder / name, content)
  with pytest.raises(IngestError, match=message):
    unisrec.load_unisrec(str(folder))


def test_a_folder_without_a_dataset_lists_its_files(tmp_path):
  _write(tmp_path / "Tiny.text", "item_id:token\ttext:token_seq\n")
  with pytest.raises(IngestError, match=r"expected one Name\.text with Name\.train\.inter"):
    unisrec.load_unisrec(str(tmp_path))


def test_items_without_a_text_row_get_an_empty_text(tmp_path):
  folder = _tiny(tmp_path)
  _write(folder / "Tiny.text", "item_id:token\ttext:token_seq\nA0\tPliers.\n")
  _, items = unisrec.load_unisrec(str(folder))
  assert items[features.ITEM_TABLE_TEXT].tolist() == ["Pliers.", "", "", "", ""]


def test_scientific_counts_match_the_published_dataset(tmp_path):
  folder = DATA / "scientific"
  if not folder.is_dir():
    pytest.skip(f"{folder} not present (the shared datasets live next to the repository)")
  interactions, items = ingest.load_dataset("unisrec", str(folder))
  assert len(interactions) == 59_427
  assert interactions[features.LOG_USER_ID].nunique() == 8_442
  assert interactions[features.LOG_ITEM_ID].nunique() == 4_385 == len(items)
  lengths = interactions.groupby(features.LOG_USER_ID).size()
  assert (lengths.min(), lengths.max()) == (5, 80)
  texts = items[features.ITEM_TABLE_TEXT]
  assert (texts != "").all()
  assert 180 < texts.str.len().mean() < 185
  data = ingest.write_canonical(interactions, items, str(tmp_path / "canonical"))
  assert (data.num_users, data.num_items, data.num_catalogue_items) == (8_442, 4_385, 4_385)
  assert ingest.read_items(data.items_path)[features.ITEM_TABLE_TEXT].tolist() == (
      items.sort_values(features.ITEM_TABLE_ID)[features.ITEM_TABLE_TEXT].tolist())
