"""Per-request cost of token verification, HS256 and EdDSA, with and without the token cache.

Runs the product's own ``TokenVerifier`` (JWKS mode against a real local JWKS server, the
shared-secret mode with a real secret) in one process, on one core, with no HTTP around it:
- "full check": a verifier whose cache holds nothing (``cache_size=0``), so every call decodes,
  checks the signature and the claims, as every request did before the cache;
- "cached": the same token again on a verifier with the default cache: a SHA-256 of the token,
  a dict lookup and the exp comparison (plus, for JWKS, the key lookup).

    python bench/auth_cost.py [--iterations N]
"""

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from pathlib import Path

import httpx2 as httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import Settings
from core.jwks import JwksCache
from core.tokens import TokenVerifier
from tests.keys import JwksServer, generate_key, mint


async def per_call_us(verifier: TokenVerifier, token: str, iterations: int) -> list[float]:
    """Microseconds per verification, in five batches (the spread shows)."""
    await verifier.verify(token)  # warm: keys fetched and parsed, caches filled
    batches = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(iterations):
            await verifier.verify(token)
        batches.append((time.perf_counter() - started) / iterations * 1e6)
    return batches


async def main(iterations: int) -> None:
    key = generate_key("EdDSA")
    server = JwksServer([key]).start()
    secret = secrets.token_urlsafe(32)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="production",
        database_url="sqlite://",
        better_auth_secret=secret,
        better_auth_url=server.base_url,
    )
    origin = server.base_url
    tokens = {
        "HS256": mint("benchuser" + "0" * 23, key=secret),
        "EdDSA": mint(
            "benchuser" + "0" * 23,
            alg="EdDSA",
            key=key.private,
            kid=key.kid,
            issuer=origin,
            audience=origin,
        ),
    }
    try:
        async with httpx.AsyncClient(timeout=5.0) as client:
            print("| token | full check, µs per request | cached, µs per request |")
            print("|---|---|---|")
            for alg, token in tokens.items():
                results = []
                for size in (0, 4096):
                    jwks = JwksCache(settings.jwks_url or "", client, retry_interval=2.0)
                    verifier = TokenVerifier(settings, jwks, cache_size=size)
                    runs = await per_call_us(verifier, token, iterations)
                    results.append(
                        f"{statistics.median(runs):.1f} ({min(runs):.1f}-{max(runs):.1f})"
                    )
                    await jwks.aclose()
                print(f"| {alg} | {results[0]} | {results[1]} |")
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=2000)
    asyncio.run(main(parser.parse_args().iterations))
