"""QBittorrentResource and torrent helpers against real qbittorrent-nox 4.5.2 instances on loopback."""

import base64
import json
import os
import socket
import time
from pathlib import Path

import pytest

from mamcrawler.torrents import InvalidTorrent, info_hash, make_torrent, torrent_files
from resources import qbittorrent as qbittorrent_module
from resources.qbittorrent import (
    QBittorrentAuthError,
    QBittorrentError,
    QBittorrentRejectedError,
    QBittorrentResource,
    QBittorrentTorrentNotFoundError,
    QBittorrentUnreachableError,
    TorrentState,
)
from tests.qbittorrent_harness import QbitInstance, qbit_pair
from tests.servers import free_port

pytestmark = pytest.mark.qbittorrent

TAGS = ["mamcrawler", "book:test-0001"]


@pytest.fixture(autouse=True)
def fresh_login_cooldowns(monkeypatch):
    """The in-memory cooldown table is per process; a later instance may get a port (URL) used before."""
    monkeypatch.setattr(qbittorrent_module, "_LOGIN_REFUSED_UNTIL", {})


def make_audiobook(root: Path, title: str = "Fake Author - Fake Book") -> tuple[Path, bytes]:
    """Two small fake .mp3 files in a folder and a private, tracker-less torrent of it."""
    folder = root / "seed" / title
    folder.mkdir(parents=True)
    (folder / "01 - Chapter One.mp3").write_bytes(b"ID3" + os.urandom(300_000))
    (folder / "02 - Chapter Two.mp3").write_bytes(b"ID3" + os.urandom(200_000))
    return folder, make_torrent(folder, private=True)


def resource_for(instance: QbitInstance, **overrides) -> QBittorrentResource:
    settings = {"url": instance.url, "username": instance.username, "password": instance.password}
    return QBittorrentResource(**(settings | overrides))


def wait_for(predicate, what: str, deadline_s: float = 30.0, every_s: float = 0.2):
    """Poll until `predicate()` is truthy; the deadline only guards against hanging forever."""
    deadline = time.monotonic() + deadline_s
    while not (result := predicate()):
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(every_s)
    return result


def only(resource: QBittorrentResource, torrent_hash: str) -> TorrentState:
    matching = [t for t in resource.torrents() if t.info_hash == torrent_hash]
    assert len(matching) == 1, matching
    return matching[0]


def completed(resource: QBittorrentResource, torrent_hash: str) -> TorrentState | None:
    state = only(resource, torrent_hash)
    return state if state.completion_on is not None and state.progress >= 1.0 else None


# ---- real qbittorrent-nox ---------------------------------------------------------------


def test_private_audiobook_transfers_into_the_category_save_path(tmp_path):
    folder, torrent = make_audiobook(tmp_path)
    digest = info_hash(torrent)
    with qbit_pair(tmp_path) as (seeder, leecher):
        seeder.seed(torrent, folder.parent)
        incoming = tmp_path / "incoming-audiobooks"
        resource = resource_for(leecher, category="audiobooks", save_path=str(incoming))

        outcome = resource.add_torrent(torrent, digest, TAGS)
        assert (outcome.info_hash, outcome.status) == (digest, "added")
        state = only(resource, digest)
        assert state.category == "audiobooks"
        assert sorted(state.tags) == sorted(TAGS)
        assert Path(state.save_path) == incoming  # category path applies: autoTMM is on
        assert state.completion_on is None

        assert resource.add_peers(digest, [seeder.peer]) == 1
        done = wait_for(lambda: completed(resource, digest), "the transfer to finish")

        assert [t.info_hash for t in resource.torrents(tag="book:test-0001")] == [digest]
        assert resource.torrents(tag="book:other") == []
        assert done.amount_left == 0 and done.size == 500_006
        assert done.completion_on >= done.added_on
        assert Path(done.content_path) == incoming / folder.name
        assert resource.files(digest) == torrent_files(torrent)
        for name, _size in resource.files(digest):
            assert (incoming / name).read_bytes() == (folder.parent / name).read_bytes()

        resource.remove(digest, delete_files=True)
        wait_for(lambda: not resource.torrents(), "the torrent to be removed")
        wait_for(lambda: not (incoming / folder.name).exists(), "the files to be deleted")
        with pytest.raises(QBittorrentTorrentNotFoundError):
            resource.files(digest)


def test_adding_the_same_torrent_twice_keeps_one(tmp_path):
    _folder, torrent = make_audiobook(tmp_path)
    digest = info_hash(torrent)
    with QbitInstance(tmp_path) as qbit:
        resource = resource_for(qbit)
        assert resource.add_torrent(torrent, digest, ["first"]).status == "added"
        assert resource.add_torrent(torrent, digest, ["second"]).status == "already_present"
        magnet = f"magnet:?xt=urn:btih:{digest}"
        assert resource.add_torrent(magnet, digest, []).status == "already_present"
        [state] = resource.torrents()
        assert state.info_hash == digest
        assert sorted(state.tags) == ["first", "second"]

        # The real server answers a duplicate with the body "Fails.", not an error.
        raw = qbit.client()
        assert raw.torrents_add(torrent_files=torrent) == "Fails."
        assert len(raw.torrents_info()) == 1

        # A torrent added by hand (other category) is adopted, not added again; its category
        # stays, since with automatic torrent management a new one would move its files.
        raw.torrents_set_category(category="", torrent_hashes=digest)
        assert resource.add_torrent(torrent, digest, ["third"]).status == "already_present"
        adopted = resource.find(digest)
        assert adopted.category == "" and sorted(adopted.tags) == ["first", "second", "third"]
        assert resource.torrents() == []  # not in our category ...
        assert [t.info_hash for t in resource.torrents(tag="third")] == [digest]  # ... but found by our tag
        raw.torrents_set_category(category="mamcrawler", torrent_hashes=digest)

        with pytest.raises(InvalidTorrent, match="not the expected"):
            resource.add_torrent(torrent, "0" * 40, [])

        # A magnet nobody seeds is listed at once (without metadata), so it counts as added.
        other_hash = info_hash(make_audiobook(tmp_path, "Other Author - Other Book")[1])
        base32 = base64.b32encode(bytes.fromhex(other_hash)).decode()
        assert resource.add_torrent(f"magnet:?xt=urn:btih:{base32}&dn=Other", other_hash, ["m"]).status == "added"
        assert only(resource, other_hash).tags == ["m"]
        assert len(resource.torrents()) == 2


def test_duplicate_answered_fails_is_already_present(tmp_path):
    """The lookup can miss a torrent that is being added concurrently; the `Fails.` answer
    then still means "already there", which the resource confirms by looking again."""
    _folder, torrent = make_audiobook(tmp_path)
    digest = info_hash(torrent)

    class RacingResource(QBittorrentResource):
        def _find(self, client, torrent_hash):
            found = super()._find(client, torrent_hash)
            lookups.append(found is not None)
            return None if len(lookups) == 1 else found

    with QbitInstance(tmp_path) as qbit:
        qbit.client().torrents_add(torrent_files=torrent)
        wait_for(lambda: qbit.client().torrents_info(), "the torrent to appear")
        lookups: list[bool] = []
        resource = RacingResource(url=qbit.url, username=qbit.username, password=qbit.password)
        assert resource.add_torrent(torrent, digest, ["late"]).status == "already_present"
        assert lookups == [True, True]
        assert len(qbit.client().torrents_info()) == 1


def test_accepted_but_not_listed_is_not_a_rejection(tmp_path):
    """After `Ok.` the torrent may still appear: the caller must not give up on it."""
    _folder, torrent = make_audiobook(tmp_path)
    digest = info_hash(torrent)

    class BlindResource(QBittorrentResource):
        def _find(self, client, torrent_hash):
            return None

    with QbitInstance(tmp_path) as qbit:
        blind = BlindResource(url=qbit.url, username=qbit.username, password=qbit.password, add_confirm_s=0.3)
        with pytest.raises(QBittorrentError, match=f"accepted torrent {digest} but does not list it") as error:
            blind.add_torrent(torrent, digest, TAGS)
        assert not isinstance(error.value, QBittorrentRejectedError)
        resource = resource_for(qbit)
        assert wait_for(lambda: resource.find(digest), "the torrent to be listed").category == "mamcrawler"
        assert resource.find("0" * 40) is None


def test_refused_torrent_raises_rejected(tmp_path, monkeypatch):
    # Get garbage past the local check to see what the real server answers (HTTP 415).
    monkeypatch.setattr(qbittorrent_module, "torrent_info_hash", lambda _data: "1" * 40)
    with QbitInstance(tmp_path) as qbit:
        with pytest.raises(QBittorrentRejectedError, match="not a valid torrent"):
            resource_for(qbit).add_torrent(b"d4:spam4:eggse", "1" * 40, [])
        assert resource_for(qbit).torrents() == []


def test_category_path_the_user_set_is_kept_unless_one_is_configured(tmp_path):
    _folder, torrent = make_audiobook(tmp_path)
    digest = info_hash(torrent)
    users_path = tmp_path / "users-audiobooks"
    with QbitInstance(tmp_path) as qbit:
        raw = qbit.client()
        raw.torrents_create_category(name="mamcrawler", save_path=str(users_path))
        # Blanking the path would make qBittorrent move every auto-managed torrent in the category.
        resource = resource_for(qbit)
        resource.ensure_category()
        assert resource.add_torrent(torrent, digest, TAGS).status == "added"
        assert qbit.client().torrents_categories()["mamcrawler"]["savePath"] == str(users_path)
        assert Path(resource.find(digest).save_path) == users_path

        configured = tmp_path / "configured"
        resource_for(qbit, save_path=str(configured)).ensure_category()
        assert qbit.client().torrents_categories()["mamcrawler"]["savePath"] == str(configured)
        assert wait_for(lambda: Path(resource.find(digest).save_path) == configured, "the torrent to follow")


def test_category_is_created_with_the_configured_path_or_none(tmp_path):
    with QbitInstance(tmp_path) as qbit:
        resource_for(qbit, category="plain").ensure_category()
        resource_for(qbit, category="placed", save_path=str(tmp_path / "placed")).ensure_category()
        categories = qbit.client().torrents_categories()
        assert categories["plain"]["savePath"] == ""
        assert categories["placed"]["savePath"] == str(tmp_path / "placed")


def test_remove_tags_lets_go_of_a_torrent_without_touching_it(tmp_path):
    content = tmp_path / "seed" / "Book"
    content.mkdir(parents=True)
    (content / "part.mp3").write_bytes(b"\0" * 40_000)
    torrent = make_torrent(content)
    ih = info_hash(torrent)
    with QbitInstance(tmp_path) as qbit:
        qbit.seed(torrent, content.parent)
        raw = qbit.client()
        wait_for(lambda: raw.torrents_info(torrent_hashes=ih), "the user's torrent to appear")
        raw.torrents_add_tags(tags=["users-own"], torrent_hashes=ih)
        resource = resource_for(qbit)
        assert resource.add_torrent(torrent, ih, ["mamcrawler", "mc-book"]).status == "already_present"
        assert sorted(resource.find(ih).tags) == ["mamcrawler", "mc-book", "users-own"]

        resource.remove_tags(ih, ["mamcrawler", "mc-book"])
        found = resource.find(ih)
        assert found.tags == ["users-own"] and found.category == ""
        assert Path(found.save_path) == content.parent
        assert resource.torrents(tag="mamcrawler") == []
        assert (content / "part.mp3").exists()
        with pytest.raises(ValueError, match="not a hex v1 info-hash"):
            resource.remove_tags("nope", ["mamcrawler"])


def test_qbittorrent_agrees_on_the_hash_of_a_torrent_torf_refuses(tmp_path):
    """An announce URL torf calls invalid (port 99999) is qBittorrent's business, not ours."""
    folder, _torrent = make_audiobook(tmp_path)
    valid, invalid = (f"http://127.0.0.1:{port}/SECRETPASSKEY/announce".encode() for port in (8443, 99999))
    passkey_torrent = make_torrent(folder, trackers=[valid.decode()])
    odd = passkey_torrent.replace(b"%d:%s" % (len(valid), valid), b"%d:%s" % (len(invalid), invalid))
    assert odd != passkey_torrent
    digest = info_hash(odd)
    with QbitInstance(tmp_path) as qbit:
        resource = resource_for(qbit)
        assert resource.add_torrent(odd, digest, TAGS).status == "added"
        assert resource.find(digest).name == folder.name
        assert resource.files(digest) == torrent_files(odd)


def test_wrong_password_cools_down_without_contacting_the_server(tmp_path):
    with QbitInstance(tmp_path) as qbit:
        wrong = resource_for(qbit, password="wrong-Secret-9876")
        with pytest.raises(QBittorrentAuthError, match="wrong username or password") as first:
            wrong.torrents()
        qbit.stop()
        # The server is gone: an auth error (not "unreachable") proves no request was sent.
        with pytest.raises(QBittorrentAuthError, match="Next attempt in") as second:
            wrong.torrents()
        # Other credentials are tried at once.
        with pytest.raises(QBittorrentUnreachableError):
            resource_for(qbit).torrents()
    for error in (first.value, second.value):
        assert "wrong-Secret-9876" not in str(error)
        assert qbit.password not in str(error)


def test_failed_login_is_remembered_across_processes_until_the_credentials_change(tmp_path):
    state_path = tmp_path / "state" / "qbittorrent-login.json"
    with QbitInstance(tmp_path) as qbit:
        with pytest.raises(QBittorrentAuthError, match="wrong username or password"):
            resource_for(qbit, password="wrong-Secret-9876", login_state_path=str(state_path)).torrents()
        assert qbittorrent_module._LOGIN_REFUSED_UNTIL == {}  # only the file remembers it
        assert state_path.stat().st_mode & 0o777 == 0o600
        [entry] = json.loads(state_path.read_text()).values()
        assert entry["reason"] == "credentials"
        assert "wrong-Secret-9876" not in state_path.read_text()

        qbit.stop()
        # A second process (a new resource reading the same file) does not try the same credentials.
        with pytest.raises(QBittorrentAuthError, match="not retried until") as refused:
            resource_for(qbit, password="wrong-Secret-9876", login_state_path=str(state_path)).torrents()
        message = str(refused.value)
        assert f"wrong username or password for {qbit.url}" in message
        assert "QBITTORRENT_PASSWORD/USERNAME change" in message
        assert "wrong-Secret-9876" not in message and entry["credentials"] not in message

        # A changed password is tried at once (and meets the stopped server).
        with pytest.raises(QBittorrentUnreachableError):
            resource_for(qbit, login_state_path=str(state_path)).torrents()

        qbit.start()
        assert resource_for(qbit, login_state_path=str(state_path)).torrents() == []
        assert json.loads(state_path.read_text()) == {}  # a successful login forgets the failure
        with pytest.raises(QBittorrentAuthError, match="rejected the login"):
            resource_for(qbit, password="wrong-Secret-9876", login_state_path=str(state_path)).torrents()


def test_unreadable_login_state_counts_as_no_failure(tmp_path):
    state_path = tmp_path / "qbittorrent-login.json"
    state_path.write_text("{not json")
    with QbitInstance(tmp_path) as qbit:
        assert resource_for(qbit, login_state_path=str(state_path)).torrents() == []
        with pytest.raises(QBittorrentAuthError, match="rejected the login"):
            resource_for(qbit, password="wrong-Secret-9876", login_state_path=str(state_path)).torrents()
        assert list(json.loads(state_path.read_text())) == [qbit.url]


def test_ban_after_failed_logins_is_reported(tmp_path):
    with QbitInstance(tmp_path, max_auth_failures=1) as qbit:
        hammering = resource_for(qbit, password="wrong-Secret-5432", login_cooldown_s=0)
        with pytest.raises(QBittorrentAuthError, match="wrong username or password"):
            hammering.torrents()
        with pytest.raises(QBittorrentAuthError, match="banned this IP address") as banned:
            resource_for(qbit, login_cooldown_s=0).torrents()
    assert qbit.password not in str(banned.value) and "wrong-Secret-5432" not in str(banned.value)


def test_server_down_is_unreachable(tmp_path):
    _folder, torrent = make_audiobook(tmp_path)
    nobody = QBittorrentResource(url=f"http://127.0.0.1:{free_port()}", password="pw-Secret-1234")
    with pytest.raises(QBittorrentUnreachableError, match="cannot reach qBittorrent") as error:
        nobody.torrents()
    assert "pw-Secret-1234" not in str(error.value)

    # A WebUI that accepts the connection but never answers.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(QBittorrentUnreachableError, match="timed out"):
            QBittorrentResource(url=silent_url, password="pw-Secret-1234", timeout_s=0.2).torrents()

    with QbitInstance(tmp_path) as qbit:
        resource = resource_for(qbit)
        assert resource.torrents() == []
    with pytest.raises(QBittorrentUnreachableError) as error:
        resource.add_torrent(torrent, info_hash(torrent), [])
    assert qbit.password not in str(error.value)


def test_restart_mid_way_keeps_the_torrent_and_its_completion(tmp_path):
    folder, torrent = make_audiobook(tmp_path)
    digest = info_hash(torrent)
    with qbit_pair(tmp_path) as (seeder, leecher):
        seeder.seed(torrent, folder.parent)
        resource = resource_for(leecher)
        assert resource.add_torrent(torrent, digest, TAGS).status == "added"

        leecher.restart()
        assert only(resource, digest).completion_on is None
        assert resource.add_peers(digest, [seeder.peer]) == 1
        done = wait_for(lambda: completed(resource, digest), "the transfer to finish")

        leecher.restart()
        # Right after a restart the torrent is "checkingResumeData" with progress 0;
        # completion_on is already back, so completion must be judged by it.
        after = only(resource, digest)
        assert after.completion_on == done.completion_on
        after = wait_for(lambda: completed(resource, digest), "the resume data check")
        assert after.completion_on == done.completion_on and sorted(after.tags) == sorted(TAGS)
        assert resource.add_torrent(torrent, digest, TAGS).status == "already_present"
        assert len(resource.torrents()) == 1
