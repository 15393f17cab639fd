"""INTEGRATION: serving the model the real TFX pipeline pushed (slow on first use).

The model comes from the session fixture ``pushed_model_path`` (tests/conftest.py),
which runs the whole pipeline on tiny synthetic data, unless the environment variable
``SEQREC_TEST_SAVED_MODEL`` names an exported SavedModel folder to use instead.

Each check runs against ``serving.server`` and, where stock TF Serving exists
(``$SEQREC_TF_MODEL_SERVER`` or ``tensorflow_model_server`` on PATH), against it too,
through the same ``serving.client``. Without it, what those three checks rely on is
checked without the binary: the export uses only ops stock TensorFlow registers, and
each signature, run from its SignatureDef in a session as TF Serving runs it, gives
the outputs of ``tf.saved_model.load``.
"""

import contextlib
import os

import numpy as np
import pytest
import tensorflow as tf

from serving import client as client_lib
from serving import contract
from serving import servable as servable_lib
from serving import testing

MODEL = "seqrec"
SERVERS = ["serving.server", testing.TF_MODEL_SERVER]
K = 10


@pytest.fixture(scope="module")
def model_dir(request):
  path = os.environ.get("SEQREC_TEST_SAVED_MODEL")
  if path:
    return path
  return request.getfixturevalue("pushed_model_path")


@pytest.fixture(scope="module")
def in_process(model_dir):
  """The SavedModel loaded in this process, and its catalogue (ids in vocabulary order)."""
  loaded = tf.saved_model.load(model_dir)
  catalogue = [i.decode() for i in loaded.signatures[contract.ITEM_EMBEDDINGS_SIGNATURE]()[
      contract.OUTPUT_ITEM_IDS].numpy()]
  return loaded, catalogue


def _start(kind, base_path):
  if kind == testing.TF_MODEL_SERVER:
    if not testing.tf_model_server_binary():
      if os.environ.get(testing.TF_MODEL_SERVER_ENV):   # asked for, but not there: fail
        pytest.fail(testing.tf_model_server_skip_reason())
      pytest.skip(testing.tf_model_server_skip_reason())
    return testing.ServerProcess.tf_serving(base_path, MODEL, poll_seconds=1).start()
  return testing.ServerProcess.local(base_path, MODEL, poll_seconds=1.0).start()


@pytest.fixture(params=SERVERS)
def served(request, model_dir, tmp_path):
  """(server process, base path) serving a copy of the model as version 1."""
  base = str(tmp_path / MODEL)
  testing.push_version(model_dir, base, 1)
  process = _start(request.param, base)
  yield process, base
  process.stop()


def _histories(catalogue):
  rng = np.random.default_rng(7)
  pick = lambda n: [catalogue[i] for i in rng.choice(len(catalogue), n, replace=False)]
  return [pick(1), pick(3), pick(10), pick(30), pick(2) + ["not-an-item"], []]


def _in_process_top_k(loaded, histories, k):
  padded = client_lib.history_tensor(histories)
  out = loaded.signatures[contract.DEFAULT_SIGNATURE](
      history=tf.constant(padded, tf.string), k=tf.constant(k, tf.int32))
  return [[(i.decode(), float(s)) for i, s in zip(ids, scores) if np.isfinite(s)]
          for ids, scores in zip(out[contract.OUTPUT_ITEM_IDS].numpy(),
                                 out[contract.OUTPUT_SCORES].numpy())]


def test_default_export_has_no_scann_ops(model_dir):
  ops = servable_lib.op_types(servable_lib.read_meta_graph(model_dir))
  assert "TopKV2" in ops, "expected the exact top-k of serving_default in the graph"
  assert [op for op in ops if op.startswith("Scann")] == []


def test_export_uses_only_ops_a_stock_model_server_runs(model_dir):
  assert testing.ops_stock_tensorflow_lacks(model_dir) == []


def test_an_op_stock_tensorflow_cannot_serve_is_found(tmp_path):
  module = tf.Module()
  module.f = tf.function(
      lambda x: {"y": tf.py_function(lambda v: v * 2, [x], tf.float32)},
      input_signature=[tf.TensorSpec([None], tf.float32)])
  tf.saved_model.save(module, str(tmp_path), signatures=module.f.get_concrete_function())
  assert testing.ops_stock_tensorflow_lacks(str(tmp_path)) == ["EagerPyFunc"]


def _signature_feeds(catalogue):
  history = client_lib.history_tensor(_histories(catalogue))
  return {contract.DEFAULT_SIGNATURE: {contract.INPUT_HISTORY: history, contract.INPUT_K: K},
          contract.QUERY_EMBEDDING_SIGNATURE: {contract.INPUT_HISTORY: history},
          contract.ITEM_EMBEDDINGS_SIGNATURE: {}}


def test_each_signature_serves_from_its_signature_def_as_tf_serving_runs_it(
    model_dir, in_process):
  # TF Serving loads the SavedModel's MetaGraph into a session (running its init op,
  # e.g. the id lookup tables) and feeds and fetches the SignatureDef's tensor names.
  loaded, catalogue = in_process
  feeds = _signature_feeds(catalogue)
  with tf.Graph().as_default(), tf.compat.v1.Session() as session:
    meta_graph = tf.compat.v1.saved_model.loader.load(
        session, [tf.saved_model.SERVING], model_dir)
    served = {}
    for name, inputs in feeds.items():
      signature = meta_graph.signature_def[name]
      assert set(signature.inputs) == set(inputs), name
      served[name] = session.run(
          {alias: info.name for alias, info in signature.outputs.items()},
          feed_dict={signature.inputs[alias].name: value for alias, value in inputs.items()})
  for name, inputs in feeds.items():
    expected = loaded.signatures[name](
        **{alias: tf.constant(value) for alias, value in inputs.items()})
    assert set(served[name]) == set(expected), name
    for alias, value in expected.items():
      value = value.numpy()
      if value.dtype == object:
        np.testing.assert_array_equal(served[name][alias], value, err_msg=f"{name}/{alias}")
      else:
        np.testing.assert_allclose(served[name][alias], value, rtol=1e-5, atol=1e-6,
                                   err_msg=f"{name}/{alias}")


def test_grpc_top_k_equals_the_model_in_process(served, in_process):
  process, _ = served
  loaded, catalogue = in_process
  histories = _histories(catalogue)
  expected = _in_process_top_k(loaded, histories, K)
  with client_lib.RecommenderClient(process.target, MODEL, timeout=30) as client:
    result = client.recommend_details(histories, K)
  assert result.version == 1
  for got, want, history in zip(result.items, expected, histories):
    assert [i for i, _ in got] == [i for i, _ in want], history
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-4, atol=1e-5)
    assert not set(history) & {i for i, _ in got}
  # The empty history: the k most popular items (vocabulary order), from both.
  assert [i for i, _ in result.items[-1]] == catalogue[:K]
  if result.num_unknown is not None:   # serving.server only
    assert result.num_unknown == [0, 0, 0, 0, 1, 0]


def test_explain_answers_as_serving_default_with_reasons_from_the_history(served, in_process):
  process, _ = served
  _, catalogue = in_process
  histories = _histories(catalogue)
  with client_lib.RecommenderClient(process.target, MODEL, timeout=60) as client:
    expected = client.recommend(histories, K)
    explained = client.explain(histories, K).histories
  for got, want, history in zip(explained, expected, histories):
    assert [e.item_id for e in got.items] == [i for i, _ in want], history
    np.testing.assert_allclose([e.score for e in got.items], [s for _, s in want],
                               rtol=1e-4, atol=1e-5)
    known = [i for i in history if i in catalogue]
    for item in got.items:
      assert len(item.because) == min(3, len(set(known[-len(got.attention_ids):])))
      assert {i for i, _ in item.because} <= set(known)
    assert [i for i in got.attention_ids if i] == known[-len(got.attention_ids):]
CLIENTS = 4   # concurrent client threads through the swap


def test_pushed_version_is_swapped_in_while_requests_keep_succeeding(served, model_dir):
  process, base = served
  histories = [["not-an-item"], []]
  with contextlib.ExitStack() as stack:
    clients = [stack.enter_context(client_lib.RecommenderClient(process.target, MODEL,
                                                                timeout=30))
               for _ in range(CLIENTS)]

    def sender(client):
      def send():
        result = client.recommend_details(histories, 5)
        return result.version, result.items
      return send

    with contextlib.ExitStack() as running:
      traffic = [running.enter_context(testing.BackgroundRequests(sender(c), max_seconds=120))
                 for c in clients]
      assert all(t.wait_for_count(3, timeout=60) for t in traffic)
      testing.push_version(model_dir, base, 2)
      assert all(testing.wait_for(lambda t=t: t.versions[-1:] == [2], timeout=90)
                 for t in traffic)
      assert all(t.wait_for_count(len(t.versions) + 3, timeout=60) for t in traffic)
    for t in traffic:
      assert t.errors == []
      first = t.versions.index(2)
      assert set(t.versions[:first]) == {1} and set(t.versions[first:]) == {2}
      assert t.results[1] == t.results[2]   # same model, new version number
    assert {s.version: s.state for s in clients[0].status()}.get(2) == "AVAILABLE"


def test_broken_version_leaves_the_previous_one_serving(served, in_process):
  process, base = served
  _, catalogue = in_process
  testing.push_broken_version(base, 2)
  with client_lib.RecommenderClient(process.target, MODEL, timeout=30) as client:

    def version_2_failed():
      states = {s.version: s for s in client.status()}
      return 2 in states and states[2].state == "END"

    assert testing.wait_for(version_2_failed, timeout=60, interval=0.5)
    states = {s.version: s for s in client.status()}
    assert states[2].error_code != 0 and states[2].error_message
    assert states[1].state == "AVAILABLE"
    result = client.recommend_details([[catalogue[0]]], 3)
    assert result.version == 1 and len(result.items[0]) == 3


def test_pushed_model_serves_rules_with_its_attributes_inside(served, in_process):
  process, _ = served
  loaded, catalogue = in_process
  assert loaded.attributes.pairs.shape[0] > 0   # the synthetic items' attributes
  histories = _histories(catalogue)[:3]
  rules = [client_lib.Rules(exclude=catalogue[:3] + ["not-an-item"]),
           client_lib.Rules(allow=catalogue[5:20]),
           client_lib.Rules(exclude_attributes=["no-such-value"])]
  lists = {name: client_lib.history_tensor([r.lists()[name] for r in rules])
           for name in contract.RULE_LIST_INPUTS}
  out = loaded.signatures[contract.RULES_SIGNATURE](
      history=tf.constant(client_lib.history_tensor(histories)), k=tf.constant(K),
      **{name: tf.constant(value, tf.string) for name, value in lists.items()},
      keep_history=tf.constant(False), diversity=tf.constant(0.0))
  expected = [[i.decode() for i in row if i] for row in out[contract.OUTPUT_ITEM_IDS].numpy()]
  with client_lib.RecommenderClient(process.target, MODEL, timeout=30) as client:
    result = client.recommend_with_rules(histories, K, rules)
  assert [[i for i, _ in row] for row in result.items] == expected
  assert result.num_unknown_rules == [1, 0, 1]
  assert not set(catalogue[:3]) & set(expected[0])
  assert set(expected[1]) <= set(catalogue[5:20]) and len(expected[0]) == K
