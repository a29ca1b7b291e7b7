"""The coordinator's own calls, next to keras-tuner's Oracle service.

keras-tuner's protos cover the oracle (CreateTrial, UpdateTrial, EndTrial, ...) and
are reused as they are. What they lack, leases and per-epoch reports, is a second
small service whose messages are JSON, so no proto compiler is needed; its one
call that carries a trial uses keras-tuner's messages.
"""

from __future__ import annotations

import json
from typing import NamedTuple, Sequence

import grpc

SERVICE = "kt_pipelines.Coordinator"
HEARTBEAT = "Heartbeat"      # {} -> {"finished": bool}
# {trial_id, epochs: [{execution, epoch, logs}, ...]} -> {"stop": bool, "leased": bool}
REPORT_EPOCH = "ReportEpoch"
# {trial_id, message} -> {}: a failed trial's error, which keras-tuner's Trial proto drops.
TRIAL_MESSAGE = "TrialMessage"
# EndAndNext -> CreateTrialResponse: a worker's trial ends (with its metrics and the epochs
# it did not report yet) and its next trial comes back, one round trip between trials
# (keras-tuner's worker makes four).
END_TRIAL_AND_NEXT = "EndTrialAndNext"


class EndAndNext(NamedTuple):
    """EndTrialAndNext's request: keras-tuner's EndTrialRequest and the trial's epochs not
    sent by ReportEpoch yet ([{execution, epoch, logs}], as ReportEpoch sends them).
    On the wire: 4-byte length of the JSON epochs, the JSON, the request proto."""
    request: object
    epochs: Sequence[dict] = ()


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

        def serialize(message: EndAndNext) -> bytes:
            epochs = encode(message.epochs)
            return len(epochs).to_bytes(4, "big") + epochs + message.request.SerializeToString()

        def parse(data: bytes) -> EndAndNext:
            n = int.from_bytes(data[:4], "big")
            return EndAndNext(service.EndTrialRequest.FromString(data[4 + n:]), decode(data[4:4 + n]))

        return (serialize, parse, service.CreateTrialResponse.SerializeToString,
                service.CreateTrialResponse.FromString)
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
