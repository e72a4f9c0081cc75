"""The functions and operators of the alert-rule evaluator (`tests/support/promql.py`):
range functions, Prometheus' extrapolation of `increase`/`rate`/`delta`, and binary operators
with one-to-one label matching."""


from tests.support.promql_types import Labels, Unsupported, Value, Vector

_COMPARISONS = {"==", "!=", ">", "<", ">=", "<="}


def over_time(
    name: str, window: list[tuple[float, float]], start: float, end: float
) -> float | None:
    if not window:
        return None
    values = [v for _, v in window]
    if name == "min_over_time":
        return min(values)
    if name == "max_over_time":
        return max(values)
    if name == "avg_over_time":
        return sum(values) / len(values)
    if name in ("increase", "rate", "delta"):
        return _extrapolated(window, start, end, counter=name != "delta", rate=name == "rate")
    raise Unsupported(f"function {name}")


def _extrapolated(
    window: list[tuple[float, float]], start: float, end: float, *, counter: bool, rate: bool
) -> float | None:
    """Prometheus' `extrapolatedRate`: the change over the samples (counter resets added back),
    extrapolated to the window's edges when the samples reach close enough to them."""
    if len(window) < 2:
        return None
    (first_t, first_v), (last_t, last_v) = window[0], window[-1]
    change = last_v - first_v
    if counter:
        pairs = zip(window, window[1:], strict=False)
        change += sum(prev for (_, prev), (_, cur) in pairs if cur < prev)
    sampled = last_t - first_t
    average = sampled / (len(window) - 1)
    to_start, to_end = first_t - start, end - last_t
    if counter and change > 0 and first_v >= 0:
        to_start = min(to_start, sampled * (first_v / change))
    threshold = average * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average / 2
    interval += to_end if to_end < threshold else average / 2
    change *= interval / sampled
    return change / (end - start) if rate else change


def apply_binary(op: str, left: Value, right: Value) -> Value:
    """A binary operator with one-to-one matching on all labels but the metric name."""
    if op in ("and", "or", "unless"):
        if not (isinstance(left, dict) and isinstance(right, dict)):
            raise Unsupported(f"{op} between scalars")
        keys = {unnamed(labels) for labels in right}
        if op == "and":
            return {k: v for k, v in left.items() if unnamed(k) in keys}
        if op == "unless":
            return {k: v for k, v in left.items() if unnamed(k) not in keys}
        ours = {unnamed(labels) for labels in left}
        return {**left, **{k: v for k, v in right.items() if unnamed(k) not in ours}}
    if isinstance(left, float) and isinstance(right, float):
        raise Unsupported("scalar-scalar arithmetic")
    if isinstance(right, float):
        pairs = {k: (v, right) for k, v in left.items()}  # type: ignore[union-attr]
    elif isinstance(left, float):
        pairs = {k: (left, v) for k, v in right.items()}
    else:
        by_key = {unnamed(k): v for k, v in right.items()}
        pairs = {k: (v, by_key[unnamed(k)]) for k, v in left.items() if unnamed(k) in by_key}
    result: Vector = {}
    for labels, (a, b) in pairs.items():
        if op in _COMPARISONS:
            if _compare(op, a, b):
                result[labels if isinstance(left, dict) else unnamed(labels)] = (
                    a if isinstance(left, dict) else b
                )
        else:
            result[unnamed(labels)] = _arithmetic(op, a, b)
    return result


def unnamed(labels: Labels) -> Labels:
    return frozenset((k, v) for k, v in labels if k != "__name__")


def _compare(op: str, a: float, b: float) -> bool:
    return {"==": a == b, "!=": a != b, ">": a > b, "<": a < b, ">=": a >= b,
            "<=": a <= b}[op]


def _arithmetic(op: str, a: float, b: float) -> float:
    if op == "/":
        return a / b if b else (float("nan") if a == 0 else float("inf") * (1 if a > 0 else -1))
    return {"+": a + b, "-": a - b, "*": a * b}[op]
