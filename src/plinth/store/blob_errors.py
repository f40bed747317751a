"""What an artifact store's failure means for the user: a missing bucket, an endpoint that
cannot be reached, refused credentials, each named with the setting to fix.

fsspec backends report these in their own ways: s3fs turns S3 error codes into `OSError`s
(`FileNotFoundError` for a missing bucket, `PermissionError` for refused credentials) with
botocore's `ClientError` as the cause, and lets botocore's connection errors through as they
are. The error chain is read by error code and class name, so no S3 library is imported here.
"""

from __future__ import annotations

from plinth.core.errors import StoreError

# S3 error codes (and the bare status of a HEAD request, which has no body) for credentials
# the server does not accept, or accepts without the right to use the bucket.
_REFUSED = frozenset(
    {
        "403",
        "AccessDenied",
        "AccountProblem",
        "AllAccessDisabled",
        "AuthorizationHeaderMalformed",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidSecurity",
        "InvalidToken",
        "NotSignedUp",
        "RequestTimeTooSkewed",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
    }
)
_NO_CREDENTIALS = frozenset({"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"})
_UNREACHABLE = frozenset(
    {
        "EndpointConnectionError",  # botocore: refused, unknown host
        "ConnectTimeoutError",
        "ProxyConnectionError",
        "ClientConnectorError",  # aiohttp
        "ServerTimeoutError",
        "ConnectionError",  # builtin and botocore
    }
)
_HELP_CREDENTIALS = (
    "Check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and that they may read "
    "and write that bucket"
)


def blob_store_failure(exc: BaseException, url: str, endpoint: str | None) -> StoreError | None:
    """A StoreError saying what to fix when `exc` means the store is misconfigured, else None.

    Args:
        exc: what the filesystem raised.
        url: the artifact store (PLINTH_ARTIFACTS).
        endpoint: the S3-compatible server (PLINTH_S3_ENDPOINT_URL), None for AWS itself.
    """
    codes, names = _chain(exc)
    where = _where(endpoint)
    if "NoSuchBucket" in codes:
        return missing_bucket(url, endpoint)
    if codes & _REFUSED or names & _NO_CREDENTIALS or "PermissionError" in names:
        return StoreError(
            f"The artifact store PLINTH_ARTIFACTS={url} {where} refused access: {_first_line(exc)}. "
            f"{_HELP_CREDENTIALS}; with an S3-compatible server, that PLINTH_S3_ENDPOINT_URL names it."
        )
    if names & _UNREACHABLE:
        return StoreError(
            f"Cannot reach the artifact store PLINTH_ARTIFACTS={url} {where}: {_first_line(exc)}. "
            "Check that the server is running and that PLINTH_S3_ENDPOINT_URL names it "
            "(leave it unset for AWS S3)."
        )
    return None


def missing_bucket(url: str, endpoint: str | None) -> StoreError:
    """The error for an artifact store whose bucket does not exist."""
    bucket = url.split("://", 1)[-1].split("/", 1)[0]
    return StoreError(
        f"The artifact store PLINTH_ARTIFACTS={url} cannot be used: bucket {bucket!r} does not "
        f"exist {_where(endpoint)}. Create the bucket, or point PLINTH_ARTIFACTS at one that exists "
        "(and PLINTH_S3_ENDPOINT_URL at the server that holds it)."
    )


def _where(endpoint: str | None) -> str:
    return f"at {endpoint} (PLINTH_S3_ENDPOINT_URL)" if endpoint else "at the provider's default endpoint"


def _chain(exc: BaseException) -> tuple[set[str], set[str]]:
    """The S3 error codes and the class names found along an exception's causes."""
    codes: set[str] = set()
    names: set[str] = set()
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        names.update(cls.__name__ for cls in type(current).__mro__)
        response = getattr(current, "response", None)
        if isinstance(response, dict):
            code = (response.get("Error") or {}).get("Code")
            if code:
                codes.add(str(code))
        current = current.__cause__ or current.__context__
    return codes, names


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
