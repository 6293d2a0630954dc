"""Risk library: option pricing and greeks, implied volatility, VaR / ES and EWMA volatility.

Everything is vectorized with numpy (no per-element Python loops in the hot paths) and raises
:class:`plimsoll.errors.RiskInputError` (a :class:`plimsoll.errors.PlimsollError`) on inputs
outside their domain.

Modules
-------
bs
    Black-Scholes-Merton prices and greeks (vega per 1.00 vol, theta per year, rho per 1.00
    rate) and Black-76 prices.
iv
    Implied volatility (safeguarded Newton on the normalized price; NaN outside no-arbitrage
    bounds).
var
    Historical, parametric and Monte Carlo VaR / expected shortfall (losses positive) and a
    perps + options portfolio revaluation.
ewma
    RiskMetrics EWMA volatility, batch and incremental.
"""

from plimsoll.errors import RiskInputError
from plimsoll.risk.bs import (
    Greeks,
    black76_price,
    delta,
    gamma,
    greeks,
    price,
    rho,
    theta,
    vega,
)
from plimsoll.risk.ewma import EwmaVol, ewma_variance, ewma_vol
from plimsoll.risk.iv import implied_vol, implied_vol_black76
from plimsoll.risk.var import (
    OptionPositions,
    PnlFn,
    Portfolio,
    RiskMeasure,
    delta_normal_var_es,
    empirical_var_es,
    historical_scenarios,
    historical_var_es,
    monte_carlo_var_es,
    normal_var_es,
    simulate_log_returns,
)

__all__ = [
    "EwmaVol",
    "Greeks",
    "OptionPositions",
    "PnlFn",
    "Portfolio",
    "RiskInputError",
    "RiskMeasure",
    "black76_price",
    "delta",
    "delta_normal_var_es",
    "empirical_var_es",
    "ewma_variance",
    "ewma_vol",
    "gamma",
    "greeks",
    "historical_scenarios",
    "historical_var_es",
    "implied_vol",
    "implied_vol_black76",
    "monte_carlo_var_es",
    "normal_var_es",
    "price",
    "rho",
    "simulate_log_returns",
    "theta",
    "vega",
]
