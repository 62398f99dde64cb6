"""Turn a MyAnonamouse email and password into a `mam_id` session cookie, through a real browser.

Only for a user who has no cookie yet: everything else talks to MAM with httpx and the cookie
(`resources/mam.py`). The login page runs scripts, so a headless Chromium fills it in the way a
person would. Facts from public client code (ruTorrent `plugins/loginmgr/accounts/MyAnonamouse.php`):
the form posts `email` and `password` to `/takelogin.php`, a successful login sets the `mam_id`
cookie, and a page that still holds a password input means the login failed.

The browser is Debian's `chromium` (`executable_path`); Playwright's own browser downloads are
never used. No message raised here carries the password or the cookie.
"""

from __future__ import annotations

import re
from pathlib import Path

from resources.secrets import ScrubbedError

LOGIN_PATH = "/login.php"
COOKIE_NAME = "mam_id"
PASSWORD_INPUT = "input[type=password]"
# ruTorrent posts `email`; older clients posted `username`. First match wins.
LOGIN_INPUTS = ("input[name=email]", "input[type=email]", "input[name=username]")
CHROMIUM_ARGS = [
    "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


class MamLoginError(ScrubbedError):
    """The browser login did not produce a mam_id cookie (the message says why, without secrets)."""


def _chromium_missing(executable_path: str) -> MamLoginError:
    return MamLoginError(
        f"Chromium not found at {executable_path}: install Debian's chromium package "
        "(apt-get install chromium); MAMcrawler does not use Playwright's downloaded browsers"
    )


def _net_error(exc: Exception) -> str:
    """Chromium's error code (net::ERR_CONNECTION_REFUSED) without the rest of the message."""
    match = re.search(r"net::ERR_[A-Z_]+", str(exc))
    return match.group(0) if match else type(exc).__name__


def login_for_mam_id(
    base_url: str,
    email: str,
    password: str,
    *,
    executable_path: str = "/usr/bin/chromium",
    timeout_s: float = 30,
) -> str:
    """Log in to MAM at `base_url` in headless Chromium and return the new `mam_id` cookie value."""
    if not email or not password:
        raise MamLoginError("MAM login needs both an email and a password")
    if not Path(executable_path).exists():
        raise _chromium_missing(executable_path)
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise MamLoginError("the MAM login needs the playwright Python package (pip install playwright)") from None

    base = base_url.rstrip("/")
    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=executable_path, headless=True, args=CHROMIUM_ARGS)
        except PlaywrightError as exc:
            if "doesn't exist" in str(exc) or "ENOENT" in str(exc):
                raise _chromium_missing(executable_path) from None
            raise MamLoginError(f"Chromium at {executable_path} did not start ({type(exc).__name__})") from None
        try:
            context = browser.new_context()
            page = context.new_page()
            page.set_default_timeout(timeout_s * 1000)
            try:
                response = page.goto(f"{base}{LOGIN_PATH}", wait_until="load")
            except PlaywrightError as exc:
                raise MamLoginError(
                    f"cannot reach MAM at {base} (GET {LOGIN_PATH}: {_net_error(exc)}); is the URL right and the site up?"
                ) from None
            if response is not None and response.status >= 400:
                raise MamLoginError(f"MAM GET {LOGIN_PATH} answered HTTP {response.status}")
            form = page.locator(f"form:has({PASSWORD_INPUT})").first
            if page.locator(PASSWORD_INPUT).count() == 0 or form.count() == 0:
                raise MamLoginError(f"MAM GET {LOGIN_PATH} shows no login form")
            login_input = next((form.locator(s).first for s in LOGIN_INPUTS if form.locator(s).count()), None)
            if login_input is None:
                raise MamLoginError(f"the login form of MAM GET {LOGIN_PATH} has no email field")
            try:
                login_input.fill(email)
                form.locator(PASSWORD_INPUT).first.fill(password)
                submit = form.locator("[type=submit]")
                with page.expect_navigation(wait_until="load"):
                    if submit.count():
                        submit.first.click()
                    else:
                        form.evaluate("f => f.requestSubmit()")
            except PlaywrightError as exc:
                raise MamLoginError(
                    f"MAM POST /takelogin.php did not complete ({_net_error(exc)}); is the site up?"
                ) from None
            still_login_page = page.locator(PASSWORD_INPUT).count() > 0
            cookie = next((c["value"] for c in context.cookies(base) if c["name"] == COOKIE_NAME), "")
        finally:
            browser.close()
    if still_login_page or not cookie:
        raise MamLoginError(
            "MAM did not accept the email and password: "
            + ("the login form came back" if still_login_page else f"no {COOKIE_NAME} cookie was set")
            + f". Check them by logging in at {base}{LOGIN_PATH} in a browser."
        )
    return cookie
