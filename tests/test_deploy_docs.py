"""docs/deploy.md shows files and commands that exist, and they agree with the image.

The Fly.io configuration in the docs is deploy/fly.toml byte for byte, and it agrees with the
Dockerfile and the service: the port, the release command, the checked path, the stop signal, a
stop timeout longer than the drain, and an environment that passes the service's start-up
checks. The podman settings and build command shown are the ones tests/test_container.py uses.
"""

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from core.config import Settings
from routes.health import router as health
from tests.test_container import BUILD, containers_conf

ROOT = Path(__file__).resolve().parent.parent
DOCS = (ROOT / "docs" / "deploy.md").read_text()
FLY = ROOT / "deploy" / "fly.toml"


def _block_after(marker: str, language: str) -> str:
    found = re.compile(rf"```{language}\n(.*?)```", re.DOTALL).search(DOCS, DOCS.index(marker))
    assert found is not None, f"no {language} block after {marker!r} in docs/deploy.md"
    return found.group(1)


def _seconds(duration: str) -> int:
    found = re.fullmatch(r"(\d+)s", duration)
    assert found is not None, duration
    return int(found.group(1))


@pytest.fixture
def fly() -> dict[str, Any]:
    return tomllib.loads(FLY.read_text())


def test_the_fly_config_in_the_docs_is_the_committed_file() -> None:
    assert _block_after("<!-- deploy/fly.toml", "toml") == FLY.read_text()


def test_the_fly_config_serves_the_image_on_its_port_and_releases_with_migrate(
    fly: dict[str, Any],
) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    port = fly["env"]["PORT"]
    assert fly["http_service"]["internal_port"] == int(port)
    assert f"EXPOSE {port}" in dockerfile.splitlines()
    command = fly["deploy"]["release_command"]
    assert (ROOT / "scripts" / command).stat().st_mode & 0o111  # executable, on the image's PATH
    assert f"!scripts/{command}" in (ROOT / ".dockerignore").read_text().splitlines()


def test_the_fly_config_checks_readiness_and_outwaits_the_drain(fly: dict[str, Any]) -> None:
    checked = {check["path"] for check in fly["http_service"]["checks"]}
    assert checked == {"/health/ready"}
    assert "/health/ready" in {getattr(route, "path", None) for route in health.routes}
    stop_signal = re.search(r"^STOPSIGNAL (\S+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert stop_signal is not None
    assert fly["kill_signal"] == stop_signal.group(1) == "SIGTERM"  # Fly's default is SIGINT
    assert _seconds(fly["kill_timeout"]) > int(fly["env"]["GRACEFUL_SHUTDOWN_SECONDS"])


def test_the_fly_environment_passes_the_production_start_up_checks(
    fly: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in fly["env"].items():
        monkeypatch.setenv(name, value)
    # The secrets `fly secrets set` adds: Neon's pooled URL.
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@ep-x-pooler.example.aws.neon.tech/db")
    settings = Settings(_env_file=None)
    assert settings.environment == "production"
    settings.check_startup()  # raises ConfigurationError on what production refuses


def test_the_podman_build_and_settings_in_the_docs_are_the_tests() -> None:
    assert f"podman {' '.join(BUILD)} --build-arg BASE=localhost/pybase -t taskapi ." in DOCS
    shown = _block_after("On the machines CI runs on", "toml")
    assert shown == containers_conf(nofile=20000)
