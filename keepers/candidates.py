"""The liquidation keeper's candidate selection: which liquidatable accounts to try, and how.

- An account with positions is liquidated with ``liquidate(owner, sub)``.
- An account left with cash debt and only collateral is liquidatable only once its equity
  (cash + collateral at its haircut value, collateral whose price is not graded OK counting
  nothing) is below zero: MM is 0 without positions. Its deficit is then known, and the
  contract books it either way:

  * ``liquidateCollateral(owner, sub, asset, repay)`` when some collateral can be sold (its
    price graded OK and above 0) and this keeper may buy (a key, cash approved): the keeper
    repays the debt and receives the most valuable sellable asset at the collateral bonus; the
    contract books what the rest cannot cover;
  * ``writeOff(owner, sub)`` otherwise, and as the fallback when the purchase would fail (the
    keeper's cash is short, the token refuses to move): the debt goes through the waterfall and
    the collateral to the protocol's recovery account.

Accounts already in flight or cooling down after a lost race this block are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
from eth_abi import encode as abi_encode
from eth_utils import keccak

from plimsoll.units import WAD

_SEL_LIQUIDATE = keccak(text="liquidate(address,uint256)")[:4]
_SEL_LIQ_COLLATERAL = keccak(text="liquidateCollateral(address,uint256,uint256,uint256)")[:4]
_SEL_WRITE_OFF = keccak(text="writeOff(address,uint256)")[:4]


class Action(Enum):
    LIQUIDATE = "liquidate"
    BUY_COLLATERAL = "liquidateCollateral"
    WRITE_OFF = "writeOff"


@dataclass(frozen=True)
class Candidate:
    key: tuple[str, int]
    calldata: str
    equity: int  # [wad USD] at the block read
    mm: int  # [wad USD]
    notional: int  # [wad USD] sum of |size| x mark
    action: Action
    legs: tuple[tuple[int, int], ...] = ()  # (size, mark) of each open perp position
    # writeOff's calldata when the collateral purchase would fail (BUY_COLLATERAL only)
    fallback: str | None = None
    # the collateral bonus the purchase earns [wad USD] (BUY_COLLATERAL only)
    bonus: int = 0

    @property
    def has_positions(self) -> bool:
        return self.action is Action.LIQUIDATE

    def as_write_off(self) -> Candidate:
        """The same account cleared by ``writeOff`` instead."""
        assert self.fallback is not None
        return Candidate(
            self.key, self.fallback, self.equity, self.mm, self.notional, Action.WRITE_OFF
        )


def legs(state: Any, row: int) -> list[tuple[int, int]]:
    """(size, mark price) of the account's open perp positions."""
    return [
        (int(s), int(p))
        for s, p in zip(state.sizes[row], state.market_price, strict=True)
        if int(s) != 0
    ]


def notional(state: Any, row: int) -> int:
    """Sum of |size| x mark price over the account's perp positions [wad USD]."""
    return int(
        sum(
            abs(int(s)) * int(p) // WAD
            for s, p in zip(state.sizes[row], state.market_price, strict=True)
        )
    )


def sellable_value(state: Any, row: int, col: int) -> int:
    """Oracle value [wad USD] of the account's balance of asset column ``col`` when it can be
    sold (price graded OK and above 0), else 0."""
    bal = int(state.balances[row][col])
    price = int(state.asset_price[col])
    ok = state.asset_price_ok is None or bool(state.asset_price_ok[col])
    if bal <= 0 or price <= 0 or not ok:
        return 0
    return int(bal * 10 ** (18 - int(state.asset_decimals[col])) * price // WAD)


def collateral_args(
    state: Any, row: int, bonus_rate: int = 0, cash_decimals: int = 6
) -> tuple[int, int, int] | None:
    """(asset id, repay amount [cash token units], bonus [wad USD]) for ``liquidateCollateral``
    of an account with cash debt and only collateral left: the sellable asset of the largest
    value, the whole debt offered (the contract takes what that asset covers). None when no
    collateral can be sold."""
    cash = int(state.cash[row])
    if cash >= 0:
        return None
    values = [sellable_value(state, row, c) for c in range(len(state.balances[row]))]
    if not values or max(values) == 0:
        return None
    col = max(range(len(values)), key=lambda c: values[c])
    debt = -cash
    unit = 10 ** (18 - cash_decimals)
    # What the purchase repays: the debt, or the asset's value less the bonus if that is less.
    repaid = min(debt, values[col] * WAD // (WAD + bonus_rate))
    return col + 1, (debt + unit - 1) // unit, repaid * bonus_rate // WAD


def build_candidates(
    state: Any,
    result: Any,
    rows: np.ndarray,
    block: int,
    inflight: dict[tuple[str, int], Any],
    cooldown: dict[tuple[str, int], int],
    collateral: bool,
    bonus_rate: int = 0,
    cash_decimals: int = 6,
) -> list[Candidate]:
    """The calls to try for the liquidatable rows ``rows``; ``collateral``: this keeper may
    buy collateral (else accounts without positions are written off)."""
    out: list[Candidate] = []
    for row in (int(r) for r in rows):
        key = (state.owners[row], int(state.subaccounts[row]))
        if key in inflight or cooldown.get(key, -1) >= block:
            continue
        equity, mm = int(result.equity[row]), int(result.mm[row])
        if any(int(x) != 0 for x in state.sizes[row]):
            data = _SEL_LIQUIDATE + abi_encode(["address", "uint256"], [key[0], key[1]])
            out.append(
                Candidate(
                    key,
                    "0x" + data.hex(),
                    equity,
                    mm,
                    notional(state, row),
                    Action.LIQUIDATE,
                    tuple(legs(state, row)),
                )
            )
            continue
        if int(state.cash[row]) >= 0 or equity >= 0:
            continue  # nothing owed, or the collateral still covers the debt
        write_off = (
            "0x" + (_SEL_WRITE_OFF + abi_encode(["address", "uint256"], [key[0], key[1]])).hex()
        )
        args = collateral_args(state, row, bonus_rate, cash_decimals) if collateral else None
        if args is None:
            out.append(Candidate(key, write_off, equity, mm, 0, Action.WRITE_OFF))
            continue
        data = _SEL_LIQ_COLLATERAL + abi_encode(
            ["address", "uint256", "uint256", "uint256"], [key[0], key[1], args[0], args[1]]
        )
        out.append(
            Candidate(
                key,
                "0x" + data.hex(),
                equity,
                mm,
                0,
                Action.BUY_COLLATERAL,
                fallback=write_off,
                bonus=args[2],
            )
        )
    return out
