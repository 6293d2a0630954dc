"""The fast engine: every path and every account at once, in numpy.

Per step (the grid of the :class:`~plimsoll.sim.paths.PricePaths`; one step spans
``blocks = step / block time`` blocks):

1. **market**: the accumulated log impact decays, last step's protocol trades (keepers selling
   seized collateral, the pool hedger) add square-root impact (scaled by the path's liquidity),
   market = fundamental x exp(impact);
2. **oracle**: Chainlink's rule on the market price (deviation or heartbeat);
3. **vol scalars**: the risk keeper's policy on EWMA vol of oracle returns (response 0: 1);
4. **margin** at the oracle prices, the contract's formulas (``plimsoll.margin`` for standard
   accounts, ``plimsoll.pm`` for portfolio-margin perps and standard option margin), float64;
5. **keepers**: an account liquidatable since ``latency_blocks`` ago is a candidate; the keeper
   sends where ``keepers/profit.py``'s rule says so, at most the block space the gas market
   leaves (lowest health first); a liquidation closes the contract's fraction at the oracle
   mark against the pool, pays the penalty (reward to the keeper, rest to the insurance fund)
   and books a deficit once all positions are closed and the collateral does not cover the
   cash debt (insurance first, LPs after). Accounts without positions, owing cash and under
   water have their collateral bought at the bonus (``liquidateCollateral``), which keepers
   sell into the market over the next ``sell_steps`` steps. A deficit forfeits the account's
   collateral to the protocol's recovery account; the keeper buys it back in the same step
   (``keepers/recovery_pass.py``: at the oracle price / (1 + bonus), when the bonus's share
   of the value beats the gas of ``recovery_gas``, at most ``recovery_max_usd_per_block``
   per block), the cash to the insurance fund, and sells it like the collateral it bought;
6. **traders** in margin call act (top up / reduce) once their delay has passed (effective
   from the next step); the pool hedger re-hedges the pool's net delta;
7. **gas**: the base fee follows EIP-1559 on the step's block fill.

Within a step the oracle does not move, so a keeper latency shorter than a step costs
nothing here (``floor(latency / blocks per step)`` steps of delay); the chain engine
resolves it block by block.

Bad debt is attributed when booked: first the part due to feedback (the account's equity
at the oracle prices without the accumulated impact minus its equity now, capped by the
deficit), the rest to ``gap`` (first liquidatable at this update, i.e. it met MM at the
previous one), ``keeper_delay`` (liquidatable at an earlier update but not liquidated
since) or ``penalty_rules`` (already liquidated before: the close fraction/buffer, the
penalty or the collateral bonus left it too little).

Paths are independent, so they run in chunks on a thread pool (numpy releases the GIL).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from plimsoll.risk import bs
from plimsoll.sim.agents import (
    REDUCE,
    TOP_UP,
    close_fraction,
    draw_trader_actions,
    gas_cost_usd,
    penalty_paid,
)
from plimsoll.sim.market import (
    external_share,
    impact_decay_factor,
    keeper_capacity,
    next_base_fee,
    oracle_update,
)
from plimsoll.sim.market import sqrt_impact as _sqrt_impact
from plimsoll.sim.model import SimConfig, SimInputError
from plimsoll.sim.paths import PricePaths
from plimsoll.sim.population import Book

F = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

#: [USD] equity below -EPS_USD is a deficit. A liquidation that closes everything takes what
#: equity is left as penalty, so the account ends at exactly 0 on chain (integers, rounded in
#: the protocol's favour) but at +-1e-12 here (float64): without the tolerance, half of those
#: accounts would book a deficit of their whole cash debt and forfeit their collateral.
EPS_USD = 1e-6
CAUSES = ("gap", "keeper_delay", "penalty_rules", "feedback")
YEAR = 365 * 86_400.0

#: Portfolio margin (``plimsoll.deploy.DEFAULT_PORTFOLIO``) and option margin
#: (``DEFAULT_OPTIONS``) the engine applies, and each market's implied vol (``IV_FEEDS``).
PM_SPOT_SHOCK, PM_MAX_SHOCK, PM_CONT_PERP, PM_IM_FACTOR = 0.18, 0.95, 0.005, 1.15
OPT_SHORT_A, OPT_SHORT_B, OPT_MM_FACTOR, OPT_LONG_HAIRCUT = 0.25, 0.125, 0.7, 0.8
DEFAULT_IV = (0.8, 0.7, 1.0)


@dataclass
class MarginArrays:
    """equity, IM, MM, perp notional [USD], shape (..., N)."""

    equity: F
    im: F
    mm: F
    notional: F


def margin(
    cfg: SimConfig,
    cash: F,
    balances: F,
    sizes: F,
    open_notional: F,
    portfolio: B,
    mprice: F,
    cprice: F,
    s_im: F,
    s_mm: F,
    opt_value: F | None = None,
    opt_im: F | None = None,
) -> MarginArrays:
    """The contract's standard margin (and portfolio margin for ``portfolio`` accounts'
    perps), float64, market-first layout: cash (..., N), balances (C, ..., N), sizes and
    open_notional (M, ..., N), mprice / s_im / s_mm (M, ...), cprice (C, ...), portfolio (N,).

    Standard: rate = min(imBase + |q| slope, 1); IM = |q| p min(rate sIm, 1);
    MM = |q| p min(rate sMm, 1) mmFactor. Portfolio (perps): MM = |q| p (min(shock sMm, 0.95) +
    contPerp) + |q| p min(min(|q| slope, 1) sMm, 1) mmFactor; IM = the grid part x imFactor x
    sIm / sMm + |q| p min(min(|q| slope, 1) sIm, 1). Equity = cash + sum(balance x price x
    haircut) + sum(q p - openNotional) (+ option value)."""
    pm_idx = np.flatnonzero(portfolio)
    unit = bool(np.all(s_im == 1.0) and np.all(s_mm == 1.0))  # no vol scalars: rate <= 1
    equity = np.array(cash, dtype=np.float64, copy=True)
    im = np.zeros_like(equity)
    mm = np.zeros_like(equity)
    notional = np.zeros_like(equity)
    for c, spec in enumerate(cfg.collateral):
        equity += balances[c] * (np.asarray(cprice[c])[..., None] * spec.haircut)
    for m, mk in enumerate(cfg.markets):
        p = np.asarray(mprice[m])[..., None]
        sim = np.asarray(s_im[m])[..., None]
        smm = np.asarray(s_mm[m])[..., None]
        q = np.abs(sizes[m])
        n = q * p
        rate = np.minimum(q * mk.size_slope + mk.im_base, 1.0)
        if unit:
            im_m = n * rate
            mm_m = im_m * mk.mm_factor
        else:
            im_m = n * np.minimum(rate * sim, 1.0)
            mm_m = n * np.minimum(rate * smm, 1.0) * mk.mm_factor
        if pm_idx.size:
            # portfolio accounts only: the grid's perp loss + contingency, and the size part
            npm = n[..., pm_idx]
            rs = np.minimum(q[..., pm_idx] * mk.size_slope, 1.0)
            grid = npm * (np.minimum(PM_SPOT_SHOCK * smm, PM_MAX_SHOCK) + PM_CONT_PERP)
            mm_m[..., pm_idx] = grid + npm * np.minimum(rs * smm, 1.0) * mk.mm_factor
            im_m[..., pm_idx] = grid * (PM_IM_FACTOR * sim / smm) + npm * np.minimum(rs * sim,
                                                                                    1.0)
        equity += sizes[m] * p
        equity -= open_notional[m]
        im += im_m
        mm += mm_m
        notional += n
    if opt_value is not None and opt_im is not None:
        equity += opt_value
        im += opt_im
        mm += opt_im * OPT_MM_FACTOR
    return MarginArrays(equity, im, mm, notional)


def option_terms(qty: F, strike: F, call: B, tau: F, spot: F, iv: F) -> tuple[F, F, F]:
    """Standard option margin per position (``plimsoll.pm``'s formulas): (equity value with
    the long haircut, full mark value q v, IM). Arrays broadcast; tau in years."""
    v = bs.price(spot, strike, np.maximum(tau, 0.0), iv, is_call=call)
    mark = qty * v
    value = np.where(qty > 0, mark * OPT_LONG_HAIRCUT, mark)
    otm = np.where(call, np.maximum(strike - spot, 0.0), np.maximum(spot - strike, 0.0)) / spot
    rate = np.maximum(OPT_SHORT_A - otm, OPT_SHORT_B)
    im = np.where(qty < 0, -qty * spot * rate, 0.0)
    return value, mark, im


@dataclass
class SimResult:
    """What a run produced. Series are (P, T+1) (or (P, T+1, A) for prices); finals (P,)."""

    times: F
    assets: tuple[str, ...]
    n_accounts: int
    fundamental: F  # (P, T+1, A)
    market: F  # (P, T+1, A)
    oracle: F  # (P, T+1, A)
    liquidatable: F  # (P, T+1) accounts liquidatable at the oracle
    liquidated: F  # (P, T+1) liquidations landed in the step (positions)
    collateral_liquidated: F  # (P, T+1)
    keeper_wait: F  # (P, T+1) mean blocks waited by the step's liquidations (nan: none)
    base_fee: F  # (P, T+1) [gwei]
    insurance: F  # (P, T+1) [USD] at the end of each step
    insurance_low: F  # (P, T+1) [USD] the fund's lowest point in each step (the last step's end,
    # or after the step's deficits, before the keeper's purchases of recovered collateral)
    lp_value: F  # (P, T+1) [USD]
    bad_debt: F  # (P, T+1, 4) cumulative [USD] by cause (CAUSES)
    recovered: F  # (P, T+1) cumulative [USD] market value of collateral forfeited with a deficit
    recovered_sold: F  # (P, T+1) cumulative [USD] paid into the insurance fund by buyRecovered
    gap_accounts: F  # (P,) accounts that met MM at the previous update and ended with bad debt
    bad_accounts: F  # (P,) accounts with bad debt
    keeper_profit: F  # (P,) [USD] rewards - gas
    # per account (the agreement test compares them with the chain engine's): the step of the
    # first liquidation of its positions and of its collateral (-1: none), its bad debt [USD]
    liquidated_step: npt.NDArray[np.int64] | None = None  # (P, N)
    collateral_step: npt.NDArray[np.int64] | None = None  # (P, N)
    account_bad_debt: F | None = None  # (P, N)

    @property
    def n_paths(self) -> int:
        return int(self.market.shape[0])

    @property
    def bad_debt_total(self) -> F:
        out: F = self.bad_debt[:, -1].sum(-1)
        return out

    @property
    def net_loss(self) -> F:
        """Bad debt booked minus the market value of the collateral the protocol recovered."""
        out: F = self.bad_debt_total - self.recovered[:, -1]
        return out

    @property
    def insurance_exhausted(self) -> B:
        """Whether the fund ran dry at some point (within a step: a purchase of recovered
        collateral refills it after the deficit that emptied it, the LPs paid the rest)."""
        out: B = self.insurance_low.min(axis=1) <= 1e-9
        return out

    @property
    def lp_drawdown(self) -> F:
        """Largest fall of the LPs' value from its running peak, as a fraction."""
        peak = np.maximum.accumulate(self.lp_value, axis=1)
        out: F = ((peak - self.lp_value) / peak).max(axis=1)
        return out

    @property
    def lp_share_price(self) -> F:
        out: F = self.lp_value / self.lp_value[:, :1]
        return out

    @property
    def p_gap_bad_debt(self) -> float:
        """P(an account that met MM at the previous oracle update ends with bad debt)."""
        return float(self.gap_accounts.sum() / (self.n_paths * self.n_accounts))

    @property
    def p_bad_debt(self) -> float:
        return float(self.bad_accounts.sum() / (self.n_paths * self.n_accounts))

    @property
    def p_insurance_exhausted(self) -> float:
        return float(self.insurance_exhausted.mean())

    @staticmethod
    def concat(parts: list[SimResult]) -> SimResult:
        first = parts[0]
        kw: dict[str, Any] = {}
        for f in first.__dataclass_fields__:
            v = getattr(first, f)
            if isinstance(v, np.ndarray) and f != "times":
                kw[f] = np.concatenate([getattr(p, f) for p in parts], axis=0)
            else:
                kw[f] = v
        return SimResult(**kw)


def simulate(
    cfg: SimConfig,
    paths: PricePaths,
    book: Book,
    seed: int = 0,
    workers: int | None = None,
    chunk: int = 64,
    progress: Callable[[int], None] | None = None,
) -> SimResult:
    """Runs every path of ``paths`` on ``book``; ``progress(n)`` is told each finished chunk's
    path count."""
    if tuple(paths.assets) != tuple(cfg.asset_names):
        raise SimInputError(f"paths price {paths.assets}, the config {tuple(cfg.asset_names)}")
    if book.sizes.shape[1] != len(cfg.markets) or book.balances.shape[1] != len(cfg.collateral):
        raise SimInputError("the book's markets / collateral columns do not match the config")
    workers = workers or min(2, os.cpu_count() or 1)
    starts = list(range(0, paths.n_paths, chunk))

    def run(i0: int) -> SimResult:
        idx = np.arange(i0, min(i0 + chunk, paths.n_paths))
        r = _run_chunk(cfg, paths, idx, book, seed)
        if progress is not None:
            progress(idx.size)
        return r

    if workers <= 1 or len(starts) == 1:
        parts = [run(i) for i in starts]
    else:
        with ThreadPoolExecutor(workers) as ex:
            parts = list(ex.map(run, starts))
    return SimResult.concat(parts)


def _run_chunk(cfg: SimConfig, paths: PricePaths, idx: npt.NDArray[np.int64], book: Book,
               seed: int) -> SimResult:
    P, N = idx.size, book.n_accounts
    T = paths.n_steps
    A = len(cfg.assets)
    M, C = len(cfg.markets), len(cfg.collateral)
    rng = np.random.default_rng([seed, int(idx[0])])
    fund = paths.prices[idx]  # (P, T+1, A)
    times = paths.times
    m_asset = np.array([m.asset for m in cfg.markets])
    c_asset = np.array([c.asset for c in cfg.collateral])
    hc = np.array([c.haircut for c in cfg.collateral])
    lc, ks, fb, vp, ts = cfg.liquidation, cfg.keeper, cfg.feedback, cfg.vol_policy, cfg.traders

    # account state, market-first: (M, P, N), (C, P, N); cash (P, N)
    cash = np.broadcast_to(book.cash, (P, N)).copy()
    bal = np.ascontiguousarray(np.broadcast_to(book.balances.T[:, None, :], (C, P, N)))
    size = np.ascontiguousarray(np.broadcast_to(book.sizes.T[:, None, :], (M, P, N)))
    onot = np.ascontiguousarray(np.broadcast_to(book.open_notional.T[:, None, :], (M, P, N)))
    pmode = book.portfolio
    # options: only the accounts holding one are evaluated, (P, No, M)
    oi = np.flatnonzero((book.opt_qty != 0).any(axis=1))
    oqty = np.broadcast_to(book.opt_qty[oi], (P, oi.size, M)).copy()
    ostrike, ocall, oexp = book.opt_strike[oi], book.opt_call[oi], book.opt_expiry[oi]
    ostrike = np.where(ostrike > 0, ostrike, 1.0)
    iv = np.resize(np.array(DEFAULT_IV), M)

    posted = fund[:, 0].copy()
    posted_at = np.zeros((P, A))
    log_imp = np.zeros((P, A))
    s_im = np.ones((M, P))
    s_mm = np.ones((M, P))
    mm_from = np.ones((M, P))  # the MM ramp's start value and time (VolScalar.fromWad, rampStart)
    ramp_t = np.full((M, P), float(paths.times[0]))
    ewma_var = np.full((P, A), vp.base_vol**2)  # warmed up at the base: scalars start at 1
    base_fee = np.full(P, cfg.gas.base_fee)
    spike_until = np.full(P, -1.0)  # [s] end of the running gas-demand spike
    insurance = np.full(P, cfg.insurance)
    pool_cash = np.full(P, cfg.pool_liquidity)
    hedge = np.zeros((P, M))
    hedge_cost = np.zeros((P, M))
    sell_queue = np.zeros((max(1, fb.sell_steps), P, A))  # USD to trade in coming steps
    keeper_profit = np.zeros(P)

    first_liq = np.full((P, N), -1, dtype=np.int64)  # step it became liquidatable (-1: not)
    liq_step = np.full((P, N), -1, dtype=np.int64)
    coll_step = np.full((P, N), -1, dtype=np.int64)
    acct_bad = np.zeros((P, N))
    liq_before = np.zeros((P, N), dtype=bool)
    settled = np.zeros((P, N), dtype=bool)  # deficit booked: the account is closed
    gap_acc = np.zeros((P, N), dtype=bool)
    bad_acc = np.zeros((P, N), dtype=bool)
    in_call = np.zeros((P, N), dtype=bool)
    act = np.zeros((P, N), dtype=np.int8)
    due = np.full((P, N), np.inf)

    if oi.size:  # option premia: the book's positions were traded at the starting mark
        _, mark0, _ = option_terms(oqty, ostrike, ocall, (oexp - times[0]) / YEAR,
                                   fund[:, 0, m_asset][:, None, :], iv)
        cash[:, oi] -= mark0.sum(-1)

    out = {k: np.zeros((P, T + 1)) for k in ("liq", "cliq", "wait", "fee", "ins", "lp", "nliq")}
    bad = np.zeros((P, T + 1, 4))
    recovered = np.zeros((P, T + 1))
    recovered_sold = np.zeros((P, T + 1))
    ins_low = np.zeros((P, T + 1))
    ins_low[:, 0] = insurance
    rec_bal = np.zeros((C, P))  # [units] collateral held by the recovery account
    mkt_s = np.zeros((P, T + 1, A))
    orc_s = np.zeros((P, T + 1, A))
    mkt_s[:, 0] = orc_s[:, 0] = fund[:, 0]
    out["fee"][:, 0], out["ins"][:, 0], out["lp"][:, 0] = base_fee, insurance, pool_cash
    out["wait"][:, 0] = np.nan

    def positions_left() -> B:
        h: B = (size != 0).any(0)
        if oi.size:
            h[:, oi] |= (oqty != 0).any(-1)
        return h

    for k in range(1, T + 1):
        dt = float(times[k] - times[k - 1])
        blocks = cfg.blocks_per(dt)
        lat_steps = ks.latency_blocks // blocks
        # 1. market
        traded = sell_queue[0].copy()
        sell_queue = np.roll(sell_queue, -1, axis=0)
        sell_queue[-1] = 0.0
        log_imp = log_imp * impact_decay_factor(cfg.assets, dt) + _sqrt_impact(
            traded / paths.liquidity[k], cfg.assets)
        mkt = fund[:, k] * np.exp(log_imp)
        # 2. oracle
        new_posted, posted_at, _ = oracle_update(posted, posted_at, mkt, float(times[k]),
                                                 cfg.assets)
        ret = np.log(new_posted / posted)
        posted = new_posted
        # 3. vol scalars (the risk keeper's policy)
        if vp.response > 0:
            lam = vp.ewma_lambda ** (dt / vp.sample_seconds)
            ewma_var = lam * ewma_var + (1 - lam) * ret**2 / (dt / YEAR)
            target = np.clip(1 + vp.response * (np.sqrt(ewma_var) / vp.base_vol - 1),
                             vp.floor, vp.cap)[:, m_asset].T
            new = np.clip(target, s_im * (1 - vp.max_step), s_im * (1 + vp.max_step))
            # MM as the contract has it (setVolScalar / _volScalars): linear from mm_from at
            # ramp_t to s_im over RiskLimits.rampPeriod; an update below MM now applies at
            # once, one above it ramps from MM now: MM does not move at the update itself.
            mm_now = np.where(s_im > mm_from, mm_from + (s_im - mm_from) * np.minimum(
                1.0, (times[k] - ramp_t) / vp.ramp), s_im)
            changed = new != s_im
            mm_from = np.where(changed, np.minimum(mm_now, new), mm_from)
            ramp_t = np.where(changed, times[k], ramp_t)
            s_im = new
            s_mm = np.where(changed, np.minimum(mm_now, new), mm_now)
        # 4. margin at the oracle
        mp, cp = posted[:, m_asset].T, posted[:, c_asset].T  # (M, P), (C, P)
        ov = oim = None
        omark = np.zeros((P, 0, M))
        if oi.size:
            val, omark, oimp = option_terms(oqty, ostrike, ocall, (oexp - times[k]) / YEAR,
                                            mp.T[:, None, :], iv)
            ov = np.zeros((P, N))
            oim = np.zeros((P, N))
            ov[:, oi] = val.sum(-1)
            oim[:, oi] = oimp.sum(-1)
        mg = margin(cfg, cash, bal, size, onot, pmode, mp, cp, s_im, s_mm, ov, oim)
        eq, mm, notional = mg.equity, mg.mm, mg.notional
        has_pos = positions_left()
        liq = has_pos & (eq < mm) & ~settled
        first_liq = np.where(liq, np.where(first_liq < 0, k, first_liq), -1)
        out["nliq"][:, k] = liq.sum(1)

        # 5. keepers: block space, the profit rule, perps first, then collateral
        move = np.abs(np.log(fund[:, k] / fund[:, k - 1])).max(-1)
        start = (move >= cfg.gas.spike_on_move) | (
            rng.random(P) < 1.0 - np.exp(-cfg.gas.spikes_per_day * dt / 86_400.0))
        spike = start | (times[k] <= spike_until)
        spike_until = np.where(start, np.maximum(spike_until, times[k] + cfg.gas.spike_seconds),
                               spike_until)
        ext = external_share(spike, base_fee, cfg.gas)
        cap = keeper_capacity(ext, blocks, cfg)
        tip = np.where(spike, cfg.gas.spike_priority_fee, cfg.gas.priority_fee)
        gas_usd = gas_cost_usd(base_fee + tip - cfg.gas.priority_fee, ks,
                               cfg.gas.priority_fee)[:, None]
        if oi.size:
            notional = notional.copy()
            notional[:, oi] += (np.abs(oqty) * mp.T[:, None, :]).sum(-1)
        cand = liq & (k - first_liq >= lat_steps)
        frac = np.zeros((P, N))
        pen = np.zeros((P, N))
        rew = np.zeros((P, N))
        if np.any(cand):
            ci = np.nonzero(cand)
            fr = close_fraction(eq[ci], mm[ci], notional[ci], lc)
            pe, re = penalty_paid(eq[ci], fr * notional[ci], lc)
            e, nn = eq[ci], notional[ci]
            sends = (e < 0) | (re - gas_usd[ci[0], 0] >= ks.min_profit) | (
                nn * ks.guard_move - e > 0)
            frac[ci], pen[ci], rew[ci] = fr, pe, re
            cand[ci] = sends
        over = cand.sum(1) > cap
        if np.any(over):
            health = np.where(cand[over], (eq[over] - mm[over]) / np.maximum(mm[over], 1e-12),
                              np.inf)
            rank = np.argsort(np.argsort(health, axis=1, kind="stable"), axis=1)
            cand[over] &= rank < cap[over][:, None]
        n_done = cand.sum(1)
        out["liq"][:, k] = n_done
        liq_step = np.where(cand & (liq_step < 0), k, liq_step)
        waited = np.where(cand, (k - first_liq) * blocks + min(ks.latency_blocks, blocks - 1), 0)
        out["wait"][:, k] = np.where(n_done > 0, waited.sum(1) / np.maximum(n_done, 1), np.nan)

        # what feedback cost each account: equity at the oracle without the impact - now
        fb_gain = _feedback_loss(cfg, size, bal, mp, cp, np.exp(-log_imp), m_asset, c_asset)

        f = np.where(cand, frac, 0.0)
        full = cand & (f >= 1.0)
        keep = np.where(full, 0.0, 1.0 - f)
        realized = np.zeros((P, N))
        for m in range(M):
            realized += f * (size[m] * mp[m][:, None] - onot[m])
            size[m] *= keep
            onot[m] *= keep
        if oi.size:
            fo = f[:, oi, None]
            realized[:, oi] += (fo * omark).sum(-1)  # sell longs / buy back shorts at the mark
            oqty = np.where(full[:, oi, None], 0.0, oqty * (1 - fo))
        pen_d = np.where(cand, pen, 0.0)
        rew_d = np.where(cand, rew, 0.0)
        cash += realized - pen_d
        pool_cash = pool_cash - realized.sum(1)
        insurance = insurance + (pen_d - rew_d).sum(1)
        keeper_profit += (rew_d - np.where(cand, gas_usd, 0.0)).sum(1)
        delayed = liq & (first_liq >= 0) & (first_liq < k)  # liquidatable at an earlier update
        liq_prev = liq_before.copy()
        liq_before |= cand
        first_liq = np.where(cand, -1, first_liq)

        # collateral purchases (liquidateCollateral): no positions, owing cash, under water
        has_pos = positions_left()
        cval_or = np.zeros((P, N))
        cval_h = np.zeros((P, N))
        for c in range(C):
            v = bal[c] * cp[c][:, None]
            cval_or += v
            cval_h += v * hc[c]
        # (not the accounts liquidated in this step: the liquidation that closes the last
        # position books the deficit at once and forfeits the collateral, _bookLiquidation)
        coll_cand = (~has_pos & ~settled & ~cand & (cash < 0) & (cash + cval_h < -EPS_USD)
                     & (cval_or > 0))
        left = np.maximum(cap - n_done, 0)
        coll_do = coll_cand & (np.cumsum(coll_cand, axis=1) <= left[:, None])
        n_coll = coll_do.sum(1)
        coll_step = np.where(coll_do & (coll_step < 0), k, coll_step)
        out["cliq"][:, k] = n_coll
        if np.any(coll_do):
            # the keeper's purchase (keepers/candidates.collateral_args): the sellable asset of
            # the largest oracle value, the whole debt offered; the contract takes what that
            # asset covers at the bonus (_seizeAmounts). One asset per purchase: the account
            # is then either solvent again or its deficit is booked (below), so one purchase
            # per step is what the chain does too.
            bonus = 1 + lc.collateral_bonus
            vals = np.stack([bal[c] * cp[c][:, None] for c in range(C)])  # (C, P, N)
            best = np.argmax(vals, axis=0)
            vbest = np.take_along_axis(vals, best[None], 0)[0]
            repay = np.where(coll_do, np.minimum(-cash, vbest / bonus), 0.0)
            sold = np.zeros((P, A))
            for c in range(C):
                pick = coll_do & (best == c)
                px = cp[c][:, None]
                seized = np.where(pick, np.minimum(repay * bonus / np.where(px > 0, px, 1.0),
                                                   bal[c]), 0.0)
                bal[c] -= seized
                cval_h -= seized * px * hc[c]
                sold[:, c_asset[c]] -= (seized * px).sum(1)
            cash += repay
            keeper_profit += (repay * lc.collateral_bonus - np.where(coll_do, gas_usd, 0.0)
                              ).sum(1)
            if fb.sell_collateral:  # keepers sell what they bought over the next steps
                sell_queue += sold[None] / sell_queue.shape[0]

        # deficits: every position closed and the collateral (haircut) short of the debt
        deficit_mask = ~has_pos & ~settled & (cash < 0) & (cash + cval_h < -EPS_USD) & (
            cand | coll_do | (cval_h <= 0))
        bad[:, k] = bad[:, k - 1]
        recovered[:, k] = recovered[:, k - 1]
        if np.any(deficit_mask):
            deficit = np.where(deficit_mask, -cash, 0.0)
            acct_bad += deficit
            fb_part = np.where(deficit_mask, np.clip(fb_gain, 0.0, deficit), 0.0)
            rest = deficit - fb_part
            is_gap = deficit_mask & ~liq_prev & ~delayed
            c_delay = np.where(deficit_mask & ~liq_prev & delayed, rest, 0.0)
            c_pen = np.where(deficit_mask & liq_prev, rest, 0.0)
            bad[:, k] += np.stack([np.where(is_gap, rest, 0.0).sum(1), c_delay.sum(1),
                                   c_pen.sum(1), fb_part.sum(1)], axis=-1)
            gap_acc |= is_gap
            bad_acc |= deficit_mask
            total = deficit.sum(1)
            from_ins = np.minimum(total, np.maximum(insurance, 0.0))
            insurance = insurance - from_ins
            # the pool had booked the account's losses as cash already: what the insurance
            # fund does not cover is socialized to the LPs
            pool_cash = pool_cash - (total - from_ins)
            cash = np.where(deficit_mask, 0.0, cash)
            for c in range(C):  # the recovery account's collateral at the market
                forfeited = (bal[c] * deficit_mask).sum(1)
                recovered[:, k] += forfeited * mkt[:, c_asset[c]]
                rec_bal[c] += forfeited
            bal *= ~deficit_mask  # forfeited to the recovery account
            settled |= deficit_mask

        # the keeper buys the recovered collateral (keepers/recovery_pass.py): per asset, the
        # most the spend cap allows at the oracle price / (1 + bonus), when the discount (the
        # bonus's share of the value) beats the purchase's gas; the cash refills the
        # insurance fund and the keeper sells what it bought like its collateral purchases.
        recovered_sold[:, k] = recovered_sold[:, k - 1]
        # the step's first block holds the fund as the last step left it; the deficits come
        # after the penalties, the purchases one block later
        ins_low[:, k] = np.minimum(out["ins"][:, k - 1], insurance)
        n_rec = np.zeros(P)
        if ks.buy_recovered and np.any(rec_bal > 0):
            bonus = 1 + lc.collateral_bonus
            rgas = gas_usd[:, 0] * (ks.recovery_gas / ks.gas_per_liquidation)
            budget = np.full(P, ks.recovery_max_usd_per_block * blocks)  # [USD] of cash
            sold = np.zeros((P, A))
            for c in range(C):
                px = cp[c]
                value = rec_bal[c] * px
                take = np.minimum(value, budget * bonus)  # [USD] of value bought
                disc = take * (lc.collateral_bonus / bonus)
                buy = (rec_bal[c] > 0) & (px > 0) & (disc > rgas) & (disc - rgas >= ks.min_profit)
                amount = np.where(buy, rec_bal[c] * take / np.where(value > 0, value, 1.0), 0.0)
                paid = np.where(buy, take / bonus, 0.0)
                rec_bal[c] -= amount
                budget -= paid
                insurance = insurance + paid
                recovered_sold[:, k] += paid
                keeper_profit += np.where(buy, disc - rgas, 0.0)
                n_rec += buy
                sold[:, c_asset[c]] -= amount * px
            if fb.sell_collateral:
                sell_queue += sold[None] / sell_queue.shape[0]

        # 6. traders in margin call (their action lands from the next step)
        call = has_pos & ~settled & (eq < ts.call_level * mm)
        new_call = call & ~in_call
        if np.any(new_call):
            act = np.where(new_call, draw_trader_actions(rng, (P, N), ts), act)
            due = np.where(new_call, times[k] + ts.delay, due)
        due = np.where(call, due, np.inf)
        in_call = call
        go = call & (due <= times[k])
        if np.any(go):
            top = go & (act == TOP_UP)
            cash += np.where(top, ts.topup_fraction * np.maximum(mg.im - eq, 0.0), 0.0)
            r = np.where(go & (act == REDUCE), ts.reduce_fraction, 0.0)
            for m in range(M):
                gain = r * (size[m] * mp[m][:, None] - onot[m])
                # the reducing trade pays the taker fee to the pool (PerpEngine._fill)
                fee = r * np.abs(size[m]) * mp[m][:, None] * cfg.markets[m].taker_fee
                cash += gain - fee
                pool_cash = pool_cash - gain.sum(1) + fee.sum(1)
                size[m] *= 1 - r
                onot[m] *= 1 - r
            due = np.where(go, np.inf, due)

        # the pool hedger: the pool is short the traders' net size
        mprice_mkt = mkt[:, m_asset]
        if fb.hedger:
            trade = fb.hedge_ratio * size.sum(2).T - hedge
            hedge_cost += trade * mprice_mkt
            hedge = hedge + trade
            for m in range(M):
                sell_queue[0][:, m_asset[m]] += trade[:, m] * mprice_mkt[:, m]
        # 7. gas
        used = ext + (np.minimum(n_done + n_coll, cap) * ks.gas_per_liquidation
                      + n_rec * ks.recovery_gas) / (cfg.gas.gas_limit * blocks)
        base_fee = next_base_fee(base_fee, used, blocks, cfg.gas)

        # LPs: pool cash - what the pool owes traders on open positions + the hedge's value
        owed = np.zeros(P)
        for m in range(M):
            owed += (size[m] * mp[m][:, None] - onot[m]).sum(1)
        lp = pool_cash - owed + (hedge * mprice_mkt - hedge_cost).sum(-1)
        out["fee"][:, k], out["ins"][:, k], out["lp"][:, k] = base_fee, insurance, lp
        mkt_s[:, k], orc_s[:, k] = mkt, posted

    return SimResult(
        times=times,
        assets=tuple(cfg.asset_names),
        n_accounts=N,
        fundamental=fund,
        market=mkt_s,
        oracle=orc_s,
        liquidatable=out["nliq"],
        liquidated=out["liq"],
        collateral_liquidated=out["cliq"],
        keeper_wait=out["wait"],
        base_fee=out["fee"],
        insurance=out["ins"],
        insurance_low=ins_low,
        lp_value=out["lp"],
        bad_debt=bad,
        recovered=recovered,
        recovered_sold=recovered_sold,
        gap_accounts=gap_acc.sum(1).astype(float),
        bad_accounts=bad_acc.sum(1).astype(float),
        keeper_profit=keeper_profit,
        liquidated_step=liq_step,
        collateral_step=coll_step,
        account_bad_debt=acct_bad,
    )


def _feedback_loss(cfg: SimConfig, size: F, bal: F, mp: F, cp: F, ratio: F,
                   m_asset: npt.NDArray[np.int64], c_asset: npt.NDArray[np.int64]) -> F:
    """Equity at oracle prices without the accumulated impact minus equity now [USD] (P, N);
    market-first size (M, P, N) / bal (C, P, N), prices (M, P) / (C, P), ratio (P, A)."""
    out: F = np.zeros(size.shape[1:])
    if np.all(ratio == 1.0):
        return out
    for m in range(size.shape[0]):
        out += size[m] * (mp[m] * (ratio[:, m_asset[m]] - 1.0))[:, None]
    for c, spec in enumerate(cfg.collateral):
        out += bal[c] * (cp[c] * (ratio[:, c_asset[c]] - 1.0) * spec.haircut)[:, None]
    return out


def headline(res: SimResult) -> dict[str, float]:
    """The run's headline figures (USD, fractions, counts)."""
    bd = res.bad_debt_total
    return {
        "paths": float(res.n_paths),
        "accounts": float(res.n_accounts),
        "bad_debt_mean_usd": float(bd.mean()),
        "bad_debt_p99_usd": float(np.quantile(bd, 0.99)),
        "bad_debt_max_usd": float(bd.max()),
        "net_loss_mean_usd": float(res.net_loss.mean()),
        "p_insurance_exhausted": res.p_insurance_exhausted,
        "p_gap_bad_debt": res.p_gap_bad_debt,
        "p_bad_debt": res.p_bad_debt,
        "lp_drawdown_mean": float(res.lp_drawdown.mean()),
        "lp_drawdown_p99": float(np.quantile(res.lp_drawdown, 0.99)),
        "liquidations_mean": float(res.liquidated.sum(1).mean()),
        "collateral_liquidations_mean": float(res.collateral_liquidated.sum(1).mean()),
        **{f"bad_debt_{c}_usd": float(res.bad_debt[:, -1, i].mean()) for i, c in
           enumerate(CAUSES)},
    }


def sqrt_impact(traded_usd: npt.ArrayLike, cfg: SimConfig) -> F:
    """Convenience: :func:`plimsoll.sim.market.sqrt_impact` on a config's assets."""
    return _sqrt_impact(traded_usd, cfg.assets)

