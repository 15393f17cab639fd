"""serving.servable and serving.validation on the ``recommend`` (business rules) and
``explain`` signatures."""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import client as client_lib
from serving import contract
from serving import servable as servable_lib
from serving import server as server_lib
from serving import testing
from serving import validation
from tests.explain_model import CATALOGUE
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


# The explain signature.

EXPLAIN_HISTORIES = [["item1", "item2", "item3"], ["item4", "mystery", ""], ["", "", ""]]
EXPLAIN_OUTPUTS = {contract.OUTPUT_ITEM_IDS, contract.OUTPUT_SCORES,
                   contract.OUTPUT_BECAUSE_IDS, contract.OUTPUT_BECAUSE_WEIGHTS,
                   contract.OUTPUT_ATTENTION, contract.OUTPUT_ATTENTION_IDS,
                   contract.OUTPUT_NUM_UNKNOWN}


def _predict_explain(target, history, k, signature=contract.EXPLAIN_SIGNATURE, output_filter=()):
  request = predict_pb2.PredictRequest()
  request.model_spec.name = contract.MODEL_NAME
  request.model_spec.signature_name = signature
  request.inputs[contract.INPUT_HISTORY].CopyFrom(tf.make_tensor_proto(history, tf.string))
  request.inputs[contract.INPUT_K].CopyFrom(tf.make_tensor_proto(k, tf.int32))
  request.output_filter.extend(output_filter)
  with grpc.insecure_channel(target) as channel:
    response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
        request, timeout=30)
  return {alias: tf.make_ndarray(t) for alias, t in response.outputs.items()}


def test_explain_is_served_as_the_model_answers_in_process(explain_target, explain_export):
  served = _predict_explain(explain_target, EXPLAIN_HISTORIES, 4)
  assert set(served) == EXPLAIN_OUTPUTS
  loaded = tf.saved_model.load(explain_export)
  local = loaded.signatures[contract.EXPLAIN_SIGNATURE](
      history=tf.constant(EXPLAIN_HISTORIES), k=tf.constant(4))
  for alias in (contract.OUTPUT_BECAUSE_IDS, contract.OUTPUT_ATTENTION_IDS):
    np.testing.assert_array_equal(served[alias][:2], local[alias].numpy()[:2])
  for alias in (contract.OUTPUT_BECAUSE_WEIGHTS, contract.OUTPUT_ATTENTION):
    np.testing.assert_allclose(served[alias][:2], local[alias].numpy()[:2], rtol=1e-5,
                               atol=1e-6)
  default = _predict_explain(explain_target, EXPLAIN_HISTORIES, 4, signature=contract.DEFAULT_SIGNATURE)
  np.testing.assert_array_equal(served[contract.OUTPUT_ITEM_IDS],
                                default[contract.OUTPUT_ITEM_IDS])
  np.testing.assert_allclose(served[contract.OUTPUT_SCORES], default[contract.OUTPUT_SCORES])
  np.testing.assert_array_equal(served[contract.OUTPUT_NUM_UNKNOWN], [0, 1, 0])


def test_history_without_known_items_gets_the_popularity_fallback_and_no_reasons(
    explain_target):
  served = _predict_explain(explain_target, EXPLAIN_HISTORIES, 4)
  assert served[contract.OUTPUT_ITEM_IDS][2].astype(str).tolist() == CATALOGUE[:4]
  np.testing.assert_array_equal(served[contract.OUTPUT_SCORES][2], 0.0)
  assert set(served[contract.OUTPUT_BECAUSE_IDS][2].ravel()) == {b""}


@pytest.mark.parametrize("k", [0, len(CATALOGUE) + 1])
def test_explain_is_validated_as_serving_default(explain_target, k):
  with pytest.raises(grpc.RpcError) as error:
    _predict_explain(explain_target, EXPLAIN_HISTORIES, k)
  assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
  assert f"explain: input 'k' must be between 1 and the catalogue size {len(CATALOGUE)}" in (
      error.value.details())


def test_output_filter_selects_explain_outputs(explain_target):
  served = _predict_explain(explain_target, EXPLAIN_HISTORIES, 2, output_filter=[contract.OUTPUT_BECAUSE_IDS])
  assert set(served) == {contract.OUTPUT_BECAUSE_IDS}


def test_fallback_replaces_what_the_model_answers_for_rows_without_known_items(explain_export):
  servable = servable_lib.Servable(explain_export, 1)
  model_explain = servable._functions[contract.EXPLAIN_SIGNATURE]   # pylint: disable=protected-access

  def shifted(**inputs):   # an answer the fallback must not keep: scores 1 higher, ids reversed
    outputs = dict(model_explain(**inputs))
    outputs[contract.OUTPUT_SCORES] = outputs[contract.OUTPUT_SCORES] + 1.0
    outputs[contract.OUTPUT_ITEM_IDS] = outputs[contract.OUTPUT_ITEM_IDS][:, ::-1]
    return outputs

  servable._functions[contract.EXPLAIN_SIGNATURE] = shifted   # pylint: disable=protected-access
  history = np.array(EXPLAIN_HISTORIES, dtype=object).astype(bytes).astype(object)
  outputs = servable.run(contract.EXPLAIN_SIGNATURE, {contract.INPUT_HISTORY: history,
                                                      contract.INPUT_K: np.array(3, np.int32)})
  assert outputs[contract.OUTPUT_ITEM_IDS][2].astype(str).tolist() == CATALOGUE[:3]
  np.testing.assert_array_equal(outputs[contract.OUTPUT_SCORES][2], 0.0)
  assert (outputs[contract.OUTPUT_SCORES][:2] >= 1.0).all()
