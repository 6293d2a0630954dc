"""Margin calibration: the cheapest parameter set that meets the risk targets.

Targets (defaults): P(an account that met MM at the previous oracle update ends with bad debt)
<= 0.1% and P(the insurance fund is exhausted) <= 1%, measured by the fast engine on Monte
Carlo paths (half jump-diffusion, half GARCH(1,1)-t, correlated). The search:

1. a grid over the IM scale (x every market's ``imBase``) and the MM factor;
2. from the cheapest set meeting the targets (the least risky one if none does), one
   parameter at a time: liquidation buffer, penalty, size-slope scale and the vol-scalar
   response (the risk keeper on/off at a base vol); a change is kept when it meets the targets
   at a lower capital cost, or lets the IM scale come down a notch;

capital cost = the book's IM per unit of notional at the start (what traders post). The
recommended set is then run on *held-out* paths (other seeds, never seen by the search) beside
the deployed defaults. For comparison, an expected-shortfall margin per market: ES at 99% of
the loss over the liquidation horizon (mean oracle update interval on the paths + keeper
latency) with the horizon vol from EWMA (``plimsoll.risk``).

The recommendation comes out as the admin calls a timelock schedules
(``configureMarket`` per market, ``setLiquidationConfig``; calldata and ``plimsoll.timelock``
SDK calls) and as the risk keeper's policy (``keepers/risk.py`` TOML keys).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from plimsoll.risk import empirical_var_es, ewma_vol, normal_var_es
from plimsoll.sim.engine import SimResult, margin, simulate
from plimsoll.sim.model import SimConfig, SimInputError
from plimsoll.sim.paths import PricePaths, garch, jump_diffusion
from plimsoll.sim.population import Book, PopulationSpec, draw_population

F = npt.NDArray[np.float64]
YEAR = 365 * 86_400.0


@dataclass(frozen=True)
class Targets:
    p_gap_bad_debt: float = 0.001
    p_insurance_exhausted: float = 0.01


@dataclass(frozen=True)
class Params:
    """One point of the search space (relative to the deployed config)."""

    im_scale: float = 1.0
    mm_factor: float = 0.5
    slope_scale: float = 1.0
    penalty: float = 0.01
    buffer: float = 0.25
    vol_response: float = 0.0
    base_vol: float = 0.5

    def apply(self, cfg: SimConfig) -> SimConfig:
        return cfg.with_margin(im_scale=self.im_scale, mm_factor=self.mm_factor,
                               slope_scale=self.slope_scale, penalty=self.penalty,
                               buffer=self.buffer, vol_response=self.vol_response,
                               base_vol=self.base_vol)


@dataclass
class Evaluation:
    params: Params
    p_gap_bad_debt: float
    p_insurance_exhausted: float
    bad_debt_mean_usd: float
    capital_cost: float  # IM per unit of notional
    meets: bool

    def row(self) -> dict[str, Any]:
        return {**asdict(self.params), "p_gap_bad_debt": self.p_gap_bad_debt,
                "p_insurance_exhausted": self.p_insurance_exhausted,
                "bad_debt_mean_usd": self.bad_debt_mean_usd, "capital_cost": self.capital_cost,
                "meets_targets": self.meets}


def stress_paths(cfg: SimConfig, n_paths: int, n_steps: int, seed: int) -> PricePaths:
    """Calibration paths: half jump-diffusion (1 jump a day, -5% mean), half GARCH(1,1) with
    Student-t(3) shocks at 120% vol; one day each."""
    a = jump_diffusion(cfg, max(1, n_paths // 2), n_steps, seed=seed)
    b = garch(cfg, max(1, n_paths - n_paths // 2), n_steps, vol=1.2, nu=3.0, seed=seed + 1)
    return PricePaths(a.times, np.concatenate([a.prices, b.prices]), a.assets, a.liquidity,
                      "stress")


def capital_cost(cfg: SimConfig, book: Book) -> float:
    """IM per unit of notional of the book at the starting prices (scalars 1)."""
    p = np.array([a.price for a in cfg.assets])
    mp = p[[m.asset for m in cfg.markets]]
    cp = p[[c.asset for c in cfg.collateral]]
    one = np.ones(len(cfg.markets))
    mg = margin(cfg, book.cash, book.balances.T, book.sizes.T, book.open_notional.T,
                book.portfolio, mp, cp, one, one)
    return float(mg.im.sum() / mg.notional.sum())


def evaluate(cfg: SimConfig, params: Params, spec: PopulationSpec, paths: PricePaths,
             targets: Targets, seed: int = 0) -> tuple[Evaluation, SimResult]:
    c = params.apply(cfg)
    book = draw_population(spec, c, seed=seed)  # traders post the margin the set asks for
    res = simulate(c, paths, book, seed=seed)
    ev = Evaluation(params, res.p_gap_bad_debt, res.p_insurance_exhausted,
                    float(res.bad_debt_total.mean()), capital_cost(c, book), False)
    ev.meets = (ev.p_gap_bad_debt <= targets.p_gap_bad_debt
                and ev.p_insurance_exhausted <= targets.p_insurance_exhausted)
    return ev, res


@dataclass
class Calibration:
    deployed: Evaluation
    recommended: Evaluation
    holdout_deployed: Evaluation
    holdout_recommended: Evaluation
    searched: list[Evaluation]
    es_margin: list[dict[str, Any]]
    targets: Targets
    fit_paths: int
    holdout_paths: int
    accounts: int
    holdout_results: dict[str, SimResult] = field(default_factory=dict)


_IM_GRID = (1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0)
_MM_GRID = (0.5, 0.65, 0.8)


def calibrate(
    cfg: SimConfig,
    spec: PopulationSpec,
    fit: PricePaths,
    holdout: PricePaths,
    targets: Targets | None = None,
    deployed: Params | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> Calibration:
    """Searches the margin parameters on ``fit`` and validates on ``holdout`` (see module)."""
    targets = targets or Targets()
    base = deployed or Params(mm_factor=cfg.markets[0].mm_factor,
                              penalty=cfg.liquidation.penalty, buffer=cfg.liquidation.buffer)
    say = progress or (lambda _msg: None)
    seen: dict[Params, Evaluation] = {}

    def ev(p: Params) -> Evaluation:
        if p not in seen:
            seen[p] = evaluate(cfg, p, spec, fit, targets, seed)[0]
            e = seen[p]
            say(f"im x{p.im_scale:g} mm {p.mm_factor:g} slope x{p.slope_scale:g} "
                f"penalty {p.penalty:g} buffer {p.buffer:g} vol {p.vol_response:g}@"
                f"{p.base_vol:g}: P(gap) {e.p_gap_bad_debt:.4%} P(ins) "
                f"{e.p_insurance_exhausted:.2%} cost {e.capital_cost:.4f}")
        return seen[p]

    def better(a: Evaluation, b: Evaluation | None) -> bool:
        if b is None:
            return True
        if a.meets != b.meets:
            return a.meets
        if a.meets:  # cheaper; at the same cost, clearly less bad debt (5%)
            if not math.isclose(a.capital_cost, b.capital_cost, rel_tol=1e-9):
                return a.capital_cost < b.capital_cost
            return a.bad_debt_mean_usd < 0.95 * b.bad_debt_mean_usd
        return (a.p_gap_bad_debt + a.p_insurance_exhausted, a.capital_cost) < (
            b.p_gap_bad_debt + b.p_insurance_exhausted, b.capital_cost)

    dep = ev(base)
    best: Evaluation | None = None
    for im in _IM_GRID:
        for mmf in _MM_GRID:
            e = ev(replace(base, im_scale=im, mm_factor=mmf))
            if better(e, best):
                best = e
            if e.meets:
                break  # a higher MM factor at this IM costs nothing more but only adds margin
    assert best is not None
    variants: list[dict[str, float]] = [
        {"buffer": 0.5}, {"penalty": 0.02}, {"slope_scale": 2.0},
        {"vol_response": 1.0, "base_vol": 0.5}, {"vol_response": 1.0, "base_vol": 1.0},
    ]
    for v in variants:
        cand = replace(best.params, **v)
        e = ev(cand)
        if better(e, best):
            best = e
        if e.meets:  # does it let IM come down a notch?
            lower = [x for x in _IM_GRID if x < cand.im_scale]
            if lower:
                e2 = ev(replace(cand, im_scale=lower[-1]))
                if better(e2, best):
                    best = e2
    say("held-out paths: deployed and recommended")
    hd, hres_d = evaluate(cfg, base, spec, holdout, targets, seed + 1)
    hr, hres_r = evaluate(cfg, best.params, spec, holdout, targets, seed + 1)
    return Calibration(
        deployed=dep, recommended=best, holdout_deployed=hd, holdout_recommended=hr,
        searched=list(seen.values()), es_margin=es_margin(cfg, fit, best.params),
        targets=targets, fit_paths=fit.n_paths, holdout_paths=holdout.n_paths,
        accounts=spec.n_accounts,
        holdout_results={"deployed": hres_d, "recommended": hres_r},
    )


def es_margin(cfg: SimConfig, paths: PricePaths, params: Params,
              confidence: float = 0.99) -> list[dict[str, Any]]:
    """Per market: the liquidation horizon (mean oracle update interval + keeper latency
    [s]), the EWMA vol of the paths (median over paths, annualized), ES(99%) of the loss over
    the horizon from that vol (normal) and from the paths' own horizon returns (empirical),
    beside the MM rate (small size) the parameter set gives."""
    dt = float(np.mean(np.diff(paths.times)))
    out = []
    for m in cfg.markets:
        a = cfg.assets[m.asset]
        px = paths.prices[:, :, m.asset]
        # mean oracle update interval: deviation crossings of the path, capped by the heartbeat
        r = np.abs(np.diff(np.log(px), axis=1))
        moves_per_step = float(np.mean(r)) / max(a.deviation, 1e-12)
        interval = min(a.heartbeat, dt / max(moves_per_step, dt / a.heartbeat))
        horizon = interval + cfg.keeper.latency_blocks * cfg.gas.block_time
        vol = ewma_vol(px.T, lam=0.94, periods_per_year=YEAR / dt, seed_returns=10)[-1]
        vol_med = float(np.nanmedian(vol))
        sig_h = vol_med * math.sqrt(horizon / YEAR)
        es_norm = float(normal_var_es(0.0, sig_h, confidence).es)
        k = max(1, int(round(horizon / dt)))
        lr = np.log(px[:, k:] / px[:, :-k]).ravel()
        es_emp = float(empirical_var_es(np.expm1(lr), confidence).es)
        mm_rate = min(m.im_base * params.im_scale, 1.0) * params.mm_factor
        out.append({"market": m.name, "horizon_s": round(horizon, 1), "ewma_vol": vol_med,
                    "es99_normal": es_norm, "es99_paths": es_emp, "mm_rate": mm_rate,
                    "im_rate": min(m.im_base * params.im_scale, 1.0)})
    return out


# ------------------------------------------------------------------------ admin calls


def market_tuples(cfg: SimConfig, params: Params) -> list[tuple[int, tuple[Any, ...]]]:
    """(market id, ``MarketConfig`` tuple) per market with the recommended rates; the other
    fields are ``plimsoll.deploy``'s defaults for the market of that name."""
    from plimsoll.deploy import DEFAULT_MARKETS

    by_name = {m.name: (i, m) for i, m in enumerate(DEFAULT_MARKETS)}
    out = []
    c = params.apply(cfg)
    for m in c.markets:
        if m.name not in by_name:
            raise SimInputError(f"market {m.name} is not one of the deployment's")
        i, spec = by_name[m.name]
        spec = replace(spec, im_base=_wad(m.im_base), mm_factor=_wad(m.mm_factor),
                       size_slope=_wad(m.size_slope))
        out.append((i, tuple(v if isinstance(v, bool) else int(v) for v in spec.as_tuple())))
    return out


def liquidation_tuple(cfg: SimConfig, params: Params) -> tuple[int, ...]:
    lc = params.apply(cfg).liquidation
    return (_wad(lc.penalty), _wad(lc.keeper_share), _wad(lc.buffer), _wad(lc.collateral_bonus),
            _wad(lc.reward_cap), _wad(lc.dust_notional), _wad(lc.reward_min))


def _wad(x: float) -> int:
    from decimal import Decimal

    # 12 decimals: 0.1 x 1.75 is 0.17500000000000002 in binary, 0.175 to an admin
    return int(Decimal(repr(round(float(x), 12))) * 10**18)


def admin_calls(cfg: SimConfig, params: Params, core: str, timelock: str | None = None,
                delay: int = 0, salt: bytes = b"\x00" * 32) -> list[dict[str, Any]]:
    """The recommendation as admin calls: target, function, args, calldata, and (with a
    timelock address) the ``schedule`` / ``execute`` calldata an admin sends to it."""
    from eth_abi import encode
    from web3 import Web3

    from plimsoll.client import load_abi

    w3 = Web3()
    c = w3.eth.contract(address=Web3.to_checksum_address(core), abi=load_abi("Plimsoll"))
    calls: list[tuple[str, tuple[Any, ...]]] = [
        ("configureMarket", (i, t)) for i, t in market_tuples(cfg, params)]
    calls.append(("setLiquidationConfig", (liquidation_tuple(cfg, params),)))
    out = []
    for name, args in calls:
        data = c.functions[name](*args)._encode_transaction_data()
        item: dict[str, Any] = {"target": c.address, "function": name,
                                "args": _jsonable(args), "calldata": data}
        if timelock:
            body = bytes.fromhex(data[2:])
            for fn, extra in (("schedule", [delay]), ("execute", [])):
                types = ["address", "uint256", "bytes", "bytes32", "bytes32"] + (
                    ["uint256"] if extra else [])
                sel = Web3.keccak(text=f"{fn}({','.join(types)})")[:4]
                enc = encode(types, [c.address, 0, body, b"\x00" * 32, salt, *extra])
                item[f"timelock_{fn}"] = {"to": Web3.to_checksum_address(timelock),
                                          "data": "0x" + (sel + enc).hex()}
        out.append(item)
    return out


def _jsonable(x: Any) -> Any:
    if isinstance(x, tuple | list):
        return [_jsonable(v) for v in x]
    if isinstance(x, int) and not isinstance(x, bool) and abs(x) > 2**53:
        return str(x)
    return x


def sdk_snippet(cfg: SimConfig, params: Params) -> str:
    """The same calls through ``plimsoll.timelock`` (Python)."""
    lines = [
        "from plimsoll.timelock import Timelock",
        "tl = Timelock(timelock_contract, admin, decoder)  # see plimsoll/timelock.py",
    ]
    for i, t in market_tuples(cfg, params):
        lines.append(f"salt = tl.schedule(core.functions.configureMarket({i}, {t}))")
    lc = liquidation_tuple(cfg, params)
    lines.append(f"salt = tl.schedule(core.functions.setLiquidationConfig({lc}))")
    lines.append("# after the timelock's delay: tl.execute(<same call>, salt) for each")
    return "\n".join(lines)


def risk_keeper_policy(params: Params) -> dict[str, Any]:
    """``keepers/risk.py`` TOML keys for the vol-scalar policy (response 0: do not run it)."""
    if params.vol_response <= 0:
        return {"run": False, "note": "the recommended set needs no vol-scalar response"}
    return {"run": True, "base_vol": params.base_vol, "lam": 0.94, "sample_seconds": 60.0,
            "threshold": 0.05}
