"""A small PromQL evaluator for the alert-rule tests: exactly the part of the language that
deploy/prometheus/alerts.yml uses, evaluated as Prometheus evaluates it.

No package installable with pip ships `promtool`, and no maintained Python library evaluates
PromQL (the ones on PyPI parse or build queries, or query a running server), so the rule
tests evaluate the expressions here, on samples scraped from the code's real `/metrics` text.
Anything outside the supported subset raises `Unsupported`, so a rule that starts using more
of PromQL fails its test instead of being half evaluated.

Supported: numbers; selectors `name{l="v", l!="v", l=~"re", l!~"re"}` with an optional range
`[5m]`; `sum min max avg count` with `by (...)`/`without (...)` before or after the argument;
`increase rate delta` (extrapolated like Prometheus), `min_over_time max_over_time
avg_over_time`; binary `* / + - == != > < >= <= and or unless` with one-to-one matching on all
labels; the instant-vector lookback of 5 minutes. Windows include their start, as in the
Prometheus 2.x that deploy/docker-compose.yml runs (3.x leaves the start out).
"""

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tests.support.promql_ops import apply_binary, over_time
from tests.support.promql_types import Labels, Series, Unsupported, Value, Vector

LOOKBACK_SECONDS = 300.0
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d+)?)(?![\w])|(?P<dur>\[\d+[smhd]\])|(?P<str>\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<op>==|!=|>=|<=|=~|!~|[-+*/><=(){},])|(?P<name>[A-Za-z_:][\w:]*))"
)
_AGGREGATIONS = {"sum", "min", "max", "avg", "count"}
_PRECEDENCE = [{"or"}, {"and", "unless"}, {"==", "!=", ">", "<", ">=", "<="}, {"+", "-"},
               {"*", "/"}]


@dataclass
class _Parser:
    tokens: list[str]
    pos: int = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise Unsupported(f"expected {expected!r}, found {token!r}")
        self.pos += 1
        return token


@dataclass
class Evaluator:
    """Evaluates expressions at a time `at` (seconds) over `series`."""

    series: Series
    at: float = 0.0
    _parser: _Parser = field(default_factory=lambda: _Parser([]))

    def evaluate(self, expr: str, at: float) -> Value:
        """The value of `expr` at time `at`: an instant vector or a scalar."""
        self.at = at
        self._parser = _Parser(tokenize(expr))
        value = self._binary(0)
        if self._parser.peek() is not None:
            raise Unsupported(f"unexpected {self._parser.peek()!r}")
        return value

    # ------------------------------------------------------------------ grammar
    def _binary(self, level: int) -> Value:
        if level == len(_PRECEDENCE):
            return self._unary()
        left = self._binary(level + 1)
        while (op := self._parser.peek()) in _PRECEDENCE[level]:
            self._parser.take()
            if self._parser.peek() == "bool":
                raise Unsupported("bool modifier")
            left = apply_binary(op, left, self._binary(level + 1))  # type: ignore[arg-type]
        return left

    def _unary(self) -> Value:
        p = self._parser
        token = p.take()
        if token == "(":
            value = self._binary(0)
            p.take(")")
            return value
        if re.fullmatch(r"\d+(\.\d+)?", token):
            return float(token)
        if token in _AGGREGATIONS:
            return self._aggregation(token)
        if p.peek() == "(":
            return self._function(token)
        return self._instant(self._selector(token))

    def _grouping(self) -> tuple[str, set[str]] | None:
        if self._parser.peek() not in ("by", "without"):
            return None
        mode = self._parser.take()
        self._parser.take("(")
        names: set[str] = set()
        while self._parser.peek() != ")":
            names.add(self._parser.take())
            if self._parser.peek() == ",":
                self._parser.take()
        self._parser.take(")")
        return mode, names

    def _aggregation(self, op: str) -> Vector:
        grouping = self._grouping()
        self._parser.take("(")
        argument = self._binary(0)
        self._parser.take(")")
        grouping = grouping or self._grouping() or ("by", set())
        if not isinstance(argument, dict):
            raise Unsupported(f"{op} of a scalar")
        mode, names = grouping
        groups: dict[Labels, list[float]] = {}
        for labels, value in argument.items():
            kept = frozenset(
                (k, v) for k, v in labels
                if k != "__name__" and ((k in names) if mode == "by" else (k not in names))
            )
            groups.setdefault(kept, []).append(value)
        fold: dict[str, Callable[[list[float]], float]] = {
            "sum": sum, "min": min, "max": max, "count": len,
            "avg": lambda xs: sum(xs) / len(xs),
        }
        return {labels: float(fold[op](values)) for labels, values in groups.items()}

    def _function(self, name: str) -> Vector:
        self._parser.take("(")
        token = self._parser.take()
        selector = self._selector(token)
        duration = self._parser.take()
        if not duration.startswith("["):
            raise Unsupported(f"{name} needs a range selector")
        self._parser.take(")")
        seconds = float(duration[1:-2]) * _UNITS[duration[-2]]
        result: Vector = {}
        for labels, samples in self._matching(selector):
            window = [(t, v) for t, v in samples if self.at - seconds <= t <= self.at]
            value = over_time(name, window, self.at - seconds, self.at)
            if value is not None:
                result[frozenset((k, v) for k, v in labels if k != "__name__")] = value
        return result

    def _selector(self, name: str) -> tuple[str, list[tuple[str, str, str]]]:
        matchers: list[tuple[str, str, str]] = []
        if self._parser.peek() == "{":
            self._parser.take()
            while self._parser.peek() != "}":
                label, op, text = self._parser.take(), self._parser.take(), self._parser.take()
                if op not in ("=", "!=", "=~", "!~") or not text.startswith('"'):
                    raise Unsupported(f"matcher {label}{op}{text}")
                matchers.append((label, op, text[1:-1]))
                if self._parser.peek() == ",":
                    self._parser.take()
            self._parser.take("}")
        return name, matchers

    def _matching(
        self, selector: tuple[str, list[tuple[str, str, str]]]
    ) -> Iterable[tuple[Labels, list[tuple[float, float]]]]:
        name, matchers = selector
        for labels, samples in self.series.items():
            found = dict(labels)
            if found.get("__name__") == name and all(
                _matches(found.get(label, ""), op, text) for label, op, text in matchers
            ):
                yield labels, samples

    def _instant(self, selector: tuple[str, list[tuple[str, str, str]]]) -> Vector:
        following = self._parser.peek()
        if following is not None and following.startswith("["):
            raise Unsupported("a range vector outside a function")
        result: Vector = {}
        for labels, samples in self._matching(selector):
            recent = [v for t, v in samples if self.at - LOOKBACK_SECONDS <= t <= self.at]
            if recent:
                result[labels] = recent[-1]
        return result


def tokenize(expr: str) -> list[str]:
    """The tokens of `expr`; `Unsupported` on a character outside the subset."""
    tokens: list[str] = []
    pos = 0
    text = expr.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise Unsupported(f"cannot read {text[pos:pos + 20]!r}")
        tokens.append(match.group().strip())
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return tokens


def _matches(value: str, op: str, text: str) -> bool:
    if op in ("=", "!="):
        return (value == text) == (op == "=")
    return (re.fullmatch(text, value) is not None) == (op == "=~")


def fires(expr: str, series: Series, at: float, hold_seconds: float, step: float) -> Vector:
    """The alerts firing at `at` for a rule with `expr` and `for: hold_seconds`: the label sets
    in the result at every evaluation (every `step` seconds) from `at - hold_seconds` to `at`."""
    evaluator = Evaluator(series)
    times = [at - hold_seconds + i * step for i in range(int(hold_seconds // step) + 1)]
    results = []
    for t in times:
        value = evaluator.evaluate(expr, t)
        if not isinstance(value, dict):
            raise Unsupported("an alert expression must give a vector")
        results.append(value)
    last = results[-1]
    return {k: v for k, v in last.items() if all(k in r for r in results)}
