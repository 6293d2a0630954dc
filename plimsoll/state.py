"""A snapshot of everything standard margin depends on, read at one pinned block.

The chain reader (``plimsoll.sync``) fills a :class:`MarginState`; the off-chain margin mirror
(``plimsoll.margin``) computes every account's equity, IM, MM and liquidatable flag from it,
vectorized over accounts. All integers are the contract's own (see ``contracts/core/
MarginEngine.sol`` and ``contracts/interfaces/IPlimsoll.sol`` for units):

=====================  ===========  ==========================================================
field                  shape        unit
=====================  ===========  ==========================================================
owners                 N            checksum addresses
subaccounts            (N,)         subaccount ids
cash                   (N,)         [wad USD] signed
balances               (N, A)       token units; column i is asset id i + 1
sizes                  (N, M)       [wad] signed; column m is market id m
open_notional          (N, M)       [wad USD] signed
entry_funding_index    (N, M)       [wad USD per unit] signed
asset_decimals         (A,)         decimals
asset_haircut          (A,)         [wad]
asset_price            (A,)         [wad USD per token] collateral price at the block
                                    (``OracleRouter.collateralPrice``: 0 when not trusted)
market_price           (M,)         [wad USD per unit] oracle price at the block
im_base, mm_factor,    (M,)         [wad] market parameters (``MarketConfig``)
size_slope,
max_funding_rate
skew_scale             (M,)         [wad size]
long_oi, short_oi      (M,)         [wad size]
funding_index          (M,)         [wad] stored index (``MarketState.fundingIndex``)
last_funding_time      (M,)         [s]
im_scalar, mm_scalar   (M,)         [wad] volatility scalars now (``volScalars``); None: 1
market_price_ok,       (M,), (A,)   bool: the oracle grades the price OK; None: all OK. An
asset_price_ok                      account with a position whose price is not OK cannot be
                                    liquidated (collateral never gates it: it counts at its
                                    collateral price)
flags                  (N,)         ``Account.flags``: bit 0 options held, bit 1 portfolio
                                    margin (this mirror covers neither: ``plimsoll.pm`` does)
=====================  ===========  ==========================================================

Integer arrays use ``dtype=object`` (Python ints) wherever a value can exceed int64; the mirror
decides how to compute on them exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.object_]


@dataclass
class MarginState:
    block: int
    timestamp: int
    owners: list[str]
    subaccounts: npt.NDArray[np.int64]
    cash: IntArray
    balances: IntArray
    sizes: IntArray
    open_notional: IntArray
    entry_funding_index: IntArray
    asset_decimals: npt.NDArray[np.int64]
    asset_haircut: IntArray
    asset_price: IntArray
    market_price: IntArray
    im_base: IntArray
    mm_factor: IntArray
    size_slope: IntArray
    max_funding_rate: IntArray
    skew_scale: IntArray
    long_oi: IntArray
    short_oi: IntArray
    funding_index: IntArray
    last_funding_time: IntArray
    im_scalar: IntArray | None = None
    mm_scalar: IntArray | None = None
    market_price_ok: npt.NDArray[np.bool_] | None = None
    asset_price_ok: npt.NDArray[np.bool_] | None = None
    flags: npt.NDArray[np.int64] | None = None

    @property
    def n_accounts(self) -> int:
        return len(self.owners)

    @property
    def n_assets(self) -> int:
        return int(self.asset_decimals.shape[0])

    @property
    def n_markets(self) -> int:
        return int(self.market_price.shape[0])
