"""Is a change in a metric's mean real? Welch's t-test from summary figures.

Pure Python (``math`` only): the history queries return count, mean and variance of each
side, and this turns them into a t statistic, its degrees of freedom and a two-sided
p-value from Student's t distribution.

>>> r = welch(n1=30, mean1=100.0, var1=25.0, n2=30, mean2=104.0, var2=25.0)
>>> round(r.t, 3), round(r.df, 1), round(r.p_value, 4)
(3.098, 58.0, 0.003)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sinks.queries import change


@dataclass(frozen=True)
class Welch:
    t: float
    df: float
    p_value: float


def welch(*, n1: int, mean1: float, var1: float, n2: int, mean2: float, var2: float) -> Welch:
    """Welch's unequal-variances t-test of ``mean2 - mean1``; needs two values a side."""
    if n1 < 2 or n2 < 2:
        raise ValueError(f"need at least 2 values on each side, got {n1} and {n2}")
    a, b = var1 / n1, var2 / n2
    if a + b == 0:  # both sides constant: equal means say nothing changed, else all did
        same = mean1 == mean2
        return Welch(
            0.0 if same else math.copysign(math.inf, mean2 - mean1),
            n1 + n2 - 2.0,
            1.0 if same else 0.0,
        )
    t = (mean2 - mean1) / math.sqrt(a + b)
    df = (a + b) ** 2 / ((a * a / (n1 - 1) if a else 0.0) + (b * b / (n2 - 1) if b else 0.0))
    return Welch(t, df, student_two_sided(t, df))


def student_two_sided(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return _betainc(df / 2.0, 0.5, df / (df + t * t))


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) (Numerical Recipes, 6.4)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _continued_fraction(a, b, x) / a
    return 1.0 - front * _continued_fraction(b, a, 1.0 - x) / b


def _continued_fraction(a: float, b: float, x: float) -> float:
    """Lentz's method for the incomplete beta continued fraction."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for num in (
            m * (b - m) * x / ((a + m2 - 1.0) * (a + m2)),
            -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def significance(row: dict[str, Any], alpha: float = 0.05) -> dict[str, Any]:
    """The change between the two sides of a ``compare`` row (``before_n``, ``_mean``,
    ``_var`` and the same for ``after``), and whether it is significant."""
    n1, n2 = int(row["before_n"]), int(row["after_n"])
    out: dict[str, Any] = {
        "change": None,
        "change_pct": None,
        "t": None,
        "df": None,
        "p_value": None,
        "significant": False,
    }
    if n1 and n2:
        out["change"] = row["after_mean"] - row["before_mean"]
        ratio = change(row["after_mean"], row["before_mean"])
        out["change_pct"] = None if ratio is None else ratio * 100
    if n1 >= 2 and n2 >= 2:
        test = welch(
            n1=n1,
            mean1=row["before_mean"],
            var1=row["before_var"],
            n2=n2,
            mean2=row["after_mean"],
            var2=row["after_var"],
        )
        out.update(t=test.t, df=test.df, p_value=test.p_value, significant=test.p_value < alpha)
    return out
