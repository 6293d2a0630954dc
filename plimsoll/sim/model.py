"""The simulator's parameters: one typed, frozen description of a world both engines run.

Units (human, float64 throughout the simulator): prices [USD per unit], sizes [units of the
underlying], cash and values [USD], fractions as plain floats (0.05 = 5%), times [s], gas [gas
units], gas prices [gwei]. :mod:`plimsoll.sim.calibrate` converts to the contract's wad integers
where an admin call needs them.

The defaults mirror ``plimsoll.deploy`` (markets, haircuts, feeds, insurance) and the core's
constructor (``LiquidationConfig``), so ``SimConfig()`` is "today's deployment"; the one
addition is a stablecoin collateral asset (USDS, haircut 0.95) for the depeg scenario.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from plimsoll.errors import PlimsollError


class SimInputError(PlimsollError, ValueError):
    """A simulator parameter, path or population is outside its domain (the message says which
    and what is allowed)."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise SimInputError(msg)


@dataclass(frozen=True)
class AssetSpec:
    """A price process (one external market and one oracle feed).

    Market depth (square-root impact): selling ``q`` USD within one step moves the price by
    ``-impact_k x sigma_daily x sqrt(q / daily_volume)`` (log return), the classic
    square-root law (Almgren et al. 2005, Bouchaud 2010); buying moves it up symmetrically.
    A share ``impact_decay`` of the accumulated impact relaxes per hour (transient impact: 0
    keeps it forever, 1 forgets it within the hour).

    Oracle (Chainlink's rule): the feed posts the market price when it deviates from the last
    posted answer by ``deviation`` or more, or when ``heartbeat`` seconds have passed since the
    last post.
    """

    name: str
    price: float  # [USD] starting price
    daily_volume: float  # [USD] average daily traded volume on the external market
    sigma_daily: float  # daily volatility used by the impact rule
    impact_k: float = 1.0  # square-root law prefactor (Y in the literature, ~0.5-1)
    impact_decay: float = 0.2  # share of accumulated impact relaxing per hour
    deviation: float = 0.005  # oracle deviation threshold
    heartbeat: float = 3600.0  # [s] oracle heartbeat

    def __post_init__(self) -> None:
        _check(self.price > 0, f"asset {self.name}: price must be > 0 USD, got {self.price}")
        _check(self.daily_volume > 0, f"asset {self.name}: daily_volume must be > 0 USD")
        _check(self.sigma_daily >= 0 and self.impact_k >= 0, f"asset {self.name}: negative impact")
        _check(0 <= self.impact_decay <= 1, f"asset {self.name}: impact_decay must be in [0, 1]")
        _check(0 <= self.deviation < 1, f"asset {self.name}: deviation must be in [0, 1)")
        _check(self.heartbeat > 0, f"asset {self.name}: heartbeat must be > 0 s")


@dataclass(frozen=True)
class MarketSpec:
    """A perpetual market (``MarketConfig``): IM rate = min(im_base + |size| x size_slope, 1),
    MM = notional x min(rate x sMm, 1) x mm_factor, IM = notional x min(rate x sIm, 1)."""

    name: str
    asset: int  # index into SimConfig.assets
    im_base: float = 0.1
    mm_factor: float = 0.5
    size_slope: float = 0.00002  # IM rate per unit of size
    taker_fee: float = 0.0005  # of the traded notional, paid to the pool (a trader's reduce)

    def __post_init__(self) -> None:
        _check(0 < self.im_base <= 1, f"market {self.name}: im_base must be in (0, 1]")
        _check(0 <= self.taker_fee < 1, f"market {self.name}: taker_fee must be in [0, 1)")
        _check(0 < self.mm_factor <= 1, f"market {self.name}: mm_factor must be in (0, 1]")
        _check(self.size_slope >= 0, f"market {self.name}: size_slope must be >= 0")


@dataclass(frozen=True)
class CollateralSpec:
    """A collateral asset, counted at ``balance x oracle price x haircut``."""

    symbol: str
    asset: int  # index into SimConfig.assets
    haircut: float
    decimals: int = 18

    def __post_init__(self) -> None:
        _check(0 < self.haircut <= 1, f"collateral {self.symbol}: haircut must be in (0, 1]")


@dataclass(frozen=True)
class LiquidationSpec:
    """The core's ``LiquidationConfig`` (constructor defaults), in USD and fractions."""

    penalty: float = 0.01
    keeper_share: float = 0.5
    buffer: float = 0.25
    collateral_bonus: float = 0.05
    reward_cap: float = 100.0  # [USD]
    dust_notional: float = 1_000.0  # [USD]
    reward_min: float = 5.0  # [USD]

    def __post_init__(self) -> None:
        _check(0 <= self.penalty < 1, "liquidation penalty must be in [0, 1)")
        _check(0 <= self.keeper_share <= 1, "keeper_share must be in [0, 1]")
        _check(self.buffer >= 0, "liquidation buffer must be >= 0")
        _check(0 <= self.collateral_bonus < 1, "collateral_bonus must be in [0, 1)")


@dataclass(frozen=True)
class VolScalarPolicy:
    """What the risk keeper (``keepers/risk.py``) does with the volatility scalars: it samples
    each market's oracle every ``sample_seconds``, feeds RiskMetrics EWMA (``ewma_lambda`` per
    sample) and targets sIm = sMm = vol / ``base_vol``; ``response`` blends that in,
    1 + response x (vol / base_vol - 1) (the keeper is response 1; 0 means no risk keeper,
    today's default), clipped to the contract's ``RiskLimits``: [floor, cap], at most
    ``max_step`` relative change per update; IM follows at once, MM ramps in over ``ramp``."""

    response: float = 0.0
    base_vol: float = 0.5  # keepers/risk.py default
    floor: float = 0.5
    cap: float = 4.0
    max_step: float = 0.5
    ewma_lambda: float = 0.94
    sample_seconds: float = 60.0
    ramp: float = 3600.0  # [s]

    def __post_init__(self) -> None:
        _check(self.response >= 0, "vol-scalar response must be >= 0")
        _check(self.base_vol > 0, "vol-scalar base_vol must be > 0")
        _check(0 < self.floor <= 1 <= self.cap, "vol-scalar floor <= 1 <= cap")


@dataclass(frozen=True)
class KeeperSpec:
    """Liquidation keepers: they see an account ``latency_blocks`` after it became liquidatable
    at the oracle, send at most ``max_per_block`` liquidations per block within the block space
    the gas market leaves them, and follow ``keepers/profit.py``'s rule (send for profit, at a
    loss to protect the protocol when a ``guard_move`` would leave bad debt, always when
    underwater). With ``buy_recovered`` they also buy the collateral a deficit forfeits to the
    recovery account (``keepers/recovery_pass.py``) when the bonus discount beats the gas of
    ``recovery_gas``, at most ``recovery_max_usd_per_block`` of cash per block."""

    latency_blocks: int = 2
    max_per_block: int = 20
    gas_per_liquidation: int = 250_000
    min_profit: float = 0.0  # [USD]
    guard_move: float = 0.05
    gas_token_price: float = 2000.0  # [USD per ETH] for gas costs
    # the recovery pass (keepers/recovery_pass.py): buy the recovered collateral back
    buy_recovered: bool = True
    recovery_gas: int = 125_000  # one buyRecovered (124,075 measured on anvil)
    recovery_max_usd_per_block: float = 250_000.0  # [USD] the keeper's default spend cap

    def __post_init__(self) -> None:
        _check(self.latency_blocks >= 0, "keeper latency must be >= 0 blocks")
        _check(self.max_per_block >= 1, "keeper capacity must be >= 1 liquidation per block")
        _check(self.gas_per_liquidation > 0, "gas_per_liquidation must be > 0")


@dataclass(frozen=True)
class GasSpec:
    """EIP-1559: base fee x (1 + (used - target) / target / 8) per block, target = limit / 2.
    External demand fills ``demand`` of every block, and ``spike_demand`` during spikes, which
    start at random, ``spikes_per_day`` on average (Poisson), and in every step where the path
    moves by ``spike_on_move`` or more (a crash is when everyone transacts); each lasts
    ``spike_seconds``. Demand is elastic at
    ``fee_cap``: once the base fee reaches it, others fill blocks only to the target, so the
    base fee holds there (and keepers find room again). In a spike keepers pay
    ``spike_priority_fee`` and win up to ``keeper_bid_share`` of each block from the others
    (block space goes to the highest tips)."""

    block_time: float = 12.0  # [s]
    gas_limit: int = 30_000_000
    base_fee: float = 20.0  # [gwei] at the start
    min_base_fee: float = 1.0  # [gwei]
    priority_fee: float = 2.0  # [gwei]
    demand: float = 0.5  # share of the block others fill in calm times
    spike_demand: float = 0.98
    spikes_per_day: float = 3.0
    spike_seconds: float = 900.0  # [s]
    spike_on_move: float = 0.03  # a |log move| of the step above this starts a spike
    fee_cap: float = 500.0  # [gwei] others stop bidding above it: blocks return to the target
    spike_priority_fee: float = 50.0  # [gwei] the tip that wins block space in a spike
    keeper_bid_share: float = 0.25  # share of a spiking block keepers win with that tip

    def __post_init__(self) -> None:
        _check(self.block_time > 0 and self.gas_limit > 0, "block time and gas limit must be > 0")
        _check(0 <= self.demand <= 1 and 0 <= self.spike_demand <= 1, "demand in [0, 1]")
        _check(self.spikes_per_day >= 0 and self.spike_seconds >= 0, "spikes must be >= 0")


@dataclass(frozen=True)
class TraderSpec:
    """Traders in margin call (equity below ``call_level`` x MM at the oracle, the notifier's
    warning): after ``delay`` seconds each tops up (``topup_fraction`` of its IM - equity
    shortfall, in cash) with ``p_topup``, reduces every position by ``reduce_fraction`` with
    ``p_reduce``, or does nothing (the rest)."""

    p_topup: float = 0.2
    p_reduce: float = 0.2
    delay: float = 1800.0  # [s]
    call_level: float = 1.25
    topup_fraction: float = 1.0
    reduce_fraction: float = 0.5

    def __post_init__(self) -> None:
        _check(
            0 <= self.p_topup and 0 <= self.p_reduce and self.p_topup + self.p_reduce <= 1,
            "trader probabilities must be >= 0 and sum to <= 1",
        )
        _check(self.delay >= 0, "trader delay must be >= 0 s")


@dataclass(frozen=True)
class FeedbackSpec:
    """Liquidation feedback into the external markets: keepers sell the collateral they buy
    (``sell_collateral``, within ``sell_steps`` steps); the optional pool hedger keeps
    ``hedge_ratio`` of the pool's net delta hedged on the external market (so liquidations of
    longs make it sell). All off: the price path is exogenous."""

    sell_collateral: bool = True
    hedger: bool = False
    hedge_ratio: float = 1.0
    sell_steps: int = 1

    @property
    def enabled(self) -> bool:
        return self.sell_collateral or self.hedger


def _default_assets() -> tuple[AssetSpec, ...]:
    return (
        # daily volume of the on-chain venue keepers sell into within the block (a DEX pool),
        # not the asset's global volume
        AssetSpec("ETH", 2000.0, daily_volume=3.0e7, sigma_daily=0.045),
        AssetSpec("BTC", 60000.0, daily_volume=1.5e7, sigma_daily=0.035),
        AssetSpec("SOL", 150.0, daily_volume=1.0e7, sigma_daily=0.06),
        AssetSpec("USDS", 1.0, daily_volume=2.0e7, sigma_daily=0.002, deviation=0.0025,
                  heartbeat=86400.0),
    )


def _default_markets() -> tuple[MarketSpec, ...]:
    # plimsoll.deploy.DEFAULT_MARKETS
    return (
        MarketSpec("ETH-PERP", 0),
        MarketSpec("BTC-PERP", 1, size_slope=0.0005),
        MarketSpec("SOL-PERP", 2, im_base=0.2, size_slope=0.000001),
    )


def _default_collateral() -> tuple[CollateralSpec, ...]:
    # plimsoll.deploy.DEFAULT_ASSETS + a stablecoin for the depeg scenario
    return (
        CollateralSpec("WETH", 0, 0.8, 18),
        CollateralSpec("WBTC", 1, 0.75, 8),
        CollateralSpec("USDS", 3, 0.95, 18),
    )


@dataclass(frozen=True)
class SimConfig:
    """Everything but the price path and the population."""

    assets: tuple[AssetSpec, ...] = field(default_factory=_default_assets)
    markets: tuple[MarketSpec, ...] = field(default_factory=_default_markets)
    collateral: tuple[CollateralSpec, ...] = field(default_factory=_default_collateral)
    liquidation: LiquidationSpec = field(default_factory=LiquidationSpec)
    vol_policy: VolScalarPolicy = field(default_factory=VolScalarPolicy)
    keeper: KeeperSpec = field(default_factory=KeeperSpec)
    gas: GasSpec = field(default_factory=GasSpec)
    traders: TraderSpec = field(default_factory=TraderSpec)
    feedback: FeedbackSpec = field(default_factory=FeedbackSpec)
    insurance: float = 100_000.0  # [USD] plimsoll.deploy default
    pool_liquidity: float = 10_000_000.0  # [USD] plimsoll.deploy default

    def __post_init__(self) -> None:
        na = len(self.assets)
        _check(na > 0 and len(self.markets) > 0, "a world needs at least one asset and market")
        for m in self.markets:
            _check(0 <= m.asset < na, f"market {m.name}: asset index {m.asset} out of range")
        for c in self.collateral:
            _check(0 <= c.asset < na, f"collateral {c.symbol}: asset index out of range")
        _check(self.insurance >= 0 and self.pool_liquidity > 0, "insurance >= 0, pool > 0 USD")

    @property
    def asset_names(self) -> list[str]:
        return [a.name for a in self.assets]

    def with_margin(
        self,
        im_scale: float = 1.0,
        mm_factor: float | None = None,
        slope_scale: float = 1.0,
        penalty: float | None = None,
        buffer: float | None = None,
        vol_response: float | None = None,
        base_vol: float | None = None,
    ) -> SimConfig:
        """A copy with the margin parameters changed (the calibration's search space)."""
        markets = tuple(
            replace(
                m,
                im_base=min(1.0, m.im_base * im_scale),
                mm_factor=m.mm_factor if mm_factor is None else mm_factor,
                size_slope=m.size_slope * slope_scale,
            )
            for m in self.markets
        )
        liq = replace(
            self.liquidation,
            penalty=self.liquidation.penalty if penalty is None else penalty,
            buffer=self.liquidation.buffer if buffer is None else buffer,
        )
        vp = replace(
            self.vol_policy,
            response=self.vol_policy.response if vol_response is None else vol_response,
            base_vol=self.vol_policy.base_vol if base_vol is None else base_vol,
        )
        return replace(self, markets=markets, liquidation=liq, vol_policy=vp)

    def blocks_per(self, seconds: float) -> int:
        """Whole blocks in ``seconds`` (at least 1)."""
        return max(1, int(math.floor(seconds / self.gas.block_time + 1e-9)))
