"""serving.servable on the explain signature: served as in process, validated, fallback rows."""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import contract
from serving import servable as servable_lib
from tests.explain_model import CATALOGUE

HISTORIES = [["item1", "item2", "item3"], ["item4", "mystery", ""], ["", "", ""]]
EXPLAIN_OUTPUTS = {contract.OUTPUT_ITEM_IDS, contract.OUTPUT_SCORES,
                   contract.OUTPUT_BECAUSE_IDS, contract.OUTPUT_BECAUSE_WEIGHTS,
                   contract.OUTPUT_ATTENTION, contract.OUTPUT_ATTENTION_IDS,
                   contract.OUTPUT_NUM_UNKNOWN}


def _predict(target, history, k, signature=contract.EXPLAIN_SIGNATURE, output_filter=()):
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
  served = _predict(explain_target, HISTORIES, 4)
  assert set(served) == EXPLAIN_OUTPUTS
  loaded = tf.saved_model.load(explain_export)
  local = loaded.signatures[contract.EXPLAIN_SIGNATURE](
      history=tf.constant(HISTORIES), k=tf.constant(4))
  for alias in (contract.OUTPUT_BECAUSE_IDS, contract.OUTPUT_ATTENTION_IDS):
    np.testing.assert_array_equal(served[alias][:2], local[alias].numpy()[:2])
  for alias in (contract.OUTPUT_BECAUSE_WEIGHTS, contract.OUTPUT_ATTENTION):
    np.testing.assert_allclose(served[alias][:2], local[alias].numpy()[:2], rtol=1e-5,
                               atol=1e-6)
  default = _predict(explain_target, HISTORIES, 4, signature=contract.DEFAULT_SIGNATURE)
  np.testing.assert_array_equal(served[contract.OUTPUT_ITEM_IDS],
                                default[contract.OUTPUT_ITEM_IDS])
  np.testing.assert_allclose(served[contract.OUTPUT_SCORES], default[contract.OUTPUT_SCORES])
  np.testing.assert_array_equal(served[contract.OUTPUT_NUM_UNKNOWN], [0, 1, 0])


def test_history_without_known_items_gets_the_popularity_fallback_and_no_reasons(
    explain_target):
  served = _predict(explain_target, HISTORIES, 4)
  assert served[contract.OUTPUT_ITEM_IDS][2].astype(str).tolist() == CATALOGUE[:4]
  np.testing.assert_array_equal(served[contract.OUTPUT_SCORES][2], 0.0)
  assert set(served[contract.OUTPUT_BECAUSE_IDS][2].ravel()) == {b""}


@pytest.mark.parametrize("k", [0, len(CATALOGUE) + 1])
def test_explain_is_validated_as_serving_default(explain_target, k):
  with pytest.raises(grpc.RpcError) as error:
    _predict(explain_target, HISTORIES, k)
  assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
  assert f"explain: input 'k' must be between 1 and the catalogue size {len(CATALOGUE)}" in (
      error.value.details())


def test_output_filter_selects_explain_outputs(explain_target):
  served = _predict(explain_target, HISTORIES, 2, output_filter=[contract.OUTPUT_BECAUSE_IDS])
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
  history = np.array(HISTORIES, dtype=object).astype(bytes).astype(object)
  outputs = servable.run(contract.EXPLAIN_SIGNATURE, {contract.INPUT_HISTORY: history,
                                                      contract.INPUT_K: np.array(3, np.int32)})
  assert outputs[contract.OUTPUT_ITEM_IDS][2].astype(str).tolist() == CATALOGUE[:3]
  np.testing.assert_array_equal(outputs[contract.OUTPUT_SCORES][2], 0.0)
  assert (outputs[contract.OUTPUT_SCORES][:2] >= 1.0).all()
