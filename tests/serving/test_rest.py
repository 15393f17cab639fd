"""serving.rest: TF Serving's REST API on the toy model, against the same server's gRPC answers."""

import http.client
import json
import socket
import ssl
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import contract
from serving import guard
from serving import rest
from serving import security
from serving import servable as servable_lib
from serving import server as server_lib
from serving import testing
from serving import validation
from serving.testing import toy_model

MODEL = "seqrec"
NUM_ITEMS = 50
LIMITS = validation.Limits(max_batch_size=16, max_history_length=20)
TOKEN = "s3cret-t0ken"
HISTORIES = [["item_1", "item_7", "item_3"], ["item_40", "", "nope"], ["item_12", "", ""]]
PREDICT = f"/v1/models/{MODEL}:predict"


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
  return toy_model.export_toy_model(str(tmp_path_factory.mktemp("rest") / "export"), NUM_ITEMS)


def _start(base_path, **kwargs):
  kwargs.setdefault("limits", LIMITS)
  return server_lib.ModelServer(MODEL, str(base_path), port=0, host=testing.LOOPBACK,
                                poll_seconds=0.2, rest_port=0, **kwargs).start()


@pytest.fixture(scope="module")
def server(export_dir, tmp_path_factory):
  base = tmp_path_factory.mktemp("served") / MODEL
  testing.push_version(export_dir, str(base), 1)
  model_server = _start(base, version_labels={"stable": 1, "canary": 2})
  yield model_server
  model_server.stop(grace=1)


@pytest.fixture(scope="module")
def channel(server):
  with grpc.insecure_channel(f"{testing.LOOPBACK}:{server.port}") as ch:
    yield ch


def _call(port, method, path, body=None, headers=None, context=None):
  """(HTTP status, parsed JSON, Content-Type) of one call."""
  if context is None:
    connection = http.client.HTTPConnection(testing.LOOPBACK, port, timeout=30)
  else:
    connection = http.client.HTTPSConnection("localhost", port, timeout=30, context=context)
  try:
    data = json.dumps(body) if isinstance(body, (dict, list)) else body
    connection.request(method, path, body=data, headers=headers or {})
    response = connection.getresponse()
    return response.status, json.loads(response.read()), response.getheader("Content-Type")
  finally:
    connection.close()


def _grpc_predict(channel, inputs, signature=None, version=None, label=None):
  request = predict_pb2.PredictRequest()
  request.model_spec.name = MODEL
  request.model_spec.signature_name = signature or ""
  if version is not None:
    request.model_spec.version.value = version
  if label is not None:
    request.model_spec.version_label = label
  for name, (value, dtype) in inputs.items():
    request.inputs[name].CopyFrom(tf.make_tensor_proto(value, dtype))
  response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
      request, timeout=10)
  return {alias: tf.make_ndarray(t) for alias, t in response.outputs.items()}


def _grpc_error(channel, inputs, signature=None, name=MODEL):
  request = predict_pb2.PredictRequest()
  request.model_spec.name = name
  request.model_spec.signature_name = signature or ""
  for input_name, (value, dtype) in inputs.items():
    request.inputs[input_name].CopyFrom(tf.make_tensor_proto(value, dtype))
  with pytest.raises(grpc.RpcError) as error:
    prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=10)
  return error.value.code(), error.value.details()


def _as_json_values(array):
  """A gRPC output as the JSON values it must equal (strings decoded, floats exact)."""
  if array.dtype == object:
    return np.vectorize(lambda b: b.decode())(array).tolist() if array.size else array.tolist()
  return array.tolist()


def _assert_same(rest_value, grpc_array):
  """Same values, same nesting; float32 values equal bit for bit after the JSON trip."""
  expected = _as_json_values(grpc_array)
  if grpc_array.dtype == np.float32:
    np.testing.assert_array_equal(np.asarray(rest_value, np.float32), grpc_array)
    assert np.asarray(rest_value).shape == grpc_array.shape
  else:
    assert rest_value == expected


HISTORY = (HISTORIES, tf.string)
K = (5, tf.int32)


@pytest.mark.parametrize("path, version, label", [
    (PREDICT, None, None),
    (f"/v1/models/{MODEL}/versions/1:predict", 1, None),
    (f"/v1/models/{MODEL}/labels/stable:predict", None, "stable")])
def test_serving_default_columnar_equals_grpc(server, channel, path, version, label):
  status, answer, content_type = _call(server.rest_port, "POST", path, {
      "signature_name": "serving_default",
      "inputs": {"history": HISTORIES, "k": 5}})
  assert (status, content_type) == (200, "application/json")
  expected = _grpc_predict(channel, {"history": HISTORY, "k": K}, version=version, label=label)
  assert set(answer["outputs"]) == set(expected) == {"item_ids", "scores", "num_unknown"}
  for name, array in expected.items():
    _assert_same(answer["outputs"][name], array)


def test_query_embedding_row_and_columnar_equal_grpc(server, channel):
  expected = _grpc_predict(channel, {"history": HISTORY}, contract.QUERY_EMBEDDING_SIGNATURE)
  embedding = expected[contract.OUTPUT_EMBEDDING]
  rows = [
      {"signature_name": "query_embedding", "instances": HISTORIES},
      {"signature_name": "query_embedding", "instances": [{"history": h} for h in HISTORIES]}]
  for body in rows:
    status, answer, _ = _call(server.rest_port, "POST", PREDICT, body)
    # One output of the model's own: each prediction is the bare vector, as TF Serving.
    assert status == 200 and len(answer["predictions"]) == len(HISTORIES)
    _assert_same(answer["predictions"], embedding)
  for inputs in (HISTORIES, {"history": HISTORIES}):
    status, answer, _ = _call(server.rest_port, "POST", PREDICT, {
        "signature_name": "query_embedding", "inputs": inputs})
    assert status == 200
    _assert_same(answer["outputs"], embedding)


def test_item_embeddings_columnar_equals_grpc(server, channel):
  expected = _grpc_predict(channel, {}, contract.ITEM_EMBEDDINGS_SIGNATURE)
  status, answer, _ = _call(server.rest_port, "POST", PREDICT, {
      "signature_name": "item_embeddings", "inputs": {}})
  assert status == 200
  assert set(answer["outputs"]) == set(expected)
  for name, array in expected.items():
    _assert_same(answer["outputs"][name], array)


def test_answers_are_tf_serving_json(server):
  # Floats as TF Serving writes them (six digits when they read back the same, a
  # trailing ".0" on whole numbers); scalars of the batch as bare values.
  assert rest.outputs_json({"x": np.array([[0.5, 2.0], [1e-05, np.float32(0.1)]],
                                          np.float32)}) == (
      '{\n    "outputs": [[0.5, 2.0], [1e-05, 0.1]]\n}\n')
  text = rest.predictions_json({"ids": np.array([[b"a"], [b"b"]], object),
                                "n": np.array([3, 4], np.int32)})
  assert json.loads(text) == {"predictions": [{"ids": ["a"], "n": 3}, {"ids": ["b"], "n": 4}]}
  assert json.loads(rest.outputs_json({"x_bytes": np.array([b"\xff"], object)})) == {
      "outputs": [{"b64": "/w=="}]}
  assert rest.outputs_json({"s": np.array([np.inf, -np.inf, np.nan], np.float32)}) == (
      '{\n    "outputs": [Infinity, -Infinity, NaN]\n}\n')


def test_strings_may_be_sent_as_base64(server, channel):
  encoded = [[{"b64": "aXRlbV8x"}, "item_7"]]   # "item_1"
  status, answer, _ = _call(server.rest_port, "POST", PREDICT, {
      "inputs": {"history": encoded, "k": 3}})
  assert status == 200
  expected = _grpc_predict(channel, {"history": ([["item_1", "item_7"]], tf.string),
                                     "k": (3, tf.int32)})
  _assert_same(answer["outputs"]["item_ids"], expected["item_ids"])


def test_status_and_metadata_equal_grpc(server, channel):
  for path, version in ((f"/v1/models/{MODEL}", None), (f"/v1/models/{MODEL}/versions/1", 1)):
    status, answer, _ = _call(server.rest_port, "GET", path)
    assert status == 200
    assert answer == {"model_version_status": [{
        "version": "1", "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""}}]}
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    if version:
      request.model_spec.version.value = version
    expected = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request)
    assert json_format.ParseDict(answer, get_model_status_pb2.GetModelStatusResponse()) == (
        expected)
  for path in (f"/v1/models/{MODEL}/metadata", f"/v1/models/{MODEL}/labels/stable/metadata"):
    status, answer, _ = _call(server.rest_port, "GET", path)
    assert status == 200
    assert answer["model_spec"] == {"name": MODEL, "version": "1", "signature_name": ""}
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = MODEL
    response = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(
        request)
    expected = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(expected)
    assert json_format.ParseDict(answer["metadata"]["signature_def"],
                                 get_model_metadata_pb2.SignatureDefMap()) == expected


# Requests gRPC refuses too: REST must answer with gRPC's message.
SAME_AS_GRPC = {
    "k-zero": ({"inputs": {"history": [["item_1"]], "k": 0}},
               {"history": ([["item_1"]], tf.string), "k": (0, tf.int32)}, None, MODEL),
    "too-many-rows": ({"inputs": {"history": [["item_1"]] * 17, "k": 2}},
                      {"history": ([["item_1"]] * 17, tf.string), "k": (2, tf.int32)}, None, MODEL),
    "k-not-scalar": ({"inputs": {"history": [["item_1"]], "k": [2]}},
                     {"history": ([["item_1"]], tf.string), "k": ([2], tf.int32)}, None, MODEL),
    "missing-input": ({"inputs": {"history": [["item_1"]]}},
                      {"history": ([["item_1"]], tf.string)}, None, MODEL),
    "extra-input": ({"inputs": {"history": [["item_1"]], "k": 2, "colour": [1]}},
                    {"history": ([["item_1"]], tf.string), "k": (2, tf.int32),
                     "colour": ([1], tf.int32)}, None, MODEL),
    "long-id": ({"inputs": {"history": [["i" * 300]], "k": 2}},
                {"history": ([["i" * 300]], tf.string), "k": (2, tf.int32)}, None, MODEL),
    "unknown-signature": ({"signature_name": "nope", "inputs": {}}, {}, "nope", MODEL),
    "unknown-model": ({"inputs": {}}, {}, None, "other"),
}


@pytest.mark.parametrize("kind", sorted(SAME_AS_GRPC))
def test_errors_carry_grpcs_message_and_tf_servings_http_status(server, channel, kind):
  body, grpc_inputs, signature, name = SAME_AS_GRPC[kind]
  code, details = _grpc_error(channel, grpc_inputs, signature, name)
  status, answer, content_type = _call(server.rest_port, "POST",
                                       f"/v1/models/{name}:predict", body)
  assert answer == {"error": details}
  assert content_type == "application/json"
  assert status == {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.NOT_FOUND: 404,
                    grpc.StatusCode.FAILED_PRECONDITION: 400}[code]


@pytest.mark.parametrize("method, path, body, status, message", [
    ("POST", PREDICT, "{not json", 400, "JSON Parse error"),
    ("POST", PREDICT, "", 400, "The document is empty"),
    ("POST", PREDICT, "[1, 2]", 400, "Is not object"),
    ("POST", PREDICT, {"history": [["item_1"]]}, 400, "Missing 'inputs' or 'instances' key"),
    ("POST", PREDICT, {"inputs": {}, "instances": []}, 400, "only one of"),
    ("POST", PREDICT, {"signature_name": 3, "inputs": {}}, 400, "must be a string"),
    ("POST", PREDICT, {"inputs": {"history": [["a", "b"], ["c"]], "k": 2}}, 400,
     "not a dense tensor"),
    ("POST", PREDICT, {"inputs": {"history": [["a"]], "k": "2"}}, 400,
     'JSON value "2" is not of expected type int32'),
    ("POST", PREDICT, {"inputs": {"history": [[{"b64": "%%%"}]], "k": 2}}, 400,
     "Unable to base64 decode"),
    ("POST", PREDICT, {"inputs": [["item_1"]]}, 400, "'inputs' is a plain value or list"),
    ("POST", PREDICT, {"instances": [{"history": ["item_1"], "k": 2}]}, 400,
     "send the columnar format ('inputs') instead"),
    ("POST", PREDICT, {"signature_name": "query_embedding", "instances": []}, 400,
     "non-empty list"),
    ("POST", PREDICT, {"signature_name": "query_embedding",
                       "instances": [["item_1"], ["item_2", "item_3"]]}, 400,
     "every instance must have the same shape"),
    ("POST", PREDICT, {"signature_name": "query_embedding",
                       "instances": [{"history": ["item_1"], "k": 1}]}, 400,
     "unexpected input(s) ['k']"),
    ("POST", f"/v1/models/{MODEL}/versions/7:predict", {"inputs": {}}, 404,
     "Servable not found for request: Specific(seqrec, 7)"),
    ("POST", f"/v1/models/{MODEL}/labels/gold:predict", {"inputs": {}}, 400, "gold"),
    ("POST", f"/v1/models/{MODEL}/versions/99999999999999999999:predict", {}, 400,
     "Failed to convert version"),
    ("POST", f"/v1/models/{MODEL}:classify", {}, 501, "only predict"),
    ("POST", f"/v1/models/{MODEL}:explode", {}, 400, "Malformed request"),
    ("GET", f"/v1/models/{MODEL}/versions/3", None, 404, "Could not find version 3"),
    ("GET", "/v1/models/other", None, 404, "Could not find any versions of model other"),
    ("GET", "/v1/models", None, 400, "Missing model name"),
    ("DELETE", f"/v1/models/{MODEL}", None, 400, "Malformed request"),
    ("GET", "/index.html", None, 404, "Not found"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 40 and "/" not in v else None)
def test_bad_requests_get_json_errors_with_tf_servings_status(server, method, path, body,
                                                              status, message):
  answer_status, answer, content_type = _call(server.rest_port, method, path, body)
  assert (answer_status, content_type) == (status, "application/json")
  assert list(answer) == ["error"] and message in answer["error"], answer


def test_an_oversized_body_is_refused_unread(export_dir, tmp_path):
  base = tmp_path / MODEL
  testing.push_version(export_dir, str(base), 1)
  server = _start(base, max_request_bytes=1000)
  try:
    with socket.create_connection((testing.LOOPBACK, server.rest_port), timeout=10) as sock:
      # Declares 100 MB and sends none of it: the answer must not wait for the body.
      sock.sendall(f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n"
                   f"Content-Type: application/json\r\n\r\n".encode())
      reply = b""
      while chunk := sock.recv(65536):
        reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert b"Connection: close" in head
    assert "at most 1000" in json.loads(body)["error"]
    # Within the limit, the same server answers.
    body = {"inputs": {"history": [["item_1"]], "k": 2}}
    assert _call(server.rest_port, "POST", PREDICT, body)[0] == 200
  finally:
    server.stop(grace=1)


def test_keep_alive_serves_several_calls_on_one_connection(server):
  connection = http.client.HTTPConnection(testing.LOOPBACK, server.rest_port, timeout=30)
  try:
    for k in (1, 2, 3):
      connection.request("POST", PREDICT, json.dumps({"inputs": {"history": [["item_1"]],
                                                                  "k": k}}))
      response = connection.getresponse()
      assert len(json.loads(response.read())["outputs"]["item_ids"][0]) == k
  finally:
    connection.close()


def test_the_token_is_checked_on_every_rest_call(export_dir, tmp_path):
  base = tmp_path / MODEL
  testing.push_version(export_dir, str(base), 1)
  server = _start(base, token=TOKEN)
  calls = [("POST", PREDICT, {"inputs": {"history": [["item_1"]], "k": 2}}),
           ("GET", f"/v1/models/{MODEL}", None), ("GET", f"/v1/models/{MODEL}/metadata", None)]
  try:
    for method, path, body in calls:
      for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        status, answer, _ = _call(server.rest_port, method, path, body, headers)
        assert status == 401 and "bearer token" in answer["error"], (path, headers)
      status, _, _ = _call(server.rest_port, method, path, body,
                           {"Authorization": f"Bearer {TOKEN}"})
      assert status == 200, path
  finally:
    server.stop(grace=1)


def test_rest_serves_tls_with_the_grpc_certificates(export_dir, tmp_path, tls_files):
  base = tmp_path / MODEL
  testing.push_version(export_dir, str(base), 1)
  with pytest.raises(ValueError, match="TLS for both APIs"):
    _start(base, credentials=security.server_credentials(tls_files["server"],
                                                         tls_files["server-key"]))
  server = _start(
      base, credentials=security.server_credentials(
          tls_files["server"], tls_files["server-key"], tls_files["ca"]),
      rest_ssl_context=security.ssl_context(tls_files["server"], tls_files["server-key"],
                                            tls_files["ca"]))
  try:
    client = ssl.create_default_context(cafile=tls_files["ca"])
    client.load_cert_chain(tls_files["client"], tls_files["client-key"])
    assert _call(server.rest_port, "GET", f"/v1/models/{MODEL}", context=client)[0] == 200
    stranger = ssl.create_default_context(cafile=tls_files["ca"])
    stranger.load_cert_chain(tls_files["stranger"], tls_files["stranger-key"])
    for context in (stranger, ssl.create_default_context(cafile=tls_files["other-ca"])):
      with pytest.raises((ssl.SSLError, ConnectionError)):
        _call(server.rest_port, "GET", f"/v1/models/{MODEL}", context=context)
    with pytest.raises((http.client.HTTPException, ConnectionError, json.JSONDecodeError)):
      _call(server.rest_port, "GET", f"/v1/models/{MODEL}")   # plaintext
  finally:
    server.stop(grace=0)


def _gated_server(export_dir, tmp_path, **kwargs):
  base = tmp_path / MODEL
  testing.push_version(export_dir, str(base), 1)
  loader = lambda path, version: testing.GatedServable(servable_lib.Servable(path, version))
  server = _start(base, loader=loader, **kwargs)
  return server, server.watcher.servable()


def _in_thread(function):
  result = {}
  thread = threading.Thread(target=lambda: result.setdefault("value", function()), daemon=True)
  thread.start()
  return thread, result


def test_rest_and_grpc_share_the_concurrency_cap(export_dir, tmp_path):
  server, gated = _gated_server(export_dir, tmp_path, max_concurrent_requests=2)
  body = {"inputs": {"history": [["item_1"]], "k": 2}}
  ch = grpc.insecure_channel(f"{testing.LOOPBACK}:{server.port}")
  try:
    held_rest = _in_thread(lambda: _call(server.rest_port, "POST", PREDICT, body))
    request = testing.predict_request(MODEL, testing.string_tensor([b"item_1"], [1, 1]), 2)
    held_grpc = prediction_service_pb2_grpc.PredictionServiceStub(ch).Predict.future(
        request, timeout=60)
    assert testing.wait_for(lambda: gated.waiting == 2, timeout=30)
    status, answer, _ = _call(server.rest_port, "POST", PREDICT, body)
    assert status == 429 and "busy" in answer["error"]
    assert _call(server.rest_port, "GET", f"/v1/models/{MODEL}")[0] == 200   # not capped
    gated.release()
    held_rest[0].join(30)
    assert held_rest[1]["value"][0] == 200
    assert held_grpc.result(timeout=30).model_spec.version.value == 1
  finally:
    gated.release()
    ch.close()
    server.stop(grace=1)


def test_a_rest_call_past_its_deadline_runs_no_model(export_dir, tmp_path):
  server, gated = _gated_server(export_dir, tmp_path, rest_timeout_ms=300)
  try:
    held = _in_thread(lambda: _call(server.rest_port, "POST", PREDICT, {
        "inputs": {"history": [["item_1"]], "k": 2}}))
    assert testing.wait_for(lambda: gated.waiting == 1, timeout=30)
    time.sleep(0.5)
    gated.release()
    held[0].join(30)
    status, answer, _ = held[1]["value"]
    assert status == 504 and "deadline" in answer["error"]
    assert gated.runs == 0
  finally:
    gated.release()
    server.stop(grace=1)


def test_a_client_that_hung_up_runs_no_model(export_dir, tmp_path):
  server, gated = _gated_server(export_dir, tmp_path)
  try:
    body = json.dumps({"inputs": {"history": [["item_1"]], "k": 2}}).encode()
    with socket.create_connection((testing.LOOPBACK, server.rest_port), timeout=10) as sock:
      sock.sendall(f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}"
                   f"\r\n\r\n".encode() + body)
      assert testing.wait_for(lambda: gated.waiting == 1, timeout=30)
    gated.release()
    assert testing.wait_for(lambda: server.guard.active() == 0, timeout=30)
    assert gated.runs == 0
  finally:
    gated.release()
    server.stop(grace=1)


def test_errors_name_no_server_path(export_dir, tmp_path):
  base = tmp_path / MODEL
  testing.push_version(export_dir, str(base), 1)
  server = _start(base)
  try:
    testing.push_broken_version(str(base), 2)
    assert testing.wait_for(lambda: 2 in server.watcher.version_states() and
                            server.watcher.version_states()[2].state == "END", timeout=60)
    answers = [_call(server.rest_port, "GET", f"/v1/models/{MODEL}")[1],
               _call(server.rest_port, "GET", f"/v1/models/{MODEL}/versions/2")[1],
               _call(server.rest_port, "POST", f"/v1/models/{MODEL}/versions/2:predict",
                     {"inputs": {}})[1]]
    assert "saved_model.pb" in json.dumps(answers[0])   # the load error is reported...
    for answer in answers:
      assert str(tmp_path) not in json.dumps(answer), answer   # ...without its path
  finally:
    server.stop(grace=1)


def test_rest_flags_accept_tf_servings_spellings(tmp_path):
  args = server_lib.parse_args(["--model-base-path", str(tmp_path)])
  assert args.rest_port is None and args.rest_timeout_ms == rest.DEFAULT_TIMEOUT_MS
  for flags in (["--rest-port", "8501", "--rest-api-timeout-in-ms", "500"],
                ["--rest_api_port=8501", "--rest_api_timeout_in_ms=500"]):
    args = server_lib.parse_args(["--model-base-path", str(tmp_path)] + flags)
    assert (args.rest_port, args.rest_timeout_ms) == (8501, 500)


def test_the_command_prints_the_rest_address(export_dir, tmp_path):
  base = tmp_path / MODEL
  testing.push_version(export_dir, str(base), 1)
  with testing.ServerProcess.local(str(base), MODEL, extra_args=["--rest-port", "0"]) as process:
    prefix = "REST API on http://127.0.0.1:"
    assert testing.wait_for(lambda: any(l.startswith(prefix) for l in process.output), 30)
    line = next(l for l in process.output if l.startswith(prefix))
    port = int(line.rsplit(":", 1)[1].split("/")[0])
    status, answer, _ = _call(port, "POST", PREDICT, {"inputs": {"history": [["item_1"]],
                                                                  "k": 2}})
    assert status == 200 and len(answer["outputs"]["item_ids"][0]) == 2


def test_connections_beyond_the_cap_are_closed_at_once():
  call_guard = guard.CallGuard(None, 1, [])
  server = rest.RestServer(rest.RestApi(None, None, call_guard), call_guard, testing.LOOPBACK,
                           0, max_request_bytes=1000, max_connections=1)
  server.start()
  try:
    with socket.create_connection((testing.LOOPBACK, server.port), timeout=10) as idle:
      idle.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")   # holds the only slot
      assert idle.recv(65536).startswith(b"HTTP/1.1 400")
      with socket.create_connection((testing.LOOPBACK, server.port), timeout=10) as extra:
        assert extra.recv(1) == b""   # closed by the server, unanswered
    # The slot is free again once the first connection's thread has seen it end.
    def answered():
      try:
        return _call(server.port, "GET", "/v1/models")[0] == 400
      except ConnectionError:
        return False
    assert testing.wait_for(answered, 10)
  finally:
    server.stop(grace=0)


class _Exploding:
  """A servable whose model run fails with an unexpected error naming a path."""

  def __init__(self, servable, path):
    self._servable = servable
    self._path = path

  def __getattr__(self, name):
    return getattr(self._servable, name)

  def run(self, *args, **kwargs):
    raise RuntimeError(f"unexpected failure reading {self._path}")


def test_an_unexpected_error_is_a_generic_500(export_dir, tmp_path):
  base = tmp_path / MODEL
  testing.push_version(export_dir, str(base), 1)
  server = _start(base, loader=lambda path, version: _Exploding(
      servable_lib.Servable(path, version), path))
  try:
    status, answer, _ = _call(server.rest_port, "POST", PREDICT, {
        "inputs": {"history": [["item_1"]], "k": 2}})
    assert (status, answer) == (500, {"error": guard.INTERNAL_MESSAGE})
    assert _call(server.rest_port, "GET", f"/v1/models/{MODEL}")[0] == 200   # still serving
  finally:
    server.stop(grace=1)


def test_a_rest_port_in_use_is_an_error_at_construction(tmp_path):
  with socket.socket() as taken:
    taken.bind((testing.LOOPBACK, 0))
    taken.listen()
    with pytest.raises(OSError):
      server_lib.ModelServer(MODEL, str(tmp_path), port=0, host=testing.LOOPBACK,
                             rest_port=taken.getsockname()[1])
