"""Reading the recorded responses the replays serve: one loader, one envelope reader."""

import json
from pathlib import Path
from typing import Any

import httpx

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
