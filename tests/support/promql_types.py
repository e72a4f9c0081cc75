"""Shared types of the alert-rule evaluator (`tests/support/promql.py`)."""

Labels = frozenset[tuple[str, str]]
Vector = dict[Labels, float]
Value = Vector | float
#: The samples of every series: labels (with `__name__`) -> [(time in seconds, value)].
Series = dict[Labels, list[tuple[float, float]]]


class Unsupported(ValueError):
    """The expression uses PromQL outside the subset this evaluator implements."""
