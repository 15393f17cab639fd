"""Helpers for tests and benchmarks of a model server: push versions, run servers."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import grpc
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.framework import tensor_shape_pb2
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2

from serving import contract

LOOPBACK = "127.0.0.1"
TF_MODEL_SERVER = "tensorflow_model_server"
# Path of a tensorflow_model_server binary, for the tests against stock TF Serving
# (else it is looked up on PATH); see docs/failure-modes.md.
TF_MODEL_SERVER_ENV = "SEQREC_TF_MODEL_SERVER"
_READY_LINE = re.compile(r"^Serving model .* on [^ ]+:(\d+)\s*$")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def push_version(source_dir: str, base_path: str, version: int) -> str:
  """Copies the SavedModel ``source_dir`` to ``base_path/<version>`` atomically."""
  final = os.path.join(base_path, str(version))
  staging = os.path.join(base_path, f".tmp-{version}")
  os.makedirs(base_path, exist_ok=True)
  shutil.rmtree(staging, ignore_errors=True)
  shutil.copytree(source_dir, staging)
  os.rename(staging, final)
  return final


def push_broken_version(base_path: str, version: int) -> str:
  """Lands ``base_path/<version>`` whose saved_model.pb is not a SavedModel."""
  staging = os.path.join(base_path, f".tmp-{version}")
  os.makedirs(staging, exist_ok=True)
  with open(os.path.join(staging, "saved_model.pb"), "wb") as f:
    f.write(b"\x08\xff\xff this is not a SavedModel protocol buffer")
  final = os.path.join(base_path, str(version))
  os.rename(staging, final)
  return final


PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"


def raw_predict(channel: grpc.Channel) -> grpc.UnaryUnaryMultiCallable:
  """``Predict`` taking and returning serialized bytes (for requests no stub can build)."""
  return channel.unary_unary(PREDICT_METHOD)


def string_tensor(values: List[bytes], shape: List[int]) -> tensor_pb2.TensorProto:
  """A DT_STRING TensorProto that declares ``shape`` and holds ``values`` as given."""
  return tensor_pb2.TensorProto(
      dtype=types_pb2.DT_STRING, string_val=values,
      tensor_shape=tensor_shape_pb2.TensorShapeProto(
          dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in shape]))


def predict_request(model_name: str, history: tensor_pb2.TensorProto,
                    k: int = 5) -> predict_pb2.PredictRequest:
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.inputs[contract.INPUT_HISTORY].CopyFrom(history)
  request.inputs[contract.INPUT_K].CopyFrom(tf.make_tensor_proto(k, tf.int32))
  return request


def with_raw_model_name(request: predict_pb2.PredictRequest, name: bytes) -> bytes:
  """``request`` serialized with ``model_spec.name`` replaced by ``name`` (any bytes,
  e.g. invalid UTF-8, which no protobuf library will set)."""
  placeholder = "\x01" * len(name)
  request = predict_pb2.PredictRequest.FromString(request.SerializeToString())
  request.model_spec.name = placeholder
  data = request.SerializeToString()
  assert data.count(placeholder.encode()) == 1
  return data.replace(placeholder.encode(), name)


def bad_predict_requests(model_name: str) -> Dict[str, bytes]:
  """Serialized Predict requests that ``serving.server`` must refuse with
  INVALID_ARGUMENT, cheaply, by kind (the issue-19 drills among them)."""
  one_item = string_tensor([b"item"], [1, 1])
  return {
      # 1024 x 100000 declared, one value sent: the server must not materialise it.
      "huge-declared-shape": predict_request(
          model_name, string_tensor([b"x"], [1024, 100000])).SerializeToString(),
      "non-utf8-model-name": with_raw_model_name(
          predict_request(model_name, one_item), b"\xff\xfe"),
      "oversize-id": predict_request(
          model_name, string_tensor([b"i" * 65536], [1, 1])).SerializeToString(),
      "zero-k": predict_request(model_name, one_item, k=0).SerializeToString(),
      "int-history": predict_request(
          model_name, tf.make_tensor_proto([[1, 2]], tf.int32)).SerializeToString(),
      "not-a-protobuf": b"\xff\xff\xff\xff",
  }


def tf_model_server_binary() -> Optional[str]:
  """The stock ``tensorflow_model_server`` to test against: ``$SEQREC_TF_MODEL_SERVER``
  if it names an executable file, else the one on PATH, else None."""
  path = os.environ.get(TF_MODEL_SERVER_ENV)
  if path:
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
  return shutil.which(TF_MODEL_SERVER)


def tf_model_server_skip_reason() -> str:
  """Why the tests against stock TF Serving skip when ``tf_model_server_binary`` is None."""
  path = os.environ.get(TF_MODEL_SERVER_ENV)
  where = (f"${TF_MODEL_SERVER_ENV}={path} is not an executable file" if path else
           f"{TF_MODEL_SERVER} is not on PATH and ${TF_MODEL_SERVER_ENV} is not set")
  return (f"stock TF Serving not available ({where}); its binary comes from Docker or "
          "Google's apt repository, not pip. Run these where it exists: "
          "docs/failure-modes.md, \"Stock TF Serving\"")


_OPS_SCRIPT = """
import json, sys
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry
model = saved_model_pb2.SavedModel()
with open(sys.argv[1], "rb") as f:
  model.ParseFromString(f.read())
python_ops = set(sys.argv[2:])
lacking = set()
for meta_graph in model.meta_graphs:
  library = meta_graph.graph_def.library
  functions = {f.signature.name for f in library.function}
  nodes = list(meta_graph.graph_def.node) + [n for f in library.function for n in f.node_def]
  lacking |= {n.op for n in nodes if n.op not in functions and (
      n.op in python_ops or op_def_registry.get(n.op) is None)}
print(json.dumps(sorted(lacking)))
"""
# Registered in Python TensorFlow but run Python code: no model server can run them.
PYTHON_OPS = ("PyFunc", "PyFuncStateless", "EagerPyFunc")


def ops_stock_tensorflow_lacks(export_dir: str) -> List[str]:
  """Op types of the SavedModel that a model server built from stock TensorFlow
  cannot run: ops not registered by ``import tensorflow`` alone (custom ops such as
  ScaNN's; checked in a fresh process, so ops another import registered here do
  not count) and ops that call back into Python."""
  result = subprocess.run(
      [sys.executable, "-c", _OPS_SCRIPT, os.path.join(export_dir, "saved_model.pb"),
       *PYTHON_OPS],
      capture_output=True, text=True, check=True,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  return json.loads(result.stdout.strip().splitlines()[-1])


def free_port() -> int:
  """A loopback port free right now (for servers that cannot bind port 0)."""
  with socket.socket() as s:
    s.bind((LOOPBACK, 0))
    return s.getsockname()[1]


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
  """Calls ``predicate`` until it is true or ``timeout`` seconds pass."""
  deadline = time.monotonic() + timeout
  while True:
    if predicate():
      return True
    if time.monotonic() >= deadline:
      return False
    time.sleep(interval)


def model_available(target: str, model_name: str, timeout: float = 2.0) -> bool:
  """True when GetModelStatus reports some version AVAILABLE."""
  with grpc.insecure_channel(target) as channel:
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model_name
    try:
      response = stub.GetModelStatus(request, timeout=timeout)
    except grpc.RpcError:
      return False
  return any(s.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
             for s in response.model_version_status)


class ServerProcess:
  """A model server subprocess on loopback; a context manager that always stops it."""

  def __init__(self, command: List[str], port: Optional[int], model_name: str,
               env: Optional[dict] = None):
    self.command = command
    self.port = port
    self.model_name = model_name
    self.output: List[str] = []
    self._env = env
    self._process: Optional[subprocess.Popen] = None
    self._reader: Optional[threading.Thread] = None
    self._ready = threading.Event()

  @classmethod
  def local(cls, base_path: str, model_name: str, poll_seconds: float = 1.0,
            extra_args: Optional[List[str]] = None) -> "ServerProcess":
    """``python -m serving.server`` on 127.0.0.1, port picked by the server."""
    command = [sys.executable, "-m", "serving.server", "--model-base-path", base_path,
               "--model-name", model_name, "--host", LOOPBACK, "--port", "0",
               "--poll-seconds", str(poll_seconds)] + list(extra_args or [])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return cls(command, None, model_name, env)

  @classmethod
  def tf_serving(cls, base_path: str, model_name: str,
                 poll_seconds: int = 1) -> "ServerProcess":
    """Stock ``tensorflow_model_server`` (``tf_model_server_binary``) on a free loopback port."""
    port = free_port()
    command = [tf_model_server_binary() or TF_MODEL_SERVER, f"--port={port}",
               "--rest_api_port=0", f"--model_name={model_name}",
               f"--model_base_path={os.path.abspath(base_path)}",
               f"--file_system_poll_wait_seconds={max(1, int(poll_seconds))}",
               # Report a broken version at once instead of retrying for minutes.
               "--max_num_load_retries=0"]
    return cls(command, port, model_name)

  @property
  def target(self) -> str:
    return f"{LOOPBACK}:{self.port}"

  @property
  def pid(self) -> Optional[int]:
    return self._process.pid if self._process is not None else None

  def _read_output(self):
    for line in self._process.stdout:
      self.output.append(line)
      match = _READY_LINE.match(line.strip())
      if match and self.port is None:
        self.port = int(match.group(1))
        self._ready.set()

  def start(self, timeout: float = 120.0) -> "ServerProcess":
    """Starts the server; returns once it serves the model (or raises with its log)."""
    self._process = subprocess.Popen(
        self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=self._env, cwd=REPO_ROOT)
    self._reader = threading.Thread(target=self._read_output, daemon=True)
    self._reader.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      if self._process.poll() is not None:
        break
      if self._ready.is_set():   # serving.server prints its port once loaded
        return self
      if self.port is not None and model_available(self.target, self.model_name, 1.0):
        return self
      self._ready.wait(0.2)
    self.stop()
    raise RuntimeError(f"{self.command[0]} did not start serving within {timeout} s "
                       f"(exit code {self._process.returncode}):\n" + "".join(self.output))

  def stop(self, timeout: float = 20.0) -> Optional[int]:
    """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
    if self._process is None:
      return None
    if self._process.poll() is None:
      self._process.send_signal(signal.SIGTERM)
      try:
        self._process.wait(timeout)
      except subprocess.TimeoutExpired:
        self._process.kill()
        self._process.wait(timeout)
    if self._reader is not None:
      self._reader.join(timeout)
    return self._process.returncode

  def __enter__(self) -> "ServerProcess":
    return self.start()

  def __exit__(self, *exc) -> None:
    self.stop()


class GatedServable:
  """Wraps a servable: ``validate`` waits until ``release()``; counts calls.

  Holds a server's request slots for tests of the concurrency cap, deadlines and
  cancellation: ``waiting`` calls have entered ``validate``, ``runs`` calls reached
  the model. Everything else is the wrapped servable's.
  """

  def __init__(self, servable: Any, max_wait: float = 60.0):
    self._servable = servable
    self._gate = threading.Event()
    self._lock = threading.Lock()
    self._max_wait = max_wait
    self.waiting = 0
    self.runs = 0

  def __getattr__(self, name: str) -> Any:
    return getattr(self._servable, name)

  def release(self) -> None:
    self._gate.set()

  def validate(self, *args, **kwargs):
    with self._lock:
      self.waiting += 1
    self._gate.wait(self._max_wait)
    return self._servable.validate(*args, **kwargs)

  def run(self, *args, **kwargs):
    with self._lock:
      self.runs += 1
    return self._servable.run(*args, **kwargs)


class BackgroundRequests:
  """Calls ``send()`` in a loop on a thread until stopped or ``max_seconds`` pass.

  ``send`` returns (answering version, result); the loop records every version in
  order, the last result per version and every exception as text.
  """

  def __init__(self, send: Callable[[], Tuple[int, Any]], max_seconds: float = 60.0):
    self._send = send
    self.max_seconds = max_seconds
    self.versions: List[int] = []
    self.results: Dict[int, Any] = {}
    self.errors: List[str] = []
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True)

  def _run(self):
    deadline = time.monotonic() + self.max_seconds
    while not self._stop.is_set() and time.monotonic() < deadline:
      try:
        version, result = self._send()
      except grpc.RpcError as e:
        self.errors.append(f"{e.code().name}: {e.details()}")
        continue
      except Exception as e:  # pylint: disable=broad-except
        self.errors.append(f"{type(e).__name__}: {e}")
        continue
      self.results[version] = result
      self.versions.append(version)

  def wait_for_count(self, count: int, timeout: float) -> bool:
    return wait_for(lambda: len(self.versions) >= count, timeout)

  def __enter__(self) -> "BackgroundRequests":
    self._thread.start()
    return self

  def __exit__(self, *exc) -> None:
    self._stop.set()
    self._thread.join(self.max_seconds + 30)
