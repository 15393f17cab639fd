"""Client for the recommender behind TensorFlow Serving's gRPC API (stock stubs only).

Python use and command-line examples: docs/serving.md, "The client".
"""

import argparse
import csv
import dataclasses
import math
import sys
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import contract
from serving import security

_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Recommendations:
  """One Predict call's answer.

  Attributes:
    items: per history, (item_id, score) best first; entries with a non-finite score
      (only the row's own history items, when k exceeds what is left) are dropped.
    num_unknown: per history, ids the model did not know (None if the server does
      not report it, e.g. stock TF Serving).
    version: the model version that answered (0 when no history was given and
      no call was made).
  """
  items: List[List[Tuple[str, float]]]
  num_unknown: Optional[List[int]]
  version: int
  num_unknown_rules: Optional[List[int]] = None   # per history, with rules only


@dataclasses.dataclass(frozen=True)
class Rules:
  """One history's request-time rules (the ``recommend`` signature; docs/serving.md,
  "Business rules"): item ids to exclude, to allow (empty: every item), attribute
  values every item must have, and attribute values no item may have."""
  exclude: Sequence[str] = ()
  allow: Sequence[str] = ()
  require_attributes: Sequence[str] = ()
  exclude_attributes: Sequence[str] = ()

  def lists(self) -> Dict[str, Sequence[str]]:
    """Input name -> this history's list."""
    return dict(zip(contract.RULE_LIST_INPUTS, (self.exclude, self.allow,
                                                 self.require_attributes,
                                                 self.exclude_attributes)))


@dataclasses.dataclass(frozen=True)
class Explanation:
  """One recommended item and the history items that contributed most to its score.

  ``because``: (history item id, weight) largest weight first; the weight is how much
  the item's score falls when that history item is removed (docs/serving.md,
  "Explanations"), negative when removing it would raise the score.
  """
  item_id: str
  score: float
  because: List[Tuple[str, float]]


@dataclasses.dataclass(frozen=True)
class ExplainedHistory:
  """The ``explain`` answer for one history.

  Attributes:
    items: the recommendations (as ``recommend`` returns them) with their explanations.
    attention: float [blocks, heads, positions]: how the model's query position
      attends over ``attention_ids`` in each Transformer block.
    attention_ids: the history items the model read, oldest first ("" = padding).
  """
  items: List[Explanation]
  attention: np.ndarray
  attention_ids: List[str]


@dataclasses.dataclass(frozen=True)
class Explanations:
  """One ``explain`` call's answer: per history, and as ``Recommendations`` otherwise."""
  histories: List[ExplainedHistory]
  num_unknown: Optional[List[int]]
  version: int


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
  name: str
  version: int
  signature_defs: Dict[str, meta_graph_pb2.SignatureDef]


@dataclasses.dataclass(frozen=True)
class VersionStatus:
  version: int
  state: str            # START, LOADING, AVAILABLE, UNLOADING or END
  error_code: int       # 0 = OK
  error_message: str


def history_tensor(histories: Sequence[Sequence[str]], what: str = "histories") -> np.ndarray:
  """Histories (or other per-row lists, named ``what``) -> bytes [batch, max_len], each
  padded with "" at the END.

  Right padding keeps every row's most recent item last among its items and is
  what every server and export accepts.
  """
  if isinstance(histories, (str, bytes)):
    raise TypeError(f"{what} must be a list of lists of item ids, got a string")
  rows = []
  for i, history in enumerate(histories):
    if isinstance(history, (str, bytes)):
      raise TypeError(f"{what}[{i}] must be a list of item ids, got the string {history!r}")
    row = []
    for j, item in enumerate(history):
      if not isinstance(item, str):
        raise TypeError(f"{what}[{i}][{j}] must be a str item id, got {type(item).__name__}")
      row.append(item.encode())
    rows.append(row)
  width = max((len(r) for r in rows), default=0)
  array = np.full((len(rows), width), contract.PAD.encode(), dtype=object)
  for i, row in enumerate(rows):
    array[i, :len(row)] = row
  return array


class RecommenderClient:
  """Top-k recommendations, metadata and status from a TF Serving gRPC endpoint."""

  def __init__(self, target: str, model_name: str = contract.MODEL_NAME, timeout: float = 10.0,
               signature_name: str = contract.DEFAULT_SIGNATURE,
               version: Optional[int] = None, version_label: Optional[str] = None,
               channel: Optional[grpc.Channel] = None,
               credentials: Optional[grpc.ChannelCredentials] = None,
               token: Optional[str] = None, tls_server_name: Optional[str] = None):
    """target: ``host:port``; version / version_label pin a version (default: latest).

    credentials: TLS (``security.channel_credentials``), None for plaintext; token:
    bearer token sent with every call; tls_server_name: the name the server's
    certificate must carry when it is not the host of ``target``.
    """
    self.target = target
    self.model_name = model_name
    self.timeout = timeout
    self.signature_name = signature_name
    self.version = version
    self.version_label = version_label
    self._metadata = security.bearer_metadata(token)
    self._own_channel = channel is None
    options = [("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
               ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES)]
    if tls_server_name:
      options.append(("grpc.ssl_target_name_override", tls_server_name))
    self._channel = channel or (
        grpc.secure_channel(target, credentials, options=options) if credentials
        else grpc.insecure_channel(target, options=options))
    self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
    self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

  def _model_spec(self, spec, with_signature: bool) -> None:
    spec.name = self.model_name
    if self.version is not None:
      spec.version.value = self.version
    elif self.version_label:
      spec.version_label = self.version_label
    if with_signature:
      spec.signature_name = self.signature_name

  def recommend(self, histories: Sequence[Sequence[str]], k: int) -> List[List[Tuple[str, float]]]:
    """Per history (item ids, oldest first), the top-k (item_id, score), best first."""
    return self.recommend_details(histories, k).items

  def recommend_details(self, histories: Sequence[Sequence[str]], k: int) -> Recommendations:
    """``recommend`` plus unknown-id counts and the answering version."""
    return self._recommend(self.signature_name, histories, k, {})

  def recommend_with_rules(self, histories: Sequence[Sequence[str]], k: int,
                           rules: Union[Rules, Sequence[Rules]] = Rules(),
                           keep_history: bool = False,
                           diversity: float = 0.0) -> Recommendations:
    """Top-k under request-time rules (signature ``recommend``), filtered before top-k.

    Args:
      histories, k: as for ``recommend``.
      rules: one ``Rules`` for every history, or one per history.
      keep_history: also recommend the history's own items (default: never).
      diversity: maximal-marginal-relevance weight in [0, 1]; 0 = by score only.

    Returns:
      ``Recommendations`` with ``num_unknown_rules``: rule values the model does not know.
    """
    rows = [rules] * len(histories) if isinstance(rules, Rules) else list(rules)
    if len(rows) != len(histories):
      raise ValueError(f"rules: one Rules per history, got {len(rows)} for "
                       f"{len(histories)} histories")
    if not isinstance(keep_history, bool):
      raise TypeError(f"keep_history must be a bool, got {keep_history!r}")
    if not 0.0 <= float(diversity) <= 1.0:
      raise ValueError(f"diversity must be between 0 and 1, got {diversity!r}")
    inputs = {name: tf.make_tensor_proto(
        history_tensor([row.lists()[name] for row in rows], name), dtype=tf.string)
              for name in contract.RULE_LIST_INPUTS}
    inputs[contract.INPUT_KEEP_HISTORY] = tf.make_tensor_proto(keep_history, dtype=tf.bool)
    inputs[contract.INPUT_DIVERSITY] = tf.make_tensor_proto(float(diversity), dtype=tf.float32)
    return self._recommend(contract.RULES_SIGNATURE, histories, k, inputs)

  def _recommend(self, signature_name: str, histories: Sequence[Sequence[str]], k: int,
                 extra_inputs: Dict[str, object]) -> Recommendations:
    """One Predict on ``signature_name`` with history, k and ``extra_inputs`` (protos)."""
    outputs, version = self._predict_top_k(signature_name, histories, k, extra_inputs)
    if outputs is None:
      return Recommendations([], [], version)
    return Recommendations(ranked_items(outputs), outputs.get(contract.OUTPUT_NUM_UNKNOWN),
                           version, outputs.get(contract.OUTPUT_NUM_UNKNOWN_RULES))

  def explain(self, histories: Sequence[Sequence[str]], k: int) -> Explanations:
    """``recommend_details`` through the ``explain`` signature, with each item's
    explanation and the model's attention over each history."""
    outputs, version = self._predict_top_k(contract.EXPLAIN_SIGNATURE, histories, k)
    if outputs is None:
      return Explanations([], [], version)
    return Explanations(explained_histories(outputs), outputs.get(contract.OUTPUT_NUM_UNKNOWN),
                        version)

  def _predict_top_k(self, signature_name: str, histories: Sequence[Sequence[str]], k: int,
                     extra_inputs: Optional[Dict[str, object]] = None):
    """(alias -> array, with the unknown counts as lists when sent; version), or (None,
    version) for no history: one Predict of ``histories``, ``k`` and ``extra_inputs``
    (protos) on the signature."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
      raise ValueError(f"k must be a positive integer, got {k!r}")
    history = history_tensor(histories)
    if history.shape[0] == 0:
      return None, self.version or 0
    request = predict_pb2.PredictRequest()
    self._model_spec(request.model_spec, with_signature=True)
    request.model_spec.signature_name = signature_name
    request.inputs[contract.INPUT_HISTORY].CopyFrom(
        tf.make_tensor_proto(history, dtype=tf.string))
    request.inputs[contract.INPUT_K].CopyFrom(tf.make_tensor_proto(int(k), dtype=tf.int32))
    for name, proto in (extra_inputs or {}).items():
      request.inputs[name].CopyFrom(proto)
    response = self._predict.Predict(request, timeout=self.timeout, metadata=self._metadata)
    outputs = {alias: tf.make_ndarray(tensor) for alias, tensor in response.outputs.items()}
    for alias in (contract.OUTPUT_NUM_UNKNOWN, contract.OUTPUT_NUM_UNKNOWN_RULES):
      if alias in outputs:   # num_unknown: serving.server only
        outputs[alias] = outputs[alias].tolist()
    return outputs, response.model_spec.version.value

  def catalogue(self) -> List[str]:
    """Every item id the model can recommend, in vocabulary order (most popular first)."""
    request = predict_pb2.PredictRequest()
    self._model_spec(request.model_spec, with_signature=False)
    request.model_spec.signature_name = contract.ITEM_EMBEDDINGS_SIGNATURE
    request.output_filter.append(contract.OUTPUT_ITEM_IDS)
    response = self._predict.Predict(request, timeout=self.timeout, metadata=self._metadata)
    return [i.decode() for i in tf.make_ndarray(response.outputs[contract.OUTPUT_ITEM_IDS])]

  def metadata(self) -> ModelMetadata:
    """The served version's signatures (GetModelMetadata, field ``signature_def``)."""
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    self._model_spec(request.model_spec, with_signature=False)
    response = self._predict.GetModelMetadata(request, timeout=self.timeout,
                                              metadata=self._metadata)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    return ModelMetadata(response.model_spec.name, response.model_spec.version.value,
                         dict(signature_map.signature_def))

  def status(self) -> List[VersionStatus]:
    """Every version the server knows for the model, with state and load error."""
    request = get_model_status_pb2.GetModelStatusRequest()
    self._model_spec(request.model_spec, with_signature=False)
    response = self._models.GetModelStatus(request, timeout=self.timeout,
                                           metadata=self._metadata)
    return [VersionStatus(s.version, get_model_status_pb2.ModelVersionStatus.State.Name(s.state),
                          s.status.error_code, s.status.error_message)
            for s in response.model_version_status]

  def is_available(self) -> bool:
    """True when some version is AVAILABLE: the portable health check."""
    try:
      return any(s.state == "AVAILABLE" for s in self.status())
    except grpc.RpcError:
      return False

  def close(self) -> None:
    if self._own_channel:
      self._channel.close()

  def __enter__(self) -> "RecommenderClient":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def ranked_items(outputs: Dict[str, np.ndarray]) -> List[List[Tuple[str, float]]]:
  """Per row, (item_id, score) best first, from ``item_ids`` and ``scores``; slots
  with a non-finite score (no recommendable item left) are dropped."""
  return [[(item.decode(), float(score)) for item, score in zip(id_row, score_row)
           if math.isfinite(score)]
          for id_row, score_row in zip(outputs[contract.OUTPUT_ITEM_IDS],
                                       outputs[contract.OUTPUT_SCORES])]


def explained_histories(outputs: Dict[str, np.ndarray]) -> List[ExplainedHistory]:
  """Per row, the ``explain`` signature's outputs (arrays by alias) as an ``ExplainedHistory``."""
  because_ids = outputs[contract.OUTPUT_BECAUSE_IDS]
  because_weights = outputs[contract.OUTPUT_BECAUSE_WEIGHTS]
  rows = []
  for row, items in enumerate(ranked_items(outputs)):
    explained = [Explanation(item, score, [(i.decode(), float(w)) for i, w in zip(
                     because_ids[row, j], because_weights[row, j]) if i])
                 for j, (item, score) in enumerate(items)]
    rows.append(ExplainedHistory(
        explained, np.asarray(outputs[contract.OUTPUT_ATTENTION][row]),
        [i.decode() for i in outputs[contract.OUTPUT_ATTENTION_IDS][row]]))
  return rows


def because_text(because: Sequence[Tuple[str, float]], titles: Mapping[str, str]) -> str:
  """"because you interacted with <title> (weight), ..." naming the history items whose
  removal lowers the score (positive weight); "" when there are none."""
  named = [f"{titles.get(item) or item} ({weight:.3g})" for item, weight in because
           if weight > 0]
  return f"because you interacted with {', '.join(named)}" if named else ""


def load_titles(path: str) -> Dict[str, str]:
  """item_id -> title from a canonical item table CSV (item_id,title,attributes)."""
  with open(path, newline="", encoding="utf-8") as f:
    reader = csv.DictReader(f)
    columns = reader.fieldnames or []
    missing = [c for c in (contract.ITEM_TABLE_ID, contract.ITEM_TABLE_TITLE)
               if c not in columns]
    if missing:
      raise ValueError(f"{path}: item table needs columns "
                       f"{contract.ITEM_TABLE_ID},{contract.ITEM_TABLE_TITLE}"
                       f"[,{contract.ITEM_TABLE_ATTRIBUTES}]; missing {missing}, "
                       f"header is {columns}")
    return {row[contract.ITEM_TABLE_ID]: row[contract.ITEM_TABLE_TITLE] or "" for row in reader}


def _dtype_text(dtype_enum: int) -> str:
  # Ops without a tensor (e.g. "__saved_model_init_op") have no dtype.
  return tf.dtypes.as_dtype(dtype_enum).name if dtype_enum else "none"


def _weight(text: str) -> float:
  value = float(text)
  if not 0.0 <= value <= 1.0:
    raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
  return value


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  commands = parser.add_subparsers(dest="command", required=True)
  common = argparse.ArgumentParser(add_help=False)
  common.add_argument("--server", default="localhost:8500", help="HOST:PORT of the gRPC API")
  common.add_argument("--model-name", default=contract.MODEL_NAME)
  common.add_argument("--version", type=int, default=None)
  common.add_argument("--timeout", type=float, default=10.0)
  common.add_argument("--tls", action="store_true",
                      help="use TLS, trusting the system's CAs (implied by --tls-ca)")
  common.add_argument("--tls-ca", help="CA certificates (PEM) to trust for the server")
  common.add_argument("--tls-cert", help="client certificate chain (PEM), if the server "
                                         "asks for one")
  common.add_argument("--tls-key", help="private key of --tls-cert (PEM)")
  common.add_argument("--tls-server-name",
                      help="name in the server's certificate, if not the host of --server")
  common.add_argument("--token-file",
                      help=f"file holding the bearer token (default: ${security.TOKEN_ENV} "
                           f"if set)")
  rec = commands.add_parser("recommend", parents=[common],
                            help="top-k items for one history")
  rec.add_argument("--history", nargs="*", default=[],
                   help="item ids, oldest first (none: popularity fallback)")
  rec.add_argument("-k", type=int, default=10)
  rec.add_argument("--items", help="canonical item table CSV, to print titles")
  rec.add_argument("--explain", action="store_true",
                   help="ask the 'explain' signature and print, under each item, the "
                        "history items that contributed most")
  rules = rec.add_argument_group(
      "business rules", "any of these sends the request to the 'recommend' signature "
      "(docs/serving.md, \"Business rules\")")
  rules.add_argument("--exclude", nargs="+", default=[], metavar="ITEM_ID",
                     help="never recommend these items")
  rules.add_argument("--allow", nargs="+", default=[], metavar="ITEM_ID",
                     help="recommend only among these items")
  rules.add_argument("--require-attribute", nargs="+", default=[], metavar="VALUE",
                     help="recommend only items having every one of these attribute values")
  rules.add_argument("--exclude-attribute", nargs="+", default=[], metavar="VALUE",
                     help="never recommend items having any of these attribute values")
  rules.add_argument("--keep-history", action="store_true",
                     help="history items may be recommended too")
  rules.add_argument("--diversity", type=_weight, default=0.0, metavar="WEIGHT",
                     help="maximal-marginal-relevance weight in [0, 1] (default: 0, off)")
  commands.add_parser("status", parents=[common], help="versions and their states")
  commands.add_parser("metadata", parents=[common], help="signatures of the served version")
  return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
  args = parse_args(argv)
  if args.command == "recommend" and args.explain and (
      args.exclude or args.allow or args.require_attribute or args.exclude_attribute
      or args.keep_history or args.diversity):
    print("error: --explain explains serving_default's answer; it takes no business rules",
          file=sys.stderr)
    return 2
  titles = {}
  if args.command == "recommend" and args.items:
    try:
      titles = load_titles(args.items)
    except (OSError, ValueError) as e:
      print(f"error: {e}", file=sys.stderr)
      return 2
  try:
    token = security.read_token(args.token_file)
    credentials = (security.channel_credentials(args.tls_ca, args.tls_cert, args.tls_key)
                   if args.tls or args.tls_ca or args.tls_cert else None)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  client = RecommenderClient(args.server, args.model_name, args.timeout, version=args.version,
                             credentials=credentials, token=token,
                             tls_server_name=args.tls_server_name)
  try:
    if args.command == "recommend":
      rules = Rules(args.exclude, args.allow, args.require_attribute, args.exclude_attribute)
      with_rules = any(rules.lists().values()) or args.keep_history or args.diversity
      if args.explain:
        result = client.explain([args.history], args.k)
        items = [(e.item_id, e.score, e.because) for e in result.histories[0].items]
      else:
        result = (client.recommend_with_rules([args.history], args.k, rules,
                                              args.keep_history, args.diversity)
                  if with_rules else client.recommend_details([args.history], args.k))
        items = [(item, score, []) for item, score in result.items[0]]
      unknown = result.num_unknown[0] if result.num_unknown else 0
      print(f"# model {args.model_name} version {result.version}; "
            f"{len(args.history)} history items, {unknown} unknown"
            + (f"; {result.num_unknown_rules[0]} unknown rule values"
               if getattr(result, "num_unknown_rules", None) else ""))
      print("rank\titem_id\ttitle\tscore")
      for rank, (item, score, because) in enumerate(items, start=1):
        print(f"{rank}\t{item}\t{titles.get(item, '')}\t{score:.4f}")
        text = because_text(because, titles)
        if text:
          print(f"\t{text}")
    elif args.command == "status":
      for s in client.status():
        error = f"\t{s.error_code}: {s.error_message}" if s.error_code else ""
        print(f"{s.version}\t{s.state}{error}")
    else:
      meta = client.metadata()
      print(f"# model {meta.name} version {meta.version}")
      for name, signature in sorted(meta.signature_defs.items()):
        inputs = ", ".join(f"{k}:{_dtype_text(v.dtype)}"
                           for k, v in sorted(signature.inputs.items()))
        outputs = ", ".join(f"{k}:{_dtype_text(v.dtype)}"
                            for k, v in sorted(signature.outputs.items()))
        print(f"{name}({inputs}) -> ({outputs})")
  except grpc.RpcError as e:
    print(f"error: {args.server}: {e.code().name}: {e.details()}", file=sys.stderr)
    return 1
  finally:
    client.close()
  return 0


if __name__ == "__main__":
  sys.exit(main())
