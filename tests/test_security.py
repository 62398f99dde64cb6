"""Security, tested as an attacker would: echoing servers, run config that redirects a service,
hostile downloads, a stolen login record. The scenarios are the security cases of the fault
matrix (`bench/fault_cases/security.py`); these tests hold each one to its figures."""

import os
import stat
from pathlib import Path, PurePosixPath

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.fault_cases import security
from mamcrawler.importing import UnsafeDownload, check_download, is_file
from resources.audiobookshelf import AbsResponseError, AudiobookshelfResource
from resources.secrets import MASK, ScrubbedError, excerpt, register, scrub, scrubbed_json
from tests.servers import serve

KEY = "abs-key-Zq81xw"


def test_every_configured_secret_is_scrubbed(monkeypatch):
    monkeypatch.setenv("ABS_API_KEY", KEY)
    monkeypatch.setenv("TORZNAB_API_KEY_PROWLARR", "torznab/key+1")
    monkeypatch.setenv("CUSTOM_PROVIDER_AUTH_GOODREADS", "Bearer custom-auth-77")
    register("rotated-cookie-5512")
    text = (f"Authorization: Bearer {KEY}; ?apikey=torznab%2Fkey%2B1 torznab/key+1 q=torznab%2Fkey%2B1 "
            "custom-auth-77 mam_id=rotated-cookie-5512")
    cleaned = scrub(text)
    for secret in (KEY, "torznab", "custom-auth-77", "rotated-cookie-5512"):
        assert secret not in cleaned
    assert cleaned.count(MASK) == 6 and cleaned.startswith("Authorization: Bearer ***")


def test_a_cut_never_leaves_half_a_secret(monkeypatch):
    monkeypatch.setenv("ABS_API_KEY", KEY)
    body = "x" * 195 + KEY
    assert excerpt(body) == "x" * 195 + MASK  # scrubbed, then cut: no half key "abs-k" left
    assert KEY not in str(ScrubbedError(f"answered: {body}"))


@given(st.text(min_size=0, max_size=300), st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=8, max_size=40))
def test_scrub_is_total_and_removes_the_secret_wherever_it_sits(text, secret):
    # `extra`, not `register`: Hypothesis draws words from our own code ("enclosure"), and a
    # registered one stays for the whole example run.
    assert secret not in scrub(text + secret + text, extra=[secret])


def test_an_abs_error_body_echoing_the_key_is_scrubbed(monkeypatch):
    monkeypatch.setenv("ABS_API_KEY", KEY)

    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, text=f"bad request from {request.headers['authorization']}")

    with serve(echo) as url, pytest.raises(AbsResponseError) as err:
        AudiobookshelfResource(base_url=url, api_key=KEY).libraries()
    assert "HTTP 400" in str(err.value) and KEY not in str(err.value) and "Bearer ***" in str(err.value)


@pytest.mark.parametrize("case", [security.echoing_abs, security.echoing_provider_and_mam], ids=lambda c: c.__name__)
def test_echoing_servers_leave_no_canary_anywhere(case, tmp_path):
    result = case(tmp_path)
    assert result.secrets_found == 0, result
    assert result.survived, result


def test_run_config_cannot_point_abs_elsewhere(tmp_path):
    result = security.run_config_redirects_abs(tmp_path)
    assert result.survived and "unexpected config entries" in result.detail and "attacker saw 0 requests" in result.detail


def test_the_demo_never_sends_whatever_the_run_config_says(tmp_path):
    result = security.demo_dry_run_off(tmp_path)
    assert result.survived, result.detail


def test_the_login_record_cannot_confirm_a_guessed_password(tmp_path):
    result = security.stolen_login_record(tmp_path)
    assert result.survived and result.secrets_found == 0, result.detail
    key = tmp_path / "data" / "qbittorrent_login.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


@pytest.mark.parametrize("case", security.DOWNLOAD_CASES, ids=lambda c: c.__name__)
def test_hostile_downloads_are_refused_with_a_reason(case, tmp_path):
    result = case(tmp_path)
    assert result.survived and result.rows_lost == 0, result.detail


def test_links_are_refused_before_anything_reads_them(tmp_path):
    (tmp_path / "d").mkdir()
    os.mkfifo(tmp_path / "d" / "fifo.mp3")  # reading it would block an audio check for ever
    (tmp_path / "d" / "zero.mp3").symlink_to("/dev/zero")
    for name in ("fifo.mp3", "zero.mp3"):
        with pytest.raises(UnsafeDownload):
            check_download([(tmp_path / "d" / name, PurePosixPath(name))], root=tmp_path / "d")
    assert not is_file(Path("/") / ("x" * 300))  # no OSError for a name over the limit


def test_an_answer_loses_only_the_secrets_its_request_carried(monkeypatch):
    """A user's qBittorrent password may be a plain word; ABS never saw it, so the word stays in
    ABS's paths, while the ABS key ABS echoes goes."""
    monkeypatch.setenv("ABS_API_KEY", KEY)
    monkeypatch.setenv("QBITTORRENT_PASSWORD", "audiobooks")

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"path": "/audiobooks/Brandon Sanderson", "echo": request.headers["authorization"]})

    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        body = scrubbed_json(client.get("http://abs.test/api/me", headers={"Authorization": f"Bearer {KEY}"}))
    assert body == {"path": "/audiobooks/Brandon Sanderson", "echo": "Bearer ***"}
    assert scrubbed_json(httpx.Response(200, text='{"p": "/audiobooks"}')) == {"p": "/***"}  # no request known: all go
