import os
import shutil
from pathlib import Path

import pytest

from resources.replay.recorded import load

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Every test gets its own warehouse and no ABS settings from the developer's shell."""
    for var in ("ABS_URL", "ABS_API_KEY", "ABS_LIBRARY_IDS", "MAMCRAWLER_PROFILE", "DAGSTER_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MAMCRAWLER_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))


@pytest.fixture(autouse=True)
def registered_secrets():
    """Secrets a test registers end with it: one left behind would be cut out of every later
    answer in that worker (a registered "enclosure" broke every Torznab feed)."""
    from resources import secrets

    before = set(secrets._registered)
    yield
    with secrets._lock:
        secrets._registered.clear()
        secrets._registered.update(before)


@pytest.fixture
def abs_items() -> list[dict]:
    return load("abs", "items_batch_get_all.json")["libraryItems"]


def require_binary(path: str, package: str) -> None:
    """Integration tests need real services; in CI their absence is a failure, not a skip."""
    if shutil.which(path) or Path(path).exists():
        return
    message = f"{path} not found: install the Debian package {package} (scripts/system-deps.sh)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def abs_server(tmp_path_factory):
    """One real ABS for the session (tests/abs_server.py); each test makes its own library."""
    from tests.abs_server import running_abs

    with running_abs(tmp_path_factory.mktemp("abs-server")) as server:
        yield server
