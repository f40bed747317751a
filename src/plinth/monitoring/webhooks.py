"""Delivery of alert notices: an HTTP POST of JSON, retried a few times, never raising.

Credentials written in a webhook URL (`https://user:password@host/path`) are sent as HTTP Basic
auth and never shown: every place that prints a URL prints it through `redact`. Targets are
checked as `plinth.monitoring.addresses` describes, on the first hop and on every redirect.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import re
import ssl
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from plinth.monitoring.addresses import connect, literal_refusal, refusal, resolve

log = logging.getLogger("plinth.monitoring")

MAX_REDIRECTS = 5
_FOLLOWED = (301, 302, 307, 308)  # the notice is POSTed again to the new place
_ANSWER_LIMIT = 64 * 1024
_ALLOW_HINT = "notices go to public addresses only, unless the rule sets allow_private = true"


@dataclass(frozen=True)
class WebhookPolicy:
    """How hard to try: `attempts` POSTs, `timeout_s` each, waiting `backoff_s`, then twice that, between."""

    timeout_s: float = 5.0
    attempts: int = 3
    backoff_s: float = 0.5


@dataclass(frozen=True, repr=False)
class Webhook:
    """Where a rule's notices are POSTed: an http(s) URL, and whether it may reach private addresses.

    `str()` and `repr()` show the URL with its credentials redacted.

    Attributes:
        url: The URL as written; user and password in it are sent as HTTP Basic auth.
        allow_private: Allow loopback, private, link-local and other non-public targets
            (a receiver inside the watcher's own network).
    """

    url: str
    allow_private: bool = False

    def __str__(self) -> str:
        return redact(self.url)

    def __repr__(self) -> str:
        return f"Webhook({redact(self.url)!r}, allow_private={self.allow_private})"


def redact(url: str) -> str:
    """`url` with its password (or a lone user name, often a token) replaced by `***`.

    A URL whose user info does not parse (a password holding `/`, `?` or `#` unencoded) loses
    everything up to its last `@`: a little too much shown is worse than a little too much hidden.
    """
    scheme, sep, rest = url.partition("://")
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    userinfo, at, host = rest[:end].rpartition("@")
    if sep and at:
        return f"{scheme}://{_masked(userinfo)}@{host}{rest[end:]}"
    if sep and "@" in rest:
        return f"{scheme}://***@{rest.rpartition('@')[2]}"
    return url


def _masked(userinfo: str) -> str:
    """'user:***' for a user and password, '***' for a lone user name (often a token)."""
    user, colon, _ = userinfo.partition(":")
    return f"{user}:***" if colon else "***"


def webhook_problem(url: str, allow_private: bool) -> str | None:
    """What is wrong with `url` as a webhook, as far as shows without the network; None if nothing."""
    shown = redact(url)
    if re.search(r"\s", url) or not re.match(r"^https?://[^/?#]+", url):
        return f"webhook {shown!r} is not an http(s) URL; write e.g. 'https://host/path'"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 -- raises for a port that is not a number
    except ValueError:
        return (
            f"webhook {shown!r} has no valid host and port; percent-encode any of @ : / ? # in "
            "the user name or password (e.g. %40 for @, %23 for #)"
        )
    if not parts.hostname:
        return f"webhook {shown!r} names no host; write e.g. 'https://host/path'"
    why = None if allow_private else literal_refusal(parts.hostname)
    if why is not None:
        return f"webhook {shown!r} is refused: {why}; {_ALLOW_HINT}"
    return None


def deliver(
    webhook: Webhook | str, payload: Mapping[str, Any], policy: WebhookPolicy | None = None
) -> str | None:
    """POST `payload` as JSON to `webhook`; return None when delivered, else why it was not.

    The reason never holds the URL's path (often a secret token) nor its credentials.

    Connection failures, timeouts, 5xx and 429 answers are retried with exponential backoff;
    other 4xx answers, and targets refused by address, are not. A redirect (301, 302, 307, 308)
    is followed with the same POST, at most `MAX_REDIRECTS` times, each new host checked before
    connecting; Basic auth goes to another host only when its own URL holds credentials. A 303
    answer counts as delivered. Nothing is raised.
    """
    hook = webhook if isinstance(webhook, Webhook) else Webhook(webhook)
    policy = policy or WebhookPolicy()
    body = json.dumps(payload).encode()
    problem: str | None = "no attempt was made"
    for attempt in range(max(policy.attempts, 1)):
        if attempt:
            time.sleep(policy.backoff_s * 2 ** (attempt - 1))
        problem, retry = _post(hook, body, policy.timeout_s)
        if problem is None:
            return None
        if not retry:
            break
    tries = attempt + 1
    reason = (
        f"not delivered after {tries} attempt{'s' if tries > 1 else ''}: {_scrub(str(problem), hook.url)}"
    )
    log.warning("alert notice to %s %s", origin(hook.url), reason)
    return reason


def origin(url: str) -> str:
    """Scheme, host and port only: webhook paths often hold secret tokens, and user info credentials."""
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "an unreadable URL"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def _post(hook: Webhook, body: bytes, timeout_s: float) -> tuple[str | None, bool]:
    """POST once, following redirects: (None, _) when answered 2xx or 303, else (the problem, retry?)."""
    url, auth = hook.url, _basic_auth(hook.url)
    for hop in range(MAX_REDIRECTS + 1):
        where = "the webhook's host" if hop == 0 else f"redirect {hop}'s host"
        try:
            status, reason, location = _post_to(url, auth, body, hook.allow_private, timeout_s, where)
        except (_Refused, ValueError) as exc:  # a refused target, or a URL no client can use
            return str(exc) or type(exc).__name__, False
        except (OSError, http.client.HTTPException) as exc:
            return str(exc) or type(exc).__name__, True
        if 200 <= status < 300 or status == 303:
            return None, False
        if status not in _FOLLOWED or not location:
            return f"HTTP {status} {reason}", status >= 500 or status == 429
        following = urllib.parse.urljoin(url, location)
        same_place = origin(following) == origin(url)
        auth = _basic_auth(following) or (auth if same_place else None)
        url = following
    return f"more than {MAX_REDIRECTS} redirects; point the rule at the final address", False


class _Refused(Exception):
    """A target refused by its address."""


def _post_to(
    url: str, auth: str | None, body: bytes, allow_private: bool, timeout_s: float, where: str
) -> tuple[int, str, str | None]:
    """One POST to `url` at an address checked first: (status, reason, Location)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Refused(f"{where} is not an http(s) URL ({redact(url)!r})")
    host, https = parts.hostname, parts.scheme == "https"
    try:
        port = parts.port or (443 if https else 80)
    except ValueError:  # its message would quote what follows the colon: maybe a password
        raise _Refused(f"{where} has no valid port; percent-encode @ : / ? # in user or password") from None
    try:
        addresses = resolve(host, port)
    except OSError as exc:
        raise OSError(f"cannot resolve {host}: {exc}") from exc
    refused = [] if allow_private else [why for why in map(refusal, addresses) if why]
    if refused:
        raise _Refused(f"refused before connecting: {where} {host}: {refused[0]}; {_ALLOW_HINT}")
    conn = (
        _PinnedHTTPS(host, port, addresses, timeout_s)
        if https
        else _PinnedHTTP(host, port, addresses, timeout_s)
    )
    headers = {"Content-Type": "application/json", "User-Agent": "plinth"}
    if auth is not None:
        headers["Authorization"] = auth
    try:
        conn.request(
            "POST", urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, "")), body, headers
        )
        answer = conn.getresponse()
        answer.read(_ANSWER_LIMIT)
        return answer.status, answer.reason, answer.getheader("Location")
    finally:
        conn.close()


class _PinnedHTTP(http.client.HTTPConnection):
    """An HTTP connection to `host` made to one of `addresses` (checked already), not to a new lookup."""

    def __init__(self, host: str, port: int, addresses: list[str], timeout_s: float) -> None:
        super().__init__(host, port, timeout=timeout_s)
        self._addresses = addresses

    def connect(self) -> None:
        self.sock = connect(self._addresses, self.port, self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """As `_PinnedHTTP`, over TLS; the certificate is checked against `host`, which SNI names too."""

    def __init__(self, host: str, port: int, addresses: list[str], timeout_s: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout_s, context=self._tls)
        self._addresses = addresses

    def connect(self) -> None:
        sock = connect(self._addresses, self.port, self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


def _basic_auth(url: str) -> str | None:
    """The Authorization header for the user and password in `url`, or None when it holds none."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return None
    user = urllib.parse.unquote(parts.username)
    password = urllib.parse.unquote(parts.password or "")
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# A URL quoted in a message; it ends at white space or a quote, as messages delimit it.
_QUOTED_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
# What may stand before user info without being part of it: a word character there means the
# same letters belong to another word ('u@' inside 'you@example.com').
_NOT_BEFORE_USERINFO = r"(?<![\w.~%+-])"


def _scrub(text: str, url: str) -> str:
    """`text` with the credentials of every URL in it redacted, and those of `url` wherever an
    error quotes them without the scheme (`user:password@host`); other text is left as it is."""
    text = _QUOTED_URL.sub(lambda found: redact(found.group()), text)
    _, sep, rest = url.partition("://")
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    userinfo, at, _ = rest[:end].rpartition("@")
    if not (sep and at):
        return text
    for form in {userinfo, urllib.parse.unquote(userinfo)}:
        text = re.sub(_NOT_BEFORE_USERINFO + re.escape(form) + "@", f"{_masked(userinfo)}@", text)
    return text
