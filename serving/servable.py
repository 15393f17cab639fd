"""One loaded model version: its signatures, its catalogue, and Predict on NumPy arrays.

Adds compaction, ``num_unknown`` and the popularity fallback (docs/serving.md, "The local server").
"""

import importlib
import os
import warnings
from typing import Dict, List, Mapping, Optional, Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.framework import tensor_shape_pb2
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.core.protobuf import saved_model_pb2

from serving import contract
from serving import validation

SAVED_MODEL_FILE = "saved_model.pb"
SERVE_TAG = "serve"
REQUIRED_SIGNATURES = (contract.DEFAULT_SIGNATURE, contract.QUERY_EMBEDDING_SIGNATURE,
                       contract.ITEM_EMBEDDINGS_SIGNATURE)
FALLBACK_POPULARITY = "popularity"
FALLBACK_MODEL = "model"
FALLBACK_MODES = (FALLBACK_POPULARITY, FALLBACK_MODEL)
# Signatures whose rows without a known item get the popularity fallback.
FALLBACK_SIGNATURES = (contract.DEFAULT_SIGNATURE, contract.EXPLAIN_SIGNATURE)
SCANN_OP_PREFIX = "Scann>"   # ScaNN's custom ops live in the "Scann" op namespace
SCANN_OPS_MODULE = "scann.scann_ops.py.scann_ops"

class LoadError(Exception):
  """A version folder that cannot be served; ``code`` is the gRPC status to report."""

  def __init__(self, code: grpc.StatusCode, message: str):
    super().__init__(message)
    self.code = code
    self.message = message


def read_meta_graph(export_dir: str) -> meta_graph_pb2.MetaGraphDef:
  """The ``serve``-tagged MetaGraphDef of the SavedModel in ``export_dir``."""
  path = os.path.join(export_dir, SAVED_MODEL_FILE)
  saved_model = saved_model_pb2.SavedModel()
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      data = f.read()
    with warnings.catch_warnings():
      # The pure-Python parser only warns about some corrupt input.
      warnings.simplefilter("error", RuntimeWarning)
      saved_model.ParseFromString(data)
  except tf.errors.NotFoundError as e:
    raise LoadError(grpc.StatusCode.NOT_FOUND, f"{path} does not exist") from e
  except Exception as e:  # pylint: disable=broad-except
    raise LoadError(grpc.StatusCode.DATA_LOSS,
                    f"{path} is not a SavedModel protocol buffer: {e}") from e
  if not saved_model.meta_graphs:
    raise LoadError(grpc.StatusCode.DATA_LOSS,
                    f"{path} is not a SavedModel protocol buffer: it holds no meta graph")
  for meta_graph in saved_model.meta_graphs:
    if SERVE_TAG in meta_graph.meta_info_def.tags:
      return meta_graph
  raise LoadError(grpc.StatusCode.NOT_FOUND,
                  f"{path} has no MetaGraphDef tagged '{SERVE_TAG}' "
                  f"({len(saved_model.meta_graphs)} meta graphs)")


def op_types(meta_graph: meta_graph_pb2.MetaGraphDef) -> List[str]:
  """Every op type in the graph and its function library (sorted, distinct)."""
  graph = meta_graph.graph_def
  ops = {node.op for node in graph.node}
  for function in graph.library.function:
    ops.update(node.op for node in function.node_def)
  return sorted(ops)


def scann_ops_used(meta_graph: meta_graph_pb2.MetaGraphDef) -> List[str]:
  """The ScaNN custom ops the graph needs (empty for stock-TensorFlow exports)."""
  return [op for op in op_types(meta_graph) if op.startswith(SCANN_OP_PREFIX)]


def load_scann_ops(export_dir: str, ops: Sequence[str]) -> None:
  """Registers ScaNN's custom ops in this process (importing ``scann``'s op library).

  Raises:
    LoadError: FAILED_PRECONDITION when the ``scann`` package is missing.
  """
  try:
    importlib.import_module(SCANN_OPS_MODULE)   # tf.load_op_library of scann's ops
  except ImportError as e:
    raise LoadError(
        grpc.StatusCode.FAILED_PRECONDITION,
        f"{export_dir} uses ScaNN ops {list(ops)}: install the scann package "
        f"(pip install -c constraints.txt scann) to serve it here, or serve it with a "
        f"ScaNN-enabled TF Serving build (see trainer/scann_export.py): {e}") from e


def _num_unknown_info() -> meta_graph_pb2.TensorInfo:
  return meta_graph_pb2.TensorInfo(
      name=contract.OUTPUT_NUM_UNKNOWN, dtype=types_pb2.DT_INT32,
      tensor_shape=tensor_shape_pb2.TensorShapeProto(
          dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=-1)]))


def compact_history(history: np.ndarray) -> np.ndarray:
  """Moves each row's non-padding ids to the front, order kept: [batch, len] bytes."""
  is_pad = history == contract.PAD.encode()
  if not is_pad.any():
    return history
  order = np.argsort(is_pad, axis=1, kind="stable")
  return np.take_along_axis(history, order, axis=1)


def _unknown_counter(catalogue: np.ndarray):
  """history [batch, len] -> int32 [batch]: non-padding ids not in ``catalogue``.

  A set lookup in Python: per request, cheaper than a second TensorFlow call.
  """
  known_ids = frozenset(catalogue.tolist())
  pad = contract.PAD.encode()

  def count(history: np.ndarray) -> np.ndarray:
    rows = [[i.encode() if isinstance(i, str) else i for i in row] for row in history]
    return np.array([sum(1 for i in row if i != pad and i not in known_ids) for row in rows],
                    np.int32)

  return count


def rules_request(history: np.ndarray, rules: bool, diversity: float) -> Dict[str, np.ndarray]:
  """Warm-up inputs of ``recommend`` for ``history`` (k = 1): every rule list empty, or
  each holding an unknown value."""
  value = b"<warm-up unknown id>" if rules else contract.PAD.encode()
  lists = {name: np.full((history.shape[0], 1), value, dtype=object)
           for name in contract.RULE_LIST_INPUTS}
  return {contract.INPUT_HISTORY: history, contract.INPUT_K: np.array(1, np.int32), **lists,
          contract.INPUT_KEEP_HISTORY: np.array(False),
          contract.INPUT_DIVERSITY: np.array(diversity, np.float32)}


class Servable:
  """A loaded SavedModel version that honours ``serving.contract``."""

  def __init__(self, export_dir: str, version: int,
               fallback: str = FALLBACK_POPULARITY):
    """Loads, checks and warms up ``export_dir``.

    Raises:
      LoadError: the folder is not a SavedModel, lacks a contract signature, its
        catalogue is empty or has repeated ids, or the warm-up request fails.
    """
    if fallback not in FALLBACK_MODES:
      raise ValueError(f"fallback must be one of {FALLBACK_MODES}, got '{fallback}'")
    self.export_dir = export_dir
    self.version = version
    self.fallback = fallback
    meta_graph = read_meta_graph(export_dir)
    missing = [s for s in REQUIRED_SIGNATURES if s not in meta_graph.signature_def]
    if missing:
      raise LoadError(grpc.StatusCode.FAILED_PRECONDITION,
                      f"{export_dir}: missing signature(s) {missing}; serving.contract "
                      f"needs {list(REQUIRED_SIGNATURES)}")
    scann_ops = scann_ops_used(meta_graph)
    if scann_ops:
      load_scann_ops(export_dir, scann_ops)
    try:
      self._loaded = tf.saved_model.load(export_dir, tags=[SERVE_TAG])
    except tf.errors.OpError as e:
      raise LoadError(status_code(e), f"{export_dir}: {e.message}") from e
    except Exception as e:  # pylint: disable=broad-except
      raise LoadError(grpc.StatusCode.INTERNAL,
                      f"{export_dir}: cannot load the SavedModel: {e}") from e
    self._functions = dict(self._loaded.signatures)
    self.signature_defs: Dict[str, meta_graph_pb2.SignatureDef] = {}
    # All of them, as TF Serving's GetModelMetadata lists them (TF2 exports also
    # hold "__saved_model_init_op"); Predict runs only those in ``_functions``.
    for name, signature_def in meta_graph.signature_def.items():
      signature_def = meta_graph_pb2.SignatureDef().FromString(
          signature_def.SerializeToString())
      if contract.INPUT_HISTORY in signature_def.inputs:
        signature_def.outputs[contract.OUTPUT_NUM_UNKNOWN].CopyFrom(_num_unknown_info())
      self.signature_defs[name] = signature_def
    self.input_specs = {
        name: dict(fn.structured_input_signature[1]) for name, fn in self._functions.items()}
    self.catalogue = self._read_catalogue()
    self.num_items = len(self.catalogue)
    # The popularity fallback's items: the catalogue without what the model marks
    # unavailable (its ``available`` variable, set by a catalogue refresh).
    available = getattr(self._loaded, "available", None)
    self.fallback_items = (self.catalogue if available is None
                           else self.catalogue[available.numpy().astype(bool)])
    self._count_unknown = _unknown_counter(self.catalogue)
    self._warm_up()

  def _read_catalogue(self) -> np.ndarray:
    try:
      outputs = self._functions[contract.ITEM_EMBEDDINGS_SIGNATURE]()
      ids = outputs[contract.OUTPUT_ITEM_IDS].numpy()
    except Exception as e:  # pylint: disable=broad-except
      raise LoadError(grpc.StatusCode.FAILED_PRECONDITION,
                      f"{self.export_dir}: signature '{contract.ITEM_EMBEDDINGS_SIGNATURE}' "
                      f"did not give output '{contract.OUTPUT_ITEM_IDS}': {e}") from e
    if ids.ndim != 1 or ids.size == 0:
      raise LoadError(grpc.StatusCode.FAILED_PRECONDITION,
                      f"{self.export_dir}: the catalogue (item_embeddings/item_ids) must "
                      f"be a non-empty vector, got shape {list(ids.shape)}")
    if len(set(ids.tolist())) != ids.size:
      raise LoadError(grpc.StatusCode.FAILED_PRECONDITION,
                      f"{self.export_dir}: the catalogue (item_embeddings/item_ids) "
                      f"repeats item ids")
    return ids

  def _warm_up(self):
    """Runs serving_default (and ``recommend``, rules on and off) once, on known, unknown
    and empty rows, before taking traffic."""
    history = np.array([[self.catalogue[0], b"", b"<warm-up unknown id>"], [b"", b"", b""]],
                       dtype=object)
    requests = [(contract.DEFAULT_SIGNATURE, {contract.INPUT_HISTORY: history,
                                              contract.INPUT_K: np.array(1, np.int32)})]
    if contract.RULES_SIGNATURE in self._functions:
      requests += [(contract.RULES_SIGNATURE, rules_request(history, rules, diversity))
                   for rules, diversity in ((False, 0.0), (True, 0.5))]
    for signature_name, arrays in requests:
      try:
        outputs = self.run(signature_name, arrays)
      except Exception as e:  # pylint: disable=broad-except
        raise LoadError(grpc.StatusCode.FAILED_PRECONDITION,
                        f"{self.export_dir}: warm-up request to '{signature_name}' "
                        f"failed: {e}") from e
      if outputs[contract.OUTPUT_ITEM_IDS].shape != (2, 1):
        raise LoadError(grpc.StatusCode.FAILED_PRECONDITION,
                        f"{self.export_dir}: warm-up request to '{signature_name}' "
                        f"with k=1 gave item_ids of shape "
                        f"{list(outputs[contract.OUTPUT_ITEM_IDS].shape)}, expected [2, 1]")

  def outputs_of(self, signature_name: str) -> List[str]:
    """Output aliases a Predict on ``signature_name`` can return (num_unknown included)."""
    return sorted(self.signature_defs[signature_name].outputs)

  def validate(self, signature_name: str,
               inputs: Mapping[str, tensor_pb2.TensorProto],
               output_filter: Sequence[str],
               limits: validation.Limits) -> Dict[str, np.ndarray]:
    """Checks a Predict request against this version; returns its inputs as arrays.

    Raises:
      validation.RequestError: FAILED_PRECONDITION for an unknown signature (as TF
        Serving answers), INVALID_ARGUMENT for bad inputs or output_filter.
    """
    self.inputs_of(signature_name)
    validation.check_output_filter(signature_name, output_filter,
                                   self.outputs_of(signature_name))
    return validation.request_arrays(signature_name, inputs,
                                     self.input_specs[signature_name], limits,
                                     self.num_items)

  def inputs_of(self, signature_name: str) -> Dict[str, tf.TensorSpec]:
    """The inputs a Predict on ``signature_name`` takes, by name.

    Raises:
      validation.RequestError: FAILED_PRECONDITION for an unknown signature (as TF
        Serving answers).
    """
    if signature_name not in self._functions:
      raise validation.RequestError(
          grpc.StatusCode.FAILED_PRECONDITION,
          f'Serving signature key "{signature_name}" not found; this model has '
          f"{sorted(self._functions)}")
    return self.input_specs[signature_name]

  def run(self, signature_name: str, arrays: Mapping[str, np.ndarray],
          output_filter: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
    """Runs a validated request: alias -> NumPy output (all outputs if no filter)."""
    wanted = list(output_filter) if output_filter else self.outputs_of(signature_name)
    arrays = dict(arrays)
    history = arrays.get(contract.INPUT_HISTORY)
    num_unknown = None
    if history is not None:
      history = compact_history(np.asarray(history, dtype=object))
      arrays[contract.INPUT_HISTORY] = history
      num_unknown = self._count_unknown(history)
    specs = self.input_specs[signature_name]
    tensors = {name: tf.constant(value, specs[name].dtype) for name, value in arrays.items()}
    model_outputs = self._functions[signature_name](**tensors)
    outputs = {alias: model_outputs[alias].numpy()
               for alias in wanted if alias != contract.OUTPUT_NUM_UNKNOWN}
    if num_unknown is not None and contract.OUTPUT_NUM_UNKNOWN in wanted:
      outputs[contract.OUTPUT_NUM_UNKNOWN] = num_unknown.astype(np.int32)
    if (signature_name in FALLBACK_SIGNATURES and
        self.fallback == FALLBACK_POPULARITY and history is not None):
      self._apply_fallback(history, num_unknown, int(arrays[contract.INPUT_K]), outputs)
    return outputs

  def _apply_fallback(self, history: np.ndarray, num_unknown: np.ndarray, k: int,
                      outputs: Dict[str, np.ndarray]) -> None:
    """Rows without a known item get the k most popular available items, score 0
    (slots past the available items: "" with score -inf, as the model answers)."""
    present = (history != contract.PAD.encode()).sum(axis=1)
    empty_rows = np.flatnonzero(present - num_unknown == 0)
    if empty_rows.size == 0:
      return
    k = min(k, self.num_items)
    fallback = self.fallback_items[:k]
    if contract.OUTPUT_ITEM_IDS in outputs:
      ids = outputs[contract.OUTPUT_ITEM_IDS].astype(object)
      ids[empty_rows] = np.concatenate(
          [fallback, np.full([k - len(fallback)], contract.PAD.encode(), object)])
      outputs[contract.OUTPUT_ITEM_IDS] = ids
    if contract.OUTPUT_SCORES in outputs:
      scores = outputs[contract.OUTPUT_SCORES].copy()
      scores[empty_rows] = np.where(np.arange(k) < len(fallback), 0.0, -np.inf)
      outputs[contract.OUTPUT_SCORES] = scores


_CODES = {code.value[0]: code for code in grpc.StatusCode}


def status_code(error: tf.errors.OpError) -> grpc.StatusCode:
  """The gRPC status for a TensorFlow error (both use the canonical codes)."""
  return _CODES.get(error.error_code, grpc.StatusCode.UNKNOWN)
