"""Who may talk to the coordinator: holders of this search's random token.

keras-tuner's chief serves its oracle to anyone who reaches the port. Here every
request must carry `authorization: Bearer <token>`; the token is made per search,
handed to workers in their environment (locally) or through a Kubernetes Secret
(pods), and never put on a command line or in a log line.
"""

from __future__ import annotations

import hmac
import secrets

import grpc

TOKEN_ENV = "KT_COORDINATOR_TOKEN"
WORKER_ID_ENV = "KT_WORKER_ID"
_AUTH_KEY = "authorization"
WORKER_KEY = "kt-worker-id"


def new_token() -> str:
    return secrets.token_urlsafe(32)


async def _deny(request, context):
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong coordinator token")


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses every call that does not carry the search's token (for grpc.aio servers)."""

    def __init__(self, token: str):
        if not token:
            raise ValueError("the coordinator needs a non-empty token")
        self._expected = f"Bearer {token}".encode()
        self._denied = grpc.unary_unary_rpc_method_handler(_deny)

    async def intercept_service(self, continuation, handler_call_details):
        given = dict(handler_call_details.invocation_metadata or ()).get(_AUTH_KEY, "")
        if isinstance(given, str):
            given = given.encode()
        if hmac.compare_digest(given, self._expected):
            return await continuation(handler_call_details)
        return self._denied


class _Metadata(grpc.UnaryUnaryClientInterceptor):
    def __init__(self, pairs):
        self._pairs = tuple(pairs)

    def intercept_unary_unary(self, continuation, details, request):
        metadata = tuple(details.metadata or ()) + self._pairs
        details = details._replace(metadata=metadata) if hasattr(details, "_replace") else \
            _Details(details.method, details.timeout, metadata, details.credentials,
                     details.wait_for_ready, getattr(details, "compression", None))
        return continuation(details, request)


class _Details(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method, self.timeout, self.metadata = method, timeout, metadata
        self.credentials, self.wait_for_ready, self.compression = credentials, wait_for_ready, compression


def authenticated_channel(address: str, token: str, worker_id: str) -> grpc.Channel:
    """A channel whose every call carries the token and the caller's worker id."""
    channel = grpc.insecure_channel(address)
    return grpc.intercept_channel(channel, _Metadata([(_AUTH_KEY, f"Bearer {token}"),
                                                      (WORKER_KEY, worker_id)]))


def worker_id_of(context) -> str:
    return dict(context.invocation_metadata() or ()).get(WORKER_KEY, "")
