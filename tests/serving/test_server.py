"""serving.server on the toy model (serving.testing.toy_model): fast, in-process, loopback only."""

import contextlib
import dataclasses
import os
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import contract
from serving import health
from serving import model_watcher
from serving import servable as servable_lib
from serving import server as server_lib
from serving import testing
from serving.testing import toy_model
from serving import validation

MODEL = "seqrec"
NUM_ITEMS = 50
LIMITS = validation.Limits(max_batch_size=16, max_history_length=20)
CATALOGUE = toy_model.toy_item_ids(NUM_ITEMS)


@pytest.fixture(scope="module")
def toy_exports(tmp_path_factory):
  """Two toy SavedModels with different embeddings: {seed: export_dir}."""
  root = tmp_path_factory.mktemp("toy_exports")
  return {seed: toy_model.export_toy_model(str(root / f"seed{seed}"), NUM_ITEMS, seed=seed)
          for seed in (0, 1)}


def _start(base_path, **kwargs):
  kwargs.setdefault("poll_seconds", 0.2)
  kwargs.setdefault("limits", LIMITS)
  return server_lib.ModelServer(MODEL, str(base_path), port=0, host=testing.LOOPBACK,
                                **kwargs).start()


@pytest.fixture(scope="module")
def shared_server(toy_exports, tmp_path_factory):
  """A server on version 1 (seed 0) for tests that do not change versions."""
  base = tmp_path_factory.mktemp("shared") / MODEL
  testing.push_version(toy_exports[0], str(base), 1)
  server = _start(base, version_labels={"stable": 1, "canary": 2})
  yield server
  server.stop(grace=1)


@pytest.fixture
def channel(shared_server):
  with grpc.insecure_channel(f"{testing.LOOPBACK}:{shared_server.port}") as ch:
    yield ch


def _request(history, k, name=MODEL, signature=None, version=None, label=None):
  request = predict_pb2.PredictRequest()
  request.model_spec.name = name
  if signature is not None:
    request.model_spec.signature_name = signature
  if version is not None:
    request.model_spec.version.value = version
  if label is not None:
    request.model_spec.version_label = label
  if history is not None:
    request.inputs[contract.INPUT_HISTORY].CopyFrom(tf.make_tensor_proto(history, tf.string))
  if k is not None:
    request.inputs[contract.INPUT_K].CopyFrom(tf.make_tensor_proto(k, tf.int32))
  return request


def _predict(channel, request, timeout=10):
  response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
      request, timeout=timeout)
  return response, {alias: tf.make_ndarray(t) for alias, t in response.outputs.items()}


def _status(channel, version=None, name=MODEL):
  request = get_model_status_pb2.GetModelStatusRequest()
  request.model_spec.name = name
  if version is not None:
    request.model_spec.version.value = version
  return model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=10)


def _as_pairs(outputs):
  return [[(i.decode(), float(s)) for i, s in zip(ids, scores)]
          for ids, scores in zip(outputs[contract.OUTPUT_ITEM_IDS],
                                 outputs[contract.OUTPUT_SCORES])]


def _assert_same_ranking(actual, expected):
  assert [[i for i, _ in row] for row in actual] == [[i for i, _ in row] for row in expected]
  np.testing.assert_allclose([[s for _, s in row] for row in actual],
                             [[s for _, s in row] for row in expected], rtol=1e-5, atol=1e-5)


HISTORIES = [["item_1", "item_7", "item_3"], ["item_40", "", ""], ["item_12", "item_2", ""]]


def test_predict_returns_the_models_top_k_and_names_the_version(channel):
  response, outputs = _predict(channel, _request(HISTORIES, 5))
  _assert_same_ranking(_as_pairs(outputs), toy_model.expected_recommendations(
      [[i for i in h if i] for h in HISTORIES], 5, NUM_ITEMS, seed=0))
  assert response.model_spec.name == MODEL
  assert response.model_spec.version.value == 1
  assert response.model_spec.signature_name == contract.DEFAULT_SIGNATURE
  assert outputs[contract.OUTPUT_ITEM_IDS].shape == (3, 5)
  assert outputs[contract.OUTPUT_SCORES].dtype == np.float32


def test_history_items_are_never_recommended(channel):
  _, outputs = _predict(channel, _request(HISTORIES, 20))
  for history, ids in zip(HISTORIES, outputs[contract.OUTPUT_ITEM_IDS]):
    assert not {i.decode() for i in ids} & set(history)


def test_padding_position_does_not_change_the_answer(channel):
  right = _predict(channel, _request([["item_4", "item_9", "", ""]], 6))[1]
  for padded in (["", "", "item_4", "item_9"], ["item_4", "", "item_9", ""]):
    other = _predict(channel, _request([padded], 6))[1]
    np.testing.assert_array_equal(other[contract.OUTPUT_ITEM_IDS],
                                  right[contract.OUTPUT_ITEM_IDS])
    np.testing.assert_allclose(other[contract.OUTPUT_SCORES], right[contract.OUTPUT_SCORES])


def test_num_unknown_counts_dropped_ids_per_row(channel):
  history = [["item_1", "nope", "", "also-nope"], ["item_2", "item_3", "", ""],
             ["zzz", "", "", ""]]
  _, outputs = _predict(channel, _request(history, 3))
  np.testing.assert_array_equal(outputs[contract.OUTPUT_NUM_UNKNOWN], [2, 0, 1])
  assert outputs[contract.OUTPUT_NUM_UNKNOWN].dtype == np.int32
  # Unknown ids are ignored: the first row ranks as if it held item_1 only.
  _assert_same_ranking(_as_pairs(outputs)[:1],
                       toy_model.expected_recommendations([["item_1"]], 3, NUM_ITEMS))


@pytest.mark.parametrize("history", [
    [["", "", ""]], [["unknown-1", "unknown-2"]], np.zeros((1, 0), dtype=object)],
    ids=["all-padding", "all-unknown", "zero-length"])
def test_history_without_known_items_gets_the_k_most_popular_items(channel, history):
  _, outputs = _predict(channel, _request(history, 7))
  assert [i.decode() for i in outputs[contract.OUTPUT_ITEM_IDS][0]] == CATALOGUE[:7]
  np.testing.assert_array_equal(outputs[contract.OUTPUT_SCORES][0], np.zeros(7))


def test_fallback_rows_do_not_change_other_rows(channel):
  mixed = _predict(channel, _request([["item_5", ""], ["", ""]], 4))[1]
  alone = _predict(channel, _request([["item_5"]], 4))[1]
  np.testing.assert_array_equal(mixed[contract.OUTPUT_ITEM_IDS][:1],
                                alone[contract.OUTPUT_ITEM_IDS])
  assert [i.decode() for i in mixed[contract.OUTPUT_ITEM_IDS][1]] == CATALOGUE[:4]


def test_model_fallback_mode_serves_what_the_model_returns(toy_exports, tmp_path):
  base = tmp_path / MODEL
  testing.push_version(toy_exports[0], str(base), 1)
  loaded = tf.saved_model.load(toy_exports[0])
  direct = loaded.signatures[contract.DEFAULT_SIGNATURE](
      history=tf.constant([["", ""]]), k=tf.constant(5))
  server = _start(base, fallback=servable_lib.FALLBACK_MODEL)
  try:
    with grpc.insecure_channel(f"{testing.LOOPBACK}:{server.port}") as ch:
      _, outputs = _predict(ch, _request([["", ""]], 5))
  finally:
    server.stop(grace=1)
  np.testing.assert_array_equal(outputs[contract.OUTPUT_ITEM_IDS],
                                direct[contract.OUTPUT_ITEM_IDS].numpy())


def test_k_equal_to_catalogue_size_is_accepted(channel):
  _, outputs = _predict(channel, _request([["item_1", "item_2"]], NUM_ITEMS))
  scores = outputs[contract.OUTPUT_SCORES][0]
  assert outputs[contract.OUTPUT_ITEM_IDS].shape == (1, NUM_ITEMS)
  # The row's own items come last with score -inf (clients drop them).
  assert np.isneginf(scores[-2:]).all() and np.isfinite(scores[:-2]).all()


def test_output_filter_returns_only_the_requested_outputs(channel):
  request = _request(HISTORIES, 3)
  request.output_filter.append(contract.OUTPUT_ITEM_IDS)
  _, outputs = _predict(channel, request)
  assert set(outputs) == {contract.OUTPUT_ITEM_IDS}
  request = _request(HISTORIES, 3)
  request.output_filter.append(contract.OUTPUT_NUM_UNKNOWN)
  assert set(_predict(channel, request)[1]) == {contract.OUTPUT_NUM_UNKNOWN}


def test_other_signatures_are_served(channel):
  _, query = _predict(channel, _request([["item_1", "item_2", "x"]], None,
                                        signature=contract.QUERY_EMBEDDING_SIGNATURE))
  embeddings = toy_model.toy_embeddings(NUM_ITEMS, 8, 0)
  np.testing.assert_allclose(query[contract.OUTPUT_EMBEDDING][0],
                             embeddings[[1, 2]].mean(axis=0), rtol=1e-5)
  np.testing.assert_array_equal(query[contract.OUTPUT_NUM_UNKNOWN], [1])
  _, items = _predict(channel, _request(None, None, signature=contract.ITEM_EMBEDDINGS_SIGNATURE))
  assert [i.decode() for i in items[contract.OUTPUT_ITEM_IDS]] == CATALOGUE
  np.testing.assert_allclose(items[contract.OUTPUT_EMBEDDINGS], embeddings)


def test_version_and_version_label_select_the_served_version(channel):
  assert _predict(channel, _request([["item_1"]], 2, version=1))[0].model_spec.version.value == 1
  assert _predict(channel, _request([["item_1"]], 2, label="stable"))[0].model_spec.version.value == 1


def test_metadata_is_a_signature_def_map_in_an_any(channel):
  request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
  request.model_spec.name = MODEL
  response = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(
      request, timeout=10)
  assert response.model_spec.name == MODEL and response.model_spec.version.value == 1
  assert response.metadata["signature_def"].Is(get_model_metadata_pb2.SignatureDefMap.DESCRIPTOR)
  signature_map = get_model_metadata_pb2.SignatureDefMap()
  response.metadata["signature_def"].Unpack(signature_map)
  default = signature_map.signature_def[contract.DEFAULT_SIGNATURE]
  assert set(default.inputs) == {contract.INPUT_HISTORY, contract.INPUT_K}
  assert default.inputs[contract.INPUT_HISTORY].dtype == tf.string.as_datatype_enum
  assert default.inputs[contract.INPUT_K].dtype == tf.int32.as_datatype_enum
  assert set(default.outputs) == {contract.OUTPUT_ITEM_IDS, contract.OUTPUT_SCORES,
                                  contract.OUTPUT_NUM_UNKNOWN}
  assert {contract.QUERY_EMBEDDING_SIGNATURE, contract.ITEM_EMBEDDINGS_SIGNATURE} <= set(
      signature_map.signature_def)


@pytest.mark.parametrize("fields, message", [
    ([], "must specify at least one metadata_field"),
    (["signature_def", "colour"], "Metadata field colour is not supported")])
def test_metadata_rejects_bad_fields(channel, fields, message):
  request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=fields)
  request.model_spec.name = MODEL
  with pytest.raises(grpc.RpcError) as error:
    prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(request, timeout=10)
  assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
  assert message in error.value.details()


def test_model_status_reports_the_available_version(channel):
  response = _status(channel)
  assert [(s.version, s.state, s.status.error_code) for s in response.model_version_status] == [
      (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE, 0)]
  for kwargs, message in (({"version": 9}, "Could not find version 9 of model seqrec"),
                          ({"name": "other"}, "Could not find any versions of model other")):
    with pytest.raises(grpc.RpcError) as error:
      _status(channel, **kwargs)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert message in error.value.details()


def test_health_check_follows_model_availability(channel, tmp_path, toy_exports):
  assert health.check(channel) == health.SERVING
  assert health.check(channel, MODEL) == health.SERVING
  with pytest.raises(grpc.RpcError) as error:
    health.check(channel, "some.other.Service")
  assert error.value.code() == grpc.StatusCode.NOT_FOUND
  # A server started before any version exists is up but not serving.
  base = tmp_path / MODEL
  base.mkdir()
  server = _start(base)
  try:
    with grpc.insecure_channel(f"{testing.LOOPBACK}:{server.port}") as ch:
      assert health.check(ch) == health.NOT_SERVING
      with pytest.raises(grpc.RpcError) as error:
        _predict(ch, _request([["item_1"]], 2))
      assert error.value.code() == grpc.StatusCode.NOT_FOUND
      assert error.value.details() == f"Servable not found for request: Latest({MODEL})"
      testing.push_version(toy_exports[0], str(base), 1)
      assert testing.wait_for(lambda: health.check(ch) == health.SERVING, timeout=30)
  finally:
    server.stop(grace=1)


def _malformed_k():
  request = _request([["item_1"]], None)
  proto = request.inputs[contract.INPUT_K]
  proto.dtype = tf.int32.as_datatype_enum
  proto.tensor_content = b"abc"     # 3 bytes cannot hold an int32
  return request


def _negative_dimension():
  request = _request([["item_1"]], 3)
  request.inputs[contract.INPUT_HISTORY].tensor_shape.dim[0].size = -1
  return request


def _extra_input():
  request = _request([["item_1"]], 3)
  request.inputs["user"].CopyFrom(tf.make_tensor_proto(["u1"]))
  return request


def _no_model_spec():
  request = _request([["item_1"]], 3)
  request.ClearField("model_spec")
  return request


def _with_inputs(history_proto=None, k_proto=None):
  request = _request(None, None)
  request.inputs[contract.INPUT_HISTORY].CopyFrom(
      history_proto or tf.make_tensor_proto([["item_1"]], tf.string))
  request.inputs[contract.INPUT_K].CopyFrom(k_proto or tf.make_tensor_proto(3, tf.int32))
  return request


BAD_REQUESTS = {
    "missing-history": (lambda: _request(None, 3), grpc.StatusCode.INVALID_ARGUMENT,
                        "missing input(s) ['history']"),
    "missing-k": (lambda: _request([["item_1"]], None), grpc.StatusCode.INVALID_ARGUMENT,
                  "missing input(s) ['k']"),
    "extra-input": (_extra_input, grpc.StatusCode.INVALID_ARGUMENT,
                    "unexpected input(s) ['user']"),
    "history-int": (lambda: _with_inputs(history_proto=tf.make_tensor_proto([[1, 2]], tf.int32)),
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "input 'history' must be string (DT_STRING), got DT_INT32"),
    "k-int64": (lambda: _with_inputs(k_proto=tf.make_tensor_proto(3, tf.int64)),
                grpc.StatusCode.INVALID_ARGUMENT,
                "input 'k' must be int32 (DT_INT32), got DT_INT64"),
    "k-float": (lambda: _with_inputs(k_proto=tf.make_tensor_proto(3.0, tf.float32)),
                grpc.StatusCode.INVALID_ARGUMENT, "input 'k' must be int32"),
    "history-rank-1": (lambda: _request(["item_1", "item_2"], 3),
                       grpc.StatusCode.INVALID_ARGUMENT,
                       "input 'history' must have shape [None, None] (rank 2), got shape [2]"),
    "history-rank-3": (lambda: _request([[["item_1"]]], 3), grpc.StatusCode.INVALID_ARGUMENT,
                       "input 'history' must have shape [None, None] (rank 2), got shape [1, 1, 1]"),
    "k-vector": (lambda: _request([["item_1"]], [3]), grpc.StatusCode.INVALID_ARGUMENT,
                 "input 'k' must have shape [] (rank 0), got shape [1]"),
    "k-zero": (lambda: _request([["item_1"]], 0), grpc.StatusCode.INVALID_ARGUMENT,
               "input 'k' must be between 1 and the catalogue size 50, got 0"),
    "k-negative": (lambda: _request([["item_1"]], -3), grpc.StatusCode.INVALID_ARGUMENT,
                   "got -3"),
    "k-too-large": (lambda: _request([["item_1"]], NUM_ITEMS + 1),
                    grpc.StatusCode.INVALID_ARGUMENT, "catalogue size 50, got 51"),
    "batch-too-large": (lambda: _request([["item_1"]] * (LIMITS.max_batch_size + 1), 3),
                        grpc.StatusCode.INVALID_ARGUMENT,
                        "has 17 rows; this server accepts at most 16 per request"),
    "history-too-long": (lambda: _request([["item_1"] * (LIMITS.max_history_length + 1)], 3),
                         grpc.StatusCode.INVALID_ARGUMENT,
                         "has 21 columns; this server accepts histories of at most 20 items"),
    "malformed-tensor": (_malformed_k, grpc.StatusCode.INVALID_ARGUMENT,
                         "input 'k' is not a valid int32 tensor of shape []"),
    "negative-dimension": (_negative_dimension, grpc.StatusCode.INVALID_ARGUMENT,
                           "input 'history' must have a fully known shape"),
    "unknown-output": (lambda: _with_filter("ranks"), grpc.StatusCode.INVALID_ARGUMENT,
                       "output tensor alias not found in signature: 'ranks'"),
    "duplicate-output": (lambda: _with_filter("scores", "scores"),
                         grpc.StatusCode.INVALID_ARGUMENT,
                         "duplicate output tensor alias: 'scores'"),
    "unknown-model": (lambda: _request([["item_1"]], 3, name="nope"), grpc.StatusCode.NOT_FOUND,
                      "Servable not found for request: Latest(nope)"),
    "empty-model-name": (lambda: _request([["item_1"]], 3, name=""),
                         grpc.StatusCode.INVALID_ARGUMENT, "Missing servable name"),
    "no-model-spec": (_no_model_spec, grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec"),
    "unknown-version": (lambda: _request([["item_1"]], 3, version=7), grpc.StatusCode.NOT_FOUND,
                        "Servable not found for request: Specific(seqrec, 7)"),
    "label-of-unloaded-version": (lambda: _request([["item_1"]], 3, label="canary"),
                                  grpc.StatusCode.NOT_FOUND,
                                  "Servable not found for request: Specific(seqrec, 2)"),
    "unknown-label": (lambda: _request([["item_1"]], 3, label="beta"),
                      grpc.StatusCode.INVALID_ARGUMENT,
                      "Unrecognized servable version label: beta"),
    # TF Serving answers FAILED_PRECONDITION here; clients see the same code from both.
    "unknown-signature": (lambda: _request([["item_1"]], 3, signature="rank"),
                          grpc.StatusCode.FAILED_PRECONDITION,
                          'Serving signature key "rank" not found'),
}


def _with_filter(*aliases):
  request = _request([["item_1"]], 3)
  request.output_filter.extend(aliases)
  return request


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_request_gets_a_clear_error_and_the_server_keeps_serving(channel, case):
  build, code, message = BAD_REQUESTS[case]
  with pytest.raises(grpc.RpcError) as error:
    _predict(channel, build())
  assert error.value.code() == code, error.value.details()
  assert message in error.value.details()
  _, outputs = _predict(channel, _request([["item_1"]], 3))
  assert outputs[contract.OUTPUT_ITEM_IDS].shape == (1, 3)


def test_compact_history_moves_padding_last_and_keeps_order():
  history = np.array([[b"", b"a", b"", b"b"], [b"c", b"d", b"", b""], [b"", b"", b"", b""]],
                     dtype=object)
  np.testing.assert_array_equal(
      servable_lib.compact_history(history),
      [[b"a", b"b", b"", b""], [b"c", b"d", b"", b""], [b"", b"", b"", b""]])


CLIENTS = 4   # concurrent client threads, each with its own channel and histories
CLIENT_HISTORIES = [[["item_3", "item_8"], ["item_20", ""]], [["item_1", "item_7", "item_3"]],
                    [["item_40", ""], ["item_12", "item_2"], ["item_5", "item_6"]],
                    [["item_0", "item_49", "item_25"]]]


def test_concurrent_clients_get_whole_versions_through_a_bad_push_and_a_swap(
    toy_exports, tmp_path):
  """Versions 1 (seed 0), 2 (broken) and 3 (seed 1) land while CLIENTS threads call."""
  base = tmp_path / MODEL
  testing.push_version(toy_exports[0], str(base), 1)
  server = _start(base)
  target = f"{testing.LOOPBACK}:{server.port}"
  expected = {(client, version): toy_model.expected_recommendations(
                  [[i for i in h if i] for h in CLIENT_HISTORIES[client]], 5, NUM_ITEMS,
                  seed=seed)
              for client in range(CLIENTS) for version, seed in ((1, 0), (3, 1))}
  answers = []   # (client, sent at, answering version, ranked pairs), appended by every thread
  channels = [grpc.insecure_channel(target) for _ in range(CLIENTS)]

  def sender(client):
    def send():
      sent = time.monotonic()
      response, outputs = _predict(channels[client], _request(CLIENT_HISTORIES[client], 5))
      version = response.model_spec.version.value
      answers.append((client, sent, version, _as_pairs(outputs)))
      return version, None
    return send

  def each_client_answered(count, since=0.0):
    return testing.wait_for(lambda: all(
        sum(1 for c, sent, _, _ in list(answers) if c == client and sent >= since) >= count
        for client in range(CLIENTS)), timeout=30)

  def failures(traffic, first=5):
    return [e for t in traffic for e in t.errors][:first]

  try:
    with contextlib.ExitStack() as stack:
      traffic = [stack.enter_context(testing.BackgroundRequests(sender(c)))
                 for c in range(CLIENTS)]
      assert each_client_answered(3), failures(traffic)
      testing.push_broken_version(str(base), 2)
      assert testing.wait_for(lambda: getattr(
          server.watcher.version_states().get(2), "state", None) == model_watcher.END, timeout=30)
      assert each_client_answered(3, since=time.monotonic()), failures(traffic)
      testing.push_version(toy_exports[1], str(base), 3)
      assert server.watcher.wait_for_version(3, timeout=60)
      swapped = time.monotonic()
      assert each_client_answered(3, since=swapped), failures(traffic)
    assert failures(traffic) == []   # no valid request failed
    for client, sent, version, pairs in answers:
      assert version in (1, 3)
      # Ids and scores of one whole version: the one the answer names.
      _assert_same_ranking(pairs, expected[client, version])
      if sent >= swapped:
        assert version == 3, "a request sent after the swap was answered by version 1"
    for client in range(CLIENTS):   # a client never goes back to the old version
      versions = [v for c, _, v, _ in answers if c == client]
      assert versions == sorted(versions) and versions[-1] == 3 and versions[0] == 1
    with grpc.insecure_channel(target) as ch:
      states = {s.version: s.state for s in _status(ch).model_version_status}
      assert states == {1: get_model_status_pb2.ModelVersionStatus.END,
                        2: get_model_status_pb2.ModelVersionStatus.END,
                        3: get_model_status_pb2.ModelVersionStatus.AVAILABLE}
      with pytest.raises(grpc.RpcError) as error:
        _predict(ch, _request([["item_1"]], 2, version=1))
      assert error.value.code() == grpc.StatusCode.NOT_FOUND
  finally:
    for ch in channels:
      ch.close()
    server.stop(grace=1)


def test_broken_version_leaves_the_previous_one_serving(toy_exports, tmp_path):
  base = tmp_path / MODEL
  testing.push_version(toy_exports[0], str(base), 1)
  server = _start(base)
  try:
    with grpc.insecure_channel(f"{testing.LOOPBACK}:{server.port}") as ch:
      testing.push_broken_version(str(base), 2)

      def failed():
        states = {s.version: s for s in _status(ch).model_version_status}
        return 2 in states and states[2].state == get_model_status_pb2.ModelVersionStatus.END

      assert testing.wait_for(failed, timeout=30)
      states = {s.version: s for s in _status(ch).model_version_status}
      assert states[2].status.error_code == grpc.StatusCode.DATA_LOSS.value[0]
      assert "saved_model.pb is not a SavedModel" in states[2].status.error_message
      assert states[1].state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
      assert _predict(ch, _request([["item_1"]], 3))[0].model_spec.version.value == 1
      # A later good version is still picked up.
      testing.push_version(toy_exports[1], str(base), 3)
      assert server.watcher.wait_for_version(3, timeout=60)
      assert _predict(ch, _request([["item_1"]], 3))[0].model_spec.version.value == 3
  finally:
    server.stop(grace=1)


def test_version_missing_a_contract_signature_is_refused(toy_exports, tmp_path):
  module = tf.Module()
  module.f = tf.function(lambda history: {"x": tf.strings.length(history)},
                         input_signature=[tf.TensorSpec([None, None], tf.string)])
  incomplete = str(tmp_path / "incomplete")
  tf.saved_model.save(module, incomplete,
                      signatures={contract.DEFAULT_SIGNATURE: module.f.get_concrete_function()})
  base = tmp_path / MODEL
  testing.push_version(incomplete, str(base), 1)
  server = _start(base)
  try:
    assert not server.is_serving()
    state = server.watcher.version_states()[1]
    assert state.state == "END" and state.error_code == grpc.StatusCode.FAILED_PRECONDITION
    assert "missing signature(s) ['query_embedding', 'item_embeddings']" in state.error_message
  finally:
    server.stop(grace=1)


def test_removing_the_served_version_rolls_back_to_the_previous(toy_exports, tmp_path):
  base = tmp_path / MODEL
  testing.push_version(toy_exports[0], str(base), 1)
  testing.push_version(toy_exports[1], str(base), 2)
  server = _start(base)
  try:
    assert server.watcher.serving_version() == 2
    shutil.rmtree(base / "2")
    assert server.watcher.wait_for_version(1, timeout=60)
  finally:
    server.stop(grace=1)


def test_staging_folders_are_ignored(toy_exports, tmp_path):
  base = tmp_path / MODEL
  testing.push_version(toy_exports[0], str(base), 1)
  shutil.copytree(toy_exports[1], base / ".tmp-5")
  server = _start(base)
  try:
    time.sleep(0.6)   # three polls
    assert server.watcher.serving_version() == 1
    assert set(server.watcher.version_states()) == {1}
  finally:
    server.stop(grace=1)


def test_toy_export_has_no_scann_ops(toy_exports):
  ops = servable_lib.op_types(servable_lib.read_meta_graph(toy_exports[0]))
  assert "TopKV2" in ops
  assert not [op for op in ops if op.startswith("Scann")]


def test_read_meta_graph_names_the_file_when_it_is_missing(tmp_path):
  with pytest.raises(servable_lib.LoadError) as error:
    servable_lib.read_meta_graph(str(tmp_path))
  assert error.value.code == grpc.StatusCode.NOT_FOUND
  assert os.path.join(str(tmp_path), "saved_model.pb") in error.value.message


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY_CONFIG = os.path.join(REPO, "serving", "deploy", "models.config")


def test_deploy_model_config_is_read_as_tf_serving_reads_it():
  assert server_lib.read_model_config(DEPLOY_CONFIG) == [
      server_lib.ModelSource("seqrec", "/models/seqrec", {})]


@pytest.mark.parametrize("text, message", [
    ("model_config_list { config { name: 'a' base_path: '/a' "
     "model_version_policy { all {} } } }", "only model_version_policy"),
    ("model_config_list { config { name: 'a' base_path: '/a' "
     "model_version_policy { latest { num_versions: 2 } } } }", "only model_version_policy"),
    ("model_config_list { config { name: 'a' base_path: '/a' } "
     "config { name: 'a' base_path: '/b' } }", "model name 'a' appears twice"),
    ("model_config_list { config { name: 'a' } }", "config[0]: name and base_path are required"),
    ("model_config_list { config { name: 'a' base_path: '/a' model_platform: 'onnx' } }",
     "model_platform must be 'tensorflow'"),
    ("model_config_list {}", "at least one config"),
    ("model_config_list { colour: 3 }", "not a text ModelServerConfig"),
])
def test_bad_model_config_is_refused_naming_the_file(tmp_path, text, message):
  path = tmp_path / "models.config"
  path.write_text(text)
  with pytest.raises(ValueError) as error:
    server_lib.read_model_config(str(path))
  assert str(path) in str(error.value) and message in str(error.value)


def test_server_serves_every_model_of_a_config_file(toy_exports, tmp_path):
  for name, seed in (("first", 0), ("second", 1)):
    testing.push_version(toy_exports[seed], str(tmp_path / name), 4)
  config = tmp_path / "models.config"
  config.write_text(
      f"model_config_list {{\n"
      f"  config {{ name: 'first' base_path: '{tmp_path / 'first'}' }}\n"
      f"  config {{ name: 'second' base_path: '{tmp_path / 'second'}' "
      f"version_labels {{ key: 'stable' value: 4 }} }}\n"
      f"  config {{ name: 'empty' base_path: '{tmp_path / 'empty'}' }}\n}}\n")
  server = server_lib.ModelServer(models=server_lib.read_model_config(str(config)), port=0,
                                  host=testing.LOOPBACK, poll_seconds=0.2).start()
  try:
    with grpc.insecure_channel(f"{testing.LOOPBACK}:{server.port}") as ch:
      for name, seed in (("first", 0), ("second", 1)):
        response, outputs = _predict(ch, _request([["item_2"]], 3, name=name))
        assert response.model_spec.name == name
        _assert_same_ranking(_as_pairs(outputs), toy_model.expected_recommendations(
            [["item_2"]], 3, NUM_ITEMS, seed=seed))
      assert _predict(ch, _request([["item_2"]], 3, name="second", label="stable"))[
          0].model_spec.version.value == 4
      assert health.check(ch, "first") == health.SERVING
      assert health.check(ch, "empty") == health.NOT_SERVING
      assert health.check(ch) == health.NOT_SERVING   # not every model is up
      assert "'first' (version 4)" in server.describe()
  finally:
    server.stop(grace=1)


def test_kubernetes_manifest_mounts_a_valid_model_config(tmp_path):
  yaml = pytest.importorskip("yaml")
  with open(os.path.join(os.path.dirname(DEPLOY_CONFIG), "kubernetes.yaml")) as f:
    docs = {d["kind"]: d for d in yaml.safe_load_all(f)}
  config = tmp_path / "models.config"
  config.write_text(docs["ConfigMap"]["data"]["models.config"])
  assert [m.name for m in server_lib.read_model_config(str(config))] == ["seqrec"]
  container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
  mount = container["volumeMounts"][0]["mountPath"]
  assert f"--model_config_file={mount}/models.config" in container["args"]


def test_kubernetes_manifest_keeps_tf_serving_off_the_open_network():
  yaml = pytest.importorskip("yaml")
  with open(os.path.join(os.path.dirname(DEPLOY_CONFIG), "kubernetes.yaml")) as f:
    docs = {d["kind"]: d for d in yaml.safe_load_all(f)}
  assert docs["Service"]["spec"].get("type", "ClusterIP") == "ClusterIP"
  policy = docs["NetworkPolicy"]["spec"]
  assert policy["podSelector"] == docs["Deployment"]["spec"]["selector"]
  assert policy["policyTypes"] == ["Ingress"]
  assert all(rule.get("from") for rule in policy["ingress"])   # never "from anywhere"


def test_server_cli_refuses_a_bad_config_file(tmp_path, capsys):
  path = tmp_path / "models.config"
  path.write_text("model_config_list {}")
  assert server_lib.main(["--model-config-file", str(path), "--port", "0"]) == 2
  assert f"error: {path}: expected a model_config_list" in capsys.readouterr().err


def test_stop_lets_running_requests_finish_and_refuses_new_ones(toy_exports, tmp_path):
  base = tmp_path / MODEL
  testing.push_version(toy_exports[0], str(base), 1)
  server = _start(base)
  servable = server.watcher.servable()
  started, original_run = threading.Event(), servable.run

  def slow_run(*args, **kwargs):
    started.set()
    time.sleep(1.0)
    return original_run(*args, **kwargs)

  servable.run = slow_run
  results = {}
  ch = grpc.insecure_channel(f"{testing.LOOPBACK}:{server.port}")

  def call():
    try:
      results["response"] = _predict(ch, _request([["item_1"]], 3))[0]
    except grpc.RpcError as e:
      results["error"] = e.code()

  caller = threading.Thread(target=call)
  caller.start()
  try:
    assert started.wait(30)
    stopper = threading.Thread(target=server.stop, kwargs={"grace": 10})
    stopper.start()
    time.sleep(0.2)
    with pytest.raises(grpc.RpcError) as refused:
      _predict(ch, _request([["item_1"]], 3), timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    caller.join(30)
    stopper.join(30)
    assert "error" not in results and results["response"].model_spec.version.value == 1
  finally:
    ch.close()
    server.stop(grace=0)


class _FakeServable:

  def __init__(self, version):
    self.version = version


def _fake_version(base, version, content=b"model"):
  folder = base / str(version)
  folder.mkdir(parents=True, exist_ok=True)
  (folder / "saved_model.pb").write_bytes(content)


def test_watcher_retries_a_failed_version_only_after_its_files_change(tmp_path):
  calls = []

  def loader(path, version):
    calls.append(version)
    if (tmp_path / str(version) / "saved_model.pb").read_bytes() == b"broken":
      raise servable_lib.LoadError(grpc.StatusCode.DATA_LOSS, f"{path} is broken")
    return _FakeServable(version)

  watcher = model_watcher.ModelWatcher(MODEL, str(tmp_path), loader, poll_seconds=60)
  _fake_version(tmp_path, 1)
  assert watcher.poll_once() and watcher.serving_version() == 1
  _fake_version(tmp_path, 2, b"broken")
  assert not watcher.poll_once() and not watcher.poll_once()
  assert calls == [1, 2]                      # not reloaded while unchanged
  assert watcher.version_states()[2] == model_watcher.VersionState(
      2, model_watcher.END, grpc.StatusCode.DATA_LOSS, f"{tmp_path / '2'} is broken")
  assert watcher.serving_version() == 1
  _fake_version(tmp_path, 2, b"fixed model")  # rewritten in place
  assert watcher.poll_once() and watcher.serving_version() == 2
  assert calls == [1, 2, 2]
  assert watcher.version_states()[1].state == model_watcher.END


def test_watcher_waits_for_a_base_path_that_does_not_exist_yet(tmp_path):
  base = tmp_path / "later"
  watcher = model_watcher.ModelWatcher(MODEL, str(base), lambda p, v: _FakeServable(v),
                                       poll_seconds=60)
  assert not watcher.poll_once()
  with pytest.raises(model_watcher.ServableNotFound):
    watcher.servable()
  _fake_version(base, 7)
  assert watcher.poll_once() and watcher.servable().version == 7
  # An emptied base path keeps the current version serving.
  shutil.rmtree(base)
  assert not watcher.poll_once() and watcher.servable(version=7).version == 7


# Issue 19 drills: a server safe to expose.

def _spy_materialise(monkeypatch, max_elements=10000):
  """Counts tf.make_ndarray calls on tensors declaring more than ``max_elements``
  values, and refuses them (as if the allocation had failed)."""
  oversized, real = [], tf.make_ndarray

  def spy(proto):
    elements = int(np.prod([d.size for d in proto.tensor_shape.dim]))
    if elements > max_elements:
      oversized.append(elements)
      raise MemoryError("test spy: a huge tensor was materialised")
    return real(proto)

  monkeypatch.setattr(tf, "make_ndarray", spy)
  return oversized


@pytest.mark.parametrize("shape, message", [
    ([1024, 100000], "has 1024 rows; this server accepts at most 16"),   # the drill
    ([16, 100000], "has 100000 columns; this server accepts histories of at most 20"),
    ([100000, 3], "has 100000 rows; this server accepts at most 16"),
    ([3, 2 ** 40], "has 1099511627776 columns"),
])
def test_huge_declared_shape_is_refused_before_anything_is_materialised(
    channel, monkeypatch, shape, message):
  oversized = _spy_materialise(monkeypatch)
  request = testing.predict_request(MODEL, testing.string_tensor([b"x"], shape))
  assert request.ByteSize() < 100
  with pytest.raises(grpc.RpcError) as error:
    _predict(channel, request)
  assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
  assert message in error.value.details()
  assert oversized == []


def test_total_values_beyond_the_limit_are_refused_before_materialising(
    toy_exports, tmp_path, monkeypatch):
  base = tmp_path / MODEL
  testing.push_version(toy_exports[0], str(base), 1)
  server = _start(base, limits=validation.Limits(16, 20, max_elements=100))
  oversized = _spy_materialise(monkeypatch, max_elements=100)
  try:
    with grpc.insecure_channel(f"{testing.LOOPBACK}:{server.port}") as ch:
      with pytest.raises(grpc.RpcError) as error:   # 16 x 20 fits rows and columns
        _predict(ch, testing.predict_request(MODEL, testing.string_tensor([b"x"], [16, 20])))
      assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
      assert "declares 320 values; this server accepts at most 100" in error.value.details()
      assert _predict(ch, _request([["item_1"] * 10] * 10, 3))[1][
          contract.OUTPUT_ITEM_IDS].shape == (10, 3)
  finally:
    server.stop(grace=1)
  assert oversized == []


def test_oversize_item_id_is_invalid_argument(channel):
  for size in (validation.Limits().max_id_bytes + 1, 1024 * 1024):
    with pytest.raises(grpc.RpcError) as error:
      _predict(channel, _request([["item_1", "i" * size]], 3))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (f"holds a value of {size} bytes; this server accepts ids of at most "
            f"{validation.Limits().max_id_bytes} bytes") in error.value.details()
  _predict(channel, _request([["i" * validation.Limits().max_id_bytes]], 3))   # at the limit


def test_request_beyond_max_request_bytes_is_refused_by_grpc(channel):
  with pytest.raises(grpc.RpcError) as error:
    _predict(channel, _request([["i" * (server_lib.DEFAULT_MAX_REQUEST_BYTES + 1)]], 3))
  assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_more_values_than_the_declared_shape_is_invalid_argument(channel, monkeypatch):
  oversized = _spy_materialise(monkeypatch, max_elements=2)
  with pytest.raises(grpc.RpcError) as error:
    _predict(channel, testing.predict_request(
        MODEL, testing.string_tensor([b"item_1"] * 5, [1, 2])))
  assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
  assert "holds 5 values for shape [1, 2]" in error.value.details()
  assert oversized == []


@pytest.mark.parametrize("method, request_class", [
    ("/tensorflow.serving.PredictionService/Predict", predict_pb2.PredictRequest),
    ("/tensorflow.serving.PredictionService/GetModelMetadata",
     get_model_metadata_pb2.GetModelMetadataRequest),
    ("/tensorflow.serving.ModelService/GetModelStatus",
     get_model_status_pb2.GetModelStatusRequest),
])
def test_non_utf8_model_name_is_invalid_argument_without_a_traceback(
    channel, caplog, method, request_class):
  request = request_class()
  request.model_spec.name = "x"
  if request_class is predict_pb2.PredictRequest:
    data = testing.with_raw_model_name(_request([["item_1"]], 3), b"seq\xffrec")
  else:
    data = request.SerializeToString().replace(b"\x01x", b"\x02\xff\xfe")
  with pytest.raises(grpc.RpcError) as error:
    channel.unary_unary(method)(data, timeout=10)
  assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
  assert "not a valid protocol buffer" in error.value.details()
  assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


@pytest.mark.parametrize("kind", sorted(testing.bad_predict_requests(MODEL)))
def test_every_bad_request_of_the_soak_is_invalid_argument(channel, kind):
  with pytest.raises(grpc.RpcError) as error:
    testing.raw_predict(channel)(testing.bad_predict_requests(MODEL)[kind], timeout=10)
  assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value.details()


def test_error_messages_name_no_server_path(toy_exports, tmp_path, caplog):
  base = tmp_path / MODEL
  testing.push_version(toy_exports[0], str(base), 1)
  server = _start(base)
  servable = server.watcher.servable()
  failures = iter([tf.errors.NotFoundError(None, None, f"{base}/1/variables: no such file"),
                   RuntimeError(f"cannot open {base}/1/assets/vocab")])

  def failing_run(*args, **kwargs):
    raise next(failures)

  servable.run = failing_run
  try:
    with grpc.insecure_channel(f"{testing.LOOPBACK}:{server.port}") as ch:
      testing.push_broken_version(str(base), 2)
      assert testing.wait_for(lambda: 2 in server.watcher.version_states() and
                              server.watcher.version_states()[2].state == "END", timeout=30)
      status = {s.version: s for s in _status(ch).model_version_status}[2]
      assert "saved_model.pb is not a SavedModel" in status.status.error_message
      messages = [status.status.error_message]
      for code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INTERNAL):
        with pytest.raises(grpc.RpcError) as error:
          _predict(ch, _request([["item_1"]], 3))
        assert error.value.code() == code
        messages.append(error.value.details())
  finally:
    server.stop(grace=1)
  assert messages[2] == "internal error; the server log has the details"
  for message in messages:
    assert str(tmp_path) not in message and "/" not in message.replace(".../", ""), message
  # The operator still gets the details.
  assert any(str(base) in r.getMessage() for r in caplog.records)


def _gated_server(toy_exports, tmp_path, **kwargs):
  base = tmp_path / MODEL
  testing.push_version(toy_exports[0], str(base), 1)
  loader = lambda path, version: testing.GatedServable(servable_lib.Servable(path, version))
  server = _start(base, loader=loader, **kwargs)
  return server, server.watcher.servable()


def test_calls_beyond_the_concurrency_cap_get_resource_exhausted(toy_exports, tmp_path):
  server, gated = _gated_server(toy_exports, tmp_path, max_concurrent_requests=2)
  ch = grpc.insecure_channel(f"{testing.LOOPBACK}:{server.port}")
  stub = prediction_service_pb2_grpc.PredictionServiceStub(ch)
  try:
    held = [stub.Predict.future(_request([["item_1"]], 3), timeout=60) for _ in range(2)]
    assert testing.wait_for(lambda: gated.waiting == 2, timeout=30)
    with pytest.raises(grpc.RpcError) as error:
      _predict(ch, _request([["item_1"]], 3), timeout=10)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "busy" in error.value.details()
    assert gated.waiting == 2   # refused at once, not queued
    # Status and health stay answerable while every slot is taken.
    assert health.check(ch) == health.SERVING
    assert _status(ch).model_version_status[0].version == 1
    gated.release()
    assert [f.result(timeout=30).model_spec.version.value for f in held] == [1, 1]
    assert _predict(ch, _request([["item_1"]], 3))[0].model_spec.version.value == 1
  finally:
    gated.release()
    ch.close()
    server.stop(grace=1)


CANCEL_PROPAGATION_SECONDS = 3.0


@pytest.mark.parametrize("ending", ["deadline", "cancel"])
def test_a_call_that_ended_while_waiting_runs_no_model(toy_exports, tmp_path, ending):
  server, gated = _gated_server(toy_exports, tmp_path)
  ch = grpc.insecure_channel(f"{testing.LOOPBACK}:{server.port}")
  stub = prediction_service_pb2_grpc.PredictionServiceStub(ch)
  try:
    future = stub.Predict.future(_request([["item_1"]], 3),
                                 timeout=1.0 if ending == "deadline" else 60)
    assert testing.wait_for(lambda: gated.waiting == 1, timeout=30)
    if ending == "cancel":
      future.cancel()
    with pytest.raises((grpc.RpcError, grpc.FutureCancelledError)):
      future.result(timeout=30)
    if ending == "cancel":
      # The client gives up at once; the server learns of it when the cancellation
      # reaches it over loopback, which a loaded machine can delay: give it time.
      time.sleep(CANCEL_PROPAGATION_SECONDS)
    gated.release()
    assert testing.wait_for(lambda: server.guard.active() == 0, timeout=30)
    assert gated.runs == 0
  finally:
    gated.release()
    ch.close()
    server.stop(grace=1)


def test_unserved_methods_are_unimplemented_without_a_traceback(channel, caplog):
  with pytest.raises(grpc.RpcError) as error:
    channel.unary_unary("/tensorflow.serving.PredictionService/Classify")(b"", timeout=10)
  assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
  assert not [r for r in caplog.records if r.exc_info]


def test_default_bind_address_is_loopback(tmp_path):
  args = server_lib.parse_args(["--model-base-path", str(tmp_path)])
  assert args.host == "127.0.0.1"
  server = server_lib.ModelServer(MODEL, str(tmp_path), port=0)
  try:
    assert server.host == "127.0.0.1"
  finally:
    server.stop(grace=0)
  assert server_lib.parse_args(["--model-base-path", str(tmp_path), "--host",
                                "0.0.0.0"]).host == "0.0.0.0"


def test_limits_are_server_flags_with_defaults(tmp_path):
  args = server_lib.parse_args(["--model-base-path", str(tmp_path)])
  assert (args.max_batch_size, args.max_history_length, args.max_elements,
          args.max_id_bytes, args.max_list_length) == dataclasses.astuple(validation.Limits())
  assert args.max_request_bytes == server_lib.DEFAULT_MAX_REQUEST_BYTES
  assert args.max_concurrent_requests == server_lib.DEFAULT_MAX_CONCURRENT_REQUESTS
  with pytest.raises(SystemExit):
    server_lib.parse_args(["--model-base-path", str(tmp_path), "--max-id-bytes", "0"])
