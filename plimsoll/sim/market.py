"""External markets with depth, Chainlink-rule oracles and the EIP-1559 gas market.

Every function is vectorized over leading axes (paths, ...) with the asset axis last, so the
fast engine calls them on (P, A) arrays and the chain engine on (1, A) or (A,) arrays through
:class:`MarketDriver` - the same rules in both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from plimsoll.sim.model import AssetSpec, GasSpec, SimConfig, SimInputError

F = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


def _vec(assets: tuple[AssetSpec, ...], attr: str) -> F:
    return np.array([float(getattr(a, attr)) for a in assets])


def sqrt_impact(traded_usd: npt.ArrayLike, assets: tuple[AssetSpec, ...]) -> F:
    """Log price move [-] of trading ``traded_usd`` (last axis = assets; > 0 buys, < 0 sells)
    within one step: ``sign(q) x impact_k x sigma_daily x sqrt(|q| / daily_volume)``.

    Monotone in |q|, odd in q, zero at q = 0, concave: twice the size moves the price
    sqrt(2) times as far."""
    q = np.asarray(traded_usd, dtype=np.float64)
    k = _vec(assets, "impact_k") * _vec(assets, "sigma_daily")
    return np.sign(q) * k * np.sqrt(np.abs(q) / _vec(assets, "daily_volume"))


def impact_decay_factor(assets: tuple[AssetSpec, ...], dt: float) -> F:
    """Multiplier of the accumulated log impact after ``dt`` seconds of relaxation."""
    return (1.0 - _vec(assets, "impact_decay")) ** (dt / 3600.0)


def oracle_update(
    posted: F, posted_at: F, market: F, now: float, assets: tuple[AssetSpec, ...]
) -> tuple[F, F, B]:
    """Chainlink's rule at time ``now`` [s]: a feed posts the market price where
    ``|market / posted - 1| >= deviation`` or ``now - posted_at >= heartbeat``.

    Returns the new (posted, posted_at, updated) arrays (inputs are not modified)."""
    dev = np.abs(market / posted - 1.0) >= _vec(assets, "deviation") - 1e-15
    beat = (now - posted_at) >= _vec(assets, "heartbeat")
    upd = dev | beat
    return np.where(upd, market, posted), np.where(upd, now, posted_at), upd


def next_base_fee(base_fee: F | float, used_share: F | float, blocks: int, gas: GasSpec) -> F:
    """EIP-1559 base fee [gwei] after ``blocks`` blocks each filled to ``used_share`` of the
    gas limit (target = half): x (1 + (2 u - 1) / 8) per block, at least ``min_base_fee``;
    full blocks raise it to ``gas.fee_cap`` at most (elastic demand there)."""
    u = np.clip(np.asarray(used_share, dtype=np.float64), 0.0, 1.0)
    fee = np.asarray(base_fee, dtype=np.float64)
    new = fee * (1.0 + (2.0 * u - 1.0) / 8.0) ** blocks
    # congestion stops at the cap (demand is elastic there); a fee above it only falls
    new = np.where(u > 0.5, np.minimum(new, np.maximum(fee, gas.fee_cap)), new)
    out: F = np.maximum(new, gas.min_base_fee)
    return out


def keeper_capacity(external_share: F, blocks: int, cfg: SimConfig) -> npt.NDArray[np.int64]:
    """Liquidations keepers can land in ``blocks`` blocks when others fill ``external_share``
    of each block: min(max_per_block, free gas / gas per liquidation) per block, where in a
    spike the keepers' tip wins them at least ``keeper_bid_share`` of the block."""
    share = np.maximum(1.0 - external_share, np.where(
        external_share > cfg.gas.demand, cfg.gas.keeper_bid_share, 0.0))  # outbid in a spike
    free = np.floor(share * cfg.gas.gas_limit / cfg.keeper.gas_per_liquidation)
    per_block = np.minimum(free, cfg.keeper.max_per_block)
    return (per_block * blocks).astype(np.int64)


@dataclass
class BlockInputs:
    """What the chain engine applies before a block: the external market prices (with
    feedback), the oracle answers to post (asset index -> USD price; empty: no update), the
    gas market and the timestamp."""

    step: int
    timestamp: float
    market_price: F  # (A,) [USD]
    fundamental_price: F  # (A,) [USD] the path without feedback
    oracle_updates: dict[int, float]
    base_fee: float  # [gwei]
    external_share: float  # share of the block others fill


@dataclass
class MarketDriver:
    """One path's external world, advanced step by step (the chain engine's entry point).

    ``times`` (T+1,) [s] and ``fundamental`` (T+1, A) [USD] are one path of
    :class:`plimsoll.sim.paths.PricePaths`. Call :meth:`advance` once per step with the USD the
    protocol side traded on the external market during the previous step (keepers selling
    seized collateral: negative; the pool hedger: either sign); it returns the prices and the
    oracle answers to post. The fast engine runs the same functions on all paths at once.
    """

    cfg: SimConfig
    times: F
    fundamental: F
    seed: int = 0
    step: int = 0
    log_impact: F = field(init=False)
    posted: F = field(init=False)
    posted_at: F = field(init=False)
    base_fee: float = field(init=False)
    spike_until: float = field(init=False, default=-1.0)

    def __post_init__(self) -> None:
        if self.fundamental.ndim != 2 or self.fundamental.shape[1] != len(self.cfg.assets):
            raise SimInputError("fundamental prices must be (steps + 1, assets)")
        self.log_impact = np.zeros(len(self.cfg.assets))
        self.posted = self.fundamental[0].copy()
        self.posted_at = np.full(len(self.cfg.assets), float(self.times[0]))
        self.base_fee = self.cfg.gas.base_fee
        self._rng = np.random.default_rng(self.seed)

    @property
    def n_steps(self) -> int:
        return int(self.times.shape[0]) - 1

    def advance(self, traded_usd: npt.ArrayLike | None = None) -> BlockInputs:
        """Moves to the next step: impact of ``traded_usd`` (A,) [USD], decay, the path's
        fundamental move, the oracle rule and the gas market."""
        if self.step >= self.n_steps:
            raise SimInputError(f"the path has {self.n_steps} steps; no step {self.step + 1}")
        a = self.cfg.assets
        t0, t1 = float(self.times[self.step]), float(self.times[self.step + 1])
        self.step += 1
        q = np.zeros(len(a)) if traded_usd is None else np.asarray(traded_usd, dtype=float)
        self.log_impact = self.log_impact * impact_decay_factor(a, t1 - t0) + sqrt_impact(q, a)
        fund = self.fundamental[self.step]
        market = fund * np.exp(self.log_impact)
        posted, at, upd = oracle_update(self.posted, self.posted_at, market, t1, a)
        self.posted, self.posted_at = posted, at
        move = float(np.max(np.abs(np.log(fund / self.fundamental[self.step - 1]))))
        start = spike_starts(self._rng, move, t1 - t0, self.cfg.gas)
        spike = start or t1 <= self.spike_until
        if start:
            self.spike_until = max(self.spike_until, t1 + self.cfg.gas.spike_seconds)
        share = float(external_share(np.array([spike]), np.array([self.base_fee]),
                                     self.cfg.gas)[0])
        blocks = self.cfg.blocks_per(t1 - t0)
        self.base_fee = float(next_base_fee(self.base_fee, share, blocks, self.cfg.gas))
        return BlockInputs(
            step=self.step,
            timestamp=t1,
            market_price=market,
            fundamental_price=fund.copy(),
            oracle_updates={int(i): float(market[i]) for i in np.flatnonzero(upd)},
            base_fee=self.base_fee,
            external_share=share,
        )


def external_share(spike: B, base_fee: F, gas: GasSpec) -> F:
    """Share of a block others fill: ``spike_demand`` in a spike while the base fee is under
    ``fee_cap`` (at the cap: the target, 1/2); in calm times ``demand`` x min(1,
    sqrt(initial base fee / base fee)), so that a fee a spike left high decays again."""
    calm = gas.demand * np.minimum(1.0, np.sqrt(gas.base_fee / np.maximum(base_fee, 1e-9)))
    hot = np.where(base_fee < gas.fee_cap, gas.spike_demand, min(gas.spike_demand, 0.5))
    out: F = np.where(spike, hot, calm)
    return out


def spike_starts(rng: np.random.Generator, move: float, dt: float, gas: GasSpec) -> bool:
    """Does a gas-demand spike start in a step of ``dt`` seconds whose largest |log move| is
    ``move``: a crash step, or a Poisson arrival at ``spikes_per_day``."""
    p = 1.0 - math.exp(-gas.spikes_per_day * dt / 86_400.0)
    return bool(move >= gas.spike_on_move or rng.random() < p)
