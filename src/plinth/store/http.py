"""`ServerClient`: HTTP to the team server, with its token, workspace, TLS trust and retries.

Every client of `plinth server` (the remote store, the remote identity store, artifacts through
the server) talks through one of these. A request that could not be sent (connection refused,
DNS, TLS handshake) is retried with exponential back-off and jitter, as is any request whose
endpoint is idempotent when the answer is lost or is 502/503/504 (a restart, a proxy without an
upstream); past the retry budget it raises `ServerUnavailable`. An error answer
`{"error": {"type": "NotFound", "message": ..., "problems": [...]}}` is raised as the same
`PlinthError` subclass the embedded store would have raised.
"""

from __future__ import annotations

import os
import random
import re
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlencode

import httpx

from plinth.core import errors
from plinth.core.errors import InvalidInput, PlinthError, ServerUnavailable
from plinth.core.http import RequestError
from plinth.store.keepalive import Answer, KeepAlive, proxied

if TYPE_CHECKING:
    from plinth.core.settings import Settings

Reply: TypeAlias = "httpx.Response | Answer"
"""A successful answer: httpx's, or the keep-alive path's lighter one (`plinth.store.keepalive.Answer`)."""

API = "/api/v1"
WORKSPACE_HEADER = "X-Plinth-Workspace"
RETRIED_STATUSES = frozenset({502, 503, 504})
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*")
"""Paths sent as they are (the remote store percent-encodes what it puts in one); httpx encodes others."""
_NOT_TRANSIENT = frozenset({"SchemaError", "ConfigError"})
"""503-class errors that retrying cannot cure."""


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often a client retries a request the server did not answer.

    Args:
        budget_s: give up (ServerUnavailable) once this long has passed since the first try;
            the default rides out a server restart.
        first_delay_s: the wait before the first retry; each later wait doubles, up to `max_delay_s`,
            and is drawn at random between half and all of it (so clients do not retry in step).
    """

    budget_s: float = 60.0
    first_delay_s: float = 0.1
    max_delay_s: float = 5.0

    def delay(self, attempt: int) -> float:
        """The wait before retry number `attempt` (1 for the first)."""
        ceiling = min(self.max_delay_s, self.first_delay_s * 2 ** (attempt - 1))
        return ceiling * (0.5 + random.random() / 2)


class ServerClient:
    """A connection to `plinth server` at `url`.

    Args:
        url: the server, e.g. `https://plinth.example.com` (a trailing `/api/v1` is allowed).
        token: sent as `Authorization: Bearer <token>`.
        workspace: sent as `X-Plinth-Workspace`; None lets the server pick the token's own.
        ca_bundle: a PEM file of CAs to trust besides the system's and `SSL_CERT_FILE`.
        timeout: seconds to wait for the server to connect and to answer.
        retry: the retry policy.

    Example:
        >>> client = ServerClient("http://127.0.0.1:8080", token=os.environ["PLINTH_TOKEN"])
        >>> client.request("GET", "/experiments").json()
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        workspace: str | None = None,
        ca_bundle: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.url = url.rstrip("/").removesuffix(API)
        self.workspace = workspace
        self.retry = retry or RetryPolicy()
        headers = {"accept": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        if workspace:
            headers[WORKSPACE_HEADER] = workspace
        verify: ssl.SSLContext | bool = trust(ca_bundle) if self.url.startswith("https:") else True
        self.http = httpx.Client(base_url=self.url + API, headers=headers, verify=verify, timeout=timeout)
        context = verify if isinstance(verify, ssl.SSLContext) else None
        plain = self.url.startswith(("http://", "https://")) and not proxied()
        self._keepalive = KeepAlive(self.url + API, context=context, timeout=timeout) if plain else None
        self.before_request: Callable[[], None] | None = None
        """Called before each request: the store sends what it holds back (`remote_held`)."""

    def __repr__(self) -> str:
        return f"ServerClient({self.url!r}, workspace={self.workspace!r})"

    def request(
        self,
        verb: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> Reply:
        """Send a request (path relative to `/api/v1`) and return its successful answer.

        Args:
            idempotent: whether the request may be sent again after it went out (its answer
                lost, or 502/503/504); False retries only what could not be sent at all.

        Raises:
            PlinthError: the subclass the server's error answer names (NotFound, Forbidden...).
            ServerUnavailable: no answer within the retry budget.
            InvalidInput: the request cannot be sent (text that is not valid Unicode).
        """
        if self.before_request is not None:
            self.before_request()
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            failure = self._try(verb, path, params, json, content, headers, idempotent)
            if not isinstance(failure, Exception):
                return failure
            wait = self.retry.delay(attempt)
            if not isinstance(failure, _Retry):
                raise failure
            if time.monotonic() - started + wait > self.retry.budget_s:
                raise ServerUnavailable(
                    f"The plinth server at {self.url} did not answer {verb} {path} within "
                    f"{self.retry.budget_s:.0f} s ({failure}); check that it is running and reachable."
                ) from failure
            time.sleep(wait)

    def _try(
        self,
        verb: str,
        path: str,
        params: Mapping[str, str] | None,
        body: Any,
        content: bytes | None,
        headers: Mapping[str, str] | None,
        idempotent: bool,
    ) -> Reply | Exception:
        """One attempt: the answer, or what went wrong (marked as retryable or not)."""
        try:
            response = self._send(verb, path, params, body, content, headers)
        except UnicodeEncodeError as exc:
            raise InvalidInput(
                f"The request {verb} {path} cannot be sent: {exc.reason} "
                f"({exc.object[exc.start : exc.end]!r}); use text without lone surrogates."
            ) from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            untrusted = _untrusted(exc)
            if untrusted is not None:  # retrying cannot cure it
                raise errors.ConfigError(
                    f"The plinth server at {self.url} presented a certificate this client does not "
                    f"trust ({untrusted.verify_message}); set PLINTH_CA_BUNDLE (or SSL_CERT_FILE) "
                    "to the PEM file of the CA that signed it."
                ) from exc
            return _Retry(f"cannot connect: {exc}")
        except httpx.TransportError as exc:
            if idempotent:
                return _Retry(f"the connection failed: {exc!r}")
            return ServerUnavailable(
                f"The plinth server at {self.url} stopped answering {verb} {path} ({exc!r}); it may or "
                "may not have been applied: check before sending it again."
            )
        if response.status_code < 400:
            return response
        error = error_of(response)
        retry = (
            idempotent
            and response.status_code in RETRIED_STATUSES
            and type(error).__name__ not in _NOT_TRANSIENT
        )
        return _Retry(str(error)) if retry else error

    def _send(
        self,
        verb: str,
        path: str,
        params: Mapping[str, str] | None,
        body: Any,
        content: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> Reply:
        """Send one request: on a keep-alive connection (`plinth.store.keepalive`) when nothing needs
        httpx (a JSON body to encode, a proxy, hooks watching the client's requests), else by httpx."""
        keepalive = self._keepalive
        hooks = self.http.event_hooks
        if (
            keepalive is None
            or body is not None
            or hooks["request"]
            or hooks["response"]
            or not _PLAIN_PATH.fullmatch(path)
        ):
            # the query goes as `query_text` writes it: httpx would refuse a lone surrogate
            url = f"{path}?{query_text(params)}" if params else path
            return self.http.request(verb, url, json=body, content=content, headers=headers)
        merged = {name.decode("latin-1"): value.decode("latin-1") for name, value in self.http.headers.raw}
        merged.pop("accept-encoding", None)  # answers come uncompressed: nothing here inflates them
        merged.pop("connection", None)
        for name, value in (headers or {}).items():
            merged[name.lower()] = value
        query = query_text(params) if params else ""
        return keepalive.request(verb, path, query, merged, content)

    def close(self) -> None:
        """Close the connections."""
        if self._keepalive is not None:
            self._keepalive.close()
        self.http.close()


def query_text(params: Mapping[str, str]) -> str:
    """`params` as a query string; a lone surrogate (what an argument that is not UTF-8 decodes
    to) goes as the three bytes UTF-8 would give it, which the server reads back
    (`plinth.store.rpc.query_items`), so its store answers a lookup by it as a local one does."""
    return urlencode(params, encoding="utf-8", errors="surrogatepass")


def _untrusted(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate check that failed under a connection error, if that is what failed."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None or isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class _Retry(ServerUnavailable):
    """A failed attempt worth retrying."""


def error_of(response: Reply) -> PlinthError:
    """The `PlinthError` an error answer stands for: the subclass its body names, else by status.

    401 is always `Unauthorized` and 403 `Forbidden`; a type the client does not know becomes its
    nearest kind by status (422 InvalidInput, 404 NotFound...), keeping the server's message.
    """
    status = response.status_code
    kind, message, problems = _error_body(response)
    by_status = _BY_STATUS.get(status)
    cls = _ERRORS.get(kind or "")
    if status in (401, 403) or cls is None:
        cls = by_status or (InvalidInput if 400 <= status < 500 else ServerUnavailable)
    if cls is RequestError:
        return RequestError(message, status, problems)
    if issubclass(cls, InvalidInput):
        return cls(message, problems)
    if cls is errors.TooManyAttempts:
        return errors.TooManyAttempts(message, float(response.headers.get("retry-after", "1") or 1))
    return cls(message)


def _error_body(response: Reply) -> tuple[str | None, str, list[dict[str, str]]]:
    status = response.status_code
    fallback = f"The plinth server answered {status} {response.reason_phrase}: {response.text[:300]}"
    try:
        error = response.json()["error"]
        message = str(error["message"])
        problems = error.get("problems") or []
        kind = error.get("type")
    except (ValueError, KeyError, TypeError):
        return None, fallback, []
    if not isinstance(problems, list):
        problems = []
    return (kind if isinstance(kind, str) else None), message, problems


def _known_errors() -> dict[str, type[PlinthError]]:
    found = {
        name: cls
        for name, cls in vars(errors).items()
        if isinstance(cls, type) and issubclass(cls, PlinthError)
    }
    found["RequestError"] = RequestError
    return found


_ERRORS = _known_errors()
_BY_STATUS: Mapping[int, type[PlinthError]] = {
    400: RequestError,
    401: errors.Unauthorized,
    403: errors.Forbidden,
    404: errors.NotFound,
    409: errors.ConflictError,
    413: RequestError,
    415: RequestError,
    422: InvalidInput,
    429: errors.TooManyAttempts,
    502: ServerUnavailable,
    503: ServerUnavailable,
    504: ServerUnavailable,
}


def trust(ca_bundle: str | None = None) -> ssl.SSLContext:
    """A TLS context that verifies servers against the system's CAs, `SSL_CERT_FILE` (as OpenSSL
    reads it) and `ca_bundle` when given.

    Raises:
        ConfigError: `ca_bundle` cannot be read as PEM certificates.
    """
    context = ssl.create_default_context()  # the system store, or SSL_CERT_FILE / SSL_CERT_DIR
    system = ssl.get_default_verify_paths().openssl_cafile
    if system and os.path.isfile(system):  # SSL_CERT_FILE replaces it in OpenSSL: trust both
        context.load_verify_locations(cafile=system)
    elif not context.get_ca_certs():
        import certifi

        context.load_verify_locations(cafile=certifi.where())
    if ca_bundle:
        try:
            context.load_verify_locations(cafile=ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise errors.ConfigError(
                f"PLINTH_CA_BUNDLE {ca_bundle!r} cannot be read as PEM CA certificates: {exc}."
            ) from exc
    return context


def client_from_settings(settings: Settings, *, timeout: float = 30.0) -> ServerClient:
    """The client of the team server `settings.store_url` names, with the token of PLINTH_TOKEN,
    else the one `plinth login` kept for that server, and the workspace of PLINTH_WORKSPACE."""
    url = settings.store_url or ""
    return ServerClient(
        url,
        token=resolved_token(settings),
        workspace=settings.workspace,
        ca_bundle=settings.ca_bundle,
        timeout=timeout,
    )


def resolved_token(settings: Settings) -> str | None:
    """The token a client of `settings.store_url` sends: PLINTH_TOKEN, else the one `plinth
    login` kept for that server, else None."""
    return settings.token or _saved_token(settings.config_dir, settings.store_url or "")


def _saved_token(config_dir: str | None, url: str) -> str | None:
    try:
        from plinth.store.credentials import load_token
    except ImportError:
        return None
    return load_token(config_dir, url)
