"""Independent references for the on-chain Black-Scholes library (tests only).

* :func:`norm_cdf_exact`: the standard normal CDF to ~50 significant digits with Python's
  ``decimal`` (no mpmath/scipy in the venv), from the everywhere-convergent series
  ``N(x) = 1/2 + phi(x) sum_n x^(2n+1) / (2n+1)!!`` (all terms positive; 70 working digits
  leave > 45 after the cancellation in the far tail).
* :func:`bs_float`: Black-Scholes in float64 through ``math.erfc`` (the oracle the accuracy
  requirement names; its own error reaches ~5e-16 x spot on our grid).
* :func:`bs_exact`: the same formula in 70-digit ``decimal`` on the exact integer inputs, to
  measure the contract's error below float64's noise.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

WAD = 10**18
YEAR = 365 * 86400  # [s]

_PI = Decimal(
    "3.14159265358979323846264338327950288419716939937510582097494459230781640628620899862803"
)


def norm_cdf_exact(x: Decimal) -> Decimal:
    """N(x) for |x| <= 40, to ~50 significant digits (absolute error < 1e-50)."""
    with localcontext() as ctx:
        ctx.prec = 70
        x = Decimal(x)
        ax = abs(x)
        x2 = ax * ax
        term = ax
        total = ax
        n = 1
        eps = Decimal(10) ** -68
        while term > eps * total:
            term = term * x2 / (2 * n + 1)
            total += term
            n += 1
        phi = (-x2 / 2).exp() / (2 * _PI).sqrt()
        half_plus = Decimal("0.5") + phi * total  # N(|x|)
        return +(half_plus if x >= 0 else 1 - half_plus)


def norm_cdf_exact_wad(x_wad: int) -> Decimal:
    """N(x) [wad, as an exact Decimal] for x given in wad."""
    with localcontext() as ctx:
        ctx.prec = 70
        return norm_cdf_exact(Decimal(x_wad) / WAD) * WAD


def bs_float(s: float, k: float, vol: float, t: float, r: float) -> tuple[float, float]:
    """Black-Scholes call and put in float64 (T in years; intrinsic at T == 0 or vol == 0)."""
    kd = k * math.exp(-r * t)
    if t <= 0.0 or vol <= 0.0:
        return max(s - kd, 0.0), max(kd - s, 0.0)
    sd = vol * math.sqrt(t)
    d1 = (math.log(s / k) + r * t) / sd + sd / 2
    d2 = d1 - sd

    def n(z: float) -> float:
        return 0.5 * math.erfc(-z / math.sqrt(2.0))

    return s * n(d1) - kd * n(d2), kd * n(-d2) - s * n(-d1)


def bs_exact(spot: int, strike: int, vol: int, tau: int, rate: int) -> tuple[Decimal, Decimal]:
    """Black-Scholes call and put [wad, exact Decimals] for integer inputs as the contract takes
    them: spot, strike, vol, rate [wad], tau [s] (T = tau / 365 days)."""
    with localcontext() as ctx:
        ctx.prec = 70
        w = Decimal(WAD)
        s, k, v, r = Decimal(spot) / w, Decimal(strike) / w, Decimal(vol) / w, Decimal(rate) / w
        t = Decimal(tau) / YEAR
        kd = k * (-r * t).exp()
        if v == 0 or t == 0:
            return max(s - kd, Decimal(0)) * w, max(kd - s, Decimal(0)) * w
        sd = v * t.sqrt()
        d1 = ((s / k).ln() + r * t) / sd + sd / 2
        d2 = d1 - sd
        call = s * norm_cdf_exact(d1) - kd * norm_cdf_exact(d2)
        put = kd * norm_cdf_exact(-d2) - s * norm_cdf_exact(-d1)
        return call * w, put * w
