"""The price screen (plimsoll.book) finds exactly the exact mirror's liquidatable set.

Random books (3 perps, 2 collateral assets, sizes from dust to huge, funding pending), random
price moves (including a price at 0 and one not graded OK), and accounts placed exactly at the
threshold (equity == MM: not liquidatable) and one wei below it (liquidatable) at the moved
prices: the accounts the screen sends to the mirror and the mirror confirms are the mirror's
liquidatable set over the whole book, and every account the screen clears on its own is
beyond its error bound.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plimsoll.book import AccountBook
from plimsoll.margin import compute_margin
from plimsoll.state import MarginState

WAD = 10**18


def _obj(values: list[int], shape: tuple[int, ...]) -> Any:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr.reshape(shape)


def _book(rng: random.Random, n: int) -> MarginState:
    nm, na = 3, 2

    def size() -> int:
        kind = rng.random()
        if kind < 0.3:
            return 0
        mag = rng.choice([1, 10**6, 10**15, 10**18, 10**20, 10**24])
        return rng.choice([-1, 1]) * rng.randint(1, 50) * mag

    sizes = [size() for _ in range(n * nm)]
    price = [rng.randint(1, 10**5) * 10**16 for _ in range(nm)]
    on = [
        s * p // WAD + rng.randint(-(10**20), 10**20) for s, p in zip(sizes, price * n, strict=True)
    ]
    on = [0 if s == 0 else v for s, v in zip(sizes, on, strict=True)]
    entry = [rng.randint(-(10**17), 10**17) if s else 0 for s in sizes]
    return MarginState(
        block=100,
        timestamp=10_000,
        owners=[f"0x{i + 1:040x}" for i in range(n)],
        subaccounts=np.array([rng.randint(0, 3) for _ in range(n)], dtype=np.int64),
        cash=_obj([rng.randint(-(10**23), 10**23) for _ in range(n)], (n,)),
        balances=_obj(
            [
                rng.choice([0, rng.randint(1, 10**12), rng.randint(1, 10**24)])
                for _ in range(n * na)
            ],
            (n, na),
        ),
        sizes=_obj(sizes, (n, nm)),
        open_notional=_obj(on, (n, nm)),
        entry_funding_index=_obj(entry, (n, nm)),
        asset_decimals=np.array([6, 18], dtype=np.int64),
        asset_haircut=_obj([rng.randint(5 * 10**17, WAD), rng.randint(5 * 10**17, WAD)], (na,)),
        asset_price=_obj([WAD, rng.randint(1, 5000) * WAD], (na,)),
        market_price=_obj(price, (nm,)),
        im_base=_obj([rng.randint(10**16, 2 * 10**17) for _ in range(nm)], (nm,)),
        mm_factor=_obj([rng.randint(3 * 10**17, 8 * 10**17) for _ in range(nm)], (nm,)),
        size_slope=_obj([rng.choice([0, rng.randint(1, 10**15)]) for _ in range(nm)], (nm,)),
        max_funding_rate=_obj([rng.randint(0, 10**17) for _ in range(nm)], (nm,)),
        skew_scale=_obj([rng.randint(10**20, 10**24) for _ in range(nm)], (nm,)),
        long_oi=_obj([rng.randint(0, 10**24) for _ in range(nm)], (nm,)),
        short_oi=_obj([rng.randint(0, 10**24) for _ in range(nm)], (nm,)),
        funding_index=_obj([rng.randint(-(10**17), 10**17) for _ in range(nm)], (nm,)),
        last_funding_time=_obj([rng.randint(5_000, 10_000) for _ in range(nm)], (nm,)),
        im_scalar=_obj([rng.randint(WAD, 3 * WAD) for _ in range(nm)], (nm,)),
        mm_scalar=_obj([rng.randint(WAD, 3 * WAD) for _ in range(nm)], (nm,)),
        market_price_ok=np.ones(nm, dtype=bool),
        asset_price_ok=np.ones(na, dtype=bool),
        flags=np.zeros(n, dtype=np.int64),
    )


def _move(rng: random.Random, s: MarginState, broken: bool) -> MarginState:
    """Prices after a move of up to +-30% (one market at 0 or not graded OK if ``broken``)."""
    price = [max(1, int(p) * rng.randint(700, 1300) // 1000) for p in s.market_price]
    ok = np.ones(s.n_markets, dtype=bool)
    if broken:
        m = rng.randrange(s.n_markets)
        if rng.random() < 0.5:
            price[m] = 0
        else:
            ok[m] = False
    aprice = [max(0, int(p) * rng.randint(800, 1200) // 1000) for p in s.asset_price]
    return replace(
        s,
        block=s.block + 1,
        timestamp=s.timestamp + rng.randint(1, 3600),
        market_price=_obj(price, (s.n_markets,)),
        market_price_ok=ok,
        asset_price=_obj(aprice, (s.n_assets,)),
    )


def _at_threshold(s: MarginState, rows: list[int], offset: list[int]) -> MarginState:
    """Cash of ``rows`` set so that equity == MM + offset exactly at ``s``'s prices."""
    res = compute_margin(s)
    cash = np.array(s.cash, dtype=object)
    for r, off in zip(rows, offset, strict=True):
        cash[r] = int(cash[r]) + int(res.mm[r]) - int(res.equity[r]) + off
    return replace(s, cash=cash)


def _screened_set(book: AccountBook) -> tuple[set[int], np.ndarray]:
    sc = book.screen()
    rows, _state, result = book.exact_candidates(sc)
    got = {int(r) for r, ok in zip(rows, result.liquidatable & result.priced, strict=True) if ok}
    return got, sc


def _check(seed: int, n: int, broken: bool) -> None:
    rng = random.Random(seed)
    before = _book(rng, n)
    after = _move(rng, before, broken)
    k = min(n, 4)
    after = _at_threshold(after, list(range(k)), [0, -1, 1, 0][:k])
    book = AccountBook(3, 2)
    book.write(before)
    book.set_markets(before)
    # The accounts' rows change (the threshold set-up) as a block's logs would say.
    book.write(after)
    book.set_markets(after)
    exact = compute_margin(after)
    want = {i for i in range(n) if exact.liquidatable[i] and exact.priced[i]}
    got, sc = _screened_set(book)
    assert got == want
    # Every account the screen decided alone is beyond its bound, on the mirror's side.
    gap = np.array(
        [(int(e) - int(m)) / WAD for e, m in zip(exact.equity, exact.mm, strict=True)]
    )  # [USD]
    decided = ~sc.ambiguous
    assert (np.abs(gap - sc.gap)[decided] <= sc.bound[decided]).all()
    if k >= 2:
        assert 0 not in got and (not exact.priced[1] or 1 in got)


def test_screen_equals_mirror_at_threshold_example() -> None:
    _check(seed=7, n=60, broken=False)


def test_screen_equals_mirror_with_a_broken_feed_example() -> None:
    _check(seed=11, n=60, broken=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40), broken=st.booleans())
def test_screen_equals_mirror_hypothesis(seed: int, n: int, broken: bool) -> None:
    _check(seed, n, broken)


def test_reconciliation_diff_finds_a_changed_row_and_rollback_marks_touched() -> None:
    rng = random.Random(3)
    s = _book(rng, 10)
    book = AccountBook(3, 2)
    book.write(s)
    book.set_markets(s)
    book.applied(100)
    assert book.diff(s) == []
    cash = np.array(s.cash, dtype=object)
    cash[4] = int(cash[4]) + 1
    changed = replace(s, cash=cash)
    assert book.diff(changed) == [(s.owners[4], int(s.subaccounts[4]))]
    assert book.diff(changed, only={(s.owners[3], int(s.subaccounts[3]))}) == []
    key = (s.owners[2], int(s.subaccounts[2]))
    book.note_logs([(101, key), (99, (s.owners[1], int(s.subaccounts[1])))])
    assert book.dirty == {key}  # block 99 was applied already
    book.applied(101)
    assert book.rollback(100) == {key} and book.dirty == {key} and book.block == 100


def test_a_market_listing_widens_the_book_and_the_screen_still_equals_the_mirror() -> None:
    rng = random.Random(5)
    full = _move(rng, _book(rng, 30), broken=False)
    two = replace(
        full,
        sizes=full.sizes[:, :2],
        open_notional=full.open_notional[:, :2],
        entry_funding_index=full.entry_funding_index[:, :2],
        **{
            f: getattr(full, f)[:2]
            for f in (
                "market_price",
                "im_base",
                "mm_factor",
                "size_slope",
                "max_funding_rate",
                "skew_scale",
                "long_oi",
                "short_oi",
                "funding_index",
                "last_funding_time",
                "im_scalar",
                "mm_scalar",
                "market_price_ok",
            )
        },
    )
    book = AccountBook(2, 2)
    book.set_markets(two)
    book.write(two)
    book.set_markets(full)  # the third market is listed
    book.write(full)
    exact = compute_margin(full)
    want = {i for i in range(30) if exact.liquidatable[i] and exact.priced[i]}
    assert _screened_set(book)[0] == want
    assert book.diff(full) == []
