"""A model server that speaks TensorFlow Serving's gRPC API (and REST API) for the recommender.

Clients cannot tell it from tensorflow_model_server; usage: docs/serving.md, "The local server".
"""

import argparse
import concurrent.futures
import dataclasses
import logging
import signal
import ssl
import sys
import threading
from typing import Dict, List, Optional, Sequence, Tuple

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from serving import contract
from serving import guard
from serving import health
from serving import model_watcher
from serving import rest
from serving import security
from serving import servable as servable_lib
from serving import validation

_LOG = logging.getLogger(__name__)

SIGNATURE_DEF_FIELD = "signature_def"
LOOPBACK = "127.0.0.1"
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024   # largest response
DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024   # largest request gRPC accepts
DEFAULT_MAX_CONCURRENT_REQUESTS = 8
# Handler threads beyond the capped calls, so status and health stay answerable.
RESERVED_THREADS = 4
PREDICTION_SERVICE_PREFIX = "/tensorflow.serving.PredictionService/"
_STATE_ENUM = {
    model_watcher.START: get_model_status_pb2.ModelVersionStatus.START,
    model_watcher.LOADING: get_model_status_pb2.ModelVersionStatus.LOADING,
    model_watcher.AVAILABLE: get_model_status_pb2.ModelVersionStatus.AVAILABLE,
    model_watcher.UNLOADING: get_model_status_pb2.ModelVersionStatus.UNLOADING,
    model_watcher.END: get_model_status_pb2.ModelVersionStatus.END,
}


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str):
  context.abort(code, message)


def _resolve(watchers: Dict[str, model_watcher.ModelWatcher], model_spec, context):
  """The servable a ModelSpec asks for, or aborts the call as TF Serving would."""
  if not model_spec.name:
    _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "Missing servable name")
  watcher = watchers.get(model_spec.name)
  if watcher is None:
    if model_spec.HasField("version"):
      _abort(context, grpc.StatusCode.NOT_FOUND,
             f"Servable not found for request: Specific({model_spec.name}, "
             f"{model_spec.version.value})")
    _abort(context, grpc.StatusCode.NOT_FOUND,
           f"Servable not found for request: Latest({model_spec.name})")
  version = model_spec.version.value if model_spec.HasField("version") else None
  try:
    return watcher.servable(version=version, version_label=model_spec.version_label or None)
  except model_watcher.UnknownVersionLabel as e:
    _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(e))
  except model_watcher.ServableNotFound as e:
    _abort(context, grpc.StatusCode.NOT_FOUND, str(e))


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
  """``Predict`` and ``GetModelMetadata`` for the watched models."""

  def __init__(self, watchers: Dict[str, model_watcher.ModelWatcher],
               limits: validation.Limits):
    self._watchers = watchers
    self._limits = limits

  def Predict(self, request: predict_pb2.PredictRequest, context):  # pylint: disable=invalid-name
    if not request.HasField("model_spec"):
      _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
    servable = self.resolve(request.model_spec, context)
    signature_name, outputs = self.predict_on(servable, request, context)
    response = predict_pb2.PredictResponse()
    response.model_spec.name = request.model_spec.name
    response.model_spec.version.value = servable.version
    response.model_spec.signature_name = signature_name
    for alias, value in outputs.items():
      response.outputs[alias].CopyFrom(tf.make_tensor_proto(value))
    return response

  def resolve(self, model_spec, context):
    """The servable ``model_spec`` asks for, or aborts the call as TF Serving would."""
    return _resolve(self._watchers, model_spec, context)

  def predict_on(self, servable, request: predict_pb2.PredictRequest,
                 context) -> Tuple[str, Dict[str, np.ndarray]]:
    """Validates and runs ``request`` on ``servable``: (signature name, outputs)."""
    signature_name = request.model_spec.signature_name or contract.DEFAULT_SIGNATURE
    output_filter = list(request.output_filter)
    try:
      arrays = servable.validate(signature_name, request.inputs, output_filter,
                                 self._limits)
      guard.ensure_active(context)   # validation may have outlived the call
      outputs = servable.run(signature_name, arrays, output_filter)
    except validation.RequestError as e:
      _abort(context, e.code, e.message)
    except tf.errors.OpError as e:
      # TensorFlow's message names graph nodes and files: for the log only.
      _LOG.warning("Predict on %s version %d failed: %s", request.model_spec.name,
                   servable.version, e.message)
      code = servable_lib.status_code(e)
      _abort(context, code, f"{signature_name}: the model failed on this request "
                            f"({code.name}); the server log has the details")
    return signature_name, outputs

  def GetModelMetadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest,  # pylint: disable=invalid-name
                       context):
    if not request.HasField("model_spec"):
      _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
    if not request.metadata_field:
      _abort(context, grpc.StatusCode.INVALID_ARGUMENT,
             "GetModelMetadataRequest must specify at least one metadata_field")
    for field in request.metadata_field:
      if field != SIGNATURE_DEF_FIELD:
        _abort(context, grpc.StatusCode.INVALID_ARGUMENT,
               f"Metadata field {field} is not supported")
    servable = _resolve(self._watchers, request.model_spec, context)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for name, signature_def in servable.signature_defs.items():
      signature_map.signature_def[name].CopyFrom(signature_def)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = request.model_spec.name
    response.model_spec.version.value = servable.version
    response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
    return response

  def _unimplemented(self, request, context):
    del request
    _abort(context, grpc.StatusCode.UNIMPLEMENTED,
           "only Predict and GetModelMetadata are served")

  Classify = Regress = MultiInference = _unimplemented  # pylint: disable=invalid-name


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
  """``GetModelStatus``: every version seen, its state and load error if any."""

  def __init__(self, watchers: Dict[str, model_watcher.ModelWatcher]):
    self._watchers = watchers

  def GetModelStatus(self, request: get_model_status_pb2.GetModelStatusRequest, context):  # pylint: disable=invalid-name
    if not request.HasField("model_spec"):
      _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
    name = request.model_spec.name
    watcher = self._watchers.get(name)
    states = watcher.version_states() if watcher is not None else {}
    if request.model_spec.HasField("version"):
      version = request.model_spec.version.value
      if version not in states:
        _abort(context, grpc.StatusCode.NOT_FOUND,
               f"Could not find version {version} of model {name}")
      states = {version: states[version]}
    elif not states:
      _abort(context, grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}")
    response = get_model_status_pb2.GetModelStatusResponse()
    for version in sorted(states):
      state = states[version]
      status = response.model_version_status.add(version=version,
                                                  state=_STATE_ENUM[state.state])
      status.status.error_code = state.error_code.value[0]
      status.status.error_message = guard.redact_paths(state.error_message)
    return response

  def HandleReloadConfigRequest(self, request, context):  # pylint: disable=invalid-name
    del request
    _abort(context, grpc.StatusCode.UNIMPLEMENTED,
           "this server reads its models once at start; restart it to change them")


@dataclasses.dataclass(frozen=True)
class ModelSource:
  """One served model: its name, base path and version labels."""
  name: str
  base_path: str
  version_labels: Dict[str, int] = dataclasses.field(default_factory=dict)


def read_model_config(path: str) -> List[ModelSource]:
  """The models of a TF Serving model config file (text ``ModelServerConfig``).

  The same file serves stock TF Serving (``--model_config_file``) and this server.
  Only what this server does is accepted: ``model_platform`` "tensorflow" (or unset)
  and the ``latest`` version policy with one version (TF Serving's default).

  Raises:
    ValueError: naming the file and the offending model or field.
  """
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
  except OSError as e:
    raise ValueError(f"{path}: cannot read the model config file: {e}") from e
  config = model_server_config_pb2.ModelServerConfig()
  try:
    text_format.Parse(text, config)
  except text_format.ParseError as e:
    raise ValueError(f"{path}: not a text ModelServerConfig: {e}") from e
  if config.WhichOneof("config") != "model_config_list" or not (
      config.model_config_list.config):
    raise ValueError(f"{path}: expected a model_config_list with at least one config")
  sources = []
  for i, model in enumerate(config.model_config_list.config):
    where = f"{path}: model_config_list.config[{i}]"
    if not model.name or not model.base_path:
      raise ValueError(f"{where}: name and base_path are required")
    if model.model_platform not in ("", "tensorflow"):
      raise ValueError(f"{where} ({model.name}): model_platform must be 'tensorflow', "
                       f"got '{model.model_platform}'")
    policy = model.model_version_policy
    kind = policy.WhichOneof("policy_choice")
    if kind not in (None, "latest") or (kind == "latest" and policy.latest.num_versions > 1):
      raise ValueError(f"{where} ({model.name}): only model_version_policy "
                       f"{{ latest {{ num_versions: 1 }} }} is supported, got "
                       f"{text_format.MessageToString(policy, as_one_line=True)}")
    if any(s.name == model.name for s in sources):
      raise ValueError(f"{where}: model name '{model.name}' appears twice")
    sources.append(ModelSource(model.name, model.base_path, dict(model.version_labels)))
  return sources


class ModelServer:
  """The gRPC server, one model watcher per model, and their shared lifecycle.

  Usage::

    server = ModelServer("seqrec", "/serving/seqrec", port=0, host="127.0.0.1")
    server.start()        # loads the newest version, then binds and serves
    ... server.port ...
    server.stop(grace=5)

  Several models: ``ModelServer(models=read_model_config("models.config"), ...)``.
  TF Serving's REST API too: ``rest_port=8501`` (then ``server.rest_port``).
  """

  def __init__(self, model_name: Optional[str] = None, base_path: Optional[str] = None,
               port: int = 8500, host: str = LOOPBACK, poll_seconds: float = 2.0,
               limits: Optional[validation.Limits] = None,
               fallback: str = servable_lib.FALLBACK_POPULARITY,
               version_labels: Optional[Dict[str, int]] = None,
               max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT_REQUESTS,
               max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
               max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
               models: Optional[Sequence[ModelSource]] = None,
               token: Optional[str] = None,
               credentials: Optional[grpc.ServerCredentials] = None,
               loader: Optional[model_watcher.Loader] = None,
               rest_port: Optional[int] = None,
               rest_timeout_ms: int = rest.DEFAULT_TIMEOUT_MS,
               rest_ssl_context: Optional[ssl.SSLContext] = None):
    """See the class docstring; ``token``: bearer token every call must carry;
    ``credentials``: TLS (``security.server_credentials``), None for plaintext;
    ``loader``: ``loader(version_dir, version)`` -> servable (default: ``Servable``);
    ``rest_port``: also serve the REST API there (None: not; 0: a free port), HTTPS
    with ``rest_ssl_context`` (``security.ssl_context``, required with ``credentials``),
    each call's deadline ``rest_timeout_ms`` after it arrives."""
    if rest_port is not None and (credentials is None) != (rest_ssl_context is None):
      raise ValueError("give TLS for both APIs or neither: credentials and rest_ssl_context")
    if (models is None) == (model_name is None or base_path is None):
      raise ValueError("give either model_name and base_path, or models")
    if models is None:
      models = [ModelSource(model_name, base_path, dict(version_labels or {}))]
    self.models = list(models)
    self.host = host
    self.limits = limits or validation.Limits()
    loader = loader or (lambda path, version: servable_lib.Servable(path, version, fallback))
    self.watchers: Dict[str, model_watcher.ModelWatcher] = {
        m.name: model_watcher.ModelWatcher(m.name, m.base_path, loader, poll_seconds,
                                           m.version_labels)
        for m in self.models}
    options = [("grpc.max_receive_message_length", max_request_bytes),
               ("grpc.max_send_message_length", max_message_bytes),
               ("grpc.so_reuseport", 0)]
    self.guard = guard.CallGuard(token, max_concurrent_requests, [PREDICTION_SERVICE_PREFIX])
    threads = max_concurrent_requests + RESERVED_THREADS
    # gRPC counts a call until its handler thread is free, which may be after the
    # client has its answer and sent the next call: room for one such per thread.
    # Beyond, gRPC answers RESOURCE_EXHAUSTED itself; the executor's queue is bounded.
    self._server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grpc"),
        interceptors=[self.guard], options=options, maximum_concurrent_rpcs=2 * threads)
    prediction_servicer = PredictionServicer(self.watchers, self.limits)
    model_servicer = ModelServicer(self.watchers)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        prediction_servicer, self._server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(model_servicer, self._server)
    self._server.add_generic_rpc_handlers((health.health_handler(self.health),))
    address = f"{host}:{port}"
    self.port = (self._server.add_secure_port(address, credentials) if credentials
                 else self._server.add_insecure_port(address))
    if self.port == 0:
      raise OSError(f"cannot bind {address}")
    self._rest = None
    if rest_port is not None:
      try:
        self._rest = rest.RestServer(
            rest.RestApi(prediction_servicer, model_servicer, self.guard), self.guard, host,
            rest_port, max_request_bytes, rest_timeout_ms, rest_ssl_context)
      except OSError:
        self._server.stop(0)   # frees the gRPC port bound above
        raise
    self.rest_port = self._rest.port if self._rest else None
    if not _is_loopback(host) and (credentials is None or token is None):
      _LOG.warning("listening on %s without %s: anyone who can reach the port can %s",
                   address, "TLS" if credentials is None else "a token",
                   "read and call it" if credentials is None else "call it")
    self._stopped = threading.Event()

  @property
  def watcher(self) -> model_watcher.ModelWatcher:
    """The watcher of the only model (single-model servers)."""
    if len(self.watchers) != 1:
      raise ValueError(f"this server has {len(self.watchers)} models; use .watchers[name]")
    return next(iter(self.watchers.values()))

  def health(self, service: str) -> Optional[bool]:
    """Serving state for the health service: "" = every model; None = unknown name."""
    if not service:
      return all(w.serving_version() is not None for w in self.watchers.values())
    if service in self.watchers:
      return self.watchers[service].serving_version() is not None
    return None

  def is_serving(self) -> bool:
    return bool(self.health(""))

  def start(self) -> "ModelServer":
    """Loads each model's newest version (if any) in this thread, then serves and polls."""
    for watcher in self.watchers.values():
      watcher.start()
    self._server.start()
    if self._rest:
      self._rest.start()
    return self

  def stop(self, grace: Optional[float] = 5.0) -> None:
    """Refuses new calls, lets running ones finish for ``grace`` s, stops polling."""
    if self._stopped.is_set():
      return
    self._stopped.set()
    grpc_stopped = self._server.stop(grace)
    if self._rest:
      self._rest.stop(grace)
    grpc_stopped.wait()
    for watcher in self.watchers.values():
      watcher.stop(timeout=grace)

  def wait(self, timeout: Optional[float] = None) -> bool:
    return self._server.wait_for_termination(timeout)

  def describe(self) -> str:
    """One line: every model, the version it serves and its base path, and the address."""
    models = ", ".join(f"'{m.name}' (version {self.watchers[m.name].serving_version()}) "
                       f"from {m.base_path}" for m in self.models)
    return f"Serving model {models} on {self.host}:{self.port}"

  def describe_rest(self) -> Optional[str]:
    """One line naming the REST API's address, None without it."""
    if not self._rest:
      return None
    host = f"[{self.host}]" if ":" in self.host and "[" not in self.host else self.host
    return f"REST API on {self._rest.scheme}://{host}:{self.rest_port}/v1/models/"

  def __enter__(self) -> "ModelServer":
    return self.start()

  def __exit__(self, *exc) -> None:
    self.stop(grace=1.0)


def _is_loopback(host: str) -> bool:
  return host in ("localhost", "::1", "[::1]") or host.startswith("127.")


def _positive(text: str) -> int:
  value = int(text)
  if value < 1:
    raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
  return value


def _version_label(text: str):
  label, sep, version = text.partition("=")
  if not sep or not label or not version.isdigit():
    raise argparse.ArgumentTypeError(f"expected LABEL=VERSION (e.g. stable=3), got '{text}'")
  return label, int(version)


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument("--model-base-path",
                      help="folder of <version>/ SavedModel folders (the Pusher's destination)")
  source.add_argument("--model-config-file",
                      help="TF Serving model config (text ModelServerConfig), e.g. "
                           "serving/deploy/models.config; names, base paths, version labels")
  parser.add_argument("--model-name", default=contract.MODEL_NAME,
                      help="with --model-base-path: the name clients use")
  parser.add_argument("--port", type=int, default=8500, help="gRPC port; 0 picks a free one")
  parser.add_argument("--rest-port", "--rest_api_port", dest="rest_port", type=int,
                      help="also answer TF Serving's REST API (/v1/models/...) on this "
                           "port, same host, TLS, token and limits as gRPC; 0 picks a "
                           "free one (TF Serving's 0 turns REST off); default: gRPC only")
  parser.add_argument("--rest-api-timeout-in-ms", "--rest_api_timeout_in_ms",
                      dest="rest_timeout_ms", type=_positive, default=rest.DEFAULT_TIMEOUT_MS,
                      help="a REST call still waiting this long after it arrived is "
                           "refused before its model runs (default: %(default)s)")
  parser.add_argument("--host", default=LOOPBACK,
                      help="address to bind (default: %(default)s, this machine only; "
                           "0.0.0.0 or :: for all interfaces, with TLS and a token)")
  parser.add_argument("--poll-seconds", type=float, default=2.0,
                      help="pause between two scans of the base path for new versions")
  limits = parser.add_argument_group(
      "request limits", "a request beyond one is refused (INVALID_ARGUMENT; RESOURCE_"
      "EXHAUSTED for --max-request-bytes and --max-concurrent-requests) before any "
      "input is materialised")
  limits.add_argument("--max-request-bytes", type=_positive, default=DEFAULT_MAX_REQUEST_BYTES,
                      help="largest serialized request (default: %(default)s)")
  limits.add_argument("--max-batch-size", type=_positive,
                      default=validation.Limits.max_batch_size,
                      help="rows of 'history' per request (default: %(default)s)")
  limits.add_argument("--max-history-length", type=_positive,
                      default=validation.Limits.max_history_length,
                      help="columns of 'history', padding included (default: %(default)s)")
  limits.add_argument("--max-elements", type=_positive, default=validation.Limits.max_elements,
                      help="values of any one input, e.g. rows x columns of 'history' "
                           "(default: %(default)s)")
  limits.add_argument("--max-id-bytes", type=_positive, default=validation.Limits.max_id_bytes,
                      help="bytes of one item id (default: %(default)s)")
  limits.add_argument("--max-list-length", type=_positive,
                      default=validation.Limits.max_list_length,
                      help="columns of any other per-row list, e.g. the rule lists of "
                           "'recommend' (default: %(default)s)")
  limits.add_argument("--max-concurrent-requests", type=_positive,
                      default=DEFAULT_MAX_CONCURRENT_REQUESTS,
                      help="Predict/GetModelMetadata calls running at once; one more is "
                           "refused at once, not queued (default: %(default)s)")
  access = parser.add_argument_group(
      "access", "stock TF Serving has neither: protect it at the network "
                "(serving/deploy/kubernetes.yaml)")
  access.add_argument("--tls-cert", help="server certificate chain (PEM): serve TLS only")
  access.add_argument("--tls-key", help="private key of --tls-cert (PEM)")
  access.add_argument("--tls-client-ca",
                      help="CA certificates (PEM): require a client certificate signed by one")
  access.add_argument("--token-file",
                      help=f"file holding the bearer token every call must carry "
                           f"(metadata 'authorization: Bearer <token>'); default: "
                           f"${security.TOKEN_ENV} if set, else no token")
  parser.add_argument("--empty-history", choices=servable_lib.FALLBACK_MODES,
                      default=servable_lib.FALLBACK_POPULARITY,
                      help="rows without a known item: the k most popular items "
                           "(default) or whatever the model returns")
  parser.add_argument("--version-label", type=_version_label, action="append", default=[],
                      help="with --model-base-path: LABEL=VERSION for "
                           "ModelSpec.version_label, repeatable")
  parser.add_argument("--grace-seconds", type=float, default=5.0,
                      help="on SIGTERM/SIGINT, how long running calls may finish")
  args = parser.parse_args(argv)
  if args.model_config_file and args.version_label:
    parser.error("--version-label goes with --model-base-path; put labels in the config file")
  if (args.tls_cert is None) != (args.tls_key is None):
    parser.error("--tls-cert and --tls-key go together")
  if args.tls_client_ca and not args.tls_cert:
    parser.error("--tls-client-ca needs --tls-cert and --tls-key")
  return args


def main(argv: Optional[List[str]] = None) -> int:
  args = parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
  try:
    if args.model_config_file:
      models = read_model_config(args.model_config_file)
    else:
      models = [ModelSource(args.model_name, args.model_base_path, dict(args.version_label))]
    token = security.read_token(args.token_file)
    credentials = (security.server_credentials(args.tls_cert, args.tls_key, args.tls_client_ca)
                   if args.tls_cert else None)
    rest_ssl_context = (security.ssl_context(args.tls_cert, args.tls_key, args.tls_client_ca)
                        if args.tls_cert and args.rest_port is not None else None)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  server = ModelServer(
      models=models, port=args.port, host=args.host, poll_seconds=args.poll_seconds,
      limits=validation.Limits(args.max_batch_size, args.max_history_length,
                               args.max_elements, args.max_id_bytes, args.max_list_length),
      fallback=args.empty_history, max_concurrent_requests=args.max_concurrent_requests,
      max_request_bytes=args.max_request_bytes, token=token, credentials=credentials,
      rest_port=args.rest_port, rest_timeout_ms=args.rest_timeout_ms,
      rest_ssl_context=rest_ssl_context)
  stop = threading.Event()

  def on_signal(signum, frame):
    del frame
    _LOG.info("received %s; stopping (grace %.1f s)", signal.Signals(signum).name,
              args.grace_seconds)
    stop.set()

  signal.signal(signal.SIGTERM, on_signal)
  signal.signal(signal.SIGINT, on_signal)
  server.start()
  print(server.describe(), flush=True)
  if server.describe_rest():
    print(server.describe_rest(), flush=True)
  while not stop.wait(1.0):
    pass
  server.stop(args.grace_seconds)
  print("Server stopped", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
