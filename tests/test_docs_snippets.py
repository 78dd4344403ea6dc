"""The frontend docs are the example (SC-004, FR-013): every code block of docs/better-auth.md
and the README's TypeScript is quoted verbatim from a file that CI's ``next build`` compiles.

A quoted block is preceded by ``<!-- snippet: PATH -->`` (the whole file) or
``<!-- snippet: PATH#NAME -->`` (the lines between ``// #region doc:NAME`` and
``// #endregion doc:NAME`` in that file, without their common indentation). PATH is relative to
the repository and must be a TypeScript file that ``next build`` of examples/nextjs type-checks:
the example's own files (its tsconfig includes every .ts and .tsx but e2e/) or the typed client's
source, which the example imports as ``@taskapi/client``.
"""

import json
import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["docs/better-auth.md", "README.md"]
SNIPPET = re.compile(r"<!-- snippet: ([^\s#]+)(?:#(\S+))? -->\n```(\w*)\n(.*?)^```$", re.S | re.M)
CODE = re.compile(r"^```(ts|tsx|typescript|js|jsx|mjs|javascript)$", re.M)
COMPILED = ("examples/nextjs/", "clients/typescript/src/")


def region(text: str, name: str) -> str | None:
    marker = re.escape(name)
    start, end = rf"^[ \t]*// #region doc:{marker}\n", rf"^[ \t]*// #endregion doc:{marker}$"
    match = re.search(f"{start}(.*?){end}", text, re.S | re.M)
    return textwrap.dedent(match.group(1)) if match else None


def compiled_by_the_build(path: str) -> bool:
    return (
        path.startswith(COMPILED)
        and path.endswith((".ts", ".tsx"))
        and not path.startswith("examples/nextjs/e2e/")
        and (ROOT / path).is_file()
    )


def test_the_build_compiles_the_quoted_places_sc004() -> None:
    """What ``compiled_by_the_build`` assumes: the example's tsconfig takes every .ts/.tsx but
    node_modules and e2e, and the example depends on the client's source."""
    tsconfig = json.loads((ROOT / "examples/nextjs/tsconfig.json").read_text())
    assert tsconfig["compilerOptions"]["strict"] is True
    assert {"**/*.ts", "**/*.tsx"} <= set(tsconfig["include"])
    assert set(tsconfig["exclude"]) == {"node_modules", "e2e"}
    package = json.loads((ROOT / "examples/nextjs/package.json").read_text())
    assert package["dependencies"]["@taskapi/client"] == "file:../../clients/typescript"
    client = json.loads((ROOT / "clients/typescript/package.json").read_text())
    assert client["exports"] == {".": "./src/index.ts"}


@pytest.mark.parametrize("doc", DOCS)
def test_every_code_block_is_quoted_from_a_compiled_file_sc004(doc: str) -> None:
    text = (ROOT / doc).read_text()
    quoted = SNIPPET.findall(text)
    assert len(quoted) == len(CODE.findall(text)), f"{doc}: a code block without a snippet marker"
    assert quoted, f"{doc} quotes nothing"
    for path, name, _, block in quoted:
        where = f"{doc}: {path}{'#' + name if name else ''}"
        assert compiled_by_the_build(path), f"{where} is not a file next build compiles"
        source = (ROOT / path).read_text()
        expected = region(source, name) if name else source
        assert expected is not None, f"{where}: no region doc:{name} in {path}"
        assert block == expected, f"{where} differs from the file"


def test_the_docs_quote_every_mode_and_the_server_call_sc004() -> None:
    """The pieces the docs promise, each from the file that the tests run."""
    quoted = {
        f"{path}#{name}" if name else path
        for path, name, _, _ in SNIPPET.findall((ROOT / "docs/better-auth.md").read_text())
    }
    assert quoted >= {
        "examples/nextjs/lib/auth.ts",
        "examples/nextjs/app/api/auth/[...all]/route.ts",
        "examples/nextjs/lib/auth-client.ts",
        "clients/typescript/src/index.ts",
        "examples/nextjs/lib/api.ts",
        "examples/nextjs/lib/server-api.ts",
        "examples/nextjs/lib/token.ts#jwks-token",
        "examples/nextjs/lib/token.ts#route-token",
        "examples/nextjs/app/api/token/route.ts",
        "examples/nextjs/lib/hs256.ts",
        "examples/nextjs/lib/session-cache.ts",
        "examples/nextjs/app/api/session-token/route.ts",
    }
    server = (ROOT / "examples/nextjs/lib/server-api.ts").read_text()
    assert region(server, "server-token") == (
        "const { token } = await auth.api.getToken({ headers: await headers() });\n"
    )
