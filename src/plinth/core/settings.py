"""Settings read once, at the edge, from PLINTH_* variables (and a `.env` file where present).

Each setting comes from the environment, else from a `.env` file in the working directory, else
its default (starlette's order), so a project can keep its store URL beside its code while a
variable set for one command still wins.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from plinth.core.errors import ConfigError


@dataclass(frozen=True)
class Settings:
    """Where plinth keeps its metadata and artifacts, and its tunables.

    Args:
        home: folder for the embedded default (SQLite file, artifact folder).
        store_url: SQLAlchemy URL of the metadata store; default SQLite under `home`.
        artifacts_url: fsspec URL of the artifact store; default a folder under `home`.
        heartbeat_s: seconds between run heartbeats; a run is CRASHED after 3 missed beats.
        flush_s: longest time a logged metric waits in memory before it is written.
        user: the actor recorded on runs and audit events.
        gpus: GPUs the local executor may use: ids ("0,1") or a count ("2"); default: discovered.
        alias_poll_s: how often a model server checks whether the aliases it serves moved.
        system_metrics: whether runs log CPU, memory and GPU use as `system/*` metrics.
        sample_s: seconds between system-metric samples of a run (the first comes sooner).
        price_cpu_hour: price of one allocated CPU for one hour, for `plinth costs`.
        price_gpu_hour: price of one allocated GPU for one hour.
        price_memory_gb_hour: price of one GiB of memory for one hour (the limit when a step
            has one, the resident memory used otherwise).
        storage_options: extra fsspec options (e.g. `endpoint_url` for S3-compatible stores).
        signing_key: path of an Ed25519 private key (PEM) that signs each model version's manifest.
        verify_keys: paths of Ed25519 public keys (PEM) that signatures are checked against; the
            signing key's own public half when empty.
        require_signed: refuse to load or serve a model version that is unsigned or badly signed.
        audit_key: the secret that keys the audit chain (HMAC); when unset, a key file created
            0600 under `home` at first use.
        token: the API token sent to a team server (`PLINTH_STORE=http(s)://…`); when unset,
            the credential `plinth login` stored under `config_dir` for that server.
        workspace: the workspace a client works in; default the token's own, else `default`.
        ca_bundle: a PEM file of CA certificates a client trusts for the team server's TLS
            (besides the system's and SSL_CERT_FILE).
        config_dir: where `plinth login` keeps credentials (0600); default
            `$XDG_CONFIG_HOME/plinth`, i.e. `~/.config/plinth`.
        ui_url: the web UI's address, for links from notebooks (e.g. where `plinth ui` runs);
            default the team server's address when the store is one.
        opentelemetry: whether the team server and model servers run FastAPI's own OpenTelemetry
            layer (a span, metrics and logs per request, through the providers the process has
            set up, e.g. under `opentelemetry-instrument`); off by default, since it asks for
            the global providers on every request.
    """

    home: str = ".plinth"
    store_url: str | None = None
    artifacts_url: str | None = None
    heartbeat_s: float = 10.0
    flush_s: float = 0.5
    user: str = "unknown"
    gpus: str | None = None
    alias_poll_s: float = 5.0
    system_metrics: bool = True
    sample_s: float = 5.0
    price_cpu_hour: float = 0.0
    price_gpu_hour: float = 0.0
    price_memory_gb_hour: float = 0.0
    storage_options: dict[str, str] = field(default_factory=dict, repr=False)
    signing_key: str | None = None
    verify_keys: tuple[str, ...] = ()
    require_signed: bool = False
    audit_key: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    workspace: str | None = None
    ca_bundle: str | None = None
    config_dir: str | None = None
    ui_url: str | None = None
    opentelemetry: bool = False

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, env_file: str | os.PathLike[str] | None = ".env"
    ) -> Settings:
        """Build settings from `environ`, then `env_file`, then the defaults.

        Args:
            environ: the variables to read; default `os.environ`.
            env_file: a file of `KEY=VALUE` lines whose values apply where `environ` has no such
                variable; a missing file is skipped. Default `.env` in the working directory;
                None reads `environ` alone.

        Raises:
            ConfigError: a value is out of range, or the file cannot be read or parsed.

        Example:
            `.env` holding `PLINTH_STORE=postgresql+psycopg://db/plinth` sets the store for every
            command run in that folder; `PLINTH_STORE=... plinth runs list` overrides it once.
        """
        base = os.environ if environ is None else environ
        env = base if env_file is None else {**read_env_file(env_file), **base}
        options = {}
        if env.get("PLINTH_S3_ENDPOINT_URL"):
            options["endpoint_url"] = _endpoint(env, "PLINTH_S3_ENDPOINT_URL")
        return cls(
            home=env.get("PLINTH_HOME") or ".plinth",
            store_url=env.get("PLINTH_STORE") or None,
            artifacts_url=env.get("PLINTH_ARTIFACTS") or None,
            heartbeat_s=_positive(env, "PLINTH_HEARTBEAT_S", 10.0),
            flush_s=_positive(env, "PLINTH_FLUSH_S", 0.5),
            user=env.get("PLINTH_USER") or _os_user(env),
            gpus=env.get("PLINTH_GPUS") or None,
            alias_poll_s=_positive(env, "PLINTH_ALIAS_POLL_S", 5.0),
            system_metrics=_flag(env, "PLINTH_SYSTEM_METRICS", True),
            sample_s=_positive(env, "PLINTH_SAMPLE_S", 5.0),
            price_cpu_hour=_price(env, "PLINTH_PRICE_CPU_HOUR"),
            price_gpu_hour=_price(env, "PLINTH_PRICE_GPU_HOUR"),
            price_memory_gb_hour=_price(env, "PLINTH_PRICE_MEMORY_GB_HOUR"),
            storage_options=options,
            signing_key=env.get("PLINTH_SIGNING_KEY") or None,
            verify_keys=_paths(env, "PLINTH_VERIFY_KEYS"),
            require_signed=_flag(env, "PLINTH_REQUIRE_SIGNED", False),
            audit_key=env.get("PLINTH_AUDIT_KEY") or None,
            token=env.get("PLINTH_TOKEN") or None,
            workspace=env.get("PLINTH_WORKSPACE") or None,
            ca_bundle=env.get("PLINTH_CA_BUNDLE") or None,
            config_dir=env.get("PLINTH_CONFIG_DIR") or _config_dir(env),
            ui_url=env.get("PLINTH_UI_URL") or None,
            opentelemetry=_flag(env, "PLINTH_OPENTELEMETRY", False),
        )

    def with_home(self, home: str) -> Settings:
        """Return a copy rooted at another home folder."""
        return replace(self, home=home)

    @property
    def resolved_store_url(self) -> str:
        """The metadata store URL, defaulting to `sqlite:///HOME/plinth.db`."""
        if self.store_url:
            return self.store_url
        return f"sqlite:///{os.path.abspath(os.path.join(self.home, 'plinth.db'))}"

    @property
    def is_remote(self) -> bool:
        """Whether the store is a team server (`PLINTH_STORE=http(s)://…`)."""
        scheme = (self.store_url or "").split(":", 1)[0].lower()
        return scheme in ("http", "https")

    @property
    def resolved_artifacts_url(self) -> str:
        """The artifact store URL, defaulting to the folder `HOME/artifacts`."""
        if self.artifacts_url:
            return self.artifacts_url
        return os.path.abspath(os.path.join(self.home, "artifacts"))


def _config_dir(env: Mapping[str, str]) -> str:
    base = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".config")
    return os.path.join(base, "plinth")


def read_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """The `KEY=VALUE` lines of a `.env` file; empty when there is no such file.

    Blank lines and `#` comments are skipped, an `export ` prefix is allowed, and a value in
    matching single or double quotes is taken as written (a `#` inside it is kept); an unquoted
    value ends at ` #`.

    Raises:
        ConfigError: the file cannot be read, or a line is not `KEY=VALUE`.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read settings file {os.fspath(path)!r}: {exc}; fix or remove it.") from exc
    values = {}
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        key, sep, value = text.removeprefix("export ").partition("=")
        key = key.strip()
        if not sep or not key or not key.isidentifier():
            raise ConfigError(
                f"{os.fspath(path)}, line {number}: {line.strip()[:60]!r} is not KEY=VALUE; "
                "write e.g. PLINTH_HOME=/data/plinth, or start the line with # to comment it out."
            )
        values[key] = _unquote(value.strip())
    return values


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    comment = value.find(" #")
    return value if comment < 0 else value[:comment].rstrip()


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"{name}={raw!r} is not a positive number of seconds; unset it or use e.g. 10.")
    return value


def _price(env: Mapping[str, str], name: str) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise ConfigError(
            f"{name}={raw!r} is not a price; use a non-negative number per hour, e.g. 2.5 (no currency sign)."
        )
    return value


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    text = raw.strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ConfigError(f"{name}={raw!r} is not on or off; use 1/true/yes/on or 0/false/no/off.")


# The host names botocore takes for an endpoint: dot-separated labels of letters, digits and '-'.
_HOST_NAME = re.compile(r"^((?!-)[a-z\d-]{1,63}(?<!-)\.)*(?!-)[a-z\d-]{1,63}(?<!-)\.?$", re.IGNORECASE)


def _endpoint(env: Mapping[str, str], name: str) -> str:
    """An http(s) URL with a host (and a valid port, if any), as an S3 client takes for its endpoint."""
    raw = env[name]
    try:
        parts = urlsplit(raw)
        scheme, host = parts.scheme, parts.hostname or ""
        parts.port  # noqa: B018 - reading it checks that the port is a number in range
    except ValueError:
        scheme = host = ""
    if scheme not in ("http", "https") or not (_HOST_NAME.match(host) or _is_ip(host)):
        raise ConfigError(
            f"{name}={raw!r} is not an http(s) URL of an S3 endpoint; give its scheme and host, "
            f"e.g. http://localhost:9000, or unset it to use AWS."
        )
    return raw


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _paths(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A list of paths separated by the OS path separator (':' on POSIX) or commas."""
    raw = env.get(name) or ""
    return tuple(p.strip() for p in raw.replace(",", os.pathsep).split(os.pathsep) if p.strip())


def _os_user(env: Mapping[str, str]) -> str:
    for name in ("USER", "LOGNAME", "USERNAME"):
        if env.get(name):
            return env[name]
    try:
        import getpass

        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"
