"""The coordinator's own calls, next to keras-tuner's Oracle service.

keras-tuner's protos cover the oracle (CreateTrial, UpdateTrial, EndTrial, ...) and
are reused as they are. What they lack, leases and per-epoch reports, is a second
small service whose messages are JSON, so no proto compiler is needed; its one
call that carries a trial uses keras-tuner's messages.
"""

from __future__ import annotations

import json

import grpc

SERVICE = "kt_pipelines.Coordinator"
HEARTBEAT = "Heartbeat"      # {} -> {"finished": bool}
REPORT_EPOCH = "ReportEpoch"  # {trial_id, execution, epoch, logs} -> {"stop": bool, "leased": bool}
# {trial_id, message} -> {}: a failed trial's error, which keras-tuner's Trial proto drops.
TRIAL_MESSAGE = "TrialMessage"
# EndTrialRequest -> CreateTrialResponse: a worker's trial ends (with its metrics) and its
# next trial comes back, one round trip between trials (keras-tuner's worker makes four).
END_TRIAL_AND_NEXT = "EndTrialAndNext"


def method(name: str) -> str:
    return f"/{SERVICE}/{name}"


def encode(message) -> bytes:
    return json.dumps(message, allow_nan=False).encode()


def decode(data: bytes):
    return json.loads(data.decode() or "{}")


def _codecs(name: str):
    """(request serializer, request parser, response serializer, response parser)."""
    if name == END_TRIAL_AND_NEXT:
        from keras_tuner.src import protos

        service = protos.get_service()
        return (service.EndTrialRequest.SerializeToString, service.EndTrialRequest.FromString,
                service.CreateTrialResponse.SerializeToString, service.CreateTrialResponse.FromString)
    return encode, decode, encode, decode


def stub(channel, name: str):
    """The client side of call `name` on `channel` (sync or grpc.aio)."""
    serialize, _, _, parse = _codecs(name)
    return channel.unary_unary(method(name), request_serializer=serialize,
                               response_deserializer=parse)


def handler(name: str, behaviour) -> grpc.RpcMethodHandler:
    """The server side of call `name`: behaviour(request, context) -> response."""
    _, parse, serialize, _ = _codecs(name)
    return grpc.unary_unary_rpc_method_handler(behaviour, request_deserializer=parse,
                                               response_serializer=serialize)
