"""Capital efficiency of option strategies: isolated vs cross standard margin vs portfolio margin.

For each strategy (one ETH per leg unless noted) at spot 2,000, IV 80 %, 30 days, the report
gives the initial margin (IM) and the capital to post [USD] under

(a) **isolated standard**: every leg in its own isolated subaccount. Perp leg: the perp
    standard IM (``plimsoll.margin``: notional x min(min(imBase + |size| sizeSlope, 1) x sIm,
    1)); short option leg: the standard option IM (``IOptions``: |q| S max(shortA - OTM,
    shortB)); long option leg: 0. IM = the sum over legs; capital = the sum over legs of
    each subaccount's capital (below), i.e. the IMs plus the long premiums paid in full.
(b) **cross standard**: one subaccount, the same per-position rules summed: its IM equals
    (a)'s. What differs is equity: a long option's value counts at mark x longHaircut and can
    carry the other legs' requirements. Capital to post = max(IM - option equity, 0) + net
    premium paid at mark, where option equity = longs at haircut mark minus shorts at mark.
(c) **portfolio margin**: the IOptions scenario grid on the whole subaccount
    (:func:`plimsoll.pm.portfolio_margin`); equity counts options at full mark, so capital to
    post = max(IM - sum q v, 0) + net premium (= IM whenever IM >= the options' value).

Every price is the mark (no spread, no fee: ``spread`` and ``min_fee`` are carried in the
config but move no figure here). The defaults are PROVISIONAL: the deployed parameters are
pinned in ``plimsoll/deploy.py``; pass them in with :class:`CapitalParams` (or ``--set``).

Run ``python -m plimsoll.capital [--png out.png] [--json] [--set name=value ...]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Literal

import numpy as np

from plimsoll.errors import PlimsollError
from plimsoll.pm import (
    FloatArray,
    MarketData,
    OptionBook,
    OptionsConfig,
    PortfolioConfig,
    Series,
    portfolio_margin,
    scenario_coords,
    standard_option_margin,
)
from plimsoll.risk import bs
from plimsoll.units import wad

__all__ = [
    "CapitalInputError",
    "CapitalParams",
    "Leg",
    "Strategy",
    "CapitalRow",
    "perp_standard_margin",
    "strategies",
    "capital_table",
    "render_table",
    "save_chart",
    "main",
]

DAY = 86_400  # [s]
NOW = 1_767_225_600  # [s] 2026-01-01T00:00:00Z, the report's block timestamp


class CapitalInputError(PlimsollError, ValueError):
    """A capital-report parameter is unknown or outside its domain."""


@dataclass(frozen=True)
class CapitalParams:
    """Market, strategy and margin parameters of the report (floats, 0.10 = 10 %).

    Defaults are those ``plimsoll.deploy.deploy_local`` deploys (``DEFAULT_MARKETS[0]``,
    ``DEFAULT_OPTIONS``, ``DEFAULT_PORTFOLIO``; a test keeps them equal).

    Attributes
    ----------
    spot, iv : float
        ETH spot [USD] and implied vol (annualized).
    days, far_days : float
        Option tenor [days]; the calendar spread's long leg tenor.
    size : float
        ETH per leg.
    upper_strike : float
        Short strike K2 of the call spread [USD] (K1 = spot).
    im_base, size_slope, mm_factor : float
        The ETH perp market: imBase, sizeSlope [per unit], mmFactor.
    spread, min_fee, short_a, short_b, option_mm_factor, long_haircut : float
        ``OptionsConfig``.
    spot_shock, spot_points, vol_up, vol_down, vol_pow, max_vol_scale, min_vol, cont_perp,
    cont_option, im_factor : float / int
        ``PortfolioConfig``.
    im_scalar, mm_scalar : float
        Volatility scalars sIm, sMm of the market.
    """

    spot: float = 2000.0
    iv: float = 0.80
    days: float = 30.0
    far_days: float = 90.0
    size: float = 1.0
    upper_strike: float = 2200.0
    im_base: float = 0.10
    size_slope: float = 0.00002
    mm_factor: float = 0.5
    spread: float = 0.01
    min_fee: float = 0.0005
    short_a: float = 0.25
    short_b: float = 0.125
    option_mm_factor: float = 0.7
    long_haircut: float = 0.8
    spot_shock: float = 0.18
    spot_points: int = 9
    vol_up: float = 0.3
    vol_down: float = 0.3
    vol_pow: float = 0.5
    max_vol_scale: float = 2.0
    min_vol: float = 0.05
    cont_perp: float = 0.005
    cont_option: float = 0.01
    im_factor: float = 1.15
    im_scalar: float = 1.0
    mm_scalar: float = 1.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
                raise CapitalInputError(f"{f.name}: finite number expected, got {v!r}")
            if v < 0:
                raise CapitalInputError(f"{f.name}: must be >= 0, got {v}")
        for name in ("spot", "days", "far_days", "size", "upper_strike", "mm_scalar"):
            if getattr(self, name) <= 0:
                raise CapitalInputError(f"{name}: must be > 0")
        if self.far_days <= self.days:
            raise CapitalInputError("far_days: must exceed days (calendar spread)")
        if self.upper_strike <= self.spot:
            raise CapitalInputError("upper_strike: must exceed spot (call spread K2 > K1)")

    def with_overrides(self, overrides: Sequence[str]) -> CapitalParams:
        """A copy with ``name=value`` overrides (the CLI's ``--set``)."""
        known = {f.name: f.type for f in fields(self)}
        changes: dict[str, float | int] = {}
        for item in overrides:
            name, sep, text = item.partition("=")
            name = name.strip()
            if not sep or name not in known:
                raise CapitalInputError(
                    f"--set {item!r}: expected name=value with name one of {', '.join(known)}"
                )
            try:
                changes[name] = int(text) if name == "spot_points" else float(text)
            except ValueError:
                raise CapitalInputError(f"--set {item!r}: {text!r} is not a number") from None
        return replace(self, **changes)  # type: ignore[arg-type]

    def options_config(self) -> OptionsConfig:
        """The ``OptionsConfig`` [wad] of these parameters."""
        return OptionsConfig(
            iv_feed_id=0,
            enabled=True,
            spread=_w(self.spread),
            min_fee=_w(self.min_fee),
            short_a=_w(self.short_a),
            short_b=_w(self.short_b),
            option_mm_factor=_w(self.option_mm_factor),
            long_haircut=_w(self.long_haircut),
        )

    def portfolio_config(self) -> PortfolioConfig:
        """The ``PortfolioConfig`` [wad] of these parameters."""
        return PortfolioConfig(
            spot_shock=_w(self.spot_shock),
            spot_points=int(self.spot_points),
            vol_up=_w(self.vol_up),
            vol_down=_w(self.vol_down),
            vol_pow=_w(self.vol_pow),
            max_vol_scale=_w(self.max_vol_scale),
            min_vol=_w(self.min_vol),
            cont_perp=_w(self.cont_perp),
            cont_option=_w(self.cont_option),
            im_factor=_w(self.im_factor),
        )

    def market(self) -> MarketData:
        """One market (id 0, ETH) at the report's timestamp."""
        return MarketData(
            spot=(_w(self.spot),),
            iv=(_w(self.iv),),
            timestamp=NOW,
            im_scalar=(_w(self.im_scalar),),
            mm_scalar=(_w(self.mm_scalar),),
        )


def _w(x: float) -> int:
    """A float parameter as wad (exact for its shortest decimal repr)."""
    return int(wad(x))


@dataclass(frozen=True)
class Leg:
    """One position of a strategy: a perp or an option on ETH (market 0).

    Attributes
    ----------
    kind : {"perp", "call", "put"}
    size : float
        Signed size [ETH] (> 0 long).
    strike : float
        [USD] (options only).
    days : float
        Tenor [days] (options only).
    """

    kind: Literal["perp", "call", "put"]
    size: float
    strike: float = 0.0
    days: float = 0.0

    def describe(self) -> str:
        side = "long" if self.size > 0 else "short"
        if self.kind == "perp":
            return f"{side} {abs(self.size):g} perp"
        return f"{side} {abs(self.size):g} {self.kind} K={self.strike:g} {self.days:g}d"


@dataclass(frozen=True)
class Strategy:
    name: str
    legs: tuple[Leg, ...]


def strategies(p: CapitalParams) -> list[Strategy]:
    """The eight strategies of the report, ``p.size`` ETH per leg (delta hedges: delta x that).

    Strikes are at the money (K = spot) except the call spread's short leg
    (``p.upper_strike``). The delta hedges use the Black-Scholes delta of the ATM call.
    """
    s, k, d, n = p.spot, p.spot, p.days, p.size
    delta = float(bs.delta(s, k, d / 365.0, p.iv, 0.0, 0.0, True))
    hedge = round(delta * n, 6)
    return [
        Strategy("naked short call", (Leg("call", -n, k, d),)),
        Strategy("covered call", (Leg("perp", n), Leg("call", -n, k, d))),
        Strategy("protective put", (Leg("perp", n), Leg("put", n, k, d))),
        Strategy("short straddle", (Leg("call", -n, k, d), Leg("put", -n, k, d))),
        Strategy("call spread", (Leg("call", n, k, d), Leg("call", -n, p.upper_strike, d))),
        Strategy("calendar spread", (Leg("call", -n, k, d), Leg("call", n, k, p.far_days))),
        Strategy("short call delta-hedged", (Leg("call", -n, k, d), Leg("perp", hedge))),
        Strategy("long call delta-hedged", (Leg("call", n, k, d), Leg("perp", -hedge))),
    ]


def perp_standard_margin(
    size: FloatArray | float,
    price: float,
    im_base: float,
    size_slope: float,
    mm_factor: float,
    im_scalar: float = 1.0,
    mm_scalar: float = 1.0,
) -> tuple[FloatArray, FloatArray]:
    """Standard IM and MM of perp positions [USD], the float form of ``plimsoll.margin``.

    Parameters
    ----------
    size : array_like
        Signed sizes [units].
    price : float
        [USD per unit].
    im_base, size_slope, mm_factor, im_scalar, mm_scalar : float
        Market parameters and volatility scalars.

    Returns
    -------
    im, mm : ndarray
        notional x min(rate x sIm, 1) and notional x min(rate x sMm, 1) x mmFactor, with
        notional = |size| x price and rate = min(imBase + |size| x sizeSlope, 1).
    """
    a = np.abs(np.asarray(size, dtype=np.float64))
    notional = a * price
    rate = np.minimum(im_base + a * size_slope, 1.0)
    im: FloatArray = notional * np.minimum(rate * im_scalar, 1.0)
    mm: FloatArray = notional * np.minimum(rate * mm_scalar, 1.0) * mm_factor
    return im, mm


@dataclass(frozen=True)
class CapitalRow:
    """One strategy's figures [USD].

    Attributes
    ----------
    strategy, legs : str
    isolated_im, cross_im, portfolio_im : float
        Initial margin under (a), (b), (c).
    ratio : float
        portfolio_im / cross_im.
    isolated_capital, cross_capital, portfolio_capital : float
        Capital to post under (a), (b), (c) (see the module docstring).
    net_premium : float
        Premium paid at mark (negative: received).
    worst_scenario : str
        PM's worst scenario: spot shock and vol move.
    """

    strategy: str
    legs: str
    isolated_im: float
    cross_im: float
    portfolio_im: float
    ratio: float
    isolated_capital: float
    cross_capital: float
    portfolio_capital: float
    net_premium: float
    worst_scenario: str


def _book(accounts: Sequence[Sequence[Leg]], p: CapitalParams) -> OptionBook:
    """One account per leg list: options as series on market 0, perps in column 0."""
    pos: list[list[tuple[Series, int]]] = []
    perp: list[list[int]] = []
    for legs in accounts:
        row: list[tuple[Series, int]] = []
        perp_size = 0
        for leg in legs:
            if leg.kind == "perp":
                perp_size += _signed_w(leg.size)
            else:
                series = Series(0, leg.kind == "call", NOW + round(leg.days * DAY), _w(leg.strike))
                row.append((series, _signed_w(leg.size)))
        pos.append(row)
        perp.append([perp_size])
    return OptionBook.from_positions(pos, perp, [0] * len(accounts))


def _signed_w(x: float) -> int:
    return _w(x) if x >= 0 else -_w(-x)


def capital_table(params: CapitalParams | None = None) -> list[CapitalRow]:
    """The report's rows, one per strategy of :func:`strategies`.

    Parameters
    ----------
    params : CapitalParams, optional
        Market, strategy and margin parameters (default: the provisional defaults).

    Returns
    -------
    list of CapitalRow
    """
    p = params or CapitalParams()
    strats = strategies(p)
    market, ocfg, pcfg = p.market(), p.options_config(), p.portfolio_config()
    legs = [leg for s in strats for leg in s.legs]
    owner = np.array([i for i, s in enumerate(strats) for _ in s.legs])

    def perp_im(books: Sequence[Sequence[Leg]]) -> FloatArray:
        sizes = np.array([sum(leg.size for leg in b if leg.kind == "perp") for b in books])
        im, _ = perp_standard_margin(
            sizes, p.spot, p.im_base, p.size_slope, p.mm_factor, p.im_scalar, p.mm_scalar
        )
        return im

    def premium(books: Sequence[Sequence[Leg]]) -> FloatArray:
        pm_value = portfolio_margin(_book(books, p), market, pcfg).value
        return pm_value  # sum q v at mark = the net premium paid for the options

    # (a) isolated: one account per leg.
    single = [[leg] for leg in legs]
    std1 = standard_option_margin(_book(single, p), market, ocfg)
    im1 = std1.im + perp_im(single)
    cap1 = np.maximum(im1 - std1.value, 0.0) + premium(single)
    # (b) cross and (c) portfolio: one account per strategy.
    whole = [list(s.legs) for s in strats]
    std = standard_option_margin(_book(whole, p), market, ocfg)
    im_cross = std.im + perp_im(whole)
    pm = portfolio_margin(_book(whole, p), market, pcfg)
    net_premium = pm.value
    cap_cross = np.maximum(im_cross - std.value, 0.0) + net_premium
    cap_pm = np.maximum(pm.im - pm.value, 0.0) + net_premium
    shocks = np.linspace(-1.0, 1.0, pcfg.spot_points) * p.spot_shock * p.mm_scalar
    rows = []
    for i, s in enumerate(strats):
        k = int(pm.worst[i, 0])
        si, vj = scenario_coords(k, pcfg.spot_points)
        where = f"k={k}: spot {shocks[si]:+.1%}, vol {('flat', 'up', 'down')[vj]}"
        rows.append(
            CapitalRow(
                strategy=s.name,
                legs=" + ".join(leg.describe() for leg in s.legs),
                isolated_im=float(im1[owner == i].sum()),
                cross_im=float(im_cross[i]),
                portfolio_im=float(pm.im[i]),
                ratio=float(pm.im[i] / im_cross[i]) if im_cross[i] > 0 else float("nan"),
                isolated_capital=float(cap1[owner == i].sum()),
                cross_capital=float(cap_cross[i]),
                portfolio_capital=float(cap_pm[i]),
                net_premium=float(net_premium[i]),
                worst_scenario=where,
            )
        )
    return rows


def render_table(rows: Sequence[CapitalRow]) -> str:
    """The rows as a fixed-width text table [USD]."""
    head = (
        f"{'strategy':<24} {'IM isol':>9} {'IM cross':>9} {'IM PM':>9} {'PM/cross':>8}"
        f" {'cap isol':>9} {'cap cross':>9} {'cap PM':>9} {'premium':>9}  PM worst scenario"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.strategy:<24} {r.isolated_im:>9.2f} {r.cross_im:>9.2f} {r.portfolio_im:>9.2f}"
            f" {r.ratio:>8.1%} {r.isolated_capital:>9.2f} {r.cross_capital:>9.2f}"
            f" {r.portfolio_capital:>9.2f} {r.net_premium:>9.2f}  {r.worst_scenario}"
        )
    return "\n".join(lines)


def save_chart(rows: Sequence[CapitalRow], path: str, title: str = "") -> None:
    """A grouped bar chart (IM and capital to post per strategy and regime) as a PNG.

    Raises
    ------
    OSError
        The file cannot be written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(rows))
    w = 0.27
    fig, axes = plt.subplots(2, 1, figsize=(12, 8), sharex=True)
    series = [
        ("isolated standard", "isolated_im", "isolated_capital"),
        ("cross standard", "cross_im", "cross_capital"),
        ("portfolio margin", "portfolio_im", "portfolio_capital"),
    ]
    for ax, which, label in ((axes[0], 1, "initial margin [USD]"), (axes[1], 2, "capital [USD]")):
        for j, names in enumerate(series):
            vals = [getattr(r, names[which]) for r in rows]
            ax.bar(x + (j - 1) * w, vals, w, label=names[0])
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend()
    axes[0].set_title(title or "Margin per strategy (1 ETH per leg)")
    axes[1].set_xticks(x, [r.strategy for r in rows], rotation=25, ha="right")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise CapitalInputError(message)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m plimsoll.capital [--png out.png] [--json] [--set name=value ...]``."""
    parser = _Parser(prog="python -m plimsoll.capital", description=__doc__.split("\n")[0])
    parser.add_argument("--png", help="write a bar chart to this PNG file")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a parameter of CapitalParams (repeatable), e.g. --set im_base=0.12",
    )
    try:
        args = parser.parse_args(argv)
        params = CapitalParams().with_overrides(args.set)
        rows = capital_table(params)
        if args.json:
            print(json.dumps({"params": asdict(params), "rows": [asdict(r) for r in rows]}))
        else:
            print(render_table(rows))
        if args.png:
            save_chart(rows, args.png)
    except PlimsollError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot write {args.png}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
