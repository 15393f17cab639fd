"""What every call to the server passes first: token, parsing, concurrency cap, deadline.

A gRPC server interceptor, so it covers every service; client messages name no path.
"""

import logging
import re
import threading
from typing import Callable, Optional, Sequence

import grpc

from serving import security

_LOG = logging.getLogger(__name__)

MAX_DETAILS_CHARS = 1000
INTERNAL_MESSAGE = "internal error; the server log has the details"
UNAUTHENTICATED_MESSAGE = ("missing or wrong bearer token ('authorization: Bearer "
                           "<token>', as gRPC metadata or an HTTP header)")
# An absolute path (optionally behind a URL scheme such as gs://): "/" + path characters.
_PATH = re.compile(r"(?<![\w.])(?:[A-Za-z][A-Za-z0-9+.-]*:/)?/[^\s'\"`:,;()\[\]{}<>]+")


class _Malformed:
  """The request in place of a message that does not parse."""


MALFORMED = _Malformed()


def redact_paths(text: str) -> str:
  """``text`` with each absolute path replaced by ``.../<its last component>``."""
  return _PATH.sub(lambda m: ".../" + m.group(0).rstrip("/").rsplit("/", 1)[-1], text)


def client_text(text: str) -> str:
  """``text`` fit for a client: paths redacted, at most ``MAX_DETAILS_CHARS`` long."""
  text = redact_paths(text)
  return text if len(text) <= MAX_DETAILS_CHARS else text[:MAX_DETAILS_CHARS] + "..."


def ensure_active(context: grpc.ServicerContext) -> None:
  """Aborts the call if its client cancelled it or its deadline has passed."""
  if not context.is_active():
    context.abort(grpc.StatusCode.CANCELLED, "the call was cancelled")
  if context.time_remaining() <= 0:
    context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the call's deadline has passed")


def _lenient(deserializer: Optional[Callable[[bytes], object]]) -> Callable[[bytes], object]:
  """A deserializer that returns ``MALFORMED`` instead of raising (gRPC would answer
  INTERNAL and log a traceback)."""

  def parse(data: bytes) -> object:
    try:
      return deserializer(data) if deserializer else data
    except Exception:  # pylint: disable=broad-except
      return MALFORMED

  return parse


class CallGuard(grpc.ServerInterceptor):
  """Checks the bearer token, refuses unparsable requests, caps concurrent calls.

  Args:
    token: the bearer token every call must carry (None: no token needed).
    max_concurrent: calls of ``limited_prefixes`` running at once; one more gets
      RESOURCE_EXHAUSTED at once instead of waiting in a queue.
    limited_prefixes: full method names (``/package.Service/``) the cap applies to;
      the others (health, status) stay answerable under load.
  """

  def __init__(self, token: Optional[str], max_concurrent: int,
               limited_prefixes: Sequence[str]):
    if max_concurrent < 1:
      raise ValueError(f"max_concurrent must be >= 1, got {max_concurrent}")
    self._token = token
    self.max_concurrent = max_concurrent
    self._limited = tuple(limited_prefixes)
    self._lock = threading.Lock()
    self._active = 0

  def active(self) -> int:
    """Capped calls running now."""
    with self._lock:
      return self._active

  def _take_slot(self) -> bool:
    with self._lock:
      if self._active >= self.max_concurrent:
        return False
      self._active += 1
      return True

  def _free_slot(self) -> None:
    with self._lock:
      self._active -= 1

  def intercept_service(self, continuation, handler_call_details):
    handler = continuation(handler_call_details)
    if handler is None:
      return None   # an unknown method: gRPC answers UNIMPLEMENTED
    kind = (("stream_" if handler.request_streaming else "unary_") +
            ("stream" if handler.response_streaming else "unary"))
    if not self.authorized(handler_call_details.invocation_metadata):
      # Refused before the request is even parsed.
      return handler._replace(request_deserializer=_unparsed, **{kind: _unauthenticated})
    if handler.request_streaming:
      return handler   # none is served; it would get the token check only
    limited = not handler.response_streaming and (
        handler_call_details.method.startswith(self._limited))
    return handler._replace(request_deserializer=_lenient(handler.request_deserializer),
                            **{kind: self._guarded(getattr(handler, kind), limited)})

  def authorized(self, metadata) -> bool:
    """True if the call ``metadata`` carries the token (or none is needed)."""
    return security.token_matches(metadata, self._token)

  def call(self, behaviour, request, context, limited: bool):
    """Runs ``behaviour(request, context)`` as a guarded gRPC call runs, for a
    transport that checked ``authorized`` itself (the REST API): ``context`` is a
    stand-in for ``grpc.ServicerContext`` whose ``abort`` raises."""
    return self._guarded(behaviour, limited)(request, context)

  def _guarded(self, behaviour, limited: bool):

    def call(request, context):
      if request is MALFORMED:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                      "the request is not a valid protocol buffer for this method")
      ensure_active(context)
      if limited and not self._take_slot():
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                      f"the server is busy ({self.max_concurrent} calls running); "
                      f"retry later")
      try:
        return behaviour(request, context)
      except Exception:  # pylint: disable=broad-except
        if context.code() is None:   # not an abort: a bug, logged with its traceback
          _LOG.exception("unexpected error in a call")
          context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
        details = context.details()
        if details:
          context.set_details(client_text(details.decode("utf-8", "replace")))
        raise
      finally:
        if limited:
          self._free_slot()

    return call


def _unparsed(data: bytes) -> bytes:
  return b""   # not None: gRPC takes None for a failed parse


def _unauthenticated(request, context):
  del request
  context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)
