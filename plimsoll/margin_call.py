"""Margin calls: accounts with MM <= equity < IM, and how far prices may move before liquidation.

An account in the margin-call zone may not add risk but cannot yet be liquidated; its owner
should add collateral or reduce. :func:`margin_calls` finds every such account in a
:class:`~plimsoll.state.MarginState` (vectorized) and describes each with a
:class:`MarginCallNotice`: equity, IM, MM, the shortfall to IM and the price move that would
make it liquidatable. The notifier keeper (``keepers/notifier.py``) and the SDK
(``PlimsollClient.margin_call``) both use it, so a wallet and the keeper say the same thing.

The price move
--------------
Every price the account uses (its markets and its collateral) is moved by the same factor
(1 + x). Equity is linear in x: E(x) = E + x D, with D the account's net exposure, D =
sum(size x price) + sum(collateral value) [wad USD]; MM is proportional to prices (its rates
depend on sizes only): MM(x) = MM (1 + x). The account becomes liquidatable at E(x) = MM(x),
x = (MM - E) / (D - MM): negative (a fall) for a net long, positive (a rise) for a net short;
none when D = MM (no uniform move reaches it). Float64 is enough: the notice is advice; the
contract decides. Liquidation prices are each market's price x (1 + x).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from plimsoll.margin import MarginResult
from plimsoll.state import MarginState

WAD = 10**18


@dataclass(frozen=True)
class MarginCallNotice:
    """One account in the margin-call zone at one block (USD values [wad] as ints)."""

    owner: str
    subaccount: int
    block: int
    timestamp: int
    equity: int
    initial_margin: int
    maintenance_margin: int
    move_to_liquidation: float | None  # uniform relative price move, e.g. -0.07 = a 7% fall
    liquidation_prices: dict[int, float]  # market id -> price [USD] after that move
    symbols: dict[int, str] = field(default_factory=dict)  # market id -> symbol ("ETH-PERP")

    @property
    def id(self) -> str:
        """Stable id of this notice (one per account and block): receivers of at-least-once
        deliveries (a retried webhook) drop repeats by it."""
        return f"{self.owner}:{self.subaccount}:{self.block}"

    @property
    def shortfall(self) -> int:
        """IM - equity [wad USD]: what the account must add (or free) to leave the zone."""
        return self.initial_margin - self.equity

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "margin_call",
            "id": self.id,
            "owner": self.owner,
            "subaccount": self.subaccount,
            "block": self.block,
            "timestamp": self.timestamp,
            "equity": self.equity / WAD,
            "initial_margin": self.initial_margin / WAD,
            "maintenance_margin": self.maintenance_margin / WAD,
            "shortfall": self.shortfall / WAD,
            "move_to_liquidation": (
                None if self.move_to_liquidation is None else round(self.move_to_liquidation, 6)
            ),
            # By market symbol (the id where the deployment names none).
            "liquidation_prices": {
                self.symbols.get(k, str(k)): round(v, 6) for k, v in self.liquidation_prices.items()
            },
        }


def with_contract_margins(
    result: MarginResult, rows: npt.NDArray[np.int64], margins: list[tuple[int, int, int]]
) -> MarginResult:
    """``result`` with (equity, IM, MM) of ``rows`` replaced by the contract's own
    ``accountMargin`` (accounts holding options or in portfolio margin, which the perps
    mirror does not cover)."""
    eq, im, mm = result.equity.copy(), result.im.copy(), result.mm.copy()
    liq = result.liquidatable.copy()
    for r, (e, i, m) in zip(rows, margins, strict=True):
        eq[r], im[r], mm[r] = int(e), int(i), int(m)
        liq[r] = int(e) < int(m)
    return MarginResult(
        result.block,
        result.timestamp,
        eq,
        im,
        mm,
        liq,
        result.health,
        result.priced,
        result.funding_index,
    )


def in_margin_call(result: MarginResult) -> npt.NDArray[np.bool_]:
    """Per account: priced, MM <= equity < IM (and IM > 0)."""
    eq = np.array([int(v) for v in result.equity], dtype=object)
    im = np.array([int(v) for v in result.im], dtype=object)
    mm = np.array([int(v) for v in result.mm], dtype=object)
    if eq.size == 0:
        return np.zeros(0, dtype=bool)
    zone = (mm <= eq) & (eq < im) & (im > 0)
    return np.asarray(zone, dtype=bool) & result.priced


def _exposure(state: MarginState, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """D per row [USD, float]: sum(size x price) + sum(balance x price x haircut)."""
    price = np.array([int(p) for p in state.market_price], dtype=np.float64) / WAD
    sizes = np.asarray(state.sizes[rows], dtype=np.float64) / WAD  # (n, M)
    d = sizes @ price if state.n_markets else np.zeros(len(rows))
    if state.n_assets:
        dec = np.asarray(state.asset_decimals, dtype=np.float64)
        aprice = np.array([int(p) for p in state.asset_price], dtype=np.float64) / WAD
        hair = np.array([int(h) for h in state.asset_haircut], dtype=np.float64) / WAD
        bal = np.asarray(state.balances[rows], dtype=np.float64) / 10.0**dec
        d = d + bal @ (aprice * hair)
    return np.asarray(d, dtype=np.float64)


def liquidation_moves(
    state: MarginState, result: MarginResult, rows: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """The uniform relative price move x that makes each row liquidatable (NaN: none).

    See the module notes: x = (MM - E) / (D - MM); moves at or below -100% are NaN.
    """
    e = np.array([int(result.equity[i]) for i in rows], dtype=np.float64) / WAD
    mm = np.array([int(result.mm[i]) for i in rows], dtype=np.float64) / WAD
    d = _exposure(state, rows)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = (mm - e) / (d - mm)
    x = np.where(np.isfinite(x) & (x > -1.0), x, np.nan)
    return np.asarray(x, dtype=np.float64)


def margin_calls(
    state: MarginState, result: MarginResult, symbols: dict[int, str] | None = None
) -> list[MarginCallNotice]:
    """A notice for every account of ``state`` in the margin-call zone, in snapshot order;
    ``symbols`` (market id -> symbol) names the markets in the notices.

    Accounts holding options (``state.flags``) get no price move: their value is not linear
    in the price (``move_to_liquidation`` None)."""
    rows = np.flatnonzero(in_margin_call(result)).astype(np.int64)
    if len(rows) == 0:
        return []
    moves = liquidation_moves(state, result, rows)
    if state.flags is not None:
        moves = np.where(np.asarray(state.flags)[rows] != 0, np.nan, moves)
    price = [int(p) / WAD for p in state.market_price]
    out = []
    for row, x in zip(rows, moves, strict=True):
        r = int(row)
        move = None if np.isnan(x) else float(x)
        liq = {
            m: price[m] * (1.0 + move)
            for m in range(state.n_markets)
            if move is not None and int(state.sizes[r, m]) != 0
        }
        out.append(
            MarginCallNotice(
                owner=state.owners[r],
                subaccount=int(state.subaccounts[r]),
                block=int(state.block),
                timestamp=int(state.timestamp),
                equity=int(result.equity[r]),
                initial_margin=int(result.im[r]),
                maintenance_margin=int(result.mm[r]),
                move_to_liquidation=move,
                liquidation_prices=liq,
                symbols={m: symbols[m] for m in liq if m in symbols} if symbols else {},
            )
        )
    return out
