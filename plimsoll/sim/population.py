"""The book of accounts a simulation runs: drawn from distributions or read from a deployment.

A :class:`Book` is a struct of arrays over N accounts (floats, human units):

=================  ========  ===================================================================
field              shape     meaning
=================  ========  ===================================================================
cash               (N,)      [USD] signed cash balance
balances           (N, C)    [tokens] collateral balances (column c = ``cfg.collateral[c]``)
sizes              (N, M)    [units] signed perp sizes (column m = ``cfg.markets[m]``)
open_notional      (N, M)    [USD] signed, size x entry price (uPnL = size x p - open_notional)
portfolio          (N,)      bool: portfolio margin (perps only in the simulator)
isolated           (N,)      bool: an isolated subaccount (one market, its own collateral)
opt_qty            (N, M)    [units] signed option position on market m (0: none)
opt_strike         (N, M)    [USD]
opt_call           (N, M)    bool
opt_expiry         (N, M)    [s from the start of the path]
=================  ========  ===================================================================

Funding is not simulated (the paths last hours to days; funding moves equity by well under the
margin rates over that time).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from plimsoll.sim.model import SimConfig, SimInputError
from plimsoll.state import MarginState

F = npt.NDArray[np.float64]
Bo = npt.NDArray[np.bool_]
WAD = 10**18


@dataclass
class Book:
    cash: F
    balances: F
    sizes: F
    open_notional: F
    portfolio: Bo
    isolated: Bo
    opt_qty: F
    opt_strike: F
    opt_call: Bo
    opt_expiry: F

    def __post_init__(self) -> None:
        n = self.cash.shape[0]
        m = self.sizes.shape[1] if self.sizes.ndim == 2 else -1
        for name in ("open_notional", "opt_qty", "opt_strike", "opt_call", "opt_expiry"):
            if getattr(self, name).shape != (n, m):
                raise SimInputError(f"book: {name} must be ({n}, {m})")
        if self.balances.ndim != 2 or self.balances.shape[0] != n:
            raise SimInputError("book: balances must be (accounts, collateral assets)")
        if self.portfolio.shape != (n,) or self.isolated.shape != (n,):
            raise SimInputError("book: portfolio and isolated must be (accounts,)")
        if np.any(self.balances < 0):
            raise SimInputError("book: collateral balances must be >= 0")

    @property
    def n_accounts(self) -> int:
        return int(self.cash.shape[0])

    def take(self, idx: npt.ArrayLike) -> Book:
        i = np.asarray(idx)
        return Book(*(getattr(self, f)[i] for f in _FIELDS))


_FIELDS = ("cash", "balances", "sizes", "open_notional", "portfolio", "isolated", "opt_qty",
           "opt_strike", "opt_call", "opt_expiry")


@dataclass(frozen=True)
class PopulationSpec:
    """Distributions of a drawn book.

    Leverage (notional / equity) is lognormal with median ``leverage_median`` and log-sd
    ``leverage_sd``, capped at ``leverage_max_share`` of the market's maximum (1 / IM rate);
    notional [USD] lognormal (median ``notional_median``, log-sd ``notional_sd``); a position is
    long with ``p_long``; an account is an isolated subaccount (one market) with
    ``p_isolated``, else cross over 1..M markets; equity is posted in cash and collateral in
    the shares ``collateral_mix`` (cash first, then ``cfg.collateral`` order); ``p_options``
    of cross accounts also hold an option (a short put 10% out of the money or a long call,
    half each, one week to expiry, quantity = a quarter of the perp size); ``p_portfolio`` of
    accounts (perps only) use portfolio margin."""

    n_accounts: int = 1000
    leverage_median: float = 4.0
    leverage_sd: float = 0.6
    leverage_max_share: float = 0.9
    notional_median: float = 20_000.0
    notional_sd: float = 1.2
    p_long: float = 0.7
    p_isolated: float = 0.3
    collateral_mix: tuple[float, ...] = (0.4, 0.35, 0.15, 0.1)
    p_options: float = 0.1
    p_portfolio: float = 0.05
    market_weights: tuple[float, ...] = field(default=(0.5, 0.3, 0.2))

    def __post_init__(self) -> None:
        if self.n_accounts < 1:
            raise SimInputError("a population needs at least 1 account")
        if self.leverage_median <= 0 or self.notional_median <= 0:
            raise SimInputError("leverage and notional medians must be > 0")
        for name in ("p_long", "p_isolated", "p_options", "p_portfolio", "leverage_max_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise SimInputError(f"population {name} must be in [0, 1]")
        if any(w < 0 for w in self.collateral_mix) or sum(self.collateral_mix) <= 0:
            raise SimInputError("collateral_mix shares must be >= 0 with a positive sum")


def draw_population(spec: PopulationSpec, cfg: SimConfig, seed: int = 0) -> Book:
    """A book drawn from ``spec``; positions open at the starting prices (uPnL 0)."""
    rng = np.random.default_rng(seed)
    n, nm, nc = spec.n_accounts, len(cfg.markets), len(cfg.collateral)
    if len(spec.collateral_mix) != nc + 1:
        raise SimInputError(f"collateral_mix needs {nc + 1} shares (cash + {nc} assets)")
    w = np.resize(np.asarray(spec.market_weights, dtype=float), nm)
    w = w / w.sum()
    price = np.array([cfg.assets[m.asset].price for m in cfg.markets])
    isolated = rng.random(n) < spec.p_isolated
    portfolio = (rng.random(n) < spec.p_portfolio) & ~isolated
    held = np.zeros((n, nm), dtype=bool)
    held[np.arange(n), rng.choice(nm, size=n, p=w)] = True
    extra = (rng.random((n, nm)) < 0.4) & ~isolated[:, None]
    held |= extra
    notional = np.exp(np.log(spec.notional_median) + spec.notional_sd * rng.standard_normal(n))
    share = rng.dirichlet(np.ones(nm), size=n) * held
    share /= share.sum(axis=1, keepdims=True)
    side = np.where(rng.random((n, nm)) < spec.p_long, 1.0, -1.0)
    sizes = side * share * notional[:, None] / price
    im_base = np.array([m.im_base for m in cfg.markets])
    slope = np.array([m.size_slope for m in cfg.markets])
    rate = np.minimum(im_base + np.abs(sizes) * slope, 1.0)
    im = (np.abs(sizes) * price * rate).sum(axis=1)
    lev = np.exp(np.log(spec.leverage_median) + spec.leverage_sd * rng.standard_normal(n))
    equity = np.maximum(notional / lev, im / spec.leverage_max_share)
    mix = np.asarray(spec.collateral_mix, dtype=float)
    mix = mix / mix.sum()
    # each account uses cash and one or two of the collateral assets, in the mix's proportions
    use = rng.random((n, nc)) < 0.5
    weights = np.concatenate([np.ones((n, 1)), use], axis=1) * mix
    weights /= weights.sum(axis=1, keepdims=True)
    cprice = np.array([cfg.assets[c.asset].price for c in cfg.collateral])
    haircut = np.array([c.haircut for c in cfg.collateral])
    balances = equity[:, None] * weights[:, 1:] / (cprice * haircut)
    cash = equity * weights[:, 0]
    opt = (rng.random(n) < spec.p_options) & ~isolated & ~portfolio
    om = np.argmax(held, axis=1)
    opt_qty = np.zeros((n, nm))
    opt_strike = np.zeros((n, nm))
    opt_call = np.zeros((n, nm), dtype=bool)
    opt_expiry = np.zeros((n, nm))
    short_put = rng.random(n) < 0.5
    rows = np.flatnonzero(opt)
    cols = om[rows]
    q = np.abs(sizes[rows, cols]) * 0.25
    opt_qty[rows, cols] = np.where(short_put[rows], -q, q)
    opt_strike[rows, cols] = price[cols] * np.where(short_put[rows], 0.9, 1.1)
    opt_call[rows, cols] = ~short_put[rows]
    opt_expiry[rows, cols] = 7 * 86_400.0
    return Book(
        cash=cash,
        balances=balances,
        sizes=sizes,
        open_notional=sizes * price,
        portfolio=portfolio,
        isolated=isolated,
        opt_qty=opt_qty,
        opt_strike=opt_strike,
        opt_call=opt_call,
        opt_expiry=opt_expiry,
    )


def book_from_state(state: MarginState, cfg: SimConfig) -> Book:
    """The book of a live deployment, read through ``plimsoll.sync`` (a
    :class:`~plimsoll.state.MarginState` at one block): markets by id and collateral assets by
    id must line up with ``cfg.markets`` / ``cfg.collateral``. Funding owed is folded into cash
    at the snapshot's index; option and portfolio flags are carried (option positions are not
    part of the snapshot and are left out)."""
    if state.n_markets != len(cfg.markets):
        raise SimInputError(
            f"deployment has {state.n_markets} markets, the simulation {len(cfg.markets)}"
        )
    if state.n_assets > len(cfg.collateral):
        raise SimInputError(
            f"deployment has {state.n_assets} collateral assets, the simulation "
            f"{len(cfg.collateral)}"
        )
    from plimsoll.margin import current_funding_index

    n, nm = state.n_accounts, state.n_markets
    sizes = np.array(state.sizes, dtype=float).reshape(n, nm) / WAD
    on = np.array(state.open_notional, dtype=float).reshape(n, nm) / WAD
    idx = np.array([current_funding_index(state, m) for m in range(nm)], dtype=object)
    funding = (np.asarray(state.sizes, dtype=object) * (idx - state.entry_funding_index))
    cash = (np.asarray(state.cash, dtype=float) - np.array(
        [float(sum(r)) for r in funding], dtype=float) / WAD) / WAD
    bal = np.zeros((n, len(cfg.collateral)))
    dec = np.asarray(state.asset_decimals, dtype=np.int64)
    for a in range(state.n_assets):
        bal[:, a] = np.asarray(state.balances[:, a], dtype=float) / 10.0 ** int(dec[a])
    flags = np.zeros(n, dtype=np.int64) if state.flags is None else np.asarray(state.flags)
    zeros = np.zeros((n, nm))
    return Book(cash, bal, sizes, on, (flags & 2) != 0, np.count_nonzero(sizes, axis=1) <= 1,
                zeros.copy(), zeros.copy(), np.zeros((n, nm), dtype=bool), zeros.copy())


def book_to_state(
    book: Book, cfg: SimConfig, prices: F, s_im: F | None = None, s_mm: F | None = None
) -> MarginState:
    """A :class:`~plimsoll.state.MarginState` of the book's perps and collateral at the asset
    prices ``prices`` (A,) [USD], in the contract's integers (for ``plimsoll.margin``).

    Floats are rounded to wad; the mirror's answer is then exact for those integers."""

    def w(x: npt.ArrayLike) -> npt.NDArray[np.object_]:
        a = np.asarray(x, dtype=float)
        out: npt.NDArray[np.object_] = np.vectorize(
            lambda v: int(round(v * 1e9)) * 10**9, otypes=[object])(a)
        return out

    n, nm = book.n_accounts, book.sizes.shape[1]
    mp = np.array([prices[m.asset] for m in cfg.markets])
    cp = np.array([prices[c.asset] for c in cfg.collateral])
    dec = np.array([c.decimals for c in cfg.collateral], dtype=np.int64)
    bal = np.vectorize(lambda v, d: int(round(v * 10.0 ** min(int(d), 9))) * 10 ** max(
        int(d) - 9, 0), otypes=[object])(book.balances, dec[None, :])
    zeros_m = np.array([0] * nm, dtype=object)
    return MarginState(
        block=0,
        timestamp=0,
        owners=[f"0x{i:040x}" for i in range(n)],
        subaccounts=np.zeros(n, dtype=np.int64),
        cash=w(book.cash),
        balances=bal,
        sizes=w(book.sizes),
        open_notional=w(book.open_notional),
        entry_funding_index=np.zeros((n, nm), dtype=object) * 0,
        asset_decimals=dec,
        asset_haircut=w([c.haircut for c in cfg.collateral]),
        asset_price=w(cp),
        market_price=w(mp),
        im_base=w([m.im_base for m in cfg.markets]),
        mm_factor=w([m.mm_factor for m in cfg.markets]),
        size_slope=w([m.size_slope for m in cfg.markets]),
        max_funding_rate=zeros_m.copy(),
        skew_scale=zeros_m.copy(),
        long_oi=zeros_m.copy(),
        short_oi=zeros_m.copy(),
        funding_index=zeros_m.copy(),
        last_funding_time=zeros_m.copy(),
        im_scalar=None if s_im is None else w(s_im),
        mm_scalar=None if s_mm is None else w(s_mm),
    )
