"""Delivery of alert notices: an HTTP POST of JSON, retried a few times, never raising."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("plinth.monitoring")


@dataclass(frozen=True)
class WebhookPolicy:
    """How hard to try: `attempts` POSTs, `timeout_s` each, waiting `backoff_s`, then twice that, between."""

    timeout_s: float = 5.0
    attempts: int = 3
    backoff_s: float = 0.5


def deliver(url: str, payload: Mapping[str, Any], policy: WebhookPolicy | None = None) -> str | None:
    """POST `payload` as JSON to `url`; return None when delivered, else why it was not.

    The reason never holds the URL, whose path may be a secret token.

    Connection failures, timeouts, 5xx and 429 answers are retried with exponential backoff;
    other 4xx answers are not (the receiver refused this payload). Nothing is raised.
    """
    policy = policy or WebhookPolicy()
    body = json.dumps(payload).encode()
    problem = "no attempt was made"
    for attempt in range(max(policy.attempts, 1)):
        if attempt:
            time.sleep(policy.backoff_s * 2 ** (attempt - 1))
        problem, retry = _post(url, body, policy.timeout_s)
        if problem is None:
            return None
        if not retry:
            break
    tries = attempt + 1
    reason = f"not delivered after {tries} attempt{'s' if tries > 1 else ''}: {problem}"
    log.warning("alert notice to %s %s", _origin(url), reason)
    return reason


def _origin(url: str) -> str:
    """Scheme and host only: webhook paths often hold secret tokens."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _post(url: str, body: bytes, timeout_s: float) -> tuple[str | None, bool]:
    """One POST: (None, _) when answered 2xx/3xx, else (the problem, whether to retry)."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", "User-Agent": "plinth"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read()
        return None, False
    except urllib.error.HTTPError as exc:
        exc.close()
        return f"HTTP {exc.code} {exc.reason}", exc.code >= 500 or exc.code == 429
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return str(reason), True
