"""Checks a Predict request before any model runs; bad input becomes a clear gRPC error."""

import dataclasses
import math
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

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
  max_elements: int = 262144         # values of any one input (rows x columns)
  max_id_bytes: int = 256            # bytes of one string value (an item id)
  max_list_length: int = 10000       # columns of any other per-row list (e.g. rule lists)

  def __post_init__(self):
    if min(dataclasses.astuple(self)) < 1:
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


def _refuse(message: str) -> RequestError:
  return RequestError(grpc.StatusCode.INVALID_ARGUMENT, message)


def declared_shape(signature_name: str, name: str,
                   proto: tensor_pb2.TensorProto) -> List[int]:
  """The dimensions ``proto`` declares; they must all be known (>= 0)."""
  if proto.tensor_shape.unknown_rank or any(d.size < 0 for d in proto.tensor_shape.dim):
    raise _refuse(f"{signature_name}: input '{name}' must have a fully known shape, got "
                  f"{tf.TensorShape(proto.tensor_shape)}")
  return [d.size for d in proto.tensor_shape.dim]


def check_rows(signature_name: str, name: str, shape: Sequence[int], limits: Limits) -> None:
  """A per-row input (declared rank 2: ``history``, a rule list) must fit the row and
  column limits; ``history`` has its own column limit, every other list shares one."""
  batch, length = shape
  if batch > limits.max_batch_size:
    raise _refuse(f"{signature_name}: input '{name}' has {batch} rows; "
                  f"this server accepts at most {limits.max_batch_size} per request")
  if name == contract.INPUT_HISTORY and length > limits.max_history_length:
    raise _refuse(f"{signature_name}: input '{name}' has {length} "
                  f"columns; this server accepts histories of at most "
                  f"{limits.max_history_length} items")
  if name != contract.INPUT_HISTORY and length > limits.max_list_length:
    raise _refuse(f"{signature_name}: input '{name}' has {length} columns; this server "
                  f"accepts lists of at most {limits.max_list_length} values")


def check_same_rows(signature_name: str, arrays: Mapping[str, np.ndarray],
                    specs: Mapping[str, tf.TensorSpec]) -> None:
  """Every per-row input (rank 2) has one row per ``history`` row."""
  rows = {name: array.shape[0] for name, array in sorted(arrays.items())
          if specs[name].shape.rank == 2}
  if len(set(rows.values())) <= 1:
    return
  first = contract.INPUT_HISTORY if contract.INPUT_HISTORY in rows else min(rows)
  other = next(name for name in sorted(rows) if rows[name] != rows[first])
  raise _refuse(f"{signature_name}: input '{other}' has {rows[other]} rows and "
                f"'{first}' has {rows[first]}; every per-row input needs one row per "
                f"'{first}' row")


def check_size(signature_name: str, name: str, proto: tensor_pb2.TensorProto,
               shape: Sequence[int], limits: Limits) -> None:
  """Declared element count and string value lengths within ``limits``; no copy made."""
  elements = 0 if 0 in shape else math.prod(shape)
  if elements > limits.max_elements:
    raise _refuse(f"{signature_name}: input '{name}' declares {elements} values; this "
                  f"server accepts at most {limits.max_elements} per input")
  if proto.dtype != types_pb2.DT_STRING:
    return
  if len(proto.string_val) > elements:
    raise _refuse(f"{signature_name}: input '{name}' holds {len(proto.string_val)} values "
                  f"for shape {_shape_text(shape)}")
  longest = max(map(len, proto.string_val), default=0)
  if longest > limits.max_id_bytes:
    raise _refuse(f"{signature_name}: input '{name}' holds a value of {longest} bytes; "
                  f"this server accepts ids of at most {limits.max_id_bytes} bytes")


def tensor_to_array(signature_name: str, name: str, proto: tensor_pb2.TensorProto,
                    spec: tf.TensorSpec, limits: Limits) -> np.ndarray:
  """Converts one request tensor after checking dtype, declared shape and size.

  Nothing is allocated for the tensor before every check has passed.
  """
  expected_dtype = spec.dtype.as_datatype_enum
  if proto.dtype != expected_dtype:
    raise _refuse(f"{signature_name}: input '{name}' must be {spec.dtype.name} "
                  f"({_dtype_name(expected_dtype)}), got {_dtype_name(proto.dtype)}")
  shape = declared_shape(signature_name, name, proto)
  expected_shape = spec.shape
  if expected_shape.rank is not None and (
      len(shape) != expected_shape.rank or not expected_shape.is_compatible_with(shape)):
    raise _refuse(f"{signature_name}: input '{name}' must have shape "
                  f"{_shape_text(expected_shape.as_list())} (rank {expected_shape.rank}), "
                  f"got shape {_shape_text(shape)}")
  if len(shape) == 2:
    check_rows(signature_name, name, shape, limits)
  check_size(signature_name, name, proto, shape, limits)
  try:
    array = tf.make_ndarray(proto)
  except Exception as e:  # pylint: disable=broad-except
    raise _refuse(f"{signature_name}: input '{name}' is not a valid {spec.dtype.name} "
                  f"tensor of shape {_shape_text(shape)}") from e
  return array


def check_k(signature_name: str, k: np.ndarray, num_items: int) -> None:
  """``k`` (already an int32 scalar) must be in ``1 .. num_items``."""
  value = int(k)
  if value < 1 or value > num_items:
    raise RequestError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"{signature_name}: input '{contract.INPUT_K}' must be between 1 and the "
        f"catalogue size {num_items}, got {value}")


def check_diversity(signature_name: str, weight: np.ndarray) -> None:
  """``diversity`` (already a float32 scalar) must be in ``[0, 1]``."""
  value = float(weight)
  if not 0.0 <= value <= 1.0:   # NaN fails too
    raise RequestError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"{signature_name}: input '{contract.INPUT_DIVERSITY}' must be between 0 (off) "
        f"and 1, got {value}")


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
    limits: size limits (rows and columns of per-row inputs, values, id bytes).
    num_items: catalogue size, the largest valid ``k``.

  Returns:
    name -> NumPy array, with the dtype and rank of the signature.

  Raises:
    RequestError: INVALID_ARGUMENT naming the input and what was expected.
  """
  check_input_names(signature_name, specs, inputs)
  arrays = {}
  for name in sorted(specs):
    arrays[name] = tensor_to_array(signature_name, name, inputs[name], specs[name], limits)
  check_same_rows(signature_name, arrays, specs)
  if contract.INPUT_K in arrays and arrays[contract.INPUT_K].ndim == 0:
    check_k(signature_name, arrays[contract.INPUT_K], num_items)
  if contract.INPUT_DIVERSITY in arrays and arrays[contract.INPUT_DIVERSITY].ndim == 0:
    check_diversity(signature_name, arrays[contract.INPUT_DIVERSITY])
  return arrays
