"""`SECRETS.md`: the Secrets generated manifests read, and the keys each may hold; never values.

Settings and credentials are never written into manifests: the pods read them from Secrets
the operator creates (`kubectl create secret generic …`), so the output folder can be committed.
"""

from __future__ import annotations

from collections.abc import Sequence

Key = tuple[str, str]

STORE_KEYS: tuple[Key, ...] = (
    ("PLINTH_STORE", "metadata store URL: postgresql+psycopg://… or a team server http(s)://…"),
    ("PLINTH_TOKEN", "API token, when PLINTH_STORE is a team server"),
    ("PLINTH_WORKSPACE", "workspace on the team server (default: default)"),
    ("PLINTH_ARTIFACTS", "artifact store URL, e.g. s3://bucket/prefix"),
    ("AWS_ACCESS_KEY_ID", "S3 access key"),
    ("AWS_SECRET_ACCESS_KEY", "S3 secret key"),
    ("AWS_SESSION_TOKEN", "S3 session token, for temporary credentials"),
    ("AWS_REGION", "S3 region"),
    ("AWS_ENDPOINT_URL", "endpoint of an S3-compatible store (MinIO, …), read by the AWS SDK"),
    ("PLINTH_S3_ENDPOINT_URL", "the same endpoint, as plinth's own setting"),
    (
        "PLINTH_AUDIT_KEY",
        "the audit chain's key, when PLINTH_STORE is a database that already holds audit events",
    ),
)
"""Keys of a settings Secret that every plinth process understands."""

SERVER_KEYS: tuple[Key, ...] = (
    ("PLINTH_ADMIN_TOKEN", "bootstrap superuser token (remove once real admins exist)"),
    ("PLINTH_PUBLIC_URL", "the server's URL as clients see it, e.g. https://plinth.example.com"),
    ("PLINTH_OIDC_SECRET", "single sign-on client secret, named by client_secret_env in server.toml"),
)
"""Further keys the team server reads."""


def secrets_doc(
    *,
    what: str,
    settings: str,
    keys: Sequence[Key],
    metrics_token: str | None = None,
    token_role: str = "viewer",
    notes: Sequence[str] = (),
) -> str:
    """The text of SECRETS.md for one deployment.

    Args:
        what: what runs, e.g. "model server churn/3".
        settings: the settings Secret's name.
        keys: the keys it may hold, with what each is for.
        metrics_token: the Secret the ServiceMonitor reads its bearer token from, if any.
        token_role: the role of that token.
        notes: further paragraphs.
    """
    lines = [
        "# Secrets these manifests read",
        "",
        f"The manifests in this folder ({what}) hold no settings or credentials. Create the",
        "Secrets below in the same namespace before or after `kubectl apply -k .`; never commit values.",
        "",
        f"## `{settings}` (optional): settings, as environment variables",
        "",
        "Every key becomes an environment variable of the containers (`envFrom`). Keys it may hold:",
        "",
        *[f"- `{key}`: {text}" for key, text in keys],
        "",
        "```",
        f"kubectl create secret generic {settings} --from-literal=PLINTH_STORE=… [--from-literal=…]",
        "```",
    ]
    if metrics_token is not None:
        lines += [
            "",
            f"## `{metrics_token}`: the token Prometheus scrapes /metrics with",
            "",
            f"Key `token`: a {token_role} token, e.g. from",
            f"`plinth tokens create --name prometheus --role {token_role}`.",
            "",
            "```",
            f"kubectl create secret generic {metrics_token} --from-literal=token=…",
            "```",
        ]
    for note in notes:
        lines += ["", note]
    return "\n".join(lines) + "\n"
