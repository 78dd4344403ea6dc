"""Print the API's OpenAPI document (JSON), exactly as ``GET /openapi.json`` serves it.

Usage: ``python scripts/openapi.py [OUTPUT]`` (stdout without OUTPUT). No server, no database
connection and no .env: the app is built by ``create_app`` with a throwaway configuration, which
the document does not depend on. ``make client`` feeds it to openapi-typescript to regenerate
clients/typescript/src/schema.d.ts; tests/test_typescript_client.py checks the committed file
against the document the running app serves.
"""

import json
import secrets
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import Settings
from main import create_app


def openapi_document() -> dict[str, Any]:
    settings = Settings(
        _env_file=None,
        environment="development",
        database_url="sqlite://",  # in memory; never opened to build the document
        better_auth_secret=secrets.token_urlsafe(32),
        log_level="WARNING",
    )
    document: dict[str, Any] = create_app(settings).openapi()
    return document


def main() -> int:
    text = json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
