"""The MAM account: the total parser, the rules, and mam_user_status against the MAM replay."""

import copy
import json
import math
from datetime import UTC, datetime, timedelta

import duckdb
import pytest
from dagster import AssetCheckSeverity, AssetKey, materialize
from hypothesis import given, settings
from hypothesis import strategies as st

from assets.account import account_checks, mam_user_status
from assets.checks import contract_check
from mamcrawler.account import (
    STATUS_SCHEMA,
    AccountError,
    account_status,
    ratio_verdict,
    status_frame,
    status_from_row,
    summary,
    unsatisfied_verdict,
    vip_verdict,
)
from mamcrawler.schemas import MAM_USER_STATUS
from pipelines.definitions import build_definitions
from pipelines.profiles import Profile, account_options
from resources.mam import MamResource, MamResponseError
from resources.profile import ProfileResource
from resources.replay.mam import REPLAY_MAM_ID, MamReplay
from resources.replay.recorded import load
from resources.settings import AccountOptions
from resources.warehouse import WarehouseResource
from tests.servers import serve

VIP = load("mam", "jsonload_user_vip.json")
POWER_USER = load("mam", "jsonload_user_power_user.json")
ROTATED = "FAKE-ROTATED-MAM-ID-0002"
NOW = datetime(2026, 12, 8, tzinfo=UTC)
# Fields of the row that can be None, with the answer keys whose reasons explain it.
REASON_KEYS = {
    "classname": ("classname",), "ratio": ("ratio",), "uploaded_bytes": ("uploaded_bytes",),
    "downloaded_bytes": ("downloaded_bytes",), "seedbonus": ("seedbonus",), "wedges": ("wedges",),
    "unsatisfied": ("unsat.count",), "unsatisfied_limit": ("unsat.limit",),
    "hit_and_runs": ("seedHnr.count", "inactHnr.count"),
}


def test_fixtures_parse_to_their_figures():
    for body in (VIP, POWER_USER):
        status = account_status(body)
        assert status.unreadable == {}
        assert (status.username, status.classname, status.ratio) == (body["username"], body["classname"], body["ratio"])
        assert (status.uploaded_bytes, status.downloaded_bytes) == (body["uploaded_bytes"], body["downloaded_bytes"])
        assert (status.seedbonus, status.wedges) == (body["seedbonus"], body["wedges"])
        assert (status.unsatisfied, status.unsatisfied_limit) == (body["unsat"]["count"], body["unsat"]["limit"])
        assert status.hit_and_runs == body["seedHnr"]["count"] + body["inactHnr"]["count"]
        assert status_from_row(status.row(NOW)) == status  # what the checks read back is what was parsed
    assert account_status(VIP).vip_until == datetime(2027, 1, 31, 18, 22, 5, tzinfo=UTC) and account_status(VIP).is_vip
    assert account_status(POWER_USER).vip_until is None and not account_status(POWER_USER).is_vip


def test_loose_numbers_are_read_and_bad_ones_say_why():
    body = copy.deepcopy(POWER_USER) | {"seedbonus": "12,877", "wedges": "3", "ratio": "Inf", "uploaded_bytes": True}
    body["unsat"] = {"count": 2.5, "limit": -1}
    del body["seedHnr"]
    status = account_status(body)
    assert status.seedbonus == 12877 and status.wedges == 3 and math.isinf(status.ratio)
    assert status.uploaded_bytes is None and status.unsatisfied is None and status.unsatisfied_limit is None
    assert status.hit_and_runs is None
    assert status.unreadable == {
        "uploaded_bytes": "a boolean, not a number", "unsat.count": "not a whole number",
        "unsat.limit": "negative", "seedHnr.count": "missing",
    }
    assert "4 field(s) unreadable" in summary(status) and "∞" in summary(status)


@pytest.mark.parametrize("body", [None, [], "Error, you are not signed in", {"uid": 1}, {"username": "  "}])
def test_an_answer_that_is_no_user_is_the_documented_error(body):
    with pytest.raises(AccountError):
        account_status(body)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_keys = st.sampled_from(sorted({*VIP, "count", "limit", "unsat", "nonsense"}))


@settings(max_examples=300, deadline=None)
@given(
    replaced=st.dictionaries(_keys, _json, max_size=6),
    dropped=st.sets(_keys, max_size=4),
    inner=st.dictionaries(st.sampled_from(["unsat", "seedHnr", "inactHnr"]), st.dictionaries(st.sampled_from(["count", "limit"]), _json)),
)
def test_fuzz_any_answer_is_a_status_or_the_documented_error(replaced, dropped, inner):
    body = {k: v for k, v in (copy.deepcopy(VIP) | replaced).items() if k not in dropped}
    for key, fields in inner.items():
        if isinstance(body.get(key), dict):
            body[key] = body[key] | fields
    try:
        status = account_status(body)
    except AccountError:
        assert not isinstance(body.get("username"), str) or not body["username"].strip() or "username" in dropped
        return
    row = status.row(NOW)
    for name, keys in REASON_KEYS.items():
        explained = any(k in status.unreadable for k in keys)
        assert (row[name] is None) == explained, (name, row[name], status.unreadable)
    assert ("vip_until" in status.unreadable) <= (row["vip_until"] is None)
    status_frame([row])  # every value fits its warehouse column
    summary(status)


def test_ratio_verdicts():
    assert not ratio_verdict(1.18, 1.2, "blocked").passed
    assert ratio_verdict(1.2, 1.2, "blocked").passed and ratio_verdict(math.inf, 1.2, "blocked").passed
    unknown = ratio_verdict(None, 1.2, "new non-freeleech downloads should stop")
    assert not unknown.passed and "unknown" in unknown.summary
    assert "1.18 is below the floor of 1.20" in ratio_verdict(1.18, 1.2, "blocked").summary


def test_unsatisfied_verdicts():
    assert unsatisfied_verdict(11, 100, 5).passed
    assert unsatisfied_verdict(95, 100, 5).passed and not unsatisfied_verdict(96, 100, 5).passed
    assert "room for 0 more" in unsatisfied_verdict(104, 100, 5).summary
    assert not unsatisfied_verdict(None, 100, 5).passed and not unsatisfied_verdict(3, None, 5).passed


def test_vip_verdicts():
    vip = account_status(VIP)
    end = vip.vip_until
    assert vip_verdict(vip, end - timedelta(days=8), 7).passed
    soon = vip_verdict(vip, end - timedelta(days=3), 7)
    assert not soon.passed and "ends in 3.0 days" in soon.summary
    assert "ended" in vip_verdict(vip, end + timedelta(hours=1), 7).summary
    assert vip_verdict(account_status(POWER_USER), NOW, 7).passed
    broken = account_status(VIP | {"vip_until": "next Tuesday"})
    assert not vip_verdict(broken, NOW, 7).passed


def test_settings_from_the_environment():
    assert account_options({}) == AccountOptions()
    env = {"MAMCRAWLER_RATIO_WARN_FLOOR": "3", "MAMCRAWLER_RATIO_HARD_FLOOR": "1.5",
           "MAMCRAWLER_UNSATISFIED_HEADROOM": "10", "MAMCRAWLER_VIP_WARN_DAYS": "14"}
    options = account_options(env)
    assert (options.ratio_warn_floor, options.ratio_hard_floor, options.unsatisfied_headroom, options.vip_warn_days) == (3, 1.5, 10, 14)


def _resources(url, tmp_path, **options):
    return {
        "warehouse": WarehouseResource(path=str(tmp_path / "warehouse.duckdb")),
        "profile": ProfileResource(name="test"),
        "mam": MamResource(base_url=url, mam_id=REPLAY_MAM_ID, min_interval_s=0.0, backoff_s=0.01),
        "account_options": AccountOptions(**options),
    }


def _checks(result):
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _texts(result):
    mats = result.asset_materializations_for_node("mam_user_status")
    return json.dumps([{k: str(v.value) for k, v in m.metadata.items()} for m in mats]) + json.dumps(
        [{k: str(v.value) for k, v in e.metadata.items()} | {"d": e.description} for e in result.get_asset_check_evaluations()]
    )


def test_materialised_twice_the_history_grows_and_the_checks_follow(tmp_path):
    later = copy.deepcopy(POWER_USER) | {"ratio": 1.05, "seedbonus": 13502, "downloaded_bytes": 217200000000}
    later["unsat"] = later["unsat"] | {"count": 97}
    replay = MamReplay(users=["power_user", later])
    with serve(replay) as url:
        first = materialize([mam_user_status, *account_checks], resources=_resources(url, tmp_path), raise_on_error=False)
        second = materialize([mam_user_status, *account_checks], resources=_resources(url, tmp_path), raise_on_error=False)
    assert replay.requests.count("GET /jsonLoad.php") == 2
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        history = con.sql("SELECT ratio, seedbonus, unsatisfied FROM mam_user_status_history ORDER BY checked_at").fetchall()
        current = con.sql("SELECT * FROM mam_user_status").pl()
        tables = con.sql("SELECT * FROM mam_user_status_history").pl()
    assert history == [(1.18, 12877, 11), (1.05, 13502, 97)]
    assert current.height == 1 and current["ratio"].to_list() == [1.05] and list(current.schema) == list(STATUS_SCHEMA)
    metadata = second.asset_materializations_for_node("mam_user_status")[0].metadata
    assert metadata["history_rows"].value == 2 and metadata["ratio"].value == 1.05
    assert "13,502 bonus points" in metadata["summary"].value and "97 of 100 unsatisfied torrents" in metadata["summary"].value

    before, after = _checks(first), _checks(second)
    # 1.18: under the warning floor (2.0), under the hard floor (1.2) too; 11 of 100 unsatisfied is fine.
    assert not before["ratio_above_warn_floor"].passed and before["ratio_above_warn_floor"].severity == AssetCheckSeverity.WARN
    assert not before["ratio_above_hard_floor"].passed and before["ratio_above_hard_floor"].severity == AssetCheckSeverity.ERROR
    assert before["unsatisfied_below_class_limit"].passed and before["vip_not_ending_soon"].passed
    assert not after["unsatisfied_below_class_limit"].passed
    assert after["unsatisfied_below_class_limit"].severity == AssetCheckSeverity.ERROR
    assert "97 of 100 unsatisfied torrents: room for 3 more" in after["unsatisfied_below_class_limit"].description

    # The cookie, first or rotated, is nowhere: not in metadata, check results or tables.
    for text in (_texts(first), _texts(second), tables.write_csv()):
        assert REPLAY_MAM_ID not in text and ROTATED not in text


def test_a_ratio_under_the_hard_floor_fails_the_blocking_check_and_a_good_one_passes(tmp_path):
    with serve(MamReplay(users=["vip", VIP | {"ratio": 0.9}])) as url:
        good = materialize([mam_user_status, *account_checks, contract_check(MAM_USER_STATUS)], resources=_resources(url, tmp_path))
        low = materialize([mam_user_status, *account_checks], resources=_resources(url, tmp_path, ratio_hard_floor=1.0),
                          raise_on_error=False)
    assert good.success and all(e.passed for e in good.get_asset_check_evaluations())
    assert "mam_user_status_contract" in _checks(good)
    failed = _checks(low)["ratio_above_hard_floor"]
    assert not failed.passed and failed.severity == AssetCheckSeverity.ERROR
    assert "0.90 is below the floor of 1.00: new non-freeleech downloads should stop" in failed.description
    assert _checks(low)["ratio_above_warn_floor"].severity == AssetCheckSeverity.WARN


def test_mam_down_or_no_user_fails_the_run_and_keeps_the_history(tmp_path):
    with serve(MamReplay(users=["vip", ["not a user"]])) as url:
        assert materialize([mam_user_status], resources=_resources(url, tmp_path)).success
        failed = materialize([mam_user_status], resources=_resources(url, tmp_path), raise_on_error=False)
        with (
            MamResource(base_url=url, mam_id=REPLAY_MAM_ID, min_interval_s=0.0).session() as session,
            pytest.raises(MamResponseError, match="no user"),
        ):
            session.account_status()
    assert not failed.success
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM mam_user_status_history").fetchall() == [(1,)]


def test_demo_profile_runs_refresh_account_on_the_replay():
    defs = build_definitions(Profile("demo", "test"))
    result = defs.resolve_job_def("refresh_account").execute_in_process()
    assert result.success
    metadata = result.asset_materializations_for_node("mam_user_status")[0].metadata
    assert metadata["ratio"].value == VIP["ratio"] and metadata["history_rows"].value == 1
    assert result.asset_materializations_for_node("mam_user_status")[0].asset_key == AssetKey("mam_user_status")
