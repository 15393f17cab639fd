"""serving.security: TLS (server and client certificates) and the bearer token, end to end."""

import grpc
import pytest
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import client as client_lib
from serving import health
from serving import security
from serving import server as server_lib
from serving import testing
from serving.testing import toy_model

MODEL = "seqrec"
TOKEN = "s3cret-t0ken"


@pytest.fixture(scope="module")
def base_path(tmp_path_factory):
  root = tmp_path_factory.mktemp("security")
  export = toy_model.export_toy_model(str(root / "export"), 20, seed=0)
  testing.push_version(export, str(root / MODEL), 1)
  return str(root / MODEL)


def _serve(base_path, **kwargs):
  return server_lib.ModelServer(MODEL, base_path, port=0, host=testing.LOOPBACK,
                                poll_seconds=5, **kwargs).start()


def _recommend(port, **kwargs):
  with client_lib.RecommenderClient(f"127.0.0.1:{port}", MODEL, timeout=10, **kwargs) as c:
    return c.recommend([["item_1"]], 2)


def test_tls_round_trip_with_a_self_signed_ca(base_path, tls_files):
  server = _serve(base_path, credentials=security.server_credentials(
      tls_files["server"], tls_files["server-key"]))
  try:
    assert len(_recommend(server.port, credentials=security.channel_credentials(
        tls_files["ca"]))[0]) == 2
    # By the name in the certificate rather than the address.
    assert _recommend(server.port, tls_server_name="localhost",
                      credentials=security.channel_credentials(tls_files["ca"]))
    for credentials in (None, security.channel_credentials(tls_files["other-ca"])):
      with pytest.raises(grpc.RpcError) as error:   # plaintext, or a server it cannot trust
        _recommend(server.port, credentials=credentials)
      assert error.value.code() == grpc.StatusCode.UNAVAILABLE
  finally:
    server.stop(grace=0)


def test_client_certificates_required_mode(base_path, tls_files):
  server = _serve(base_path, credentials=security.server_credentials(
      tls_files["server"], tls_files["server-key"], client_ca_file=tls_files["ca"]))
  try:
    assert _recommend(server.port, credentials=security.channel_credentials(
        tls_files["ca"], tls_files["client"], tls_files["client-key"]))
    for cert in (None, "stranger"):   # no client certificate, or one of another CA
      credentials = security.channel_credentials(
          tls_files["ca"], cert and tls_files[cert], cert and tls_files[f"{cert}-key"])
      with pytest.raises(grpc.RpcError) as error:
        _recommend(server.port, credentials=credentials)
      assert error.value.code() == grpc.StatusCode.UNAVAILABLE
  finally:
    server.stop(grace=0)


def _calls(channel, metadata):
  """One call of each kind the server answers, with ``metadata``."""
  model_spec = {"model_spec": {"name": MODEL}}
  predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
  status = model_service_pb2_grpc.ModelServiceStub(channel)
  request = testing.predict_request(MODEL, testing.string_tensor([b"item_1"], [1, 1]))
  return {
      "Predict": lambda: predict.Predict(request, timeout=10, metadata=metadata),
      "GetModelMetadata": lambda: predict.GetModelMetadata(
          get_model_metadata_pb2.GetModelMetadataRequest(
              metadata_field=["signature_def"], **model_spec), timeout=10, metadata=metadata),
      "GetModelStatus": lambda: status.GetModelStatus(
          get_model_status_pb2.GetModelStatusRequest(**model_spec), timeout=10,
          metadata=metadata),
      "health": lambda: health.check(channel, metadata=metadata),
  }


@pytest.mark.parametrize("call", ["Predict", "GetModelMetadata", "GetModelStatus", "health"])
def test_bearer_token_is_checked_on_every_call(base_path, call):
  server = _serve(base_path, token=TOKEN)
  try:
    with grpc.insecure_channel(f"{testing.LOOPBACK}:{server.port}") as ch:
      for metadata in ((), security.bearer_metadata("wrong"), (("authorization", TOKEN),),
                       security.bearer_metadata(TOKEN + "x")):
        with pytest.raises(grpc.RpcError) as error:
          _calls(ch, metadata)[call]()
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED, metadata
        assert TOKEN not in error.value.details()
      assert _calls(ch, security.bearer_metadata(TOKEN))[call]()
  finally:
    server.stop(grace=0)


def test_client_sends_the_token_over_tls(base_path, tls_files):
  server = _serve(base_path, token=TOKEN, credentials=security.server_credentials(
      tls_files["server"], tls_files["server-key"]))
  credentials = security.channel_credentials(tls_files["ca"])
  try:
    assert _recommend(server.port, credentials=credentials, token=TOKEN)
    with pytest.raises(grpc.RpcError) as error:
      _recommend(server.port, credentials=credentials)
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
  finally:
    server.stop(grace=0)


def test_read_token_from_file_or_environment(tmp_path):
  path = tmp_path / "token"
  path.write_text(f"  {TOKEN}\n")
  assert security.read_token(str(path), environ={}) == TOKEN
  assert security.read_token(None, environ={security.TOKEN_ENV: TOKEN}) == TOKEN
  assert security.read_token(None, environ={}) is None
  path.write_text("\n")
  for token_file, environ in ((str(path), {}), (None, {security.TOKEN_ENV: "two words"}),
                              (str(tmp_path / "missing"), {})):
    with pytest.raises(ValueError):
      security.read_token(token_file, environ=environ)


def test_token_matches_only_the_exact_bearer_value():
  assert security.token_matches((), None)
  assert security.token_matches((("authorization", f"Bearer {TOKEN}"),), TOKEN)
  assert security.token_matches((("x", "y"), ("authorization", f"Bearer {TOKEN}")), TOKEN)
  for metadata in ((), (("authorization", TOKEN),), (("authorization", f"bearer {TOKEN}"),),
                   (("authorization", f"Bearer {TOKEN[:-1]}"),)):
    assert not security.token_matches(metadata, TOKEN)


def test_cli_server_and_client_with_tls_and_token(base_path, tls_files, tmp_path, capsys):
  token_file = tmp_path / "token"
  token_file.write_text(TOKEN)
  process = testing.ServerProcess.local(base_path, MODEL, extra_args=[
      "--tls-cert", tls_files["server"], "--tls-key", tls_files["server-key"],
      "--token-file", str(token_file)])
  with process:
    common = ["--server", f"127.0.0.1:{process.port}", "--tls-ca", tls_files["ca"]]
    assert client_lib.main(["status", *common, "--token-file", str(token_file)]) == 0
    assert capsys.readouterr().out == "1\tAVAILABLE\n"
    assert client_lib.main(["status", *common]) == 1
    assert "UNAUTHENTICATED" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--tls-cert", "cert.pem"], "--tls-cert and --tls-key go together"),
    (["--tls-client-ca", "ca.pem"], "--tls-client-ca needs --tls-cert"),
])
def test_server_cli_refuses_incomplete_tls_flags(tmp_path, capsys, flags, message):
  with pytest.raises(SystemExit):
    server_lib.parse_args(["--model-base-path", str(tmp_path), *flags])
  assert message in capsys.readouterr().err


def test_server_cli_refuses_unreadable_tls_and_token_files(tmp_path, capsys):
  base = ["--model-base-path", str(tmp_path), "--port", "0"]
  assert server_lib.main([*base, "--tls-cert", str(tmp_path / "no.pem"),
                          "--tls-key", str(tmp_path / "no.key")]) == 2
  assert "cannot read the TLS" in capsys.readouterr().err
  (tmp_path / "token").write_text("")
  assert server_lib.main([*base, "--token-file", str(tmp_path / "token")]) == 2
  assert "must be non-empty" in capsys.readouterr().err
