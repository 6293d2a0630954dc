"""The liquidation keeper's profit rule: what a liquidation pays, what it costs, when to send.

Everything here is a pure function of numbers read from the chain, so that the rule lives in
one place with its tests:

- :func:`keeper_reward` is the contract's reward rule (``Liquidations._bookLiquidation``);
- :func:`close_fraction` is the contract's partial-liquidation share (``_closeFraction``) and
  :func:`closed_notional` what it closes (``_closePositions``);
- :func:`gas_cost_usd` prices a liquidation's gas from the chain's estimate, the fee market and
  the gas token's oracle price;
- :func:`decide` chooses: send for profit, send at a loss to protect the protocol (waiting
  risks bad debt), or skip;
- :class:`LossBudget` is the operator's own limit on gas spent at a loss per hour.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Any

WAD = 10**18
EPISODE = 3600  # a liquidation episode's length from the witness liquidation opening it [s]
EPISODE_UNIT = 10**12  # unit of the episode's booked penalty (getAccount) [wad USD]


def _mul_wad_up(a: int, b: int) -> int:
    return -(-a * b // WAD)


@dataclass(frozen=True)
class LiquidationParams:
    """``liquidationConfig()`` of the core, all wad."""

    penalty: int
    keeper_share: int
    buffer: int
    collateral_bonus: int
    reward_cap: int
    dust_notional: int
    reward_min: int

    @classmethod
    def from_chain(cls, t: Any) -> LiquidationParams:
        """From the tuple ``liquidationConfig()`` returns (struct order of IPlimsoll)."""
        return cls(*(int(x) for x in t[:7]))


def _reward_of(penalty: int, lc: LiquidationParams) -> int:
    """R(x) = min(max(x x keeperShare, keeperRewardMin), keeperRewardCap), the contract's
    ``Liquidations._reward``."""
    return min(max(penalty * lc.keeper_share // WAD, lc.reward_min), lc.reward_cap)


def open_episode(account: Any, now: int) -> int | None:
    """The penalty an open liquidation episode has booked [wad USD], from ``getAccount``'s
    tuple (fields 5 and 6: ``episodeStart``, ``episodePenalty``) at time ``now``; None when no
    episode is open (never opened, or over since ``EPISODE``)."""
    start, units = int(account[5]), int(account[6])
    return units * EPISODE_UNIT if now < start + EPISODE else None


def keeper_reward(
    equity: int, closed_notional: int, lc: LiquidationParams, episode: int | None = None
) -> int:
    """The keeper's reward of one liquidation [wad USD], exactly as the contract books it in
    ``Liquidations._liquidate`` / ``_bookLiquidation``::

        R(x)   = min(max(x x keeperShare, keeperRewardMin), keeperRewardCap)
        p      = closedNotional x penalty
        reward = R(p), or R(P + p) - R(P) within an open episode that booked P (``episode``)
        reward = min(reward, max(equity at liquidation, 0))

    (the penalty rounded up, the share down). An account at or below zero equity pays no
    reward. Within an episode (opened by a witness liquidation, issue 13 finding 6) the
    minimum and the cap are paid once. If the contract's rule changes, this function (and its
    test) is the one place to change."""
    full_penalty = _mul_wad_up(closed_notional, lc.penalty)
    if episode is None:
        reward = _reward_of(full_penalty, lc)
    else:
        reward = _reward_of(episode + full_penalty, lc) - _reward_of(episode, lc)
    return max(0, min(reward, equity))


def close_fraction(
    equity: int, mm: int, notional: int, lc: LiquidationParams, in_episode: bool = False
) -> int:
    """The share of every position a liquidation closes [wad], the contract's ``_closeFraction``:
    just enough to bring equity back to MM x (1 + buffer), everything when equity is gone
    (at or under the minimum reward) or the rest would be dust. ``notional``: of the
    positions carrying a requirement (perps, short options; long options count 0). Within an
    open episode (``in_episode``) no minimum reward is counted (none is paid again)."""
    reward_min = 0 if in_episode else lc.reward_min
    target = _mul_wad_up(mm, WAD + lc.buffer)
    penalty_cost = _mul_wad_up(notional, lc.penalty)
    if equity <= reward_min or target <= penalty_cost:
        return WAD
    f = -(-(target - equity) * WAD // (target - penalty_cost))
    f2 = -(-(target - (equity - reward_min)) * WAD // target)
    f = max(f, f2)
    if f >= WAD or notional * (WAD - f) // WAD < lc.dust_notional:
        return WAD
    return f


def closed_notional(legs: list[tuple[int, int]], fraction: int) -> int:
    """Notional a liquidation closes [wad USD], the contract's ``_closePositions``: per leg
    (size, mark) the closed size rounded away from zero, its notional rounded up."""
    total = 0
    for size, price in legs:
        close = abs(size) if fraction == WAD else -(-abs(size) * fraction // WAD)
        total += -(-close * price // WAD)
    return total


def expected_reward(
    equity: int,
    mm: int,
    notional: int,
    lc: LiquidationParams,
    legs: list[tuple[int, int]],
    episode: int | None = None,
) -> int:
    """The reward a liquidation of an account with this equity, MM, notional and perp legs
    ``(size, mark)`` pays now (``episode``: the open episode's penalty, :func:`open_episode`)."""
    f = close_fraction(equity, mm, notional, lc, episode is not None)
    return keeper_reward(equity, closed_notional(legs, f), lc, episode)


def gas_cost_usd(gas: int, gas_price_wei: int, gas_token_price: int) -> int:
    """The fee of ``gas`` units at ``gas_price_wei`` per unit, in wad USD at the gas token's
    price ``gas_token_price`` [wad USD per token of 18 decimals]."""
    return gas * gas_price_wei * gas_token_price // WAD


class Decision(Enum):
    PROFIT = "profit"  # the reward pays for the gas (and the operator's minimum profit)
    PROTECT = "protect"  # a loss for the keeper: waiting risks bad debt
    BAD_DEBT = "bad_debt"  # equity already below zero: clear it now
    SKIP = "skip"


def waiting_cost_usd(equity: int, notional: int, guard_move: int) -> int:
    """What waiting may cost the protocol [wad USD]: the bad debt a further adverse move of
    ``guard_move`` [wad] of the notional would leave (0 while equity covers it)."""
    return max(0, notional * guard_move // WAD - equity)


def decide(
    reward: int, gas_usd: int, equity: int, notional: int, guard_move: int, min_profit: int
) -> Decision:
    """Send or not (all wad USD).

    Underwater accounts are always cleared. Otherwise a liquidation is sent when it pays
    (``reward - gas >= min_profit``), or at a loss when waiting risks bad debt: a further move
    of ``guard_move`` of the notional would leave the account underwater
    (:func:`waiting_cost_usd` > 0). The keeper's loss is then not weighed against the size of
    that bad debt: the deficit of an open position grows with every further move and a gas
    spike must not turn a solvent account into bad debt. (A rule that sent only when the
    deficit after the guard move exceeded the keeper's loss skipped every small account in an
    800-gwei spike until it was underwater.) The operator's limit on such losses is the
    per-hour :class:`LossBudget`, applied by the caller."""
    if equity < 0:
        return Decision.BAD_DEBT
    net = reward - gas_usd
    if net >= min_profit:
        return Decision.PROFIT
    if waiting_cost_usd(equity, notional, guard_move) > 0:
        return Decision.PROTECT
    return Decision.SKIP


class LossBudget:
    """The operator's limit on what liquidations sent at a loss (gas over reward) may cost in
    any rolling hour [wad USD]; 0 disables loss-making sends, None means no limit."""

    def __init__(self, per_hour: int | None, clock: Any = time.monotonic) -> None:
        self.per_hour = per_hour
        self.clock = clock
        self._spent: deque[tuple[float, int]] = deque()

    def used(self) -> int:
        cutoff = self.clock() - 3600.0
        while self._spent and self._spent[0][0] < cutoff:
            self._spent.popleft()
        return sum(x for _, x in self._spent)

    def allows(self, loss: int) -> bool:
        return self.per_hour is None or loss <= 0 or self.used() + loss <= self.per_hour

    def spend(self, loss: int) -> None:
        if loss > 0:
            self._spent.append((self.clock(), loss))
