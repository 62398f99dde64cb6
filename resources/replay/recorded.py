"""Reading the recorded responses the replays serve: one loader, one envelope reader, and the
made-up .torrent files the indexer replays hand out."""

import functools
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import httpx
import torf

REPLAY_DIR = Path(__file__).resolve().parent
_ABSENT = object()


def load(service: str, name: str) -> Any:
    """A recorded file of `resources/replay/<service>/`, parsed."""
    return json.loads((REPLAY_DIR / service / name).read_text(encoding="utf-8"))


def envelope(env: dict[str, Any], extra_headers: dict[str, str] | None = None, body: Any = _ABSENT) -> httpx.Response:
    """A recorded non-2xx answer as the response it was.

    The ABS recordings keep `contentType` and the raw text body (a 401 there has no
    Content-Type at all); the provider recordings keep `headers` and a JSON body.
    """
    if "contentType" in env:
        headers = {"Content-Type": env["contentType"]} if env["contentType"] else {}
    else:
        headers = dict(env.get("headers") or {})
    headers.update(extra_headers or {})
    payload = env["body"] if body is _ABSENT else body
    content = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
    return httpx.Response(env["status"], headers=headers, content=content)


@functools.lru_cache(maxsize=2048)
def fake_torrent(seed: str, name: str, length: int, announce: str, source: str | None = None) -> bytes:
    """A deterministic private single-file .torrent of `length` bytes, with made-up piece hashes
    (it loads in a client but can never complete): what an indexer replay serves for a row."""
    length = max(1, length)
    piece_length = torf.Torrent.calculate_piece_size(length)
    torrent = torf.Torrent(private=True, trackers=[announce], source=source, created_by=None, creation_date=None)
    info = torrent.metainfo["info"]
    info["name"] = name
    info["length"] = length
    info["piece length"] = piece_length
    info["pieces"] = b"".join(hashlib.sha1(f"{seed}:{n}".encode()).digest() for n in range(math.ceil(length / piece_length)))
    return torrent.dump()
