"""Alert webhooks: credentials sent as Basic auth and never shown; non-public targets refused unconnected.

No test here sends a packet beyond loopback: `connects` fails any connection elsewhere, and host
names are answered by a patched resolver.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sklearn.linear_model import LogisticRegression

import plinth
from plinth.cli.monitor.watch import watch as watch_command
from plinth.core.entities import PredictionLog
from plinth.core.errors import InvalidInput
from plinth.core.ids import new_id, now_ms
from plinth.monitoring import webhooks
from plinth.monitoring.alerts import RuleSet, evaluate, load_rules, parse_rule
from plinth.monitoring.webhooks import Webhook, deliver
from plinth.tracking.context import Backend

SECRET = "s3cr3t-pw"


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 answering each path as told (204 otherwise), keeping each request."""

    port: int = 0
    answers: dict[str, tuple[int, dict[str, str]]] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def url(self, path: str = "/hook", userinfo: str = "") -> str:
        return f"http://{userinfo}127.0.0.1:{self.port}{path}"


@pytest.fixture
def serve() -> Iterator[Callable[..., Receiver]]:
    servers: list[ThreadingHTTPServer] = []

    def start(tls: ssl.SSLContext | None = None) -> Receiver:
        found = Receiver()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                found.seen.append((self.path, dict(self.headers), body))
                status, headers = found.answers.get(self.path, (204, {}))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            server.socket = tls.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        found.port = server.server_port
        return found

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every TCP connection made; one beyond loopback fails the test instead of leaving the machine."""
    made: list[tuple[str, int]] = []
    real = socket.create_connection

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        made.append((address[0], address[1]))
        if not ipaddress.ip_address(address[0]).is_loopback:
            raise AssertionError(f"a connection to {address[0]} was attempted")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", create_connection)
    return made


def resolve_as(monkeypatch: pytest.MonkeyPatch, names: dict[str, list[str]]) -> None:
    """Answer these host names with these addresses, as a DNS server could."""
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in names:
            return real(host, port, *args, **kwargs)
        family = {4: socket.AF_INET, 6: socket.AF_INET6}
        return [
            (family[ipaddress.ip_address(a).version], socket.SOCK_STREAM, 6, "", (a, port))
            for a in names[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def failing_model(be: Backend) -> None:
    """A registered model 'clf' whose last minute of traffic failed half the time."""
    with plinth.start_run(experiment="alerts") as run:
        run.log_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), name="clf")
    at = now_ms() - 60_000
    be.store.write_prediction_logs(
        [
            PredictionLog(
                new_id(), "clf", 1, "primary", at + i, 2.0, None, "{}", "[0]", 500 if i % 2 else 200, 1
            )
            for i in range(10)
        ]
    )


def audited_errors(be: Backend) -> list[str | None]:
    return [json.loads(e.after or "{}")["error"] for e in be.store.audit_events() if e.action == "alert.fire"]


# ------------------------------------------------------------------------------ credentials


def test_credentials_in_the_url_are_sent_as_basic_auth(
    serve: Callable[..., Receiver], connects: list[tuple[str, int]]
) -> None:
    receiver = serve()
    hook = Webhook(receiver.url(userinfo="alice:p%40ss@"), allow_private=True)

    assert deliver(hook, {"status": "firing"}) is None

    [(path, headers, body)] = receiver.seen
    assert (path, json.loads(body)) == ("/hook", {"status": "firing"})
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"alice:p@ss").decode()
    assert connects == [("127.0.0.1", receiver.port)]


def test_credentials_are_redacted_wherever_a_url_is_shown(tmp_path: Path) -> None:
    url = f"https://alice:{SECRET}@hooks.example.com/services/T0"
    rule = parse_rule("error_rate > 1%", model="clf", webhook=url)
    assert rule.webhook is not None and rule.webhook.url == url
    for shown in (repr(rule), str(rule.webhook), repr(RuleSet((rule,), webhook=rule.webhook))):
        assert SECRET not in shown and "alice:***@hooks.example.com" in shown

    with pytest.raises(InvalidInput, match="percent-encode") as unparsable:
        parse_rule("error_rate > 1%", model="clf", webhook=f"https://alice:{SECRET}#x@hooks.example.com/")
    assert SECRET not in str(unparsable.value)

    path = tmp_path / "rules.toml"
    path.write_text(
        f'webhook = "ftp://bob:{SECRET}@files.example.com/x"\n'
        '[[rule]]\nname = "r"\nmodel = "clf"\nwhen = "error_rate > 1%"\n'
    )
    with pytest.raises(InvalidInput, match="not an http") as listed:
        load_rules(path)
    assert SECRET not in str(listed.value) and "bob:***@" in str(listed.value)


def test_a_failed_delivery_shows_no_credentials_in_logs_output_or_audit(
    tracking: Backend, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    failing_model(tracking)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    path = tmp_path / "rules.toml"
    path.write_text(
        f'webhook = "http://alice:{SECRET}@127.0.0.1:{closed}/hook"\nallow_private = true\n'
        '[[rule]]\nname = "errors"\nmodel = "clf"\nwhen = "error_rate > 10%"\n'
    )

    with caplog.at_level(logging.WARNING, logger="plinth.monitoring"):
        result = CliRunner().invoke(watch_command, [str(path), "--once"])

    assert result.exit_code == 0, result.output
    assert "FIRING" in result.output and "not delivered after 3 attempts" in result.output
    [error] = audited_errors(tracking)
    assert error is not None and "not delivered" in error
    assert caplog.records and all(SECRET not in r.getMessage() for r in caplog.records)
    for shown in (result.output, error):
        assert SECRET not in shown and "alice" not in shown


def test_a_failure_reason_redacts_the_credentials_and_nothing_else(connects: list[tuple[str, int]]) -> None:
    reason = deliver(Webhook("http://u:p@ss@127.0.0.1:9/hook/TOKEN"), {"status": "firing"})

    assert reason is not None and "***" not in reason and "p@ss" not in reason
    assert reason.startswith("not delivered after 1 attempt: refused before connecting: the webhook's host")
    assert "loopback address" in reason and "public addresses only, unless the rule sets" in reason
    assert connects == []


@pytest.mark.parametrize(
    ("problem", "shown"),
    [
        ("cannot reach 'u:p@ss@h.example.com:9'", "cannot reach 'u:***@h.example.com:9'"),
        ("moved to http://u:p@ss@h.example.com/x", "moved to http://u:***@h.example.com/x"),
        (
            "moved to https://bob:other@elsewhere.example.com/",
            "moved to https://bob:***@elsewhere.example.com/",
        ),
        ("mail you@example.com, user u, pass p@ss", "mail you@example.com, user u, pass p@ss"),
    ],
)
def test_scrubbing_touches_user_info_only(problem: str, shown: str) -> None:
    from plinth.monitoring.webhooks import _scrub

    assert _scrub(problem, "http://u:p@ss@h.example.com/x") == shown


# ------------------------------------------------------------------------------ targets


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.1/hook", "a private address"),
        ("http://192.168.1.20:8080/hook", "a private address"),
        ("http://127.0.0.1:9000/", "loopback"),
        ("http://localhost:9000/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://[fd12:3456::1]/", "a private address"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
    ],
)
def test_a_non_public_address_is_refused_when_the_rule_is_read(url: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=f"{why}.*allow_private = true"):
        parse_rule("error_rate > 1%", model="clf", webhook=url)
    allowed = parse_rule("error_rate > 1%", model="clf", webhook=url, allow_private=True)
    assert allowed.webhook == Webhook(url, allow_private=True)


def test_allow_private_in_a_rules_file_is_per_rule_or_for_all(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    rule = '[[rule]]\nname = "{0}"\nmodel = "clf"\nwhen = "error_rate > 1%"\n'
    path.write_text(
        'webhook = "http://10.0.0.5/hook"\n'
        + rule.format("inside")
        + "allow_private = true\n"
        + rule.format("outside")
    )
    with pytest.raises(InvalidInput) as info:
        load_rules(path)
    assert len(info.value.problems) == 1 and "rule 2 ('outside'): webhook" in str(info.value)

    path.write_text('webhook = "http://10.0.0.5/hook"\nallow_private = true\n' + rule.format("all"))
    [only] = load_rules(path).rules
    assert only.webhook == Webhook("http://10.0.0.5/hook", allow_private=True)


def test_a_top_level_allow_private_covers_rules_with_their_own_webhook(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    rule = '[[rule]]\nname = "{0}"\nmodel = "clf"\nwhen = "error_rate > 1%"\nwebhook = "{1}"\n'
    path.write_text(
        "allow_private = true\n"
        + rule.format("own", "http://alice:pw@127.0.0.1:9/hook")
        + rule.format("public", "https://hooks.example.com/x")
    )
    own, public = load_rules(path).rules
    assert own.webhook == Webhook("http://alice:pw@127.0.0.1:9/hook", allow_private=True)
    assert public.webhook == Webhook("https://hooks.example.com/x", allow_private=True)

    # a rule's own setting wins over the top level's
    path.write_text(
        "allow_private = true\n" + rule.format("strict", "http://10.0.0.5/hook") + "allow_private = false\n"
    )
    with pytest.raises(InvalidInput, match=r"rule 1 \('strict'\): webhook .* private"):
        load_rules(path)


@pytest.mark.parametrize(
    ("url", "answers", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/", {}, "169.254.169.254 is a link-local address"),
        ("http://10.0.0.1/hook", {}, "10.0.0.1 is a private address"),
        ("http://metadata.example.test/", {"metadata.example.test": ["169.254.169.254"]}, "link-local"),
        ("http://mixed.example.test/", {"mixed.example.test": ["93.184.215.14", "10.1.2.3"]}, "private"),
        ("http://mapped.example.test/", {"mapped.example.test": ["::ffff:127.0.0.1"]}, "loopback"),
    ],
)
def test_a_refused_target_is_never_connected(
    url: str,
    answers: dict[str, list[str]],
    why: str,
    connects: list[tuple[str, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolve_as(monkeypatch, answers)

    reason = deliver(Webhook(url), {"status": "firing"})

    assert reason is not None and "after 1 attempt: refused before connecting" in reason and why in reason
    assert "allow_private = true" in reason
    assert connects == []


def test_a_redirect_to_a_non_public_address_is_refused_before_connecting(
    serve: Callable[..., Receiver], connects: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = serve()
    receiver.answers["/hook"] = (302, {"Location": "http://169.254.169.254/latest/meta-data/"})
    # The loopback receiver stands in for a public host: its name resolves to 127.0.0.1, which
    # counts as public for this test only; every other address is judged as always.
    resolve_as(monkeypatch, {"public.example.test": ["127.0.0.1"]})
    judge = webhooks.refusal
    monkeypatch.setattr(webhooks, "refusal", lambda a: None if a == "127.0.0.1" else judge(a))

    reason = deliver(Webhook(f"http://public.example.test:{receiver.port}/hook"), {"status": "firing"})

    assert reason is not None and "redirect 1's host 169.254.169.254" in reason and "link-local" in reason
    assert [path for path, _, _ in receiver.seen] == ["/hook"]
    assert connects == [("127.0.0.1", receiver.port)]


def test_a_redirect_is_followed_with_the_post_and_credentials_stay_with_their_host(
    serve: Callable[..., Receiver], connects: list[tuple[str, int]]
) -> None:
    first, second = serve(), serve()
    first.answers["/hook"] = (307, {"Location": second.url("/moved")})
    hook = Webhook(first.url(userinfo="alice:pw@"), allow_private=True)

    assert deliver(hook, {"status": "resolved"}) is None

    [(_, asked, _)] = first.seen
    [(path, told, body)] = second.seen
    assert "Authorization" in asked and "Authorization" not in told
    assert (path, json.loads(body)) == ("/moved", {"status": "resolved"})


def test_a_refused_delivery_is_audited_and_the_watcher_goes_on(
    tracking: Backend, tmp_path: Path, connects: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    failing_model(tracking)
    resolve_as(monkeypatch, {"hooks.example.test": ["169.254.169.254"]})
    path = tmp_path / "rules.toml"
    path.write_text(
        'webhook = "https://hooks.example.test/T0"\n'
        '[[rule]]\nname = "errors"\nmodel = "clf"\nwhen = "error_rate > 10%"\n'
    )

    result = CliRunner().invoke(watch_command, [str(path), "--once"])

    assert result.exit_code == 0, result.output
    assert "FIRING" in result.output and "refused before connecting" in result.output
    [error] = audited_errors(tracking)
    assert error is not None and "hooks.example.test: 169.254.169.254 is a link-local address" in error
    [state] = tracking.store.alert_states("errors")
    assert state.firing  # the incident is recorded once, not re-sent on every evaluation
    assert evaluate(tracking.store, load_rules(path)) == []
    store = urlsplit(tracking.settings.resolved_store_url)  # a team server's, when there is one
    assert [c for c in connects if c != (store.hostname, store.port)] == []


def self_signed(tmp_path: Path, host: str) -> tuple[Path, Path]:
    """A certificate for `host`, signed by itself, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    today = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(today - datetime.timedelta(days=1))
        .not_valid_after(today + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_https_goes_to_the_checked_address_and_verifies_the_name(
    serve: Callable[..., Receiver], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path, "hooks.example.test")
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    receiver = serve(server_side)
    trusted = ssl.create_default_context

    def trusting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        context = trusted(*args, **kwargs)
        context.load_verify_locations(cert)
        return context

    monkeypatch.setattr(ssl, "create_default_context", trusting)
    resolve_as(monkeypatch, {"hooks.example.test": ["127.0.0.1"], "other.example.test": ["127.0.0.1"]})
    quick = webhooks.WebhookPolicy(attempts=1)

    assert deliver(Webhook(f"https://hooks.example.test:{receiver.port}/x", True), {"a": 1}, quick) is None
    wrong = deliver(Webhook(f"https://other.example.test:{receiver.port}/x", True), {"a": 1}, quick)
    assert wrong is not None and "not valid for 'other.example.test'" in wrong
    assert [headers["Host"] for _, headers, _ in receiver.seen] == [f"hooks.example.test:{receiver.port}"]
