"""Who may talk to the coordinator: holders of this search's random token.

keras-tuner's chief serves its oracle to anyone who reaches the port. Here every
request must carry `authorization: Bearer <token>`; the token is made per search,
handed to workers in their environment (locally) or through a Kubernetes Secret
(pods), and never put on a command line or in a log line.

Across a pod network the calls also go over TLS, so the token (and the trials) cannot
be read off the wire: the coordinator makes a key and a self-signed certificate per
search, keeps the key in memory, and hands the certificate to workers with the token;
they trust that certificate only. On loopback (local workers) the token suffices.
"""

from __future__ import annotations

import datetime
import hmac
import secrets
from typing import NamedTuple, Optional

import grpc

TOKEN_ENV = "KT_COORDINATOR_TOKEN"
CERT_ENV = "KT_COORDINATOR_CERT"  # PEM; set: the worker speaks TLS and trusts only this
WORKER_ID_ENV = "KT_WORKER_ID"
_AUTH_KEY = "authorization"
WORKER_KEY = "kt-worker-id"
TLS_NAME = "kt-coordinator"  # the certificate's name; workers check it, whatever the address


def new_token() -> str:
    return secrets.token_urlsafe(32)


class TlsIdentity(NamedTuple):
    key_pem: bytes
    cert_pem: bytes


def new_tls_identity(valid_days: int = 30) -> TlsIdentity:
    """A P-256 key and a self-signed certificate for TLS_NAME, made for one search."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TLS_NAME)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=valid_days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(TLS_NAME)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    return TlsIdentity(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()),
        cert.public_bytes(serialization.Encoding.PEM))


def server_credentials(identity: TlsIdentity) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials([(identity.key_pem, identity.cert_pem)])


def tls_channel_args(cert_pem: bytes):
    """(credentials, options) of a channel that trusts only `cert_pem`, for
    grpc.secure_channel or grpc.aio.secure_channel."""
    return (grpc.ssl_channel_credentials(root_certificates=cert_pem),
            [("grpc.ssl_target_name_override", TLS_NAME)])


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


def authenticated_channel(address: str, token: str, worker_id: str,
                          cert_pem: Optional[bytes] = None) -> grpc.Channel:
    """A channel whose every call carries the token and the caller's worker id; over TLS,
    trusting only `cert_pem`, when it is given."""
    if cert_pem:
        credentials, options = tls_channel_args(cert_pem)
        channel = grpc.secure_channel(address, credentials, options=options)
    else:
        channel = grpc.insecure_channel(address)
    return grpc.intercept_channel(channel, _Metadata([(_AUTH_KEY, f"Bearer {token}"),
                                                      (WORKER_KEY, worker_id)]))


def worker_id_of(context) -> str:
    return dict(context.invocation_metadata() or ()).get(WORKER_KEY, "")
