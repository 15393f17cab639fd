"""serving.client (library and CLI) and the serving.server CLI, on the toy model."""

import csv
import signal

import grpc
import numpy as np
import pytest

from serving import client as client_lib
from serving import server as server_lib
from serving import testing
from serving.testing import toy_model

MODEL = "seqrec"
NUM_ITEMS = 50


@pytest.fixture(scope="module")
def base_path(tmp_path_factory):
  root = tmp_path_factory.mktemp("client")
  export = toy_model.export_toy_model(str(root / "export"), NUM_ITEMS, seed=0)
  base = root / MODEL
  testing.push_version(export, str(base), 3)
  return str(base)


@pytest.fixture(scope="module")
def target(base_path):
  server = server_lib.ModelServer(MODEL, base_path, port=0, host=testing.LOOPBACK,
                                  poll_seconds=0.5).start()
  yield f"{testing.LOOPBACK}:{server.port}"
  server.stop(grace=1)


@pytest.fixture
def client(target):
  with client_lib.RecommenderClient(target, MODEL, timeout=10) as c:
    yield c


def _ids(rows):
  return [[item for item, _ in row] for row in rows]


def test_recommend_returns_top_k_pairs_for_ragged_histories(client):
  histories = [["item_1", "item_7", "item_3"], ["item_40"], []]
  result = client.recommend(histories, k=5)
  expected = toy_model.expected_recommendations(histories[:2], 5, NUM_ITEMS)
  assert _ids(result[:2]) == _ids(expected)
  np.testing.assert_allclose([s for _, s in result[0]], [s for _, s in expected[0]], rtol=1e-5)
  assert all(isinstance(i, str) and isinstance(s, float) for i, s in result[0])
  # The empty history gets the most popular items.
  assert _ids(result[2:]) == [toy_model.toy_item_ids(NUM_ITEMS)[:5]]


def test_recommend_details_reports_unknown_ids_and_version(client):
  result = client.recommend_details([["item_1", "mystery"], ["item_2"]], k=3)
  assert result.num_unknown == [1, 0]
  assert result.version == 3


def test_recommend_drops_the_rows_own_items_when_k_exceeds_the_rest(client):
  (row,) = client.recommend([["item_1", "item_2"]], k=NUM_ITEMS)
  assert len(row) == NUM_ITEMS - 2
  assert not {"item_1", "item_2"} & {item for item, _ in row}


def test_catalogue_lists_item_ids_in_vocabulary_order(client):
  assert client.catalogue() == toy_model.toy_item_ids(NUM_ITEMS)


def test_no_histories_means_no_call(client):
  assert client.recommend([], k=3) == []


@pytest.mark.parametrize("histories, k, error, message", [
    ([["item_1"]], 0, ValueError, "k must be a positive integer"),
    ([["item_1"]], 2.5, ValueError, "k must be a positive integer"),
    ("item_1", 3, TypeError, "got a string"),
    (["item_1"], 3, TypeError, "histories[0] must be a list of item ids"),
    ([["item_1", 7]], 3, TypeError, "histories[0][1] must be a str item id, got int"),
])
def test_bad_arguments_fail_before_any_call(client, histories, k, error, message):
  with pytest.raises(error) as raised:
    client.recommend(histories, k)
  assert message in str(raised.value)


def test_history_tensor_pads_at_the_end():
  np.testing.assert_array_equal(client_lib.history_tensor([["a", "b"], ["c"], []]),
                                [[b"a", b"b"], [b"c", b""], [b"", b""]])


def test_metadata_and_status(client):
  meta = client.metadata()
  assert (meta.name, meta.version) == (MODEL, 3)
  assert {"serving_default", "query_embedding", "item_embeddings"} <= set(meta.signature_defs)
  assert [(s.version, s.state, s.error_code) for s in client.status()] == [(3, "AVAILABLE", 0)]
  assert client.is_available()


def test_unknown_model_is_not_available_and_predict_fails_with_not_found(target):
  with client_lib.RecommenderClient(target, "other", timeout=5) as other:
    assert not other.is_available()
    with pytest.raises(grpc.RpcError) as error:
      other.recommend([["item_1"]], 3)
  assert error.value.code() == grpc.StatusCode.NOT_FOUND
  assert "Servable not found for request: Latest(other)" in error.value.details()


def test_pinned_version_is_sent(target):
  with client_lib.RecommenderClient(target, MODEL, version=4) as pinned:
    with pytest.raises(grpc.RpcError) as error:
      pinned.recommend([["item_1"]], 3)
  assert "Specific(seqrec, 4)" in error.value.details()


def _write_items(path, header, rows):
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)
  return str(path)


def test_cli_recommend_prints_ids_titles_and_scores(target, tmp_path, capsys):
  items = _write_items(tmp_path / "items.csv", ["item_id", "title", "attributes"],
                       [[f"item_{i}", f"Title {i}", "a|b"] for i in range(NUM_ITEMS)])
  code = client_lib.main(["recommend", "--server", target, "--history", "item_1", "item_7",
                          "nope", "-k", "4", "--items", items])
  out = capsys.readouterr().out.splitlines()
  assert code == 0
  assert out[0] == "# model seqrec version 3; 3 history items, 1 unknown"
  assert out[1] == "rank\titem_id\ttitle\tscore"
  expected = toy_model.expected_recommendations([["item_1", "item_7"]], 4, NUM_ITEMS)[0]
  for rank, (line, (item, score)) in enumerate(zip(out[2:], expected), start=1):
    assert line == f"{rank}\t{item}\tTitle {item.split('_')[1]}\t{score:.4f}"
  assert len(out) == 6


def test_cli_item_table_without_title_column_is_named(target, tmp_path, capsys):
  items = _write_items(tmp_path / "items.csv", ["item_id", "name"], [["item_1", "x"]])
  code = client_lib.main(["recommend", "--server", target, "--history", "item_1",
                          "--items", items])
  err = capsys.readouterr().err
  assert code == 2
  assert items in err and "missing ['title']" in err


def test_cli_status_metadata_and_rpc_errors(target, capsys):
  assert client_lib.main(["status", "--server", target]) == 0
  assert capsys.readouterr().out == "3\tAVAILABLE\n"
  assert client_lib.main(["metadata", "--server", target]) == 0
  out = capsys.readouterr().out
  assert "serving_default(history:string, k:int32) -> " \
         "(item_ids:string, num_unknown:int32, scores:float32)" in out
  assert client_lib.main(["recommend", "--server", target, "--model-name", "nope",
                          "--history", "item_1"]) == 1
  assert "NOT_FOUND: Servable not found for request: Latest(nope)" in capsys.readouterr().err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_server_cli_prints_its_port_serves_and_stops_on_signal(base_path, signum):
  process = testing.ServerProcess.local(base_path, MODEL, poll_seconds=1.0)
  with process:
    assert process.port and process.port > 0
    with client_lib.RecommenderClient(process.target, MODEL) as c:
      assert _ids(c.recommend([["item_1"]], 2)) == _ids(
          toy_model.expected_recommendations([["item_1"]], 2, NUM_ITEMS))
    process._process.send_signal(signum)  # pylint: disable=protected-access
    assert process._process.wait(30) == 0  # pylint: disable=protected-access
  output = "".join(process.output)
  assert f"Serving model 'seqrec' (version 3) from {base_path} on 127.0.0.1:" in output
  assert "Server stopped" in output


def test_explain_returns_each_item_with_the_history_items_behind_it(explain_target):
  with client_lib.RecommenderClient(explain_target, MODEL, timeout=30) as client:
    histories = [["item1", "item2", "item3"], ["item4", "mystery"], []]
    result = client.explain(histories, k=3)
    expected = client.recommend_details(histories, k=3)
  assert result.version == expected.version == 1
  assert result.num_unknown == [0, 1, 0]
  assert [[(e.item_id, e.score) for e in h.items] for h in result.histories] == expected.items
  first = result.histories[0]
  assert all(len(e.because) == 3 and {i for i, _ in e.because} == {"item1", "item2", "item3"}
             for e in first.items)
  assert all(w1 >= w2 for e in first.items for (_, w1), (_, w2) in zip(e.because,
                                                                      e.because[1:]))
  assert [[i for i, _ in e.because] for e in result.histories[1].items] == [["item4"]] * 3
  assert result.histories[2].items and not any(e.because for e in result.histories[2].items)
  assert first.attention_ids[-3:] == ["item1", "item2", "item3"]
  assert first.attention.ndim == 3 and first.attention.shape[-1] == len(first.attention_ids)
  assert client.explain([], 3).histories == []


def test_because_text_names_titles_of_positive_weights_only():
  because = [("a", 0.25), ("b", 0.01), ("c", -0.1)]
  assert client_lib.because_text(because, {"a": "Alpha"}) == (
      "because you interacted with Alpha (0.25), b (0.01)")
  assert client_lib.because_text([("c", -0.1)], {}) == ""


def test_cli_explain_prints_because_lines_with_titles(explain_target, tmp_path, capsys):
  items = _write_items(tmp_path / "items.csv", ["item_id", "title"],
                       [[f"item{i}", f"Title {i}"] for i in range(30)])
  code = client_lib.main(["recommend", "--server", explain_target, "--history", "item1",
                          "item2", "-k", "2", "--items", items, "--explain"])
  out = capsys.readouterr().out.splitlines()
  assert code == 0
  with client_lib.RecommenderClient(explain_target, MODEL) as client:
    explained = client.explain([["item1", "item2"]], 2).histories[0].items
  titles = {f"item{i}": f"Title {i}" for i in range(30)}
  expected = []
  for rank, e in enumerate(explained, start=1):
    expected.append(f"{rank}\t{e.item_id}\t{titles[e.item_id]}\t{e.score:.4f}")
    if client_lib.because_text(e.because, titles):
      expected.append(f"\t{client_lib.because_text(e.because, titles)}")
  assert out[2:] == expected
  assert any(line.startswith("\tbecause you interacted with Title ") for line in out)
