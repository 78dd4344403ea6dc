"""Create ``.env`` for local development from ``.env.example``, with a fresh random secret.

Never overwrites an existing ``.env``.
"""

import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = "change-me-to-a-random-string-of-at-least-32-bytes"


def main() -> int:
    target = ROOT / ".env"
    if target.exists():
        print(f"{target.name} exists; leaving it as it is.", file=sys.stderr)
        return 0
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    text = text.replace(PLACEHOLDER, secrets.token_urlsafe(48))
    text = text.replace("# ENVIRONMENT=production", "ENVIRONMENT=development")
    target.write_text(text, encoding="utf-8")
    target.chmod(0o600)
    print("Created .env for development: SQLite and a random BETTER_AUTH_SECRET.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
