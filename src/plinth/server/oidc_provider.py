"""The OpenID Connect provider as this server sees it: discovery, the authorization URL, the code
exchange (with PKCE, RFC 7636) and ID token verification against the provider's published keys.

An ID token counts only when its signature verifies with a key of the provider's JWKS (an
asymmetric algorithm the provider announces), and its `iss`, `aud` (and `azp` when several
audiences), `exp` and `nonce` are the expected ones.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import ssl
import threading
import time
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from plinth.core.errors import ConfigError, ServerUnavailable, Unauthorized
from plinth.server.oidc_config import OidcConfig

_ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
_LEEWAY_S = 60
_METADATA_TTL_S = 3600.0


def new_verifier() -> str:
    """A PKCE code verifier: 43 URL-safe characters (256 bits)."""
    return secrets.token_urlsafe(32)


def s256(verifier: str) -> str:
    """The S256 PKCE challenge of `verifier`: base64url(sha256(verifier)), unpadded."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class OidcProvider:
    """Talks to the provider named by `config.issuer`; discovery and keys are cached.

    Args:
        config: the parsed `[oidc]` table.
        http: the client to use (default: one trusting the system CAs, SSL_CERT_FILE and
            `config.ca_bundle`, 10 s timeout).
    """

    def __init__(self, config: OidcConfig, *, http: httpx.Client | None = None) -> None:
        self.config = config
        self._http = http or httpx.Client(timeout=10.0, verify=_tls(config.ca_bundle))
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None

    def close(self) -> None:
        """Close the HTTP client."""
        self._http.close()

    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (cached for an hour).

        Raises:
            ServerUnavailable: the provider cannot be reached or answers an error.
            ConfigError: the document names another issuer than the config.
        """
        with self._lock:
            if self._metadata is None or time.monotonic() - self._metadata_at > _METADATA_TTL_S:
                url = f"{self.config.issuer}/.well-known/openid-configuration"
                document = self._get_json(url)
                if str(document.get("issuer", "")).rstrip("/") != self.config.issuer:
                    raise ConfigError(
                        f"The provider at {url} names issuer {document.get('issuer')!r}, not "
                        f"{self.config.issuer!r}; set [oidc] issuer to exactly the provider's issuer."
                    )
                self._metadata, self._metadata_at, self._keys = document, time.monotonic(), None
            return self._metadata

    def authorization_url(self, *, redirect_uri: str, state: str, nonce: str, verifier: str) -> str:
        """Where to send the browser to sign in."""
        query = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.config.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": s256(verifier),
            "code_challenge_method": "S256",
        }
        endpoint = str(self.metadata()["authorization_endpoint"])
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(query)}"

    def exchange(self, *, code: str, redirect_uri: str, verifier: str) -> dict[str, Any]:
        """The provider's token response for an authorization `code`.

        Raises:
            Unauthorized: the provider refused the code (used, expired, or the PKCE verifier
                does not match).
            ServerUnavailable: the provider cannot be reached.
        """
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "client_id": self.config.client_id,
        }
        secret = self.config.client_secret
        try:
            if secret is None:  # a public client: PKCE alone
                response = self._http.post(str(self.metadata()["token_endpoint"]), data=form)
            else:
                auth = httpx.BasicAuth(self.config.client_id, secret)
                response = self._http.post(str(self.metadata()["token_endpoint"]), data=form, auth=auth)
        except httpx.HTTPError as exc:
            raise ServerUnavailable(
                f"The identity provider did not answer the code exchange: {exc}."
            ) from exc
        body = _json(response)
        if response.status_code != 200 or not isinstance(body.get("id_token"), str):
            error = body.get("error_description") or body.get("error") or f"HTTP {response.status_code}"
            raise Unauthorized(f"The identity provider refused the login code ({error}); sign in again.")
        return body

    def verify_id_token(self, id_token: str, *, nonce: str) -> dict[str, Any]:
        """The claims of `id_token` once its signature and claims check out.

        Raises:
            Unauthorized: bad signature, unknown key, wrong issuer, audience or nonce, expired.
        """
        algorithms = [
            a
            for a in self.metadata().get("id_token_signing_alg_values_supported", ["RS256"])
            if a in _ASYMMETRIC
        ]
        try:
            try:
                token = jwt.decode(id_token, self._key_set(refresh=False), algorithms=algorithms or ["RS256"])
            except InvalidKeyIdError:  # the provider rotated its keys since they were fetched
                token = jwt.decode(id_token, self._key_set(refresh=True), algorithms=algorithms or ["RS256"])
            jwt.JWTClaimsRegistry(
                leeway=_LEEWAY_S,
                iss={"essential": True, "value": self.config.issuer},
                aud={"essential": True, "value": self.config.client_id},
                exp={"essential": True},
                sub={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(token.claims)
        except JoseError as exc:
            raise Unauthorized(
                f"The identity provider's ID token did not verify ({exc}); sign in again."
            ) from exc
        claims = dict(token.claims)
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.config.client_id:
            raise Unauthorized("The ID token was issued to another client (azp); sign in again.")
        return claims

    def userinfo(self, access_token: str) -> dict[str, Any]:
        """The userinfo claims (used when the ID token leaves out the groups); {} without an endpoint."""
        endpoint = self.metadata().get("userinfo_endpoint")
        if not endpoint or not access_token:
            return {}
        try:
            response = self._http.get(str(endpoint), headers={"Authorization": f"Bearer {access_token}"})
        except httpx.HTTPError:
            return {}
        return _json(response) if response.status_code == 200 else {}

    def _key_set(self, *, refresh: bool) -> KeySet:
        uri = str(self.metadata()["jwks_uri"])
        with self._lock:
            if self._keys is None or refresh:
                self._keys = KeySet.import_key_set(self._get_json(uri))  # type: ignore[arg-type]
            return self._keys

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = self._http.get(url)
        except httpx.HTTPError as exc:
            raise ServerUnavailable(f"The identity provider at {url} did not answer: {exc}.") from exc
        if response.status_code != 200:
            raise ServerUnavailable(f"The identity provider answered HTTP {response.status_code} for {url}.")
        return _json(response)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _tls(ca_bundle: str | None) -> ssl.SSLContext:
    """System CAs (and SSL_CERT_FILE, which OpenSSL reads), plus `ca_bundle`."""
    context = ssl.create_default_context()
    if ca_bundle:
        context.load_verify_locations(cafile=ca_bundle)
    return context
