"""The browser login (Debian's Chromium through Playwright) against the MAM replay on loopback."""

import os
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

from mamcrawler.warehouse import default_warehouse_path
from pipelines.profiles import acquisition_options
from resources.mam import MamResource
from resources.mam_login import MamLoginError, login_for_mam_id
from resources.replay.mam import MamReplay
from tests.conftest import require_binary
from tests.servers import free_port, serve

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
EMAIL = "user@example.org"
PASSWORD = "correct horse battery staple"  # test password

pytestmark = pytest.mark.service


@pytest.fixture(autouse=True)
def chromium():
    require_binary(CHROMIUM, "chromium")


def test_right_credentials_give_a_cookie_the_api_accepts(tmp_path):
    replay = MamReplay(login=(EMAIL, PASSWORD))
    with serve(replay) as url:
        cookie = login_for_mam_id(url, EMAIL, PASSWORD, executable_path=CHROMIUM)
        assert replay.issued_cookies == [cookie]
        pages = [r for r in replay.requests if r != "GET /favicon.ico"]  # Chromium asks for one
        assert pages == ["GET /login.php", "POST /takelogin.php", "GET /"]  # followed the redirect

        path = tmp_path / "mam_id.cookie"
        MamResource(base_url=url, mam_id="", cookie_path=str(path)).save_cookie(cookie)
        resource = MamResource(base_url=url, mam_id="", cookie_path=str(path), min_interval_s=0.0, languages=[])
        with resource.session() as session:
            assert session.cookie == cookie
            found = session.search("The Way of Kings", "Brandon Sanderson")
    assert [r.release_id for r in found.releases][:1] == ["1100101"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_wrong_password_says_so_without_the_password():
    replay = MamReplay(login=(EMAIL, PASSWORD))
    wrong = "not-the-password-1234"
    with serve(replay) as url, pytest.raises(MamLoginError) as raised:
        login_for_mam_id(url, EMAIL, wrong, executable_path=CHROMIUM)
    message = str(raised.value)
    assert "did not accept the email and password" in message and "login form came back" in message
    assert wrong not in message and PASSWORD not in message
    assert replay.issued_cookies == []
    assert "POST /takelogin.php" in replay.requests


def test_unreachable_site_and_missing_chromium_are_named():
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(MamLoginError, match=r"cannot reach MAM at .*net::ERR_CONNECTION_REFUSED") as raised:
        login_for_mam_id(closed, EMAIL, PASSWORD, executable_path=CHROMIUM, timeout_s=10)
    assert PASSWORD not in str(raised.value)
    with pytest.raises(MamLoginError, match="install Debian's chromium package"):
        login_for_mam_id(closed, EMAIL, PASSWORD, executable_path="/nonexistent/chromium")


def test_cli_saves_the_cookie_mode_0600_and_prints_no_secret(tmp_path):
    replay = MamReplay(login=(EMAIL, PASSWORD))
    env = {k: v for k, v in os.environ.items() if k not in ("MAM_ID", "MAMCRAWLER_MAM_URL")}
    env |= {"MAM_PASSWORD": PASSWORD, "MAMCRAWLER_WAREHOUSE": str(tmp_path / "data" / "warehouse.duckdb")}
    with serve(replay) as url:
        done = subprocess.run(
            [str(ROOT / ".venv/bin/mamcrawler"), "mam-login", "--email", EMAIL, "--url", url],
            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stderr
        path = tmp_path / "data" / "mam_id.cookie"
        assert done.stdout == f"Logged in; the session cookie is saved in {path} (mode 0600)\n"
        [cookie] = replay.issued_cookies
        for secret in (PASSWORD, cookie):
            assert secret not in done.stdout and secret not in done.stderr
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        # What the production profile's resource (MAM_ID unset) will send.
        assert MamResource(base_url=url, mam_id="", cookie_path=str(path)).saved_cookie() == cookie


def test_cli_without_a_password_or_terminal_asks_for_mam_password(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MAM_PASSWORD"}
    env["MAMCRAWLER_WAREHOUSE"] = str(tmp_path / "warehouse.duckdb")
    done = subprocess.run(
        [str(ROOT / ".venv/bin/mamcrawler"), "mam-login", "--email", EMAIL, "--url", "http://127.0.0.1:9"],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2 and "MAM_PASSWORD" in done.stderr
    assert not (tmp_path / "mam_id.cookie").exists()


def test_a_saved_cookie_alone_turns_the_mam_indexer_on():
    assert acquisition_options({}, demo=False).indexers == []
    cookie_path = default_warehouse_path().parent / "mam_id.cookie"
    MamResource(mam_id="", cookie_path=str(cookie_path)).save_cookie("FAKE-MAM-LOGIN-0001")
    assert acquisition_options({}, demo=False).indexers == ["mam"]


def test_the_replay_refuses_a_login_whose_page_script_did_not_run():
    """Why the success test proves a real browser ran the page: a bare form POST is refused."""
    replay = MamReplay(login=(EMAIL, PASSWORD))
    with serve(replay) as url:
        response = httpx.post(f"{url}/takelogin.php", data={"email": EMAIL, "password": PASSWORD})
    assert response.status_code == 200 and 'type="password"' in response.text
    assert "set-cookie" not in response.headers and replay.issued_cookies == []
