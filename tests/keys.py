"""Real signing keys, a real JWKS server on 127.0.0.1, and a token factory for the tests."""

import json
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

SECRET = "test-secret-0123456789abcdef-0123456789abcdef"
ALICE = "aliceAAAAAAAAAAAAAAAAAAAAAAAAAAA"  # Better Auth ids: 32-character strings
BOB = "bobBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
ASYMMETRIC = ("EdDSA", "ES256", "ES512", "PS256", "RS256")


@dataclass
class SigningKey:
    alg: str
    kid: str
    private: Any

    def public_jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if self.alg == "EdDSA":
            jwk = json.loads(OKPAlgorithm.to_jwk(public))
        elif self.alg.startswith("ES"):
            jwk = json.loads(ECAlgorithm.to_jwk(public))
        else:
            jwk = json.loads(RSAAlgorithm.to_jwk(public))
        return {**jwk, "kid": self.kid, "alg": self.alg}


def generate_key(alg: str) -> SigningKey:
    private: Any
    if alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif alg == "ES512":
        private = ec.generate_private_key(ec.SECP521R1())
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey(alg, uuid.uuid4().hex, private)


@dataclass
class JwksServer:
    """Serves ``/api/auth/jwks`` like Better Auth. Tests may swap keys or make it fail."""

    keys: list[SigningKey]
    fail: bool = False
    delay: float = 0.0  # seconds before answering: a slow or hanging Better Auth
    hits: int = 0
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> "JwksServer":
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits += 1
                time.sleep(owner.delay)
                if owner.fail or self.path != "/api/auth/jwks":
                    self.send_response(503 if owner.fail else 404)
                    self.end_headers()
                    return
                body = json.dumps({"keys": [k.public_jwk() for k in owner.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def mint(
    sub: str | None = ALICE,
    *,
    alg: str = "HS256",
    key: Any = SECRET,
    kid: str | None = None,
    issuer: str | None = None,
    audience: str | None = None,
    expires_in: int | None = 900,
    claims: Mapping[str, Any] | None = None,
    headers: Mapping[str, Any] | None = None,
) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"iat": now}
    if sub is not None:
        payload["sub"] = sub
    if expires_in is not None:
        payload["exp"] = now + expires_in
    if issuer is not None:
        payload["iss"] = issuer
    if audience is not None:
        payload["aud"] = audience
    payload.update(claims or {})
    header = dict(headers or {})
    if kid is not None:
        header["kid"] = kid
    signing_key = key.encode() if isinstance(key, str) else key
    return jwt.encode(payload, signing_key, algorithm=alg, headers=header or None)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
