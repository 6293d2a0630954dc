"""The vectorized limb arithmetic of plimsoll.margin against its one-account Python-int
reference, over the whole range of the contract's storage types (no chain needed)."""

from __future__ import annotations

import random
from typing import Any

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

from plimsoll.margin import (
    MarginInputError,
    account_margin_reference,
    compute_margin,
    shortfall_ranking,
)
from plimsoll.state import MarginState

WAD = 10**18
I128 = (-(2**127), 2**127 - 1)
U128 = 2**128 - 1
U64 = 2**64 - 1


def _obj(values: list[int], shape: tuple[int, ...]) -> Any:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr.reshape(shape)


def _state(rng: random.Random, n: int, nm: int, na: int, extreme: bool) -> MarginState:
    def i128() -> int:
        if extreme and rng.random() < 0.5:
            return rng.choice([I128[0], I128[1], rng.randint(*I128)])
        return rng.randint(-(10 ** rng.randint(0, 27)), 10 ** rng.randint(0, 27))

    def size() -> int:
        return 0 if rng.random() < 0.2 else i128()

    def price() -> int:
        return (
            rng.choice([rng.randint(1, U128), rng.randint(10**12, 10**24)])
            if extreme
            else (rng.randint(10**17, 10**24))
        )

    return MarginState(
        block=1,
        timestamp=10**9,
        owners=["0x0"] * n,
        subaccounts=np.zeros(n, dtype=np.int64),
        cash=_obj([i128() for _ in range(n)], (n,)),
        balances=_obj(
            [rng.choice([0, rng.randint(0, U128 if extreme else 10**24)]) for _ in range(n * na)],
            (n, na),
        ),
        sizes=_obj([size() for _ in range(n * nm)], (n, nm)),
        open_notional=_obj([i128() for _ in range(n * nm)], (n, nm)),
        entry_funding_index=_obj([i128() for _ in range(n * nm)], (n, nm)),
        asset_decimals=np.array([rng.choice([0, 6, 8, 18]) for _ in range(na)], dtype=np.int64),
        asset_haircut=_obj([rng.randint(1, WAD) for _ in range(na)], (na,)),
        asset_price=_obj([price() for _ in range(na)], (na,)),
        market_price=_obj([price() for _ in range(nm)], (nm,)),
        im_base=_obj([rng.randint(WAD // 200, WAD) for _ in range(nm)], (nm,)),
        mm_factor=_obj([rng.randint(WAD // 10, WAD * 95 // 100) for _ in range(nm)], (nm,)),
        size_slope=_obj(
            [rng.choice([0, rng.randint(0, WAD), rng.randint(0, U64)]) for _ in range(nm)], (nm,)
        ),
        max_funding_rate=_obj([rng.randint(0, WAD // 10) for _ in range(nm)], (nm,)),
        skew_scale=_obj([rng.randint(1, 10**24) for _ in range(nm)], (nm,)),
        long_oi=_obj([rng.randint(0, 10**24) for _ in range(nm)], (nm,)),
        short_oi=_obj([rng.randint(0, 10**24) for _ in range(nm)], (nm,)),
        funding_index=_obj(
            [rng.randint(*I128) if extreme else rng.randint(-(10**22), 10**22) for _ in range(nm)],
            (nm,),
        ),
        last_funding_time=_obj([rng.randint(10**9 - 10**7, 10**9) for _ in range(nm)], (nm,)),
    )


def _check(state: MarginState, chunk_size: int = 64) -> None:
    res = compute_margin(state, chunk_size=chunk_size)
    for i in range(state.n_accounts):
        e, im, mm = account_margin_reference(state, i)
        assert (res.equity[i], res.im[i], res.mm[i]) == (e, im, mm), i
        assert bool(res.liquidatable[i]) == (e < mm)
    ranked = shortfall_ranking(res)
    assert sorted(ranked.tolist()) == [i for i in range(state.n_accounts) if res.liquidatable[i]]


@pytest.mark.parametrize("extreme", [False, True])
def test_limbs_match_reference(extreme: bool) -> None:
    rng = random.Random(7 + extreme)
    for nm, na in [(3, 2), (1, 0), (5, 4)]:
        _check(_state(rng, 500, nm, na, extreme))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), extreme=st.booleans(), n=st.integers(0, 40))
def test_limbs_match_reference_hypothesis(seed: int, extreme: bool, n: int) -> None:
    _check(_state(random.Random(seed), n, 3, 2, extreme), chunk_size=7)


def test_out_of_range_refused() -> None:
    state = _state(random.Random(1), 4, 3, 2, False)
    state.sizes[0, 0] = 2**127
    with pytest.raises(MarginInputError):
        compute_margin(state)
