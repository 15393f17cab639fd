"""Finds the served SavedModel under a path and checks the signature bulk runs call.

Reads ``saved_model.pb`` only (no TensorFlow graph is loaded), so bad inputs fail fast.
"""

import dataclasses
import os
from typing import Any, Dict, Mapping, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from serving import contract

SAVED_MODEL_FILE = "saved_model.pb"
REQUIRED_INPUTS = (contract.INPUT_HISTORY, contract.INPUT_K)
REQUIRED_OUTPUTS = (contract.OUTPUT_ITEM_IDS, contract.OUTPUT_SCORES)


class ModelError(ValueError):
  """The model path or signature cannot serve a bulk run; the message says why."""


@dataclasses.dataclass(frozen=True)
class InputSpec:
  """One signature input: dtype and rank (-1: unknown); a rank >= 1 input is per row."""
  dtype: tf.DType
  rank: int


def _has_saved_model(path: str) -> bool:
  return tf.io.gfile.exists(os.path.join(path, SAVED_MODEL_FILE))


def resolve_model_dir(path: str) -> str:
  """The SavedModel folder at ``path``: itself, or its newest numeric version folder.

  ``path`` is a pushed version (``<serving>/<model>/<version>``), a PushedModel
  artifact, or a serving base (``<serving>/<model>``) holding version folders.
  """
  if not tf.io.gfile.isdir(path):
    raise ModelError(f"--model-dir {path}: no such folder")
  if _has_saved_model(path):
    return path
  versions = sorted((int(name.rstrip("/")) for name in tf.io.gfile.listdir(path)
                     if name.rstrip("/").isdigit()), reverse=True)
  for version in versions:
    folder = os.path.join(path, str(version))
    if _has_saved_model(folder):
      return folder
  raise ModelError(f"--model-dir {path}: no SavedModel there ({SAVED_MODEL_FILE}) and no "
                   "numeric version folder holding one; give the serving base "
                   "<serving>/<model> or a pushed version folder")


def _read_signature(model_dir: str, signature: str):
  proto = saved_model_pb2.SavedModel()
  with tf.io.gfile.GFile(os.path.join(model_dir, SAVED_MODEL_FILE), "rb") as f:
    try:
      proto.ParseFromString(f.read())
    except Exception as e:  # pylint: disable=broad-except
      raise ModelError(f"{model_dir}/{SAVED_MODEL_FILE} is not a SavedModel ({e})") from e
  signatures = proto.meta_graphs[0].signature_def if proto.meta_graphs else {}
  if signature not in signatures:
    raise ModelError(f"SavedModel {model_dir} has no signature '{signature}'; its "
                     f"signatures: {sorted(signatures)}")
  return signatures[signature]


def _rank(tensor_info) -> int:
  shape = tensor_info.tensor_shape
  return -1 if shape.unknown_rank else len(shape.dim)


def signature_inputs(model_dir: str, signature: str,
                     extra_inputs: Mapping[str, Any]) -> Dict[str, InputSpec]:
  """Specs of the signature's inputs besides history and k, all of them in ``extra_inputs``.

  Raises ModelError when the signature lacks the contract's inputs or outputs, or
  when ``extra_inputs`` misses one of its other inputs or names one it does not have.
  """
  definition = _read_signature(model_dir, signature)
  inputs, outputs = dict(definition.inputs), dict(definition.outputs)
  for kind, required, found in (("input", REQUIRED_INPUTS, inputs),
                                ("output", REQUIRED_OUTPUTS, outputs)):
    missing = [name for name in required if name not in found]
    if missing:
      raise ModelError(f"signature '{signature}' of {model_dir} has no {kind} "
                       f"{missing}; its {kind}s: {sorted(found)}")
  others = {name: info for name, info in inputs.items() if name not in REQUIRED_INPUTS}
  unknown = sorted(set(extra_inputs) - set(others))
  missing = sorted(set(others) - set(extra_inputs))
  if unknown or missing:
    raise ModelError(f"signature '{signature}' of {model_dir} takes the inputs "
                     f"{sorted(inputs)}; extra inputs missing: {missing}, unknown: {unknown}")
  return {name: InputSpec(tf.dtypes.as_dtype(info.dtype), _rank(info))
          for name, info in others.items()}


def request_tensors(specs: Mapping[str, InputSpec], values: Mapping[str, Any],
                    batch_size: int) -> Dict[str, tf.Tensor]:
  """The extra inputs of one call: rank-0 inputs as given, per-row inputs repeated per row."""
  return row_tensors(specs, [values] * batch_size)


def _per_row(spec: InputSpec, rows: Sequence[Any]) -> np.ndarray:
  """One input's per-row values as one array; string lists of unequal length padded with PAD."""
  if spec.dtype != tf.string:
    return np.stack([np.asarray(row, dtype=spec.dtype.as_numpy_dtype) for row in rows])
  arrays = [np.asarray(row, dtype=object) for row in rows]
  if len({a.shape for a in arrays}) == 1:
    return np.stack(arrays) if arrays else np.zeros([0], dtype=object)
  if any(a.ndim != 1 for a in arrays):
    raise ValueError("per-row string inputs of unequal shapes must be flat lists")
  padded = np.full((len(arrays), max(len(a) for a in arrays)), contract.PAD, dtype=object)
  for i, a in enumerate(arrays):
    padded[i, :len(a)] = a
  return padded


def row_tensors(specs: Mapping[str, InputSpec],
                rows: Sequence[Mapping[str, Any]]) -> Dict[str, tf.Tensor]:
  """The extra inputs of one call from each row's values: rank-0 inputs from the first
  row (the caller groups rows that agree on them), per-row inputs stacked row by row."""
  tensors = {}
  for name, spec in specs.items():
    if spec.rank == 0:
      tensors[name] = tf.constant(rows[0][name], spec.dtype)
    else:
      tensors[name] = tf.constant(_per_row(spec, [row[name] for row in rows]), spec.dtype)
  return tensors
