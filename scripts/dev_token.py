"""Print an HS256 token signed with BETTER_AUTH_SECRET, as a Next.js route would mint it.

Usage: ``make token [USER_ID=...]`` or ``python scripts/dev_token.py [USER_ID] [--minutes N]``.
For local development only: in production, Better Auth issues the tokens.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import jwt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import Settings
from core.tokens import is_valid_user_id


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # make passes USER_ID through the environment: no shell ever re-reads the value.
    parser.add_argument("user_id", nargs="?", default=os.environ.get("USER_ID") or "dev-user")
    parser.add_argument("--minutes", type=int, default=60)
    args = parser.parse_args()
    if not is_valid_user_id(args.user_id):
        print(
            f"{args.user_id!r} is not a user id the API accepts: 1 to 255 printable "
            "characters, no surrounding spaces",
            file=sys.stderr,
        )
        return 2
    settings = Settings()
    secret = settings.secret_bytes
    if secret is None:
        print("BETTER_AUTH_SECRET is not set: run `make run` once to create .env", file=sys.stderr)
        return 1
    now = int(time.time())
    claims: dict[str, object] = {"sub": args.user_id, "iat": now, "exp": now + 60 * args.minutes}
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    print(jwt.encode(claims, secret, algorithm="HS256"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
