"""TLS and the bearer token (``authorization: Bearer <token>``: gRPC metadata or HTTP header).

The token comes from a file or ``$SEQREC_SERVING_TOKEN``, never the command line.
"""

import hmac
import os
import ssl
from typing import Mapping, Optional, Sequence, Tuple

import grpc

TOKEN_ENV = "SEQREC_SERVING_TOKEN"
AUTHORIZATION = "authorization"
BEARER = "Bearer "


def _read(path: str, what: str) -> bytes:
  try:
    with open(path, "rb") as f:
      return f.read()
  except OSError as e:
    raise ValueError(f"cannot read the {what} {path}: {e.strerror}") from e


def read_token(token_file: Optional[str] = None,
               environ: Mapping[str, str] = os.environ) -> Optional[str]:
  """The bearer token: ``token_file``'s content (stripped), else ``$SEQREC_SERVING_TOKEN``.

  Raises:
    ValueError: the file cannot be read, or the token is empty or not printable ASCII.
  """
  if token_file:
    token = _read(token_file, "token file").decode("ascii", "replace").strip()
    where = token_file
  else:
    token = environ.get(TOKEN_ENV)
    where = f"${TOKEN_ENV}"
    if token is None:
      return None
    token = token.strip()
  if not token or not all(33 <= ord(c) < 127 for c in token):
    raise ValueError(f"the token in {where} must be non-empty printable ASCII without spaces")
  return token


def bearer_metadata(token: Optional[str]) -> Tuple[Tuple[str, str], ...]:
  """Call metadata carrying ``token`` (empty without one)."""
  return ((AUTHORIZATION, BEARER + token),) if token else ()


def token_matches(metadata: Optional[Sequence[Tuple[str, object]]],
                  token: Optional[str]) -> bool:
  """True if no token is needed or ``metadata`` carries exactly ``token`` (constant time)."""
  if token is None:
    return True
  expected = (BEARER + token).encode()
  for key, value in metadata or ():
    if key == AUTHORIZATION:
      given = value if isinstance(value, bytes) else str(value).encode("utf-8", "replace")
      if hmac.compare_digest(given, expected):
        return True
  return False


def server_credentials(cert_file: str, key_file: str,
                       client_ca_file: Optional[str] = None) -> grpc.ServerCredentials:
  """TLS with the server's certificate chain and key (PEM); with ``client_ca_file``,
  every client must present a certificate that CA signed."""
  client_ca = _read(client_ca_file, "client CA file") if client_ca_file else None
  return grpc.ssl_server_credentials(
      [(_read(key_file, "TLS key file"), _read(cert_file, "TLS certificate file"))],
      root_certificates=client_ca, require_client_auth=client_ca is not None)


def ssl_context(cert_file: str, key_file: str,
                client_ca_file: Optional[str] = None) -> ssl.SSLContext:
  """The REST API's TLS from the files of ``server_credentials``, with the same
  client-certificate requirement."""
  context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
  context.minimum_version = ssl.TLSVersion.TLSv1_2
  try:
    context.load_cert_chain(cert_file, key_file)
    if client_ca_file:
      context.load_verify_locations(cafile=client_ca_file)
      context.verify_mode = ssl.CERT_REQUIRED
  except (OSError, ssl.SSLError) as e:
    raise ValueError(f"cannot use the TLS files {cert_file}, {key_file}"
                     f"{', ' + client_ca_file if client_ca_file else ''}: {e}") from e
  return context


def channel_credentials(ca_file: Optional[str] = None, cert_file: Optional[str] = None,
                        key_file: Optional[str] = None) -> grpc.ChannelCredentials:
  """TLS for a client: trust ``ca_file`` (default: the system's roots); present
  ``cert_file`` / ``key_file`` (PEM) to a server that asks for client certificates."""
  if (cert_file is None) != (key_file is None):
    raise ValueError("a client certificate needs both its certificate and its key file")
  return grpc.ssl_channel_credentials(
      root_certificates=_read(ca_file, "CA file") if ca_file else None,
      private_key=_read(key_file, "TLS key file") if key_file else None,
      certificate_chain=_read(cert_file, "TLS certificate file") if cert_file else None)
