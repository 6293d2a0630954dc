"""Keepers and traders, vectorized over any leading axes (paths x accounts).

The keeper's rule is ``keepers/profit.py`` in float64 (``tests/sim`` checks it against the
integer functions there): the contract's partial close fraction, its reward, and the keeper's
decision to send (profit, protect, bad debt) or skip.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from plimsoll.sim.model import KeeperSpec, LiquidationSpec, TraderSpec

F = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
I8 = npt.NDArray[np.int8]

# trader actions
NOTHING, TOP_UP, REDUCE = 0, 1, 2


def close_fraction(equity: F, mm: F, notional: F, lc: LiquidationSpec) -> F:
    """``Liquidations._closeFraction``: the share closed to bring equity back to
    MM x (1 + buffer) after the penalty; 1 when equity is at or under the minimum reward,
    when the target is within the penalty, or when the rest would be dust."""
    target = mm * (1.0 + lc.buffer)
    pen = notional * lc.penalty
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.maximum((target - equity) / (target - pen), (target - (equity - lc.reward_min))
                       / target)
    full = (equity <= lc.reward_min) | (target <= pen) | ~(f < 1.0)
    full |= notional * (1.0 - np.where(full, 1.0, f)) < lc.dust_notional
    return np.where(full, 1.0, np.clip(f, 0.0, 1.0))


def keeper_reward(equity: F, closed_notional: F, lc: LiquidationSpec) -> F:
    """``Liquidations._bookLiquidation``'s reward: min(max(closed x penalty x share, min),
    cap), at most the equity left (0 when underwater)."""
    r = np.minimum(np.maximum(closed_notional * lc.penalty * lc.keeper_share, lc.reward_min),
                   lc.reward_cap)
    return np.maximum(0.0, np.minimum(r, equity))


def penalty_paid(equity: F, closed_notional: F, lc: LiquidationSpec) -> tuple[F, F]:
    """(penalty, reward) [USD] the account pays: reward + min(rest of the full penalty,
    equity left after the reward); the insurance fund gets penalty - reward."""
    reward = keeper_reward(equity, closed_notional, lc)
    left = np.maximum(equity, 0.0) - reward
    full = closed_notional * lc.penalty
    return reward + np.minimum(np.maximum(full - reward, 0.0), left), reward


def keeper_sends(
    equity: F, notional: F, reward: F, gas_usd: F | float, spec: KeeperSpec
) -> B:
    """``keepers.profit.decide`` != SKIP: underwater, or the reward pays the gas (and the
    minimum profit), or a further ``guard_move`` would leave bad debt (protect)."""
    return (equity < 0) | (reward - gas_usd >= spec.min_profit) | (
        notional * spec.guard_move - equity > 0
    )


def gas_cost_usd(base_fee_gwei: F | float, spec: KeeperSpec, priority_gwei: float) -> F:
    """A liquidation's fee [USD]: gas x (base fee + tip) at the gas token's price."""
    return np.asarray(
        spec.gas_per_liquidation * (np.asarray(base_fee_gwei) + priority_gwei) * 1e-9
        * spec.gas_token_price
    )


def draw_trader_actions(rng: np.random.Generator, shape: tuple[int, ...], spec: TraderSpec) -> I8:
    """What each trader newly in margin call will do: NOTHING, TOP_UP or REDUCE."""
    u = rng.random(shape)
    out = np.full(shape, NOTHING, dtype=np.int8)
    out[u < spec.p_topup] = TOP_UP
    out[(u >= spec.p_topup) & (u < spec.p_topup + spec.p_reduce)] = REDUCE
    return out
