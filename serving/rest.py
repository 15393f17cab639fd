"""TF Serving's REST API (``/v1/models/...``) beside the gRPC one, on the gRPC calls' code path.

JSON requests and answers have TF Serving's shapes; usage: docs/serving.md, "The REST API".
"""

import base64
import binascii
import contextlib
import http
import http.server
import json
import logging
import math
import re
import select
import socket
import socketserver
import ssl
import threading
import time
import urllib.parse
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.framework import tensor_shape_pb2
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import predict_pb2

from serving import contract
from serving import guard
from serving import validation

_LOG = logging.getLogger(__name__)

DEFAULT_TIMEOUT_MS = 30000          # TF Serving's --rest_api_timeout_in_ms
DEFAULT_MAX_CONNECTIONS = 64        # open connections; one more is closed at once
IDLE_SECONDS = 30.0                 # a connection silent this long is closed
WARN_EVERY_SECONDS = 60.0           # at most one "too many connections" warning per
MAX_JSON_DEPTH = 32                 # lists nested deeper are refused
SIGNATURE_DEF_FIELD = "signature_def"
BASE64_KEY = "b64"
BYTES_SUFFIX = "_bytes"             # string outputs named so are sent as {"b64": ...}
_DEBUG_JSON_CHARS = 256

# TF Serving's routes (http_rest_api_util.cc), case-insensitive as there.
_API_PATH = re.compile(r"/v1/.*", re.IGNORECASE | re.ASCII)
_PREDICT_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?:(classify|regress|predict)",
    re.IGNORECASE | re.ASCII)
_MODEL_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:/versions/(\d+)|/labels/([^/:]+))?(?:/(metadata))?",
    re.IGNORECASE | re.ASCII)
_INT64_MAX = 2**63 - 1

# TF Serving's HTTP status per canonical code (http_server.cc, ToHTTPStatusCode).
_HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


def http_status(code: grpc.StatusCode) -> int:
  """The HTTP status TF Serving answers for a canonical error code."""
  return _HTTP_STATUS.get(code, 500)


class Abort(Exception):
  """``RestContext.abort``: ends the call with ``code`` (as ``grpc`` aborts raise)."""

  def __init__(self, code: grpc.StatusCode, details: str):
    super().__init__(details)
    self.code = code


class RestContext:
  """The part of ``grpc.ServicerContext`` the servicers and ``guard.CallGuard`` use,
  for one HTTP request: its deadline, its connection and the error it ended with."""

  def __init__(self, deadline: float, connection: Optional[socket.socket] = None,
               metadata: Sequence[Tuple[str, str]] = ()):
    """deadline: ``time.monotonic()`` value; connection: checked for a client that left."""
    self._deadline = deadline
    self._connection = connection
    self._metadata = tuple(metadata)
    self._code: Optional[grpc.StatusCode] = None
    self._details = ""

  def abort(self, code: grpc.StatusCode, details: str):
    self._code, self._details = code, details
    raise Abort(code, details)

  def code(self) -> Optional[grpc.StatusCode]:
    return self._code

  def details(self) -> bytes:
    return self._details.encode("utf-8")

  def set_details(self, details: str) -> None:
    self._details = details

  def invocation_metadata(self) -> Tuple[Tuple[str, str], ...]:
    return self._metadata

  def time_remaining(self) -> float:
    return max(0.0, self._deadline - time.monotonic())

  def is_active(self) -> bool:
    """False once a plaintext client has closed its connection (TLS: always True)."""
    sock = self._connection
    if sock is None or isinstance(sock, ssl.SSLSocket):
      return True
    try:
      poller = select.poll()   # not select.select: no limit on the descriptor number
      poller.register(sock, select.POLLIN)
      return not poller.poll(0) or sock.recv(1, socket.MSG_PEEK) != b""
    except OSError:
      return False


def _refuse(message: str, code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT):
  return validation.RequestError(code, message)


def _debug_json(value: Any) -> str:
  text = json.dumps(value)
  return text if len(text) <= _DEBUG_JSON_CHARS else text[:_DEBUG_JSON_CHARS] + "..."


def parse_json(body: bytes) -> Dict[str, Any]:
  """The request body as a JSON object (NaN and Infinity allowed, as TF Serving)."""
  if not body:
    raise _refuse("JSON Parse error: The document is empty")
  try:
    document = json.loads(body.decode("utf-8"))
  except UnicodeDecodeError as e:
    raise _refuse(f"JSON Parse error: not UTF-8 at offset: {e.start}") from e
  except json.JSONDecodeError as e:
    raise _refuse(f"JSON Parse error: {e.msg} at offset: {e.pos}") from e
  except RecursionError as e:
    raise _refuse("JSON Parse error: nested too deeply") from e
  if not isinstance(document, dict):
    raise _refuse(f"JSON Value: {_debug_json(document)} Is not object")
  return document


def _is_base64(value: Any) -> bool:
  return (isinstance(value, dict) and len(value) == 1 and
          isinstance(value.get(BASE64_KEY), str))


def _integer(low: int, high: int) -> Callable[[Any], Optional[int]]:
  def convert(value):
    ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    return value if ok else None
  return convert


def _number(value: Any) -> Optional[float]:
  ok = isinstance(value, (int, float)) and not isinstance(value, bool)
  return value if ok else None


def _boolean(value: Any) -> Optional[bool]:
  return value if isinstance(value, bool) else None


def _string(value: Any) -> Optional[bytes]:
  if isinstance(value, str):
    return value.encode("utf-8")
  if _is_base64(value):
    text = value[BASE64_KEY]
    try:
      return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as e:
      raise _refuse("Unable to base64 decode") from e
  return None


_INT32 = _integer(-2**31, 2**31 - 1)
# dtype -> (TensorProto value field, JSON value -> value or None if of the wrong type).
_CONVERTERS = {
    types_pb2.DT_FLOAT: ("float_val", _number),
    types_pb2.DT_DOUBLE: ("double_val", _number),
    types_pb2.DT_INT32: ("int_val", _INT32),
    types_pb2.DT_INT16: ("int_val", _INT32),
    types_pb2.DT_INT8: ("int_val", _INT32),
    types_pb2.DT_UINT8: ("int_val", _INT32),
    types_pb2.DT_INT64: ("int64_val", _integer(-2**63, _INT64_MAX)),
    types_pb2.DT_UINT32: ("uint32_val", _integer(0, 2**32 - 1)),
    types_pb2.DT_UINT64: ("uint64_val", _integer(0, 2**64 - 1)),
    types_pb2.DT_BOOL: ("bool_val", _boolean),
    types_pb2.DT_STRING: ("string_val", _string),
}


def _dense_shape(value: Any, where: str) -> List[int]:
  """The shape the nesting of ``value``'s first elements declares, as TF Serving reads it."""
  shape = []
  while isinstance(value, list):
    shape.append(len(value))
    if len(shape) > MAX_JSON_DEPTH:
      raise _refuse(f"{where}: lists nested more than {MAX_JSON_DEPTH} deep")
    if not value:
      break
    value = value[0]
  return shape


def _flatten(value: Any, shape: Sequence[int], spec: tf.TensorSpec, where: str,
             out: List[Any]) -> None:
  """Appends ``value``'s leaves to ``out`` in row-major order, checking it is dense."""
  _, convert = _CONVERTERS[spec.dtype.as_datatype_enum]

  def visit(item, level):
    if isinstance(item, list):
      if level >= len(shape) or len(item) != shape[level]:
        raise _refuse(f"{where}: not a dense tensor: a list of {len(item)} at depth "
                      f"{level + 1} where the first elements give shape {list(shape)}")
      for element in item:
        visit(element, level + 1)
      return
    if level != len(shape):
      raise _refuse(f"{where}: not a dense tensor: value {_debug_json(item)} at depth "
                    f"{level} where the first elements give shape {list(shape)}")
    converted = convert(item)
    if converted is None:
      raise _refuse(f"{where}: JSON value {_debug_json(item)} is not of expected type "
                    f"{spec.dtype.name}")
    out.append(converted)

  visit(value, 0)


def _tensor(spec: tf.TensorSpec, shape: Sequence[int], values: List[Any]
            ) -> tensor_pb2.TensorProto:
  field, _ = _CONVERTERS[spec.dtype.as_datatype_enum]
  proto = tensor_pb2.TensorProto(
      dtype=spec.dtype.as_datatype_enum,
      tensor_shape=tensor_shape_pb2.TensorShapeProto(
          dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in shape]))
  getattr(proto, field).extend(values)
  return proto


def _check_dtypes(signature_name: str, specs: Mapping[str, tf.TensorSpec]) -> None:
  for name, spec in specs.items():
    if spec.dtype.as_datatype_enum not in _CONVERTERS:
      raise _refuse(f"{signature_name}: input '{name}' is {spec.dtype.name}, which JSON "
                    f"cannot carry; use gRPC", grpc.StatusCode.UNIMPLEMENTED)


def _columnar(signature_name: str, inputs: Any, specs: Mapping[str, tf.TensorSpec]
              ) -> Dict[str, tensor_pb2.TensorProto]:
  """``"inputs"``: one value (a signature of one input) or an object of name -> value."""
  if not isinstance(inputs, dict) or _is_base64(inputs):
    if len(specs) != 1:
      raise _refuse(f"{signature_name}: 'inputs' is a plain value or list, but the "
                    f"signature takes {sorted(specs)}: send an object of name -> value")
    inputs = {next(iter(specs)): inputs}
  validation.check_input_names(signature_name, specs, inputs)
  tensors = {}
  for name, spec in specs.items():
    where = f"{signature_name}: input '{name}'"
    shape = _dense_shape(inputs[name], where)
    values: List[Any] = []
    _flatten(inputs[name], shape, spec, where, values)
    tensors[name] = _tensor(spec, shape, values)
  return tensors


def _rows(signature_name: str, instances: Any, specs: Mapping[str, tf.TensorSpec]
          ) -> Dict[str, tensor_pb2.TensorProto]:
  """``"instances"``: a list of rows, each one value (one input) or an object of
  name -> value; every input gets the rows as its first dimension."""
  if not isinstance(instances, list) or not instances:
    raise _refuse(f"{signature_name}: 'instances' must be a non-empty list")
  scalars = sorted(name for name, spec in specs.items() if spec.shape.rank == 0)
  if scalars:
    raise _refuse(f"{signature_name}: input(s) {scalars} take one value per request, "
                  f"but the row format ('instances') gives every input a batch "
                  f"dimension: send the columnar format ('inputs') instead")
  named = isinstance(instances[0], dict) and not _is_base64(instances[0])
  if not named and len(specs) != 1:
    raise _refuse(f"{signature_name}: 'instances' holds plain values or lists, but the "
                  f"signature takes {sorted(specs)}: send each instance as an object "
                  f"of name -> value")
  shapes: Dict[str, List[int]] = {}
  values: Dict[str, List[Any]] = {name: [] for name in specs}
  for i, instance in enumerate(instances):
    if named != (isinstance(instance, dict) and not _is_base64(instance)):
      raise _refuse(f"{signature_name}: 'instances'[{i}] is "
                    f"{'not ' if named else ''}an object, unlike 'instances'[0]")
    if not named:
      instance = {next(iter(specs)): instance}
    try:
      validation.check_input_names(signature_name, specs, instance)
    except validation.RequestError as e:
      raise _refuse(f"'instances'[{i}]: {e.message}") from e
    for name, spec in specs.items():
      where = f"{signature_name}: input '{name}' of 'instances'[{i}]"
      shape = _dense_shape(instance[name], where)
      if shapes.setdefault(name, shape) != shape:
        raise _refuse(f"{where} has shape {shape}, 'instances'[0] has {shapes[name]}: "
                      f"every instance must have the same shape")
      _flatten(instance[name], shape, spec, where, values[name])
  return {name: _tensor(spec, [len(instances)] + shapes[name], values[name])
          for name, spec in specs.items()}


def request_tensors(signature_name: str, document: Mapping[str, Any],
                    specs: Mapping[str, tf.TensorSpec]
                    ) -> Tuple[Dict[str, tensor_pb2.TensorProto], bool]:
  """A Predict request's JSON body as TensorProtos, typed by the signature's inputs.

  Returns:
    (name -> TensorProto, True for the row format ``instances``).

  Raises:
    validation.RequestError: INVALID_ARGUMENT naming what is wrong with the JSON.
  """
  if ("instances" in document) == ("inputs" in document):
    raise _refuse("Missing 'inputs' or 'instances' key" if "inputs" not in document else
                  "expecting only one of 'inputs' or 'instances' keys")
  _check_dtypes(signature_name, specs)
  if "instances" in document:
    return _rows(signature_name, document["instances"], specs), True
  return _columnar(signature_name, document["inputs"], specs), False


_SPECIAL_FLOATS = {"nan": "NaN", "-nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _decimals(values: np.ndarray) -> List[str]:
  """TF Serving's float texts: six significant digits where they read back the same
  value, else all it takes (9 for float32, 17 for float64); whole numbers end in ".0"."""
  digits, parse = (9, np.float32) if values.dtype == np.float32 else (17, float)
  as_float = values.astype(np.float64)
  with np.errstate(all="ignore"):   # a cheap first guess at which values six digits fit
    magnitude = np.floor(np.log10(np.abs(as_float)))
    scale = np.where(np.isfinite(magnitude), 10.0 ** (magnitude - 5), 1.0)
    rounded = np.round(as_float / scale) * scale
    short = np.abs(rounded - as_float) <= np.abs(as_float) * np.finfo(values.dtype).eps
  short |= ~np.isfinite(as_float)
  texts = []
  for value, is_short in zip(as_float.tolist(), short.tolist()):
    text = "%g" % value if is_short else None
    if text is None or (math.isfinite(value) and float(parse(text)) != value):
      text = "%.*g" % (digits, value)
    texts.append(_SPECIAL_FLOATS.get(text) or
                 (text if "." in text or "e" in text else text + ".0"))
  return texts


def _leaf_texts(values: np.ndarray, name: str) -> List[str]:
  """The JSON text of each value of the flat array ``values``."""
  if values.dtype in (np.float32, np.float64):
    return _decimals(values)
  if values.dtype == np.bool_:
    return ["true" if v else "false" for v in values.tolist()]
  if np.issubdtype(values.dtype, np.integer):
    return [str(v) for v in values.tolist()]
  if name.endswith(BYTES_SUFFIX):
    return [json.dumps({BASE64_KEY: base64.b64encode(v).decode("ascii")}) for v in values]
  return [json.dumps(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
          for v in values]


def _json_tensor(array: np.ndarray, name: str) -> str:
  """``array`` as nested JSON lists (a scalar as a bare value)."""
  texts = _leaf_texts(array.reshape(-1), name)
  for depth in range(array.ndim - 1, -1, -1):   # innermost dimension first
    size, groups = array.shape[depth], math.prod(array.shape[:depth])
    texts = ["[" + ", ".join(texts[g * size:(g + 1) * size]) + "]" for g in range(groups)]
  return texts[0]


def predictions_json(outputs: Mapping[str, np.ndarray]) -> str:
  """Row format: ``{"predictions": [...]}``, one entry per batch row (a bare value for
  one output, else an object of name -> value), as TF Serving answers ``instances``."""
  batch = None
  for name, array in outputs.items():
    if array.ndim == 0:
      raise _refuse(f"Tensor name: {name} has no shape information ")
    if batch is not None and array.shape[0] != batch:
      raise _refuse(f"Tensor name: {name} has inconsistent batch size: "
                    f"{array.shape[0]} expecting: {batch}")
    batch = array.shape[0]
  names = sorted(outputs)
  rows = []
  for i in range(batch or 0):
    parts = {name: _json_tensor(outputs[name][i], name) for name in names}
    if len(names) == 1:
      rows.append(parts[names[0]])
    else:
      rows.append("{" + ", ".join(f"{json.dumps(n)}: {parts[n]}" for n in names) + "}")
  return '{\n    "predictions": [\n        ' + ",\n        ".join(rows) + "\n    ]\n}\n"


def outputs_json(outputs: Mapping[str, np.ndarray]) -> str:
  """Columnar format: ``{"outputs": ...}`` (a bare tensor for one output, else an object
  of name -> tensor), as TF Serving answers ``inputs``."""
  names = sorted(outputs)
  if len(names) == 1:
    return '{\n    "outputs": ' + _json_tensor(outputs[names[0]], names[0]) + "\n}\n"
  parts = [f"        {json.dumps(n)}: {_json_tensor(outputs[n], n)}" for n in names]
  return '{\n    "outputs": {\n' + ",\n".join(parts) + "\n    }\n}\n"


def error_json(message: str) -> str:
  return json.dumps({"error": message}, indent=4) + "\n"


def _json(message) -> str:
  return json_format.MessageToJson(message, including_default_value_fields=True) + "\n"


def metadata_json(response: get_model_metadata_pb2.GetModelMetadataResponse) -> str:
  """``GetModelMetadataResponse`` as TF Serving writes it: proto field names, the
  ``signature_def`` map unpacked from its ``Any``."""
  signature_map = get_model_metadata_pb2.SignatureDefMap()
  response.metadata[SIGNATURE_DEF_FIELD].Unpack(signature_map)
  as_dict = lambda m: json_format.MessageToDict(
      m, including_default_value_fields=True, preserving_proto_field_name=True)
  return json.dumps({"model_spec": as_dict(response.model_spec),
                     "metadata": {SIGNATURE_DEF_FIELD: as_dict(signature_map)}},
                    indent=4) + "\n"


class Route:
  """What a request path asks for: the model, its version or label, and the method."""

  def __init__(self, method: str, name: str, version: Optional[str], label: Optional[str]):
    self.method = method          # "predict", "classify", "regress", "status", "metadata"
    self.model_spec = model_pb2.ModelSpec(name=_decoded(name, "model name"))
    if version:
      if int(version) > _INT64_MAX:
        raise _refuse(f"Failed to convert version: {version} to numeric.")
      self.model_spec.version.value = int(version)
    if label:
      self.model_spec.version_label = _decoded(label, "model version label")


def _decoded(text: Optional[str], what: str) -> str:
  try:
    return urllib.parse.unquote(text or "", errors="strict")
  except UnicodeDecodeError as e:
    raise _refuse(f"Failed to decode {what}: {text}") from e


def route(http_method: str, path: str) -> Route:
  """The route of ``http_method path`` (path without query), as TF Serving matches it.

  Raises:
    validation.RequestError: NOT_FOUND outside ``/v1/``, INVALID_ARGUMENT for any
      other path or method TF Serving does not serve.
  """
  if not _API_PATH.fullmatch(path):
    raise _refuse(f"Not found: {path}; the API is under /v1/models/",
                  grpc.StatusCode.NOT_FOUND)
  if http_method == "POST":
    match = _PREDICT_PATH.fullmatch(path)
    if match:
      name, version, label, verb = match.groups()
      return Route(verb.lower(), name, version, label)
  elif http_method == "GET":
    match = _MODEL_PATH.fullmatch(path)
    if match:
      name, version, label, metadata = match.groups()
      if not name:
        raise _refuse("Missing model name in request.")
      return Route("metadata" if metadata else "status", name, version, label)
  raise _refuse(f"Malformed request: {http_method} {path}")


class RestApi:
  """Answers REST calls with the gRPC servicers, under the gRPC calls' ``CallGuard``.

  prediction: ``server.PredictionServicer`` (``resolve``, ``predict_on``,
  ``GetModelMetadata``); models: ``server.ModelServicer`` (``GetModelStatus``).
  """

  def __init__(self, prediction, models, call_guard: guard.CallGuard):
    self._prediction = prediction
    self._models = models
    self._guard = call_guard

  def answer(self, route_: Route, body: bytes, context: RestContext) -> Tuple[int, str]:
    """(HTTP status, JSON text) for one authorized call."""
    calls = {"predict": (self._predict, True), "metadata": (self._metadata, True),
             "status": (self._status, False)}
    behaviour, limited = calls.get(route_.method, (self._unimplemented, False))
    try:
      return 200, self._guard.call(behaviour, (route_, body), context, limited)
    except Abort:
      code = context.code()
      return http_status(code), error_json(context.details().decode("utf-8", "replace"))
    except Exception:  # pylint: disable=broad-except
      _LOG.exception("REST: unexpected error in a call")   # the guard re-raised it
      return 500, error_json(guard.INTERNAL_MESSAGE)

  def _predict(self, call: Tuple[Route, bytes], context: RestContext) -> str:
    route_, body = call
    request = predict_pb2.PredictRequest(model_spec=route_.model_spec)
    try:
      document = parse_json(body)
      signature = document.get("signature_name", "")
      if not isinstance(signature, str):
        raise _refuse(f"JSON Value: {_debug_json(signature)} not formatted correctly. "
                      f"'signature_name' key must be a string value.")
      request.model_spec.signature_name = signature
      servable = self._prediction.resolve(request.model_spec, context)
      signature = signature or contract.DEFAULT_SIGNATURE
      tensors, row_format = request_tensors(signature, document,
                                            servable.inputs_of(signature))
    except validation.RequestError as e:
      context.abort(e.code, e.message)
    for name, tensor in tensors.items():
      request.inputs[name].CopyFrom(tensor)
    request.output_filter.extend(_tf_serving_outputs(servable, signature))
    _, outputs = self._prediction.predict_on(servable, request, context)
    try:
      return predictions_json(outputs) if row_format else outputs_json(outputs)
    except validation.RequestError as e:
      context.abort(e.code, e.message)

  def _metadata(self, call: Tuple[Route, bytes], context: RestContext) -> str:
    request = get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec=call[0].model_spec, metadata_field=[SIGNATURE_DEF_FIELD])
    return metadata_json(self._prediction.GetModelMetadata(request, context))

  def _status(self, call: Tuple[Route, bytes], context: RestContext) -> str:
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=call[0].model_spec)
    return _json(self._models.GetModelStatus(request, context))

  def _unimplemented(self, call: Tuple[Route, bytes], context: RestContext) -> str:
    context.abort(grpc.StatusCode.UNIMPLEMENTED,
                  f"only predict is served, not {call[0].method}")


def _tf_serving_outputs(servable, signature_name: str) -> List[str]:
  """For a signature of one output of its own: that output alone, so that the added
  ``num_unknown`` does not turn TF Serving's bare values into objects."""
  own = [o for o in servable.outputs_of(signature_name) if o != contract.OUTPUT_NUM_UNKNOWN]
  return own if len(own) == 1 else []


class _Refused(Exception):
  """A request refused before its body is read: HTTP ``status`` and a message."""

  def __init__(self, status: int, message: str):
    super().__init__(message)
    self.status = status
    self.message = message


class _Handler(http.server.BaseHTTPRequestHandler):
  """One connection: HTTP/1.1 with keep-alive, JSON answers only."""

  protocol_version = "HTTP/1.1"
  server_version = "seqrec-serving"
  sys_version = ""
  timeout = IDLE_SECONDS
  # Headers and body leave in two writes: without this, the body waits for the
  # client's delayed acknowledgement of the headers.
  disable_nagle_algorithm = True

  def setup(self):
    super().setup()
    if isinstance(self.connection, ssl.SSLSocket):
      self.connection.do_handshake()

  def do_GET(self):  # pylint: disable=invalid-name
    server: _HttpServer = self.server
    with server.in_flight():
      deadline = time.monotonic() + server.timeout_seconds
      path = urllib.parse.urlsplit(self.path).path
      metadata = [(k.lower(), v) for k, v in self.headers.items()
                  if k.lower() == "authorization"]
      try:
        call = route(self.command, path)
        if not server.call_guard.authorized(metadata):
          raise _Refused(http_status(grpc.StatusCode.UNAUTHENTICATED),
                         guard.UNAUTHENTICATED_MESSAGE)
        body = self._read_body(server.max_request_bytes)
      except validation.RequestError as e:
        self._reply(http_status(e.code), error_json(e.message), close=self._has_body())
        return
      except _Refused as e:
        self._reply(e.status, error_json(e.message), close=self._has_body())
        return
      context = RestContext(deadline, self.connection, metadata)
      self._reply(*server.api.answer(call, body, context))

  do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET  # pylint: disable=invalid-name

  def _has_body(self) -> bool:
    return "Content-Length" in self.headers or "Transfer-Encoding" in self.headers

  def _read_body(self, max_bytes: int) -> bytes:
    """The body, read only once its declared size is within ``max_bytes``."""
    if "Transfer-Encoding" in self.headers:
      raise _Refused(411, "send the request body with a Content-Length (no chunked "
                          "transfer encoding)")
    length_text = self.headers.get("Content-Length", "0")
    if not length_text.strip().isdigit():
      raise _Refused(400, f"Content-Length is not a byte count: {length_text[:32]}")
    length = int(length_text)
    if length > max_bytes:
      raise _Refused(413, f"the request body has {length} bytes; this server accepts "
                          f"at most {max_bytes} (--max-request-bytes)")
    body = self.rfile.read(length)
    if len(body) < length:
      self.close_connection = True
      raise _Refused(400, "the request body ended early")
    return body

  def _reply(self, status: int, text: str, close: bool = False) -> None:
    data = text.encode("utf-8")
    self.send_response(status)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(data)))
    if close:
      self.send_header("Connection", "close")
      self.close_connection = True
    self.end_headers()
    self.wfile.write(data)

  def send_error(self, code, message=None, explain=None):
    """http.server's own refusals (bad request line, headers too long) as JSON."""
    del explain
    try:
      phrase = http.HTTPStatus(code).phrase
    except ValueError:
      phrase = "error"
    self._reply(code, error_json(message or phrase), close=True)

  def log_message(self, format, *args):  # pylint: disable=redefined-builtin
    _LOG.debug("REST %s: " + format, self.client_address[0], *args)


class _HttpServer(http.server.ThreadingHTTPServer):
  """Threads per connection, at most ``max_connections`` open; tracks calls in flight."""

  daemon_threads = True

  def __init__(self, host: str, port: int, ssl_context: Optional[ssl.SSLContext],
               max_connections: int):
    self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
    super().__init__((host, port), _Handler)
    if ssl_context is not None:
      # The handshake runs in the connection's thread (``_Handler.setup``).
      self.socket = ssl_context.wrap_socket(self.socket, server_side=True,
                                            do_handshake_on_connect=False)
    self.max_connections = max_connections
    self._slots = threading.BoundedSemaphore(max_connections)
    self._next_warning = 0.0
    self._lock = threading.Condition()
    self._open: set = set()
    self._in_flight = 0
    # Set by RestServer.
    self.api: Optional[RestApi] = None
    self.call_guard: Optional[guard.CallGuard] = None
    self.max_request_bytes = 0
    self.timeout_seconds = 0.0

  def server_bind(self):
    # HTTPServer.server_bind would look the host name up in DNS.
    socketserver.TCPServer.server_bind(self)
    self.server_name, self.server_port = self.server_address[:2]

  def process_request(self, request, client_address):
    if not self._slots.acquire(blocking=False):
      now = time.monotonic()
      if now >= self._next_warning:
        self._next_warning = now + WARN_EVERY_SECONDS
        _LOG.warning("REST: %d connections open; closing new ones (this one from %s) "
                     "until some end", self.max_connections, client_address[0])
      self.shutdown_request(request)
      return
    super().process_request(request, client_address)

  def process_request_thread(self, request, client_address):
    with self._lock:
      self._open.add(request)
    try:
      super().process_request_thread(request, client_address)
    finally:
      with self._lock:
        self._open.discard(request)
      self._slots.release()

  def handle_error(self, request, client_address):
    _LOG.debug("REST: connection from %s ended with an error", client_address[0],
               exc_info=True)

  @contextlib.contextmanager
  def in_flight(self):
    """Counts a call from its request line to its answer."""
    with self._lock:
      self._in_flight += 1
    try:
      yield
    finally:
      with self._lock:
        self._in_flight -= 1
        self._lock.notify_all()

  def drain(self, grace: Optional[float]) -> bool:
    """Waits up to ``grace`` s for calls in flight, then closes every connection."""
    with self._lock:
      done = self._lock.wait_for(lambda: self._in_flight == 0, grace)
      connections = list(self._open)
    for connection in connections:
      try:
        connection.shutdown(socket.SHUT_RDWR)
      except OSError:
        pass
    return done


class RestServer:
  """The REST API on ``host:port`` (HTTPS with ``ssl_context``), beside the gRPC server.

  Calls go through ``api`` (the gRPC servicers) under ``call_guard``: same token,
  concurrency cap, validation and errors; ``timeout_ms`` is each call's deadline.
  """

  def __init__(self, api: RestApi, call_guard: guard.CallGuard, host: str, port: int,
               max_request_bytes: int, timeout_ms: int = DEFAULT_TIMEOUT_MS,
               ssl_context: Optional[ssl.SSLContext] = None,
               max_connections: int = DEFAULT_MAX_CONNECTIONS):
    if timeout_ms < 1:
      raise ValueError(f"timeout_ms must be >= 1, got {timeout_ms}")
    self._httpd = _HttpServer(host.strip("[]"), port, ssl_context, max_connections)
    self._httpd.api = api
    self._httpd.call_guard = call_guard
    self._httpd.max_request_bytes = max_request_bytes
    self._httpd.timeout_seconds = timeout_ms / 1000.0
    self.port = self._httpd.server_address[1]
    self.scheme = "https" if ssl_context is not None else "http"
    self._thread: Optional[threading.Thread] = None

  def start(self) -> None:
    self._thread = threading.Thread(target=self._httpd.serve_forever, name="rest",
                                    kwargs={"poll_interval": 0.2}, daemon=True)
    self._thread.start()

  def stop(self, grace: Optional[float]) -> None:
    """Stops accepting, lets calls in flight finish for ``grace`` s, closes the rest."""
    if self._thread is not None:
      self._httpd.shutdown()
      self._thread.join()
    self._httpd.drain(grace)
    self._httpd.server_close()
