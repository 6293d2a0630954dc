"""The liquidation keeper's candidate selection: which liquidatable accounts to try, and how.

An account with positions is liquidated with ``liquidate(owner, sub)``; one left with cash debt
and only collateral with ``liquidateCollateral(owner, sub, asset, repay)`` (the keeper buys the
collateral at a discount). Accounts already in flight or cooling down after a lost race this
block are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from eth_abi import encode as abi_encode
from eth_utils import keccak

from plimsoll.units import WAD

_SEL_LIQUIDATE = keccak(text="liquidate(address,uint256)")[:4]
_SEL_LIQ_COLLATERAL = keccak(text="liquidateCollateral(address,uint256,uint256,uint256)")[:4]


@dataclass(frozen=True)
class Candidate:
    key: tuple[str, int]
    calldata: str
    equity: int  # [wad USD] at the block read
    mm: int  # [wad USD]
    notional: int  # [wad USD] sum of |size| x mark
    has_positions: bool
    legs: tuple[tuple[int, int], ...] = ()  # (size, mark) of each open perp position


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


def collateral_args(state: Any, row: int) -> tuple[int, int] | None:
    """(asset id, repay amount) for liquidateCollateral of an account with cash debt and
    only collateral left; None when there is nothing to buy."""
    cash = int(state.cash[row])
    if cash >= 0:
        return None
    for col, bal in enumerate(state.balances[row]):
        if int(bal) > 0:
            debt = -cash
            return col + 1, (debt + 10**12 - 1) // 10**12  # debt in USDC units, rounded up
    return None


def build_candidates(
    state: Any,
    result: Any,
    rows: np.ndarray,
    block: int,
    inflight: dict[tuple[str, int], Any],
    cooldown: dict[tuple[str, int], int],
    collateral: bool,
) -> list[Candidate]:
    out: list[Candidate] = []
    for row in (int(r) for r in rows):
        key = (state.owners[row], int(state.subaccounts[row]))
        if key in inflight or cooldown.get(key, -1) >= block:
            continue
        has_positions = any(int(x) != 0 for x in state.sizes[row])
        if has_positions:
            data = _SEL_LIQUIDATE + abi_encode(["address", "uint256"], [key[0], key[1]])
        elif collateral:
            args = collateral_args(state, row)
            if args is None:
                continue
            data = _SEL_LIQ_COLLATERAL + abi_encode(
                ["address", "uint256", "uint256", "uint256"], [key[0], key[1], *args]
            )
        else:
            continue
        out.append(
            Candidate(
                key,
                "0x" + data.hex(),
                int(result.equity[row]),
                int(result.mm[row]),
                notional(state, row),
                has_positions,
                tuple(legs(state, row)),
            )
        )
    return out
