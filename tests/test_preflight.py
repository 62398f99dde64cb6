"""Preflight rules (mamcrawler.preflight) each broken once, against a real qbittorrent-nox, and
`mamcrawler doctor` in the demo and production profiles."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from mamcrawler.preflight import (
    abs_findings,
    clock_findings,
    disk_findings,
    failed,
    mam_findings,
    qbittorrent_findings,
)
from pipelines import cli
from pipelines.doctor import qbittorrent_checks
from resources import qbittorrent as qbittorrent_module
from resources.qbittorrent import QBittorrentResource
from resources.replay.mam import REPLAY_MAM_ID
from resources.settings import AcquisitionOptions
from tests.qbittorrent_harness import QbitInstance
from tests.servers import free_port

NOW = datetime(2026, 12, 8, 1, 30, tzinfo=UTC)
GOOD_PREFERENCES = {
    "dht": False, "pex": False, "lsd": False, "auto_tmm_enabled": True,
    "current_network_interface": "wg0", "save_path": "/downloads/",
}
GOOD_CATEGORIES = {"mamcrawler": {"name": "mamcrawler", "savePath": "/downloads/audiobooks"}}


def by_check(findings):
    return {f.check: f for f in findings}


def qbit(preferences=None, categories=None, save_path="/downloads/audiobooks", interface="wg0"):
    return by_check(qbittorrent_findings(
        GOOD_PREFERENCES | (preferences or {}), GOOD_CATEGORIES if categories is None else categories,
        "mamcrawler", save_path, interface,
    ))


# ---- domain rules, without Dagster --------------------------------------------------------


def test_a_good_qbittorrent_passes_every_rule():
    found = qbit()
    assert all(f.ok and f.severity == "ok" for f in found.values()), [f.line() for f in found.values()]
    assert found["qbittorrent.category"].says == "category 'mamcrawler' saves into /downloads/audiobooks"


@pytest.mark.parametrize("key", ["dht", "pex", "lsd"])
def test_each_private_tracker_switch_left_on_fails(key):
    found = qbit({key: True})
    assert found[f"qbittorrent.{key}"].severity == "fail"
    assert "Tools -> Options -> BitTorrent" in found[f"qbittorrent.{key}"].fix
    assert [c for c, f in found.items() if not f.ok] == [f"qbittorrent.{key}"]


def test_a_switch_qbittorrent_does_not_report_is_not_assumed_off():
    preferences = {k: v for k, v in GOOD_PREFERENCES.items() if k != "dht"}
    found = by_check(qbittorrent_findings(preferences, GOOD_CATEGORIES, "mamcrawler", "", "wg0"))
    assert found["qbittorrent.dht"].severity == "fail"


def test_manual_torrent_management_by_default_warns():
    found = qbit({"auto_tmm_enabled": False})
    assert found["qbittorrent.auto_tmm"].severity == "warn"
    assert "Default Torrent Management Mode" in found["qbittorrent.auto_tmm"].fix


def test_listening_interface_rules():
    assert qbit({"current_network_interface": "eth0"})["qbittorrent.interface"].severity == "fail"
    unbound = qbit({"current_network_interface": ""}, interface="")["qbittorrent.interface"]
    assert unbound.severity == "warn" and "MAMCRAWLER_QBITTORRENT_INTERFACE" in unbound.fix
    assert qbit({"current_network_interface": ""}, interface="*")["qbittorrent.interface"].ok
    assert qbit({"current_network_interface": "tun0"}, interface="")["qbittorrent.interface"].ok


def test_category_missing_warns_and_a_different_save_path_fails():
    missing = qbit(categories={}, save_path="")["qbittorrent.category"]
    assert missing.severity == "warn" and "/downloads/mamcrawler" in missing.fix
    moved = qbit(categories={"mamcrawler": {"savePath": "/elsewhere"}})["qbittorrent.category"]
    assert moved.severity == "fail" and "MAMCRAWLER_QBITTORRENT_SAVE_PATH" in moved.fix
    # No configured path: whatever the user chose for the category is kept.
    assert qbit(categories={"mamcrawler": {"savePath": "/elsewhere"}}, save_path="")["qbittorrent.category"].ok


def test_abs_library_rules():
    libraries = [{"id": "lib1", "name": "Books", "mediaType": "book"}, {"id": "pod", "name": "Pods", "mediaType": "podcast"}]
    assert not failed(abs_findings(libraries, []))
    unknown = by_check(abs_findings(libraries, ["nope"]))["abs.libraries"]
    assert unknown.severity == "fail" and "ABS_LIBRARY_IDS" in unknown.fix
    assert by_check(abs_findings(libraries[1:], []))["abs.libraries"].severity == "fail"


def test_mam_session_ip_rules():
    seen = {"ip": "198.51.100.4", "ASN": 64501}
    assert not failed(mam_findings("reader", "VIP", seen, "198.51.100.4"))
    moved = by_check(mam_findings("reader", "VIP", seen, "203.0.113.9"))["mam.ip"]
    assert moved.severity == "fail" and "MAMCRAWLER_MAM_SESSION_IP" in moved.fix
    assert by_check(mam_findings("reader", "VIP", {}, ""))["mam.ip"].severity == "warn"


def test_disk_rules(tmp_path):
    free_gib = shutil.disk_usage(tmp_path).free / 1024**3
    assert disk_findings("library", str(tmp_path), free_gib / 2)[0].ok
    low = disk_findings("library", str(tmp_path), free_gib * 2, "MAMCRAWLER_LIBRARY_DIR")[0]
    assert low.severity == "fail" and "MAMCRAWLER_LIBRARY_DIR" in low.fix and "GiB free" in low.says
    assert disk_findings("library", str(tmp_path / "gone"), 0)[0].severity == "fail"
    later = disk_findings("data", str(tmp_path / "a" / "b"), 0, created_on_use=True)[0]
    assert later.ok and str(tmp_path) in later.says
    assert disk_findings("library", "", 0, "MAMCRAWLER_LIBRARY_DIR")[0].severity == "warn"


def test_clock_rules():
    header = format_datetime(NOW, usegmt=True)
    assert clock_findings("ABS", header, NOW + timedelta(seconds=20), 30)[0].ok
    ahead = clock_findings("ABS", header, NOW + timedelta(seconds=95), 30)[0]
    assert ahead.severity == "fail" and "95 s ahead of ABS" in ahead.says and "NTP" in ahead.fix
    behind = clock_findings("ABS", header, NOW - timedelta(seconds=95), 30)[0]
    assert behind.severity == "fail" and "behind" in behind.says
    assert clock_findings("ABS", None, NOW, 30)[0].severity == "warn"
    assert clock_findings("ABS", "not a date", NOW, 30)[0].severity == "warn"


# ---- a real qbittorrent-nox -------------------------------------------------------------


@pytest.fixture
def fresh_login_cooldowns(monkeypatch):
    monkeypatch.setattr(qbittorrent_module, "_LOGIN_REFUSED_UNTIL", {})


@pytest.mark.qbittorrent
def test_real_qbittorrent_with_a_config_that_breaks_the_rules(tmp_path, fresh_login_cooldowns):
    with QbitInstance(tmp_path) as instance:
        resource = QBittorrentResource(url=instance.url, username=instance.username, password=instance.password,
                                       save_path=str(instance.download_dir / "audiobooks"))
        # The harness's profile is a good one: private switches off, bound to lo.
        preferences, categories = resource.preferences()
        good = by_check(qbittorrent_findings(preferences, categories, resource.category, resource.save_path, "lo"))
        assert [c for c, f in good.items() if f.severity == "fail"] == []
        assert good["qbittorrent.interface"].says == "bound to lo"
        assert good["qbittorrent.category"].severity == "warn"  # not created before the first send

        client = instance.client()
        try:
            client.app_set_preferences({"dht": True, "pex": True, "lsd": True, "auto_tmm_enabled": False,
                                        "current_network_interface": ""})
            client.torrents_create_category(name=resource.category, save_path=str(tmp_path / "elsewhere"))
        finally:
            client.auth_log_out()
        preferences, categories = resource.preferences()
        bad = by_check(qbittorrent_findings(preferences, categories, resource.category, resource.save_path, "lo"))
        assert {c: f.severity for c, f in bad.items()} == {
            "qbittorrent.dht": "fail", "qbittorrent.pex": "fail", "qbittorrent.lsd": "fail",
            "qbittorrent.auto_tmm": "warn", "qbittorrent.interface": "fail", "qbittorrent.category": "fail",
        }
        # The doctor's step also measures the download folder as qBittorrent reports it.
        doctor = by_check(qbittorrent_checks(resource, AcquisitionOptions(), {}, 0))
        assert doctor["disk.downloads"].ok and str(instance.download_dir) in doctor["disk.downloads"].says
        assert instance.password not in " ".join(f.line() for f in doctor.values())


# ---- mamcrawler doctor --------------------------------------------------------------------


def test_doctor_in_the_demo_profile_exits_0_and_says_what_is_replayed(capsys, monkeypatch):
    monkeypatch.setenv("MAMCRAWLER_MIN_FREE_GIB", "0")
    assert cli.main(["doctor", "--profile", "demo"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "ABS and MAM answer from recorded replays; qBittorrent is never contacted" in out
    assert any(line.startswith("OK   abs.key: the API key is accepted") for line in lines)
    assert any(line.startswith("OK   mam.cookie: the mam_id cookie is valid") for line in lines)
    assert any(line.startswith("WARN qbittorrent: not checked") for line in lines)
    assert not any(line.startswith("FAIL") for line in lines)
    assert REPLAY_MAM_ID not in out and "demo-token" not in out


def test_doctor_fails_with_services_down_and_prints_no_secret(capsys, monkeypatch):
    monkeypatch.setenv("ABS_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("ABS_API_KEY", "abs-key-must-not-print")
    monkeypatch.setenv("QBITTORRENT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("QBITTORRENT_PASSWORD", "qbit-password-must-not-print")
    monkeypatch.setenv("MAMCRAWLER_MIN_FREE_GIB", "0")
    for name in ("MAM_ID", "MAMCRAWLER_TORZNAB", "MAMCRAWLER_LIBRARY_DIR"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["doctor", "--profile", "production"]) == 1
    out = capsys.readouterr().out
    assert any(line.startswith("FAIL abs.key: cannot reach ABS") for line in out.splitlines())
    assert any(line.startswith("FAIL qbittorrent: cannot reach qBittorrent") for line in out.splitlines())
    assert "must-not-print" not in out


# ---- the `preflight` asset check --------------------------------------------------------


def test_preflight_check_runs_with_the_account_refresh_in_the_demo():
    from pipelines.definitions import build_definitions
    from pipelines.profiles import Profile

    result = build_definitions(Profile("demo", "test")).resolve_job_def("refresh_account").execute_in_process()
    assert result.success
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == "preflight"]
    assert evaluation.passed
    findings = evaluation.metadata["findings"].value
    assert "OK   abs.key" in findings and "WARN qbittorrent: not checked" in findings
    assert evaluation.metadata["failures"].value == 0


def test_preflight_check_fails_with_error_on_a_fail_finding():
    from dagster import AssetCheckSeverity

    from assets.preflight import preflight_result

    found = qbittorrent_findings(GOOD_PREFERENCES | {"dht": True}, GOOD_CATEGORIES, "mamcrawler", "", "wg0")
    result = preflight_result(found)
    assert not result.passed and result.severity == AssetCheckSeverity.ERROR
    assert "qbittorrent.dht" in result.description
    assert preflight_result(qbittorrent_findings(GOOD_PREFERENCES, GOOD_CATEGORIES, "mamcrawler", "", "wg0")).passed


def test_mam_over_http_reads_the_cookie_ip_and_clock_and_tolerates_no_ip_answer():
    from pipelines.doctor import mam_checks
    from resources.mam import MamResource
    from resources.replay.mam import MamReplay
    from tests.servers import serve

    replay = MamReplay()
    with serve(replay) as url:
        found = by_check(mam_checks(MamResource(base_url=url, mam_id=REPLAY_MAM_ID, min_interval_s=0), {}, datetime.now(UTC), 30))
    assert found["mam.cookie"].ok and found["mam.ip"].says.startswith("MAM sees this machine as 203.0.113.7")
    assert found["clock.MAM"].ok  # a real HTTP server's Date header, within seconds of this clock
    late = by_check(mam_checks(MamResource(base_url=url, mam_id=REPLAY_MAM_ID, min_interval_s=0), {}, datetime.now(UTC), 30))
    assert late["mam.cookie"].severity == "fail"  # the server is gone: unreachable, one line

    def no_ip(request):
        if request.url.path == "/json/jsonIp.php":
            return httpx.Response(404, text="Page not found")
        return replay(request)

    with serve(no_ip) as url:
        found = by_check(mam_checks(MamResource(base_url=url, mam_id=REPLAY_MAM_ID, min_interval_s=0), {}, datetime.now(UTC), 30))
    assert found["mam.cookie"].ok and found["mam.ip"].severity == "warn"


def test_abs_over_http_key_rejected_fails_and_a_good_key_reads_the_libraries_and_clock():
    from pipelines.doctor import abs_checks
    from resources.audiobookshelf import AudiobookshelfResource
    from resources.replay.abs import AbsReplay
    from tests.servers import serve

    with serve(AbsReplay(token="right-key")) as url:
        wrong = by_check(abs_checks(AudiobookshelfResource(base_url=url, api_key="wrong-key"), datetime.now(UTC), 30))
        right = by_check(abs_checks(AudiobookshelfResource(base_url=url, api_key="right-key"), datetime.now(UTC), 30))
    assert wrong["abs.key"].severity == "fail" and "ABS_API_KEY" in wrong["abs.key"].says
    assert "wrong-key" not in wrong["abs.key"].line()
    assert right["abs.key"].ok and right["abs.libraries"].ok and right["clock.ABS"].ok
