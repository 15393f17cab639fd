"""serving.servable and serving.validation on the ``recommend`` (business rules) signature."""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import client as client_lib
from serving import contract
from serving import server as server_lib
from serving import testing
from serving import validation
from tests.trainer import test_rules as rules_lib

MODEL = "seqrec"
NUM_ITEMS = 30
LIMITS = validation.Limits(max_batch_size=8, max_history_length=20, max_list_length=12)


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
  return rules_lib._export(tmp_path_factory.mktemp("rules"), NUM_ITEMS, seed=4)  # pylint: disable=protected-access


@pytest.fixture(scope="module")
def server(catalogue, tmp_path_factory):
  base = tmp_path_factory.mktemp("served") / MODEL
  testing.push_version(catalogue["path"], str(base), 1)
  running = server_lib.ModelServer(MODEL, str(base), port=0, host=testing.LOOPBACK,
                                   poll_seconds=0.2, limits=LIMITS).start()
  yield running
  running.stop(grace=1)


@pytest.fixture
def channel(server):
  with grpc.insecure_channel(f"{testing.LOOPBACK}:{server.port}") as ch:
    yield ch


def _request(inputs, **overrides):
  request = predict_pb2.PredictRequest()
  request.model_spec.name = MODEL
  request.model_spec.signature_name = contract.RULES_SIGNATURE
  for name, value in {**inputs, **overrides}.items():
    request.inputs[name].CopyFrom(value if isinstance(value, tensor_pb2.TensorProto)
                                  else tf.make_tensor_proto(value))
  return request


def _predict(channel, request):
  response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
      request, timeout=10)
  return {alias: tf.make_ndarray(t) for alias, t in response.outputs.items()}


HISTORIES = [["item_1", "item_7", "unknown-id"], ["item_20"], []]
RULES = dict(exclude=[["item_2", "nope"], [], ["item_0"]],
             allow=[[], [f"item_{i}" for i in range(10)], []],
             require=[["cat_1"], [], ["no-such-value"]],
             exclude_attributes=[["brand_0"], ["brand_2"], []])


@pytest.mark.parametrize("keep_history, diversity", [(False, 0.0), (True, 0.0), (False, 0.4)])
def test_grpc_answers_like_the_in_process_call(catalogue, channel, keep_history, diversity):
  inputs = rules_lib.rules_inputs(HISTORIES, 4, keep_history=keep_history,
                                  diversity=diversity, **RULES)
  local = catalogue["loaded"].signatures[contract.RULES_SIGNATURE](**inputs)
  served = _predict(channel, _request({n: v.numpy() for n, v in inputs.items()}))
  assert served[contract.OUTPUT_ITEM_IDS].tolist() == local[
      contract.OUTPUT_ITEM_IDS].numpy().tolist()
  np.testing.assert_allclose(served[contract.OUTPUT_SCORES], local[contract.OUTPUT_SCORES],
                             rtol=1e-5, atol=1e-6)
  assert served[contract.OUTPUT_NUM_UNKNOWN_RULES].tolist() == [1, 0, 1]
  assert served[contract.OUTPUT_NUM_UNKNOWN].tolist() == [1, 0, 0]


def test_client_sends_rules_per_history(catalogue, server):
  rules = [client_lib.Rules(*(RULES[key][row] for key in RULES)) for row in range(3)]
  with client_lib.RecommenderClient(f"{testing.LOOPBACK}:{server.port}", MODEL) as client:
    result = client.recommend_with_rules(HISTORIES, 4, rules)
    plain = client.recommend_details(HISTORIES, 4)
  local = catalogue["loaded"].signatures[contract.RULES_SIGNATURE](
      **rules_lib.rules_inputs(HISTORIES, 4, **RULES))
  assert [[i for i, _ in row] for row in result.items] == [
      [i.decode() for i in row if i] for row in local[contract.OUTPUT_ITEM_IDS].numpy()]
  assert result.num_unknown_rules == [1, 0, 1] and result.num_unknown == [1, 0, 0]
  assert result.items[2] == []                    # an unknown required value matches nothing
  assert plain.num_unknown_rules is None and len(plain.items[2]) == 4   # popularity fallback


def test_cli_rule_flags_reach_the_rules_signature(server, capsys):
  target = f"{testing.LOOPBACK}:{server.port}"
  code = client_lib.main(["recommend", "--server", target, "--history", "item_1", "-k", "3",
                          "--allow", "item_1", "item_2", "item_3", "nope", "--keep-history",
                          "--exclude", "item_3", "--diversity", "0.5"])
  lines = capsys.readouterr().out.splitlines()
  assert code == 0
  assert "1 unknown rule values" in lines[0]
  assert sorted(line.split("\t")[1] for line in lines[2:]) == ["item_1", "item_2"]
  with pytest.raises(SystemExit):
    client_lib.parse_args(["recommend", "--diversity", "1.5"])


def _valid_inputs():
  return {n: v.numpy() for n, v in rules_lib.rules_inputs([["item_1"], ["item_2"]], 3).items()}


@pytest.mark.parametrize("overrides, message", [
    ({contract.INPUT_EXCLUDE_IDS: np.array([[b"item_1"] * 13] * 2, dtype=object)},
     "input 'exclude_ids' has 13 columns; this server accepts lists of at most 12 values"),
    ({contract.INPUT_ALLOW_IDS: np.array([[b"item_1"]] * 3, dtype=object)},
     "input 'allow_ids' has 3 rows and 'history' has 2; every per-row input needs one row "
     "per 'history' row"),
    ({contract.INPUT_DIVERSITY: np.array(1.5, np.float32)},
     "input 'diversity' must be between 0 (off) and 1, got 1.5"),
    ({contract.INPUT_DIVERSITY: np.array(np.nan, np.float32)}, "input 'diversity' must be"),
    ({contract.INPUT_KEEP_HISTORY: np.array(1, np.int32)},
     "input 'keep_history' must be bool (DT_BOOL), got DT_INT32"),
    ({contract.INPUT_REQUIRE_ATTRIBUTES: np.array([b"cat_1", b""], dtype=object)},
     "input 'require_attributes' must have shape [None, None] (rank 2)"),
    ({contract.INPUT_K: np.array(NUM_ITEMS + 1, np.int32)}, "between 1 and the catalogue size"),
])
def test_bad_rule_inputs_are_invalid_argument(channel, overrides, message):
  with pytest.raises(grpc.RpcError) as error:
    _predict(channel, _request(_valid_inputs(), **overrides))
  assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
  assert message in error.value.details()


def test_missing_rule_input_is_invalid_argument(channel):
  inputs = _valid_inputs()
  del inputs[contract.INPUT_KEEP_HISTORY]
  with pytest.raises(grpc.RpcError) as error:
    _predict(channel, _request(inputs))
  assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
  assert "missing input(s) ['keep_history']" in error.value.details()


@pytest.mark.parametrize("shape, message", [
    ([2, 10 ** 9], "input 'exclude_ids' has 1000000000 columns"),
    ([10 ** 6, 1], "input 'exclude_ids' has 1000000 rows; this server accepts at most 8"),
])
def test_huge_rule_list_is_refused_before_it_is_materialised(channel, monkeypatch, shape,
                                                              message):
  real, sizes = tf.make_ndarray, []

  def spy(proto):
    sizes.append(int(np.prod([d.size for d in proto.tensor_shape.dim])))
    return real(proto)

  monkeypatch.setattr(tf, "make_ndarray", spy)
  request = _request(_valid_inputs(), **{
      contract.INPUT_EXCLUDE_IDS: testing.string_tensor([b"x"], shape)})
  with pytest.raises(grpc.RpcError) as error:
    _predict(channel, request)
  monkeypatch.undo()
  assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
  assert message in error.value.details()
  assert max(sizes, default=0) < 1000


def test_serving_default_of_the_same_version_is_unchanged(catalogue, channel):
  history = np.array([[b"item_1", b"item_7"]], dtype=object)
  request = _request({contract.INPUT_HISTORY: history, contract.INPUT_K: np.array(5, np.int32)})
  request.model_spec.signature_name = contract.DEFAULT_SIGNATURE
  served = _predict(channel, request)
  local = catalogue["loaded"].signatures[contract.DEFAULT_SIGNATURE](
      history=tf.constant(history), k=tf.constant(5))
  assert served[contract.OUTPUT_ITEM_IDS].tolist() == local[
      contract.OUTPUT_ITEM_IDS].numpy().tolist()
