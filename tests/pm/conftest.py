"""Random option books for the portfolio-margin tests (seeded numpy, no chain)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plimsoll.pm import WAD, MarketData, OptionBook, OptionsConfig, PortfolioConfig, Series

DAY = 86_400
NOW = 1_767_225_600


def w(x: float) -> int:
    """A float as wad (rounded to an integer)."""
    return int(round(x * WAD))


OCFG = OptionsConfig(0, True, w(0.01), w(0.0005), w(0.15), w(0.10), w(0.7), w(0.8))
PCFG = PortfolioConfig(
    w(0.18), 9, w(0.3), w(0.3), w(0.5), w(2.0), w(0.05), w(0.005), w(0.01), w(1.2)
)
ETH = MarketData(spot=(w(2000),), iv=(w(0.8),), timestamp=NOW)


def call(k: float, days: float = 30, m: int = 0) -> Series:
    return Series(m, True, NOW + int(days * DAY), w(k))


def put(k: float, days: float = 30, m: int = 0) -> Series:
    return Series(m, False, NOW + int(days * DAY), w(k))


@dataclass
class RandomBook:
    book: OptionBook
    market: MarketData


def random_book(seed: int, n_accounts: int = 120, n_markets: int = 3) -> RandomBook:
    """Accounts with 0..8 option positions over several markets and expiries, and perps.

    Expiries include expired-and-settled, expired-unsettled, expiring now, under 30 days,
    exactly 30 days and longer; sizes are signed, some perps are 0.
    """
    rng = np.random.default_rng(seed)
    spots = rng.uniform(5.0, 60_000.0, n_markets)
    market = MarketData(
        spot=tuple(w(s) for s in spots),
        iv=tuple(w(v) for v in rng.uniform(0.0, 2.0, n_markets)),
        timestamp=NOW,
        im_scalar=tuple(w(v) for v in rng.uniform(0.8, 2.0, n_markets)),
        mm_scalar=tuple(w(v) for v in rng.uniform(0.8, 2.5, n_markets)),
    )
    offsets = [-10 * DAY, -1, 0, 3600, 3 * DAY, 7.5 * DAY, 30 * DAY, 31 * DAY, 200 * DAY]
    table: list[Series] = []
    for _ in range(40):
        m = int(rng.integers(n_markets))
        off = int(rng.choice(offsets)) + int(rng.integers(0, 2)) * int(rng.integers(1, 5000))
        strike = spots[m] * float(rng.choice([0.5, 0.8, 0.95, 1.0, 1.05, 1.3, 2.0]))
        settled = off <= 0 and rng.random() < 0.5
        settle = w(spots[m] * rng.uniform(0.7, 1.3)) if settled else 0
        table.append(Series(m, bool(rng.random() < 0.5), NOW + off, w(strike), settle))
    accounts = []
    for _ in range(n_accounts):
        k = int(rng.integers(0, 9))
        accounts.append(
            [(table[int(rng.integers(len(table)))], w(rng.normal(0, 3))) for _ in range(k)]
        )
    perps = np.where(
        rng.random((n_accounts, n_markets)) < 0.4, rng.normal(0, 5, (n_accounts, n_markets)), 0.0
    )
    perp_w = [[w(x) for x in row] for row in perps]
    eq = [w(x) for x in rng.normal(1000, 5000, n_accounts)]
    return RandomBook(OptionBook.from_positions(accounts, perp_w, eq), market)


def single(positions: list[tuple[Series, int]], perp: int = 0, equity: int = 0) -> OptionBook:
    """A one-account, one-market book."""
    return OptionBook.from_positions([positions], [[perp]], [equity])
