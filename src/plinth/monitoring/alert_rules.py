"""Alert rules: a one-line condition on a model's monitoring metric, alone or in a TOML file.

Grammar of a condition::

    METRIC [ (feature=NAME | feature=*) ] OP NUMBER[%] [for N windows]

OP is one of `>`, `>=`, `<`, `<=`; `1%` is 0.01. A feature name holding spaces may be
written bare; one holding parentheses or quotes is quoted: `drift(feature="petal length (cm)")`.
`feature=*` checks each feature separately (one alert per feature). `for N windows` asks for
N consecutive breaching evaluations before the alert fires (default 1).

A rules file::

    webhook = "https://hooks.example.com/plinth"   # default for every rule (optional)
    every = "1m"                                    # how often `plinth monitor watch` evaluates

    [[rule]]
    name = "iris-drift"
    model = "iris-clf"
    when = "drift(feature=*) > 0.2 for 2 windows"
    window = "1h"                                   # data each evaluation looks at (default 1h)
    webhook = "https://user:password@host/hook"     # this rule's own (optional); Basic auth
    allow_private = true                            # may reach private addresses (default false)

A webhook may only reach public addresses: loopback, private (10/8, 172.16/12, 192.168/16,
fc00::/7), link-local (169.254/16, where cloud metadata services answer) and other non-public
targets are refused, directly or through a redirect, unless its rule sets `allow_private = true`.
A top-level `allow_private` applies to every rule that does not set its own, whichever webhook
the rule uses.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from plinth.core.errors import InvalidInput, NotFound
from plinth.core.units import parse_duration
from plinth.monitoring.webhooks import Webhook, webhook_problem

Op = Literal[">", ">=", "<", "<="]
Source = Literal["drift", "performance", "operations"]

METRICS: dict[str, Source] = {
    "drift": "drift",
    "js": "drift",
    "drift_share": "drift",
    "prediction_drift": "drift",
    "accuracy": "performance",
    "precision": "performance",
    "recall": "performance",
    "f1": "performance",
    "roc_auc": "performance",
    "mae": "performance",
    "rmse": "performance",
    "r2": "performance",
    "coverage": "performance",
    "p50_latency_ms": "operations",
    "p95_latency_ms": "operations",
    "p99_latency_ms": "operations",
    "error_rate": "operations",
    "throughput_rps": "operations",
}
"""Every metric a rule may name, and what it is computed from."""

FEATURE_METRICS = frozenset({"drift", "js"})
"""Metrics of one feature: they need `(feature=NAME)` or `(feature=*)`."""

SHARE_METRICS = frozenset(
    {"drift_share", "accuracy", "precision", "recall", "f1", "roc_auc", "coverage", "error_rate"}
)
"""Metrics between 0 and 1, whose thresholds may be written as percentages."""

GRAMMAR = "METRIC[(feature=NAME|*)] OP NUMBER[%] [for N windows], OP one of > >= < <="
EXAMPLES = (
    "drift(feature=*) > 0.2 for 2 windows",
    "accuracy < 0.9",
    "p99_latency_ms > 50",
    "error_rate > 1%",
)
DEFAULT_WINDOW = "1h"
DEFAULT_EVERY = "1m"

_FILE_KEYS = ("webhook", "allow_private", "every", "rule")
_RULE_KEYS = ("name", "model", "when", "window", "webhook", "allow_private")
_OPS: tuple[Op, ...] = (">=", "<=", ">", "<")


@dataclass(frozen=True)
class AlertRule:
    """One alert: `metric` of `model` compared with `threshold` over the last `window`.

    Attributes:
        name: Unique name; alert state and audit events are kept under it.
        model: Registered model name.
        metric: One of `METRICS`.
        selector: The feature for `drift`/`js` (`*` for each feature), else None.
        op: `>`, `>=`, `<` or `<=`: the comparison that counts as a breach.
        threshold: The number compared with (`1%` already read as 0.01).
        for_windows: Consecutive breaching evaluations needed before the alert fires.
        window: The data window each evaluation looks at, as written ('1h').
        webhook: Where firing and resolved notices are POSTed, or None (audit log only).
        when: The condition as written.
    """

    name: str
    model: str
    metric: str
    selector: str | None
    op: Op
    threshold: float
    for_windows: int = 1
    window: str = DEFAULT_WINDOW
    webhook: Webhook | None = None
    when: str = ""

    @property
    def window_ms(self) -> int:
        """Length of the data window in milliseconds."""
        return int((parse_duration(self.window) or 0) * 1000)

    def breached(self, value: float) -> bool:
        """Whether `value` breaches the rule."""
        if self.op == ">":
            return value > self.threshold
        if self.op == ">=":
            return value >= self.threshold
        if self.op == "<":
            return value < self.threshold
        return value <= self.threshold


@dataclass(frozen=True)
class RuleSet:
    """The rules of a file (or built by API), with the evaluation period and default webhook."""

    rules: tuple[AlertRule, ...]
    every: str = DEFAULT_EVERY
    webhook: Webhook | None = None
    path: str | None = None

    @property
    def every_s(self) -> float:
        """The evaluation period in seconds."""
        return parse_duration(self.every) or 0.0


def parse_rule(
    text: str,
    *,
    model: str,
    name: str | None = None,
    window: str = DEFAULT_WINDOW,
    webhook: str | None = None,
    allow_private: bool = False,
) -> AlertRule:
    """Build a rule from its condition, e.g. `parse_rule("error_rate > 1%", model="iris-clf")`.

    Args:
        text: The condition, in the grammar of this module's docstring.
        model: The registered model it watches.
        name: Unique name (default: "MODEL: TEXT").
        window: Data window of each evaluation ('1h', '30m').
        webhook: http(s) URL to POST notices to; a user and password in it are sent as Basic auth.
        allow_private: Let the webhook reach loopback, private and link-local addresses.

    Raises:
        InvalidInput: the condition, window, webhook or model is not usable (a webhook at a
            non-public IP without allow_private included); the message names the rule and says
            what to write instead.
    """
    label = name or f"{model}: {text}"
    rule, problems = _build(text, label, model, window, webhook, allow_private)
    if rule is None:
        raise InvalidInput(f"Alert rule {label!r}: " + "; ".join(problems))
    return rule


def _build(
    text: str, name: str, model: str, window: str, webhook: str | None, allow_private: bool
) -> tuple[AlertRule | None, list[str]]:
    """The rule, or None and every problem found."""
    problems = _check_fields(model, window, webhook, allow_private)
    try:
        metric, selector, op, threshold, count = _parse_condition(text)
    except InvalidInput as exc:
        return None, [str(exc), *problems]
    if problems:
        return None, problems
    hook = Webhook(webhook, allow_private) if webhook is not None else None
    return AlertRule(name, model, metric, selector, op, threshold, count, window, hook, text.strip()), []


def load_rules(path: str | Path) -> RuleSet:
    """Read a TOML rules file (format in this module's docstring).

    Raises:
        NotFound: no file at `path`.
        InvalidInput: the file is not TOML, or has problems; every problem is listed, each with
            the rule's number and name and what to write instead.
    """
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise NotFound(f"No rules file at {str(file)!r}; give the path of a TOML file of [[rule]]s.") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"Cannot read the rules file {str(file)!r}: {exc}.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{file} is not valid TOML: {exc}. Fix the syntax at that place.") from exc
    problems: list[str] = []
    ruleset = _ruleset(data, str(file), problems)
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise InvalidInput(
            f"{file} has {len(problems)} problem(s):\n{listed}\n"
            f"A condition reads {GRAMMAR}, e.g. {EXAMPLES[0]!r}.",
            problems=[{"field": str(file), "expected": "", "got": p} for p in problems],
        )
    return ruleset


def _ruleset(data: dict[str, Any], path: str, problems: list[str]) -> RuleSet:
    for key in data:
        if key not in _FILE_KEYS:
            problems.append(f"unknown top-level key {key!r} (allowed: {', '.join(_FILE_KEYS)})")
    webhook = _text(data, "webhook", "top level", problems)
    allow_private = _flag(data, "top level", problems) or False
    every = _text(data, "every", "top level", problems) or DEFAULT_EVERY
    if webhook is not None:  # its address is checked with each rule, which may allow private ones
        problems.extend(f"top level: {p}" for p in _check_fields(None, None, webhook, True))
    if not _period(every):
        problems.append(f'every = {every!r} is not a period; write e.g. every = "1m" or "30s"')
    entries = data.get("rule", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        problems.append('rules are [[rule]] tables with name, model and when, e.g. when = "accuracy < 0.9"')
        entries = []
    if not entries and isinstance(data.get("rule", []), list):
        problems.append('no [[rule]] tables; add one with name = "...", model = "...", when = "..."')
    default = Webhook(webhook, allow_private) if webhook is not None else None
    rules = [
        _rule(entry, number, default, allow_private, problems) for number, entry in enumerate(entries, 1)
    ]
    kept = tuple(r for r in rules if r is not None)
    seen: set[str] = set()
    for rule in kept:
        if rule.name in seen:
            problems.append(f"rule name {rule.name!r} is used twice; give each rule its own name")
        seen.add(rule.name)
    return RuleSet(kept, every, default, path)


def _rule(
    entry: dict[str, Any], number: int, default: Webhook | None, allow_all: bool, problems: list[str]
) -> AlertRule | None:
    """The rule of [[rule]] table `entry`; `default` and `allow_all` come from the top level.

    A rule's own `allow_private` wins; without one, the top level's applies to its webhook,
    whether the rule names its own webhook or uses the top level's.
    """
    raw_name = entry.get("name")
    where = f"rule {number}" + (f" ({raw_name!r})" if isinstance(raw_name, str) and raw_name else "")
    before = len(problems)
    for key in entry:
        if key not in _RULE_KEYS:
            problems.append(f"{where}: unknown key {key!r} (allowed: {', '.join(_RULE_KEYS)})")
    fields = {key: _text(entry, key, where, problems) for key in _RULE_KEYS if key != "allow_private"}
    allow_private = _flag(entry, where, problems)
    for key, example in (("name", '"iris-drift"'), ("model", '"iris-clf"'), ("when", '"accuracy < 0.9"')):
        if isinstance(entry.get(key), str) and not entry[key].strip():
            problems.append(f"{where}: {key} is empty; write e.g. {key} = {example}")
        elif key not in entry:
            problems.append(f"{where}: {key} is missing; add e.g. {key} = {example}")
    if not fields["when"]:
        return None
    rule, found = _build(
        fields["when"],
        fields["name"] or where,
        fields["model"] or "-",
        fields["window"] or DEFAULT_WINDOW,
        fields["webhook"] or (default.url if default else None),
        allow_private if allow_private is not None else allow_all,
    )
    problems.extend(f"{where}: {p}" for p in found)
    return rule if len(problems) == before else None


def _text(table: dict[str, Any], key: str, where: str, problems: list[str]) -> str | None:
    value = table.get(key)
    if value is None or isinstance(value, str):
        return value
    problems.append(f"{where}: {key} must be a quoted string, not {value!r}")
    return None


def _flag(table: dict[str, Any], where: str, problems: list[str]) -> bool | None:
    value = table.get("allow_private")
    if value is None or isinstance(value, bool):
        return value
    problems.append(f"{where}: allow_private must be true or false, not {value!r}")
    return None


def _check_fields(
    model: str | None, window: str | None, webhook: str | None, allow_private: bool
) -> list[str]:
    problems = []
    if model is not None and (not isinstance(model, str) or not model.strip()):
        problems.append("model must be a registered model's name")
    if window is not None and not _period(window):
        problems.append(f"window {window!r} is not a period; write e.g. '1h' or '30m'")
    found = webhook_problem(webhook, allow_private) if webhook is not None else None
    if found is not None:
        problems.append(found)
    return problems


def _period(value: str) -> float | None:
    try:
        return parse_duration(value) or None
    except InvalidInput:
        return None


# --------------------------------------------------------------------------- the condition


class _Scanner:
    """Reads a condition left to right; each step says what it expected where it failed."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def take(self, pattern: str) -> re.Match[str] | None:
        found = re.compile(r"\s*" + pattern).match(self.text, self.pos)
        if found is not None:
            self.pos = found.end()
        return found

    def rest(self) -> str:
        return self.text[self.pos :].strip()


def _parse_condition(text: str) -> tuple[str, str | None, Op, float, int]:
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"the condition is empty; write {GRAMMAR}, e.g. {EXAMPLES[1]!r}")
    scan = _Scanner(text)
    found = scan.take(r"([A-Za-z_]\w*)")
    metric = found.group(1) if found else ""
    if metric not in METRICS:
        what = f"unknown metric {metric!r}" if metric else f"{text.strip()!r} does not start with a metric"
        raise InvalidInput(f"{what}; use one of {', '.join(METRICS)}")
    selector = _selector(scan, metric)
    op = _op(scan)
    threshold = _number(scan, metric)
    count = _for_windows(scan)
    if scan.rest():
        raise InvalidInput(
            f"unexpected {scan.rest()!r} after the threshold; only 'for N windows' may follow it"
        )
    return metric, selector, op, threshold, count


def _selector(scan: _Scanner, metric: str) -> str | None:
    if scan.take(r"\(") is None:
        if metric in FEATURE_METRICS:
            raise InvalidInput(
                f"{metric} is measured per feature; write {metric}(feature=NAME) or {metric}(feature=*)"
            )
        return None
    if metric not in FEATURE_METRICS:
        raise InvalidInput(
            f"{metric} is a model-level metric and takes no (feature=...); "
            f"only {' and '.join(sorted(FEATURE_METRICS))} do"
        )
    key = scan.take(r"(\w+)\s*=")
    if key is None or key.group(1) != "feature":
        raise InvalidInput(
            f"write {metric}(feature=NAME) or {metric}(feature=*); the only selector is feature="
        )
    value = scan.take(r"(\*|\"[^\"]+\"|'[^']+'|[^()\"'*]+?)\s*\)")
    if value is None:
        raise InvalidInput(
            f"{metric}(feature=...) needs a name and a closing ')'; quote a name holding parentheses: "
            f'{metric}(feature="petal length (cm)")'
        )
    name = value.group(1)
    return name[1:-1] if name[0] in "\"'" else name.strip()


def _op(scan: _Scanner) -> Op:
    found = scan.take(r"(>=|<=|==|!=|=>|=<|>|<|=)")
    if found is None or found.group(1) not in _OPS:
        got = found.group(1) if found else (scan.rest()[:10] or "nothing")
        raise InvalidInput(f"expected a comparison (one of {' '.join(_OPS)}), found {got!r}")
    return found.group(1)  # type: ignore[return-value]


def _number(scan: _Scanner, metric: str) -> float:
    found = scan.take(r"([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(%?)")
    if found is None:
        raise InvalidInput(f"expected a number after the comparison, found {scan.rest()[:10] or 'nothing'!r}")
    value = float(found.group(1))
    if found.group(2):
        if metric not in SHARE_METRICS:
            raise InvalidInput(
                f"{metric} is not a share, so its threshold cannot be a percentage; write a plain number"
            )
        value /= 100.0
    return value


def _for_windows(scan: _Scanner) -> int:
    if scan.take(r"for\b") is None:
        return 1
    found = scan.take(r"(\d+)\s+windows?\b")
    if found is None or int(found.group(1)) < 1:
        raise InvalidInput("write 'for N windows' with N a whole number of at least 1, e.g. 'for 2 windows'")
    return int(found.group(1))
