"""The standard gRPC health service (``grpc.health.v1.Health/Check``) without extra packages.

Its two messages are declared here in a private descriptor pool (no grpcio-health-checking).
"""

from typing import Callable, Optional, Sequence, Tuple

import grpc
from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory

SERVICE_NAME = "grpc.health.v1.Health"
UNKNOWN, SERVING, NOT_SERVING, SERVICE_UNKNOWN = 0, 1, 2, 3


def _message_classes():
  f = descriptor_pb2.FieldDescriptorProto
  proto = descriptor_pb2.FileDescriptorProto(
      name="grpc/health/v1/health.proto", package="grpc.health.v1", syntax="proto3")
  request = proto.message_type.add(name="HealthCheckRequest")
  request.field.add(name="service", number=1, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
  response = proto.message_type.add(name="HealthCheckResponse")
  status_enum = response.enum_type.add(name="ServingStatus")
  for name, number in (("UNKNOWN", UNKNOWN), ("SERVING", SERVING),
                       ("NOT_SERVING", NOT_SERVING), ("SERVICE_UNKNOWN", SERVICE_UNKNOWN)):
    status_enum.value.add(name=name, number=number)
  response.field.add(name="status", number=1, type=f.TYPE_ENUM, label=f.LABEL_OPTIONAL,
                     type_name=".grpc.health.v1.HealthCheckResponse.ServingStatus")
  pool = descriptor_pool.DescriptorPool()
  pool.Add(proto)
  factory = message_factory.MessageFactory(pool)
  return (factory.GetPrototype(pool.FindMessageTypeByName("grpc.health.v1.HealthCheckRequest")),
          factory.GetPrototype(pool.FindMessageTypeByName("grpc.health.v1.HealthCheckResponse")))


HealthCheckRequest, HealthCheckResponse = _message_classes()


def health_handler(status: Callable[[str], Optional[bool]]) -> grpc.GenericRpcHandler:
  """A handler for ``grpc.Server.add_generic_rpc_handlers``.

  status(service) -> True (serving), False (not serving) or None (unknown service).
  """

  def check(request, context):
    serving = status(request.service)
    if serving is None:
      context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service '{request.service}'; "
                    f"ask for '' (the server) or a model name")
    return HealthCheckResponse(status=SERVING if serving else NOT_SERVING)

  def watch(request, context):
    del request
    context.abort(grpc.StatusCode.UNIMPLEMENTED, "Watch is not implemented; use Check")

  return grpc.method_handlers_generic_handler(SERVICE_NAME, {
      "Check": grpc.unary_unary_rpc_method_handler(
          check, request_deserializer=HealthCheckRequest.FromString,
          response_serializer=HealthCheckResponse.SerializeToString),
      "Watch": grpc.unary_stream_rpc_method_handler(
          watch, request_deserializer=HealthCheckRequest.FromString,
          response_serializer=HealthCheckResponse.SerializeToString),
  })


def check(channel: grpc.Channel, service: str = "", timeout: float = 5.0,
          metadata: Sequence[Tuple[str, str]] = ()) -> int:
  """Calls ``Health/Check`` on ``channel`` (with call ``metadata``, e.g. a bearer
  token); returns the ServingStatus number."""
  method = channel.unary_unary(f"/{SERVICE_NAME}/Check",
                               request_serializer=HealthCheckRequest.SerializeToString,
                               response_deserializer=HealthCheckResponse.FromString)
  return method(HealthCheckRequest(service=service), timeout=timeout,
                metadata=tuple(metadata)).status
