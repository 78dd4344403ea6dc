"""The typed client (clients/typescript) is generated from the API as it runs (FR-013, SC-004).

``src/schema.d.ts`` is committed, and the example compiles against it: a response field changed
in the API without regenerating it (``make client``) fails here, before any frontend finds out.
"""

import difflib
import json
import subprocess
import sys
from typing import Any

from fastapi.testclient import TestClient

from tests.betterauth_fixtures import node_binary
from tests.frontend_tools import CLIENT_DIR, ROOT, npm_ci

SCHEMA = CLIENT_DIR / "src" / "schema.d.ts"


def served_openapi(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def test_openapi_script_prints_the_document_the_app_serves_sc004(pg_client: TestClient) -> None:
    """``make client`` generates from scripts/openapi.py: the same document as /openapi.json."""
    done = subprocess.run(
        [sys.executable, "scripts/openapi.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(done.stdout) == served_openapi(pg_client)


def test_committed_client_types_match_the_live_openapi_sc004(pg_client: TestClient) -> None:
    node = node_binary()
    npm_ci(CLIENT_DIR)
    generated = subprocess.run(
        [node, "generate.mjs", "--stdout"],
        cwd=CLIENT_DIR,
        input=json.dumps(served_openapi(pg_client)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert generated.returncode == 0, generated.stderr
    committed = SCHEMA.read_text(encoding="utf-8")
    if generated.stdout != committed:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                generated.stdout.splitlines(keepends=True),
                "clients/typescript/src/schema.d.ts (committed)",
                "generated from GET /openapi.json",
            )
        )
        raise AssertionError(
            "The API's OpenAPI document changed and the TypeScript client was not regenerated: "
            f"run `make client` and commit clients/typescript/src/schema.d.ts.\n{diff}"
        )
