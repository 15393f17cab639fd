"""Checks a Predict request before any model runs; bad input becomes a clear gRPC error."""

import dataclasses
from typing import Dict, Iterable, Mapping, Optional, Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.framework import types_pb2

from serving import contract


class RequestError(Exception):
  """A request the server refuses: gRPC status ``code`` and a readable message."""

  def __init__(self, code: grpc.StatusCode, message: str):
    super().__init__(message)
    self.code = code
    self.message = message


@dataclasses.dataclass(frozen=True)
class Limits:
  """Largest request the server accepts (bigger ones get INVALID_ARGUMENT)."""
  max_batch_size: int = 1024         # rows of ``history``
  max_history_length: int = 1000     # columns of ``history`` (padding included)

  def __post_init__(self):
    if self.max_batch_size < 1 or self.max_history_length < 1:
      raise ValueError(f"Limits must be >= 1, got {self}")


def _dtype_name(dtype_enum: int) -> str:
  return types_pb2.DataType.Name(dtype_enum) if dtype_enum in types_pb2.DataType.values() \
      else f"unknown dtype {dtype_enum}"


def _shape_text(shape: Iterable[Optional[int]]) -> str:
  return "[" + ", ".join("None" if d is None else str(d) for d in shape) + "]"


def check_input_names(signature_name: str, expected: Iterable[str],
                      given: Iterable[str]) -> None:
  """The request must carry exactly the signature's inputs (as TF Serving demands)."""
  expected, given = set(expected), set(given)
  if expected == given:
    return
  missing, extra = sorted(expected - given), sorted(given - expected)
  parts = []
  if missing:
    parts.append(f"missing input(s) {missing}")
  if extra:
    parts.append(f"unexpected input(s) {extra}")
  raise RequestError(
      grpc.StatusCode.INVALID_ARGUMENT,
      f"{signature_name}: {'; '.join(parts)}; the signature takes exactly "
      f"{sorted(expected)}")


def tensor_to_array(signature_name: str, name: str, proto: tensor_pb2.TensorProto,
                    spec: tf.TensorSpec) -> np.ndarray:
  """Converts one request tensor after checking its dtype and shape against ``spec``."""
  expected_dtype = spec.dtype.as_datatype_enum
  if proto.dtype != expected_dtype:
    raise RequestError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"{signature_name}: input '{name}' must be {spec.dtype.name} "
        f"({_dtype_name(expected_dtype)}), got {_dtype_name(proto.dtype)}")
  if proto.tensor_shape.unknown_rank or any(d.size < 0 for d in proto.tensor_shape.dim):
    raise RequestError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"{signature_name}: input '{name}' must have a fully known shape, got "
        f"{tf.TensorShape(proto.tensor_shape)}")
  try:
    array = tf.make_ndarray(proto)
  except Exception as e:  # pylint: disable=broad-except
    raise RequestError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"{signature_name}: input '{name}' is not a valid {spec.dtype.name} tensor of "
        f"shape {_shape_text(d.size for d in proto.tensor_shape.dim)}: {e}") from e
  expected_shape = spec.shape
  if expected_shape.rank is not None and (
      array.ndim != expected_shape.rank or
      not expected_shape.is_compatible_with(array.shape)):
    raise RequestError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"{signature_name}: input '{name}' must have shape "
        f"{_shape_text(expected_shape.as_list())} (rank {expected_shape.rank}), got "
        f"shape {_shape_text(array.shape)}")
  return array


def check_history(signature_name: str, history: np.ndarray, limits: Limits) -> None:
  """``history`` (already rank 2) must fit the server's size limits."""
  batch, length = history.shape
  if batch > limits.max_batch_size:
    raise RequestError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"{signature_name}: input '{contract.INPUT_HISTORY}' has {batch} rows; this "
        f"server accepts at most {limits.max_batch_size} per request")
  if length > limits.max_history_length:
    raise RequestError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"{signature_name}: input '{contract.INPUT_HISTORY}' has {length} columns; "
        f"this server accepts histories of at most {limits.max_history_length} items")


def check_k(signature_name: str, k: np.ndarray, num_items: int) -> None:
  """``k`` (already an int32 scalar) must be in ``1 .. num_items``."""
  value = int(k)
  if value < 1 or value > num_items:
    raise RequestError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"{signature_name}: input '{contract.INPUT_K}' must be between 1 and the "
        f"catalogue size {num_items}, got {value}")


def check_output_filter(signature_name: str, output_filter: Sequence[str],
                        outputs: Iterable[str]) -> None:
  """Every alias of ``output_filter`` must be an output, each at most once."""
  outputs = sorted(outputs)
  seen = set()
  for alias in output_filter:
    if alias not in outputs:
      raise RequestError(
          grpc.StatusCode.INVALID_ARGUMENT,
          f"{signature_name}: output tensor alias not found in signature: '{alias}'; "
          f"outputs are {outputs}")
    if alias in seen:
      raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                         f"{signature_name}: duplicate output tensor alias: '{alias}'")
    seen.add(alias)


def request_arrays(signature_name: str, inputs: Mapping[str, tensor_pb2.TensorProto],
                   specs: Mapping[str, tf.TensorSpec], limits: Limits,
                   num_items: int) -> Dict[str, np.ndarray]:
  """Validates and converts every input of a Predict request.

  Args:
    signature_name: the signature the request runs (for messages).
    inputs: the request's ``inputs`` map.
    specs: the signature's input TensorSpecs by name.
    limits: size limits for ``history``.
    num_items: catalogue size, the largest valid ``k``.

  Returns:
    name -> NumPy array, with the dtype and rank of the signature.

  Raises:
    RequestError: INVALID_ARGUMENT naming the input and what was expected.
  """
  check_input_names(signature_name, specs, inputs)
  arrays = {}
  for name in sorted(specs):
    arrays[name] = tensor_to_array(signature_name, name, inputs[name], specs[name])
  if contract.INPUT_HISTORY in arrays and arrays[contract.INPUT_HISTORY].ndim == 2:
    check_history(signature_name, arrays[contract.INPUT_HISTORY], limits)
  if contract.INPUT_K in arrays and arrays[contract.INPUT_K].ndim == 0:
    check_k(signature_name, arrays[contract.INPUT_K], num_items)
  return arrays
