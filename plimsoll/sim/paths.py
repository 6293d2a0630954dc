"""Price paths: a scenario library of crash shapes, Monte Carlo generators and a CSV loader.

A :class:`PricePaths` holds the *fundamental* prices (what the external market would trade at
without the protocol's own feedback) of every asset of a :class:`~plimsoll.sim.model.SimConfig`
on a common time grid, for one or many paths, and a per-step liquidity multiplier (market depth
relative to normal: 0.2 = an illiquid hour).

The shapes are this project's constructions, "historically shaped", not replays:

* ``black_thursday``: one day, -40% on ETH (-35% BTC, -45% SOL) with a -15% hour holding a -7%
  five-minute candle, as on 12 March 2020, in thin markets during the fall;
* ``slow_grind``: -30% over seven days with daily bounces;
* ``wick``: -25% in ten minutes and back to -5% within two hours;
* ``gap_down``: a -20% gap in one step at the open of an illiquid hour (depth x 0.2);
* ``depeg``: the stablecoin collateral (USDS) slides to 0.85 USD over six hours, then back
  to 0.97, with ETH -10%.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from plimsoll.sim.model import SimConfig, SimInputError

F = npt.NDArray[np.float64]
HOUR = 3600.0
DAY = 86_400.0


@dataclass(frozen=True)
class PricePaths:
    """times (T+1,) [s from the start], prices (P, T+1, A) [USD], liquidity (T+1,) [x normal
    depth], asset names (A,)."""

    times: F
    prices: F
    assets: tuple[str, ...]
    liquidity: F
    name: str = "paths"

    def __post_init__(self) -> None:
        p = self.prices
        if p.ndim != 3 or p.shape[1] != self.times.shape[0] or p.shape[2] != len(self.assets):
            raise SimInputError(
                f"prices must be (paths, {self.times.shape[0]} times, {len(self.assets)} assets),"
                f" got {p.shape}"
            )
        if p.shape[1] < 2:
            raise SimInputError("a path needs at least two times")
        if not np.all(np.isfinite(p)) or np.any(p <= 0):
            raise SimInputError("every price must be finite and > 0 USD")
        if np.any(np.diff(self.times) <= 0):
            raise SimInputError("times must increase strictly")
        if self.liquidity.shape != self.times.shape or np.any(self.liquidity <= 0):
            raise SimInputError("liquidity must be > 0 at every time")

    @property
    def n_paths(self) -> int:
        return int(self.prices.shape[0])

    @property
    def n_steps(self) -> int:
        return int(self.times.shape[0]) - 1

    def path(self, i: int) -> PricePaths:
        return PricePaths(self.times, self.prices[i : i + 1], self.assets, self.liquidity,
                          f"{self.name}[{i}]")

    def subset(self, idx: npt.ArrayLike) -> PricePaths:
        return PricePaths(self.times, self.prices[np.asarray(idx)], self.assets, self.liquidity,
                          self.name)


def _grid(duration: float, n_steps: int) -> F:
    if n_steps < 1:
        raise SimInputError(f"n_steps must be >= 1, got {n_steps}")
    return np.linspace(0.0, duration, n_steps + 1)


def _from_log_moves(cfg: SimConfig, t: F, logp: F, liq: F, name: str) -> PricePaths:
    """logp (T+1, A) log price relative to the start -> PricePaths with one path."""
    p0 = np.array([a.price for a in cfg.assets])
    prices = (p0 * np.exp(logp))[None]
    return PricePaths(t, prices, tuple(cfg.asset_names), liq, name)


def _drops(cfg: SimConfig, eth: float, btc: float, sol: float, stable: float = 0.0) -> F:
    by_name = {"ETH": eth, "BTC": btc, "SOL": sol, "USDS": stable}
    return np.array([by_name.get(a.name, eth) for a in cfg.assets])


def _moves(cfg: SimConfig, t: F, shape: F, drops: F, vol_daily: float, seed: int) -> F:
    """Log moves per asset: the scenario's ``shape`` scaled by each asset's ``drops``, plus
    noise of ``vol_daily`` on the assets that move (drop 0: a stablecoin stays put)."""
    return shape[:, None] * drops + _noise(t, len(cfg.assets), vol_daily, seed) * (drops > 0)


def _noise(t: F, n_assets: int, vol_daily: float, seed: int) -> F:
    rng = np.random.default_rng(seed)
    dt = np.diff(t) / DAY
    inc = rng.standard_normal((t.size - 1, n_assets)) * vol_daily * np.sqrt(dt)[:, None]
    w = np.vstack([np.zeros(n_assets), np.cumsum(inc, axis=0)])
    # a bridge: noise that starts and ends at 0, so the shape's endpoints are exact
    out: F = w - (t / t[-1])[:, None] * w[-1]
    return out


def black_thursday(cfg: SimConfig, n_steps: int = 288, seed: int = 0) -> PricePaths:
    """One day: -40% (ETH) with -15% of it in one hour (hours 13-14), thin depth in the fall."""
    t = _grid(DAY, n_steps)
    h = t / HOUR
    total = math.log(0.60)
    hour_drop = math.log(0.85)
    # piecewise-linear in log price: steady slide, the crash hour, more slide, a small bounce
    knots_h = np.array([0, 6, 13, 14, 20, 24])
    knots_f = np.array([0, 0.15, 0.45, 0.45, 1.10, 1.0])  # share of the non-hour drop
    rest = total - hour_drop
    # the crash hour: -7% in one candle (at 13:20), the rest of its -15% spread over the hour
    candle = math.log(0.93)
    at = t[np.searchsorted(h, 13 + 1 / 3)] / HOUR
    shape = np.interp(h, knots_h, knots_f) * rest + np.where(
        h >= 14, hour_drop, np.where(h >= 13, (h - 13) * (hour_drop - candle), 0.0)
    ) + np.where((h >= at) & (h < 14), candle, 0.0)
    drops = _drops(cfg, 1.0, 0.875, 1.1, 0.0)
    logp = _moves(cfg, t, shape, drops, 0.02, seed)
    liq = np.where((h >= 12) & (h < 16), 0.3, np.where((h >= 6) & (h < 20), 0.6, 1.0))
    return _from_log_moves(cfg, t, logp, liq, "black_thursday")


def slow_grind(cfg: SimConfig, n_steps: int = 168, seed: int = 0) -> PricePaths:
    """Seven days, -30% with daily bounces."""
    t = _grid(7 * DAY, n_steps)
    d = t / DAY
    shape = math.log(0.70) * d / 7 + 0.03 * np.sin(2 * math.pi * d) * (1 - d / 7)
    drops = _drops(cfg, 1.0, 0.8, 1.2)
    logp = _moves(cfg, t, shape, drops, 0.02, seed)
    return _from_log_moves(cfg, t, logp, np.ones_like(t), "slow_grind")


def wick(cfg: SimConfig, n_steps: int = 144, seed: int = 0) -> PricePaths:
    """One day: -25% within ten minutes at hour 8, back to -5% by hour 10."""
    t = _grid(DAY, n_steps)
    h = t / HOUR
    shape = np.interp(h, [0, 8, 8 + 1 / 6, 10, 24],
                      [0, 0, math.log(0.75), math.log(0.95), math.log(0.95)])
    drops = _drops(cfg, 1.0, 0.7, 1.2)
    logp = _moves(cfg, t, shape, drops, 0.01, seed)
    liq = np.where((h >= 8) & (h < 9), 0.4, 1.0)
    return _from_log_moves(cfg, t, logp, liq, "wick")


def gap_down(cfg: SimConfig, n_steps: int = 96, seed: int = 0) -> PricePaths:
    """One day: a -20% gap in one step at hour 3 (an illiquid hour: depth x 0.2 until 5)."""
    t = _grid(DAY, n_steps)
    h = t / HOUR
    gap_at = t[np.searchsorted(h, 3.0)] / HOUR
    shape = np.where(h >= gap_at, math.log(0.80), 0.0)
    drops = _drops(cfg, 1.0, 0.8, 1.1)
    logp = _moves(cfg, t, shape, drops, 0.015, seed)
    liq = np.where((h >= 2.5) & (h < 5), 0.2, 1.0)
    return _from_log_moves(cfg, t, logp, liq, "gap_down")


def depeg(cfg: SimConfig, n_steps: int = 96, seed: int = 0) -> PricePaths:
    """One day: USDS to 0.85 over six hours, back to 0.97 by hour 24; ETH -10%."""
    t = _grid(DAY, n_steps)
    h = t / HOUR
    stable = np.interp(h, [0, 2, 8, 24], [0, 0, math.log(0.85), math.log(0.97)])
    risky = np.interp(h, [0, 2, 8, 24], [0, 0, math.log(0.90), math.log(0.92)])
    logp = np.zeros((t.size, len(cfg.assets)))
    noise = _noise(t, len(cfg.assets), 0.015, seed)
    for i, a in enumerate(cfg.assets):
        logp[:, i] = stable if a.name == "USDS" else risky + noise[:, i]
    return _from_log_moves(cfg, t, logp, np.ones_like(t), "depeg")


SCENARIOS: dict[str, Callable[..., PricePaths]] = {
    "black_thursday": black_thursday,
    "slow_grind": slow_grind,
    "wick": wick,
    "gap_down": gap_down,
    "depeg": depeg,
}


def scenario(name: str, cfg: SimConfig, n_steps: int | None = None, seed: int = 0) -> PricePaths:
    """A library path by name (see :data:`SCENARIOS`)."""
    if name not in SCENARIOS:
        raise SimInputError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")
    fn = SCENARIOS[name]
    return fn(cfg, seed=seed) if n_steps is None else fn(cfg, n_steps=n_steps, seed=seed)


# ------------------------------------------------------------------------ Monte Carlo


def default_correlation(cfg: SimConfig) -> F:
    """0.8 between risky assets, 0.1 between a risky asset and the stablecoin."""
    stable = np.array([a.sigma_daily < 0.01 for a in cfg.assets])
    c = np.where(stable[:, None] | stable[None, :], 0.1, 0.8)
    np.fill_diagonal(c, 1.0)
    return c


def _cholesky(corr: F, n: int) -> F:
    c = np.asarray(corr, dtype=float)
    if c.shape != (n, n) or not np.allclose(c, c.T):
        raise SimInputError(f"correlation must be a symmetric {n}x{n} matrix")
    try:
        return np.linalg.cholesky(c)
    except np.linalg.LinAlgError as e:
        raise SimInputError("correlation matrix is not positive definite") from e


def _t_shocks(rng: np.random.Generator, shape: tuple[int, int, int], chol: F, nu: float) -> F:
    """Correlated Student-t shocks with unit variance: (P, T, A)."""
    z = rng.standard_normal(shape) @ chol.T
    if math.isinf(nu):
        return z
    if nu <= 2:
        raise SimInputError(f"Student-t degrees of freedom must be > 2, got {nu}")
    w = rng.chisquare(nu, size=shape[:2] + (1,)) / nu
    return z / np.sqrt(w) * math.sqrt((nu - 2) / nu)


def jump_diffusion(
    cfg: SimConfig,
    n_paths: int,
    n_steps: int = 100,
    duration: float = DAY,
    vol: float | F = 0.9,
    jump_rate: float = 1.0,
    jump_mean: float = -0.05,
    jump_std: float = 0.05,
    corr: F | None = None,
    seed: int = 0,
) -> PricePaths:
    """Merton jump-diffusion, correlated: log return per step = -vol^2 dt / 2 + vol sqrt(dt) z
    + jumps, with ``jump_rate`` jumps per day (common to all risky assets, scaled by each
    asset's daily sigma relative to ETH's) of N(jump_mean, jump_std) size. ``vol`` is
    annualized (per asset or one for all risky assets; the stablecoin keeps its own)."""
    if n_paths < 1:
        raise SimInputError("n_paths must be >= 1")
    na = len(cfg.assets)
    rng = np.random.default_rng(seed)
    t = _grid(duration, n_steps)
    dt_y = duration / n_steps / (365 * DAY)
    sig = _annual_vol(cfg, vol)
    z = rng.standard_normal((n_paths, n_steps, na)) @ _cholesky(
        default_correlation(cfg) if corr is None else corr, na).T
    lr = -0.5 * sig**2 * dt_y + sig * math.sqrt(dt_y) * z
    n_j = rng.poisson(jump_rate * duration / DAY / n_steps, size=(n_paths, n_steps, 1))
    j = n_j * jump_mean + np.sqrt(n_j) * jump_std * rng.standard_normal((n_paths, n_steps, 1))
    lr = lr + j * _jump_scale(cfg)
    return _assemble(cfg, t, lr, "jump_diffusion")


def garch(
    cfg: SimConfig,
    n_paths: int,
    n_steps: int = 100,
    duration: float = DAY,
    vol: float | F = 0.9,
    alpha: float = 0.12,
    beta: float = 0.85,
    nu: float = 4.0,
    drift: float = 0.0,
    corr: F | None = None,
    seed: int = 0,
) -> PricePaths:
    """GARCH(1,1) with Student-t(``nu``) shocks, correlated across assets:
    h_t = omega + alpha r_{t-1}^2 + beta h_{t-1}, omega set so that the long-run variance is
    (vol^2 x dt). ``drift`` is the annualized log drift (negative for a bear market)."""
    if n_paths < 1:
        raise SimInputError("n_paths must be >= 1")
    if alpha < 0 or beta < 0 or alpha + beta >= 1:
        raise SimInputError("GARCH needs alpha, beta >= 0 and alpha + beta < 1")
    na = len(cfg.assets)
    rng = np.random.default_rng(seed)
    t = _grid(duration, n_steps)
    dt_y = duration / n_steps / (365 * DAY)
    var_lr = (_annual_vol(cfg, vol) ** 2) * dt_y
    omega = var_lr * (1 - alpha - beta)
    eps = _t_shocks(rng, (n_paths, n_steps, na), _cholesky(
        default_correlation(cfg) if corr is None else corr, na), nu)
    h = np.broadcast_to(var_lr, (n_paths, na)).copy()
    lr = np.empty((n_paths, n_steps, na))
    for k in range(n_steps):
        r = np.sqrt(h) * eps[:, k]
        lr[:, k] = r - 0.5 * h + drift * dt_y
        h = omega + alpha * r**2 + beta * h
    return _assemble(cfg, t, lr, "garch")


def _annual_vol(cfg: SimConfig, vol: float | F) -> F:
    risky = np.array([a.sigma_daily >= 0.01 for a in cfg.assets])
    own = np.array([a.sigma_daily * math.sqrt(365) for a in cfg.assets])
    v = np.broadcast_to(np.asarray(vol, dtype=float), (len(cfg.assets),))
    return np.where(risky, v * own / own[0] if own[0] > 0 else v, own)


def _jump_scale(cfg: SimConfig) -> F:
    s = np.array([a.sigma_daily for a in cfg.assets])
    return np.where(s >= 0.01, s / s[0], 0.0)


def _assemble(cfg: SimConfig, t: F, lr: F, name: str) -> PricePaths:
    p0 = np.array([a.price for a in cfg.assets])
    logp = np.concatenate([np.zeros(lr.shape[:1] + (1,) + lr.shape[2:]),
                           np.cumsum(lr, axis=1)], axis=1)
    return PricePaths(t, p0 * np.exp(logp), tuple(cfg.asset_names), np.ones_like(t), name)


# ------------------------------------------------------------------------ CSV


def load_csv(path: str | Path, cfg: SimConfig) -> PricePaths:
    """One path from ``timestamp,asset,price`` rows (a header row is optional; timestamps in
    seconds, any order). Prices are carried forward between an asset's rows; an asset of
    ``cfg`` absent from the file keeps its configured price; every asset in the file must be
    one of ``cfg``'s."""
    p = Path(path)
    if not p.is_file():
        raise SimInputError(f"price file {p} not found")
    names = cfg.asset_names
    rows: list[tuple[float, int, float]] = []
    with p.open(newline="") as fh:
        for n, row in enumerate(csv.reader(fh), start=1):
            if not row or row[0].strip().startswith("#"):
                continue
            if n == 1 and row[0].strip().lower() == "timestamp":
                continue
            if len(row) != 3:
                raise SimInputError(f"{p}:{n}: expected timestamp,asset,price, got {row}")
            try:
                ts, price = float(row[0]), float(row[2])
            except ValueError as e:
                raise SimInputError(f"{p}:{n}: timestamp and price must be numbers") from e
            asset = row[1].strip()
            if asset not in names:
                raise SimInputError(f"{p}:{n}: unknown asset {asset!r}; known: {', '.join(names)}")
            if not (price > 0 and math.isfinite(price)):
                raise SimInputError(f"{p}:{n}: price must be > 0 USD, got {row[2]}")
            rows.append((ts, names.index(asset), price))
    if not rows:
        raise SimInputError(f"{p}: no price rows")
    times = np.array(sorted({r[0] for r in rows}))
    if times.size < 2:
        raise SimInputError(f"{p}: need at least two distinct timestamps")
    prices = np.full((times.size, len(names)), np.nan)
    for ts, a, price in rows:
        prices[np.searchsorted(times, ts), a] = price
    for a in range(len(names)):
        col = prices[:, a]
        seen = np.flatnonzero(~np.isnan(col))
        if seen.size == 0:
            col[:] = cfg.assets[a].price
            continue
        idx = np.maximum.accumulate(np.where(~np.isnan(col), np.arange(col.size), 0))
        idx[: seen[0]] = seen[0]
        prices[:, a] = col[idx]
    return PricePaths(times - times[0], prices[None], tuple(names), np.ones_like(times), p.stem)
