"""Fixtures for the serving tests: TLS certificates made on the spot, a served explain model."""

import datetime
import ipaddress

import pytest

from serving import server as server_lib
from serving import testing
from tests import explain_model


def _write_pem(path, data):
  path.write_bytes(data)
  return str(path)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
  """A CA, a server certificate for localhost / 127.0.0.1 and a client certificate it
  signed, and a client certificate of another CA: name -> PEM file path."""
  x509 = pytest.importorskip("cryptography.x509")
  from cryptography.hazmat.primitives import hashes  # pylint: disable=g-import-not-at-top
  from cryptography.hazmat.primitives import serialization  # pylint: disable=g-import-not-at-top
  from cryptography.hazmat.primitives.asymmetric import ec  # pylint: disable=g-import-not-at-top
  from cryptography.x509.oid import NameOID  # pylint: disable=g-import-not-at-top

  root = tmp_path_factory.mktemp("tls")
  now = datetime.datetime.now(datetime.timezone.utc)

  def certificate(name, key, issuer=None, issuer_key=None, ca=False, san=None):
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer.subject if issuer else subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
      builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())

  def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)

  def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())

  files = {}
  cas = {}
  for ca_name in ("ca", "other-ca"):
    key = ec.generate_private_key(ec.SECP256R1())
    cas[ca_name] = (certificate(f"test {ca_name}", key, ca=True), key)
    files[ca_name] = _write_pem(root / f"{ca_name}.pem", pem(cas[ca_name][0]))
  for name, ca_name, san in (
      ("server", "ca", [x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
      ("client", "ca", None), ("stranger", "other-ca", None)):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(name, key, *cas[ca_name], san=san)
    files[name] = _write_pem(root / f"{name}.pem", pem(cert))
    files[f"{name}-key"] = _write_pem(root / f"{name}.key", key_pem(key))
  return files


@pytest.fixture(scope="session")
def explain_export(tmp_path_factory):
  """A tiny trainer export with the ``explain`` signature (tests/explain_model.py)."""
  return explain_model.export_model(str(tmp_path_factory.mktemp("explain_export")))


@pytest.fixture(scope="session")
def explain_target(explain_export, tmp_path_factory):
  """host:port of a serving.server serving ``explain_export`` as version 1 of "seqrec"."""
  base = tmp_path_factory.mktemp("explain_served") / "seqrec"
  testing.push_version(explain_export, str(base), 1)
  server = server_lib.ModelServer("seqrec", str(base), port=0, host=testing.LOOPBACK,
                                  poll_seconds=0.5).start()
  yield f"{testing.LOOPBACK}:{server.port}"
  server.stop(grace=1)
