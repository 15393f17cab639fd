"""Tests for pipeline.ingest: canonical format, dataset adapters, download."""

import csv
import dataclasses
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from pipeline import ingest
from pipeline.ingest import canonical
from pipeline.ingest import download
from pipeline.ingest import formats
from pipeline.ingest.canonical import IngestError
from trainer import features
from trainer import item_text

REPO = Path(__file__).resolve().parents[3]
DATA = REPO.parent / "shared" / "data"


def _data_dir(name: str) -> Path:
  path = DATA / name
  if not path.is_dir():
    pytest.skip(f"{path} not present")
  return path


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(text.encode(encoding))
  return path


# ----------------------------------------------------------------------------
# Real datasets.


def test_ml100k_adapter_loads_every_rating_with_genres():
  folder = _data_dir("ml-100k")
  assert formats.detect_format(str(folder)) == "ml-100k"
  interactions, items = ingest.load_dataset("ml-100k", str(folder))
  assert len(interactions) == 100_000
  assert interactions[features.LOG_USER_ID].nunique() == 943
  assert interactions[features.LOG_ITEM_ID].nunique() == 1682
  assert list(interactions.columns) == [
      features.LOG_USER_ID, features.LOG_ITEM_ID, features.LOG_TIMESTAMP,
      features.LOG_WEIGHT]
  assert set(interactions[features.LOG_WEIGHT].unique()) == {1, 2, 3, 4, 5}
  # First line of u.data: 196 242 3 881250949.
  first = interactions.iloc[0]
  assert (first.user_id, first.item_id, first.timestamp, first.weight) == (
      "196", "242", 881250949, 3)
  assert len(items) == 1682
  toy_story = items.set_index(features.ITEM_TABLE_ID).loc["1"]
  assert toy_story.title == "Toy Story (1995)"
  assert toy_story.attributes == "Animation|Children's|Comedy"
  # The "unknown" genre flag gives no attribute.
  all_attributes = set("|".join(items.attributes).split("|")) - {""}
  assert "unknown" not in all_attributes and len(all_attributes) == 18


def test_beauty_adapter_counts_and_keeps_line_order_as_timestamps():
  folder = _data_dir("beauty")
  assert formats.detect_format(str(folder)) == "s3rec"
  interactions, items = ingest.load_dataset("s3rec", str(folder))
  assert len(interactions) == 198_502
  assert interactions.user_id.nunique() == 22_363
  assert interactions.item_id.nunique() == 12_101
  assert len(items) == 12_101 and (items.title == "").all()
  with open(folder / "Beauty.txt") as f:
    lines = [next(f).split() for _ in range(50)]
  sample = interactions[interactions.user_id.isin({t[0] for t in lines})]
  by_user = dict(tuple(sample.groupby(features.LOG_USER_ID)))
  for tokens in lines:
    rows = by_user[tokens[0]].sort_values(features.LOG_TIMESTAMP)
    assert rows.item_id.tolist() == tokens[1:]
    assert rows.timestamp.tolist() == list(range(len(tokens) - 1))
  mapping = json.loads((folder / "Beauty_item2attributes.json").read_text())
  item4 = items.set_index("item_id").loc["4"].attributes
  assert item4 == "|".join(str(a) for a in dict.fromkeys(mapping["4"]))


# ----------------------------------------------------------------------------
# MovieLens 1M / latest and S3-Rec on small files.


def test_ml1m_adapter_reads_dat_files_in_latin1(tmp_path):
  _write(tmp_path / "ratings.dat",
         "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
  _write(tmp_path / "movies.dat",
         "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
         "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
         "3::Cit\xe9 des enfants perdus, La (1995)::Adventure|Sci-Fi\n",
         encoding="latin-1")
  assert formats.detect_format(str(tmp_path)) == "ml-1m"
  interactions, items = ingest.load_dataset("ml-1m", str(tmp_path))
  assert interactions.values.tolist() == [
      ["1", "1193", 978300760, 5], ["1", "661", 978302109, 3],
      ["2", "1193", 978298413, 4]]
  table = items.set_index("item_id")
  assert table.loc["661"].attributes == "Animation|Children's|Musical"
  assert table.loc["3"].title == "Cité des enfants perdus, La (1995)"


def test_ml_latest_adapter_reads_csv_and_empties_no_genres_listed(tmp_path):
  _write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n"
         "1,1,4.0,964982703\n1,3,4.5,964981247\n2,1,3.0,964982224\n")
  _write(tmp_path / "movies.csv", "movieId,title,genres\n"
         "1,Toy Story (1995),Adventure|Animation\n"
         '3,"Grumpier Old Men, The (1995)",Comedy|Romance\n'
         "7,Unknown Film (2001),(no genres listed)\n")
  assert formats.detect_format(str(tmp_path)) == "ml-latest"
  interactions, items = ingest.load_dataset("ml-latest", str(tmp_path))
  assert interactions.user_id.tolist() == ["1", "1", "2"]
  assert interactions.weight.tolist() == [4.0, 4.5, 3.0]
  table = items.set_index("item_id")
  assert table.loc["3"].title == "Grumpier Old Men, The (1995)"
  assert table.loc["7"].attributes == ""


def _s3rec(folder: Path, name: str = "Toys") -> Path:
  _write(folder / f"{name}.txt", "1 10 11 12\n2 11 13\n3 12 10 13 11\n")
  _write(folder / f"{name}_item2attributes.json",
         json.dumps({"10": [1, 2], "11": [2], "12": [], "13": [3, 3, 1]}))
  return folder


def test_s3rec_adapter_uses_positions_as_timestamps(tmp_path):
  folder = _s3rec(tmp_path)
  assert formats.find_s3rec_name(str(folder)) == "Toys"
  interactions, items = ingest.load_dataset("s3rec", str(folder))
  assert interactions.values.tolist() == [
      ["1", "10", 0], ["1", "11", 1], ["1", "12", 2], ["2", "11", 0],
      ["2", "13", 1], ["3", "12", 0], ["3", "10", 1], ["3", "13", 2],
      ["3", "11", 3]]
  assert items.values.tolist() == [["10", "", "1|2"], ["11", "", "2"],
                                   ["12", "", ""], ["13", "", "3|1"]]


def test_s3rec_adapter_rejects_ambiguous_or_missing_dataset(tmp_path):
  _s3rec(tmp_path, "Toys")
  _s3rec(tmp_path, "Sports")
  with pytest.raises(IngestError, match=r"several datasets .*Sports.*Toys"):
    ingest.load_dataset("s3rec", str(tmp_path))
  lonely = tmp_path / "lonely"
  _write(lonely / "Yelp_item2attributes.json", "{}")
  with pytest.raises(IngestError, match=r"no Name\.txt with a matching"):
    ingest.load_dataset("s3rec", str(lonely))


# ----------------------------------------------------------------------------
# Malformed lines in dataset files.


_GENRE_FLAGS = "|".join(["0"] * 18)
_ML_LATEST_RATINGS = "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n"
_S3REC_ATTRIBUTES = {"X_item2attributes.json": "{}"}


@pytest.mark.parametrize("kind, files, error", [
    pytest.param("ml-100k", {"u.data": "1\t2\t3\t881250949\n1\t3\t4\n"},
                 "u.data, line 2: expected 4 fields", id="ml-100k-field-count"),
    pytest.param("ml-100k", {"u.data": "1\t1\t3\t881250949\n",
                             "u.item": f"1|A (1995)|01-Jan-1995||url|1|{_GENRE_FLAGS}\n"
                                       f"2|B (1995)|01-Jan-1995||url|x|{_GENRE_FLAGS}\n"},
                 "u.item, line 2: genre flag 'unknown' has value 'x'; expected 0 or 1",
                 id="ml-100k-genre-flag"),
    pytest.param("ml-1m", {"ratings.dat": "1::1193::5::978300760\n\nabc::661::3::1\n"},
                 "ratings.dat, line 3: field 'UserID' has value 'abc'; expected an integer",
                 id="ml-1m-id"),
    pytest.param("ml-latest", {"ratings.csv": _ML_LATEST_RATINGS + "1,3,4.5,yesterday\n"},
                 "ratings.csv, line 3: field 'timestamp' has value 'yesterday'",
                 id="ml-latest-timestamp"),
    pytest.param("ml-latest", {"ratings.csv": "userId,movieId,rating,timestamp\n"
                                              "1,1,9,4.0,964982703\n1,3,9,4.5,964981247\n"},
                 "ratings.csv, line 2: expected 4 fields (userId,movieId,rating,timestamp), "
                 "found 5; quote a field that holds ','", id="ml-latest-ratings-extra-field"),
    pytest.param("ml-latest", {"ratings.csv": _ML_LATEST_RATINGS, "movies.csv":
                               "movieId,title,genres\n1,Toy Story, The (1995),Comedy\n"},
                 "movies.csv, line 2: expected 3 fields (movieId,title,genres), found 4; quote a "
                 "field that holds ','", id="ml-latest-movies-extra-field"),
    pytest.param("s3rec", {"X.txt": "1 10 11\n2 11 oops\n", **_S3REC_ATTRIBUTES},
                 "X.txt, line 2: field 'item id' has value 'oops'; expected an integer",
                 id="s3rec-item-id"),
    pytest.param("s3rec", {"X.txt": "1 10 11\n2\n", **_S3REC_ATTRIBUTES},
                 "X.txt, line 2: expected 'user item item ...', found only '2'",
                 id="s3rec-user-without-items"),
])
def test_malformed_dataset_line_is_refused_naming_file_line_and_field(tmp_path, kind, files,
                                                                      error):
  for name, text in files.items():
    _write(tmp_path / name, text)
  with pytest.raises(IngestError) as e:
    ingest.load_dataset(kind, str(tmp_path))
  assert str(e.value).startswith(f"{tmp_path}/{error}")


# ----------------------------------------------------------------------------
# A user's own log.


_LOG = pd.DataFrame({
    "user_id": ["u2", "u1", "u1", "u2"],
    "item_id": ["b", "a", "c", "a"],
    "timestamp": [5, 3, 1, 5],
    "event_type": ["view", "buy", "view", "view"],
    "comment": ["ignored", "", "", ""],
})


@pytest.mark.parametrize("extension", [".csv", ".tsv", ".parquet"])
def test_read_interactions_reads_csv_tsv_parquet_alike(tmp_path, extension):
  path = tmp_path / f"log{extension}"
  if extension == ".parquet":
    _LOG.to_parquet(path)
  else:
    _LOG.to_csv(path, sep="\t" if extension == ".tsv" else ",", index=False)
  log = ingest.read_interactions(str(path))
  assert list(log.columns) == ["user_id", "item_id", "timestamp", "event_type"]
  assert log.user_id.tolist() == ["u2", "u1", "u1", "u2"]
  assert log.timestamp.dtype == "int64" and log.timestamp.tolist() == [5, 3,
                                                                       1, 5]
  assert formats.detect_format(str(path)) == "csv"


def test_read_interactions_keeps_float_timestamps_and_numeric_ids(tmp_path):
  path = _write(tmp_path / "log.csv",
                "user_id,item_id,timestamp,weight\n7,0042,1.5,2\n7,9,2.25,1\n")
  log = ingest.read_interactions(str(path))
  assert log.item_id.tolist() == ["0042", "9"]
  assert log.timestamp.tolist() == [1.5, 2.25]


def test_detect_format_cannot_tell_a_file_of_unknown_extension(tmp_path):
  path = _write(tmp_path / "log.json", "[]")
  with pytest.raises(IngestError, match=r"cannot tell the format of file"):
    formats.detect_format(str(path))


def test_unknown_kind_lists_kinds(tmp_path):
  with pytest.raises(IngestError, match=r"unknown dataset kind 'netflix'; "
                     r"expected one of ml-100k, ml-1m, ml-latest, s3rec, csv"):
    ingest.load_dataset("netflix", str(tmp_path))


def test_detect_format_rejects_unrecognised_folder(tmp_path):
  _write(tmp_path / "a.csv", "x\n1\n")
  _write(tmp_path / "b.csv", "x\n1\n")
  with pytest.raises(IngestError, match=r"cannot tell the dataset format of "
                     r"folder .*\['a\.csv', 'b\.csv'\]"):
    formats.detect_format(str(tmp_path))
  with pytest.raises(IngestError, match=r"not found"):
    formats.detect_format(str(tmp_path / "nope"))


def test_csv_kind_reads_optional_item_table(tmp_path):
  log = _write(tmp_path / "data" / "log.csv",
               "user_id,item_id,timestamp\n1,a,1\n1,b,2\n")
  table = _write(tmp_path / "items.csv", "item_id,title,attributes\n"
                 'a,"Red, ""big"" mug",kitchen|red\nb,Plate,\n')
  interactions, items = ingest.load_dataset("auto", str(log.parent),
                                            items_path=str(table))
  assert len(interactions) == 2
  assert items.values.tolist() == [["a", 'Red, "big" mug', "kitchen|red"],
                                   ["b", "Plate", ""]]
  dup = _write(tmp_path / "dup.csv", "item_id,title\na,x\nb,y\na,z\n")
  with pytest.raises(IngestError, match=r"line 4: item_id 'a' already "
                     r"appeared at line 2"):
    ingest.load_dataset("csv", str(log), items_path=str(dup))


# ----------------------------------------------------------------------------
# write_canonical.


def test_write_canonical_round_trip_sorted_and_quoted(tmp_path):
  log = pd.DataFrame({
      "user_id": ["10", "9", "9", "10", "9"],
      "item_id": ["3", "20", "4", "1", "100"],
      "timestamp": [7, 5, 5, 2, 1],
      "weight": [1.0, 2.5, 1.0, 3.0, 1.0],
  })
  items = pd.DataFrame({
      "item_id": ["100", "20", "4", "3", "1"],
      "title": ['Say "hi", world', "Line\nbreak", "", "Plain", "a|b title"],
      "attributes": ["x|y", "", "z", "x", "y|x|y"],
  })
  before = log.copy()
  data = ingest.write_canonical(log, items, str(tmp_path / "out"))
  pd.testing.assert_frame_equal(log, before)  # Input untouched.
  assert data == ingest.CanonicalData(
      out_dir=str(tmp_path / "out"),
      interactions_path=str(tmp_path / "out/interactions/interactions.csv"),
      items_path=str(tmp_path / "out/items/items.csv"),
      num_users=2, num_items=5, num_interactions=5, has_items=True,
      num_catalogue_items=5)
  assert os.listdir(tmp_path / "out") == ["interactions", "items"] or sorted(
      os.listdir(tmp_path / "out")) == ["interactions", "items"]
  assert os.listdir(data.interactions_dir) == ["interactions.csv"]
  assert os.listdir(data.items_dir) == ["items.csv"]
  # Sorted by user (numerically), timestamp, item (numerically).
  back = ingest.read_interactions(data.interactions_path)
  assert back.values.tolist() == [
      ["9", "100", 1, 1], ["9", "4", 5, 1], ["9", "20", 5, 2.5],
      ["10", "1", 2, 3], ["10", "3", 7, 1]]
  with open(data.items_path, newline="") as f:
    rows = list(csv.reader(f))
  assert rows == [["item_id", "title", "attributes"], ["1", "a|b title", "y|x"],
                  ["3", "Plain", "x"], ["4", "", "z"], ["20", "Line break", ""],
                  ["100", 'Say "hi", world', "x|y"]]
  # Every record is on one physical line (CsvExampleGen reads line by line).
  assert len(Path(data.items_path).read_text().splitlines()) == 6
  assert ingest.read_items(data.items_path).title.tolist()[-1] == (
      'Say "hi", world')


def test_write_canonical_is_deterministic_and_without_temp_files(tmp_path):
  log = pd.DataFrame({"user_id": ["b", "a", "a"], "item_id": ["x", "z", "y"],
                      "timestamp": [1, 2, 2]})
  first = ingest.write_canonical(log, None, str(tmp_path / "one"))
  second = ingest.write_canonical(log.iloc[::-1], None, str(tmp_path / "two"))
  assert (Path(first.interactions_path).read_bytes() ==
          Path(second.interactions_path).read_bytes() ==
          b"user_id,item_id,timestamp\na,y,2\na,z,2\nb,x,1\n")
  assert sorted(os.listdir(tmp_path / "one")) == ["interactions"]
  assert not first.has_items and first.items_path is None


def test_write_canonical_failure_keeps_previous_file_whole(tmp_path,
                                                           monkeypatch):
  log = pd.DataFrame({"user_id": ["a"], "item_id": ["x"], "timestamp": [1]})
  data = ingest.write_canonical(log, None, str(tmp_path))
  before = Path(data.interactions_path).read_bytes()

  def broken_to_csv(self, f, **kwargs):
    f.write("user_id,item_id,timestamp\nhalf")
    raise OSError("disk full")

  monkeypatch.setattr(pd.DataFrame, "to_csv", broken_to_csv)
  with pytest.raises(OSError, match="disk full"):
    ingest.write_canonical(pd.concat([log, log]), None, str(tmp_path))
  assert Path(data.interactions_path).read_bytes() == before
  assert sorted(os.listdir(tmp_path)) == ["interactions"]


def test_write_canonical_refuses_folder_with_foreign_files(tmp_path):
  _write(tmp_path / "interactions" / "old_export.csv", "x\n")
  log = pd.DataFrame({"user_id": ["a"], "item_id": ["x"], "timestamp": [1]})
  with pytest.raises(IngestError, match=r"already holds other files "
                     r"\['old_export\.csv'\]"):
    ingest.write_canonical(log, None, str(tmp_path))


def test_write_canonical_without_items_removes_stale_item_table(tmp_path):
  log = pd.DataFrame({"user_id": ["a"], "item_id": ["x"], "timestamp": [1]})
  items = pd.DataFrame({"item_id": ["x"], "title": ["X"], "attributes": [""]})
  assert ingest.write_canonical(log, items, str(tmp_path)).has_items
  ingest.write_canonical(log, None, str(tmp_path))
  assert sorted(os.listdir(tmp_path)) == ["interactions"]


def test_write_canonical_validates_dataframes(tmp_path):
  log = pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "y"],
                      "timestamp": [1, "soon"]})
  with pytest.raises(IngestError, match=r"interactions DataFrame, row 2: "
                     r"column 'timestamp' has value 'soon'"):
    ingest.write_canonical(log, None, str(tmp_path))
  assert not os.path.exists(tmp_path / "interactions")


def test_real_ml100k_written_canonical_reads_back_unchanged(tmp_path):
  folder = _data_dir("ml-100k")
  interactions, items = ingest.load_dataset("auto", str(folder))
  data = ingest.write_canonical(interactions, items, str(tmp_path))
  assert (data.num_users, data.num_items, data.num_interactions) == (
      943, 1682, 100_000)
  back = ingest.read_interactions(data.interactions_path)
  expected = canonical.sort_interactions(interactions)
  assert back.dtypes.to_dict() == expected.dtypes.to_dict()
  assert back.equals(expected)
  assert ingest.read_items(data.items_path).shape == (1682, 3)


# ----------------------------------------------------------------------------
# Download.


def _unreachable(monkeypatch, name="ml-100k"):
  url = "http://127.0.0.1:9/" + name + ".zip"
  monkeypatch.setitem(download.DATASETS, name,
                      dataclasses.replace(download.DATASETS[name], url=url))
  return url


def test_download_without_network_exits_1_with_one_line_message(
    tmp_path, monkeypatch, capsys):
  url = _unreachable(monkeypatch)
  assert download.main(["ml-100k", "--dest", str(tmp_path)]) == 1
  out, err = capsys.readouterr()
  assert out == ""
  assert err.count("\n") == 1
  assert err.startswith(f"error: could not download ml-100k from {url}: ")
  assert err.endswith(
      ". Download it by hand and pass its folder with --data-dir.\n")
  assert os.listdir(tmp_path) == []  # No half-downloaded leftovers.


def test_download_command_line_failure_has_no_traceback(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "pipeline.ingest.download", "ml-1m", "--dest",
       str(tmp_path), "--url", "http://127.0.0.1:9/ml-1m.zip"],
      cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
  assert result.returncode == 1
  assert "Traceback" not in result.stderr
  assert result.stderr.startswith("error: could not download ml-1m from "
                                  "http://127.0.0.1:9/ml-1m.zip: ")


def test_download_unpacks_and_checks_zip(tmp_path, capsys):
  archive = tmp_path / "mirror" / "ml-latest-small.zip"
  archive.parent.mkdir()
  with zipfile.ZipFile(archive, "w") as z:
    z.writestr("ml-latest-small/ratings.csv",
               "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n")
    z.writestr("ml-latest-small/movies.csv",
               "movieId,title,genres\n1,Toy Story (1995),Animation\n")
  dest = tmp_path / "datasets"
  assert download.main(["ml-latest-small", "--dest", str(dest), "--url",
                        archive.as_uri()]) == 0
  out, err = capsys.readouterr()
  assert out.strip() == str(dest / "ml-latest-small")
  assert "--dataset ml-latest" in err
  assert sorted(os.listdir(dest)) == ["ml-latest-small"]
  interactions, items = ingest.load_dataset("auto", out.strip())
  assert len(interactions) == 1 and len(items) == 1

  wrong = tmp_path / "mirror" / "ml-1m.zip"
  wrong.write_bytes(b"not a zip")
  assert download.main(["ml-1m", "--dest", str(dest), "--url",
                        wrong.as_uri()]) == 1
  assert "is not a valid zip file" in capsys.readouterr().err
  assert sorted(os.listdir(dest)) == ["ml-latest-small"]


# ----------------------------------------------------------------------------
# Item text.


def test_ml_latest_text_is_title_genres_and_tags_most_frequent_first(tmp_path):
  _write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n")
  _write(tmp_path / "movies.csv", "movieId,title,genres\n1,Toy Story (1995),Animation|Comedy\n"
         "7,Unknown Film (2001),(no genres listed)\n")
  _write(tmp_path / "tags.csv", "userId,movieId,tag,timestamp\n1,1,fun,1\n2,1,pixar,2\n"
         "3,1,Pixar,3\n4,99,orphan,4\n")
  _, items = ingest.load_dataset("ml-latest", str(tmp_path))
  texts = items.set_index(features.ITEM_TABLE_ID)[features.ITEM_TABLE_TEXT]
  assert texts.to_dict() == {"1": "Toy Story (1995). Animation, Comedy. pixar, fun.",
                             "7": "Unknown Film (2001)."}
  (tmp_path / "tags.csv").unlink()
  _, items = ingest.load_dataset("ml-latest", str(tmp_path))
  assert items[features.ITEM_TABLE_TEXT].tolist()[0] == "Toy Story (1995). Animation, Comedy."


def test_ml_latest_small_every_movie_has_a_text_and_tags_reach_1572_movies():
  folder = _data_dir("ml-latest-small")
  interactions, items = ingest.load_dataset("ml-latest", str(folder))
  assert (len(interactions), len(items)) == (100_836, 9_742)
  texts = items.set_index(features.ITEM_TABLE_ID)[features.ITEM_TABLE_TEXT]
  assert (texts != "").all()
  assert texts["1"] == "Toy Story (1995). Adventure, Animation, Children, Comedy, Fantasy. pixar, fun."
  plain = [item_text.compose(title, attributes.split("|") if attributes else [])
           for title, attributes in zip(items.title, items.attributes)]
  assert sum(text != p for text, p in zip(items.text, plain)) == 1_572


def test_item_table_text_column_is_optional_one_line_and_written(tmp_path):
  table = _write(tmp_path / "items.csv", 'item_id,title,text\n1,Heat,"A heist.\nIn LA."\n2,Up,\n')
  items = ingest.read_items(str(table))
  assert items.columns.tolist() == ["item_id", "title", "attributes", "text"]
  assert items.text.tolist() == ["A heist. In LA.", ""]
  assert "text" not in ingest.validate_items(pd.DataFrame({"item_id": ["1"]})).columns
  log = pd.DataFrame({"user_id": ["u"], "item_id": ["1"], "timestamp": [1]})
  data = ingest.write_canonical(log, items, str(tmp_path / "out"))
  assert ingest.read_items(data.items_path).text.tolist() == ["A heist. In LA.", ""]
