"""Notifications through Apprise (ntfy, Discord, Telegram, e-mail, Gotify, ... : one URL
scheme per service, https://github.com/caronc/apprise/wiki), configured by
`MAMCRAWLER_NOTIFY_URLS`.

An Apprise URL usually holds its credential (a bot token, a webhook key, a mail password), so
every URL and each long piece of it is a secret: registered with the scrubber when the resource
is used, and Apprise's own log lines pass through the scrubber too. A notification is a
courtesy: sending never raises, a failure is one scrubbed warning.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, unquote, urlsplit

import apprise
from dagster import ConfigurableResource
from pydantic import Field

from mamcrawler.notifications import Message
from resources.fixed import FixedConfig
from resources.secrets import ScrubbedError, register, scrub

VARIABLE = "MAMCRAWLER_NOTIFY_URLS"
# Pieces of a URL this long are taken as credentials (tokens are 20+ characters); shorter ones
# are words such as a path's "api" that scrubbing would cut out of every message.
MIN_PIECE = 8

log = logging.getLogger("mamcrawler.notify")


class NotifyError(ScrubbedError):
    """A notification that could not be sent (never raised out of `Notifier.send`)."""


class _ScrubApprise(logging.Filter):
    """Apprise logs the services it talks to; no line of it may carry a token."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = scrub(record.getMessage()), ()
        return True


# A logger's filter sees only its own records: urllib3 (under Apprise) logs each request's path.
for _name in ("apprise", "urllib3.connectionpool"):
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, _ScrubApprise) for f in _logger.filters):
        _logger.addFilter(_ScrubApprise())


def split_urls(value: str) -> list[str]:
    """Apprise URLs separated by commas, spaces or new lines (Apprise's own convention)."""
    return [u for u in re.split(r"[,\s]+", value or "") if u]


def url_secrets(url: str) -> list[str]:
    """The URL and each of its pieces that may be a credential: user, password, long path
    segments and query values."""
    pieces = [url]
    try:
        parts = urlsplit(url)
        pieces += [parts.username or "", parts.password or ""]
        pieces += [unquote(s) for s in parts.path.split("/")]
        pieces += [v for _, v in parse_qsl(parts.query)]
        if parts.hostname and "." not in parts.hostname and parts.hostname != "localhost":  # ntfy://TOPIC, tgram://BOT_TOKEN: a name, not a host
            pieces.append(parts.hostname)
    except ValueError:
        pass
    return [p for p in pieces if p and (p == url or len(p) >= MIN_PIECE)]


def scheme_of(url: str) -> str:
    """What a log line may say about a URL: its scheme only."""
    return url.split("://", 1)[0] if "://" in url else "?"


class Notifier(FixedConfig, ConfigurableResource):
    """Sends messages to every configured Apprise URL; off when none is configured."""

    urls: str = Field(default="", description=f"Apprise URLs, comma or space separated ({VARIABLE}); secret")
    timeout_s: float = Field(default=10.0, gt=0, description="Seconds one service may take to answer")

    def targets(self) -> list[str]:
        found = split_urls(self.urls)
        for url in found:
            register(*url_secrets(url))
        return found

    @property
    def configured(self) -> bool:
        return bool(split_urls(self.urls))

    def send(self, message: Message, logger: logging.Logger | None = None) -> bool:
        """True when every service took the message. A failure is logged once (scrubbed), never raised."""
        logger = logger or log
        try:
            failed = self._send(message)
        except Exception as exc:  # a notification must never fail a run or a tick
            failed = [f"{type(exc).__name__}: {exc}"]
        if failed:
            logger.warning(scrub(f"notification {message.title!r} not sent: {'; '.join(failed)}"))
        return not failed

    def _send(self, message: Message) -> list[str]:
        """Why each service did not take the message (empty: all did)."""
        failed = []
        for url in self.targets():
            service = apprise.Apprise()
            if not service.add(url):
                failed.append(f"{scheme_of(url)}: not an Apprise URL this version knows")
                continue
            for plugin in service:
                plugin.socket_connect_timeout = plugin.socket_read_timeout = self.timeout_s
            with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
                ok = service.notify(title=scrub(message.title), body=scrub(message.body))
            if not ok:
                lines = [line for line in captured.getvalue().splitlines() if line.strip()]
                reason = lines[-1].strip() if lines else "the service did not accept it"
                failed.append(f"{scheme_of(url)}: {NotifyError(reason)}"[:300])
        return failed
