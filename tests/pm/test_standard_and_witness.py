"""Standard option margin on hand-computed examples; witness encoding; config mirrors."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plimsoll.pm import (
    WAD,
    OptionBook,
    OptionsConfig,
    PmInputError,
    PortfolioConfig,
    Series,
    decode_witness,
    encode_witness,
    option_marks,
    portfolio_margin,
    scenario_coords,
    scenario_index,
    standard_option_margin,
    witness_loss,
)
from tests.pm.conftest import ETH, NOW, OCFG, PCFG, call, put, single, w


def _std(positions: list[tuple[Series, int]], equity: int = 0):
    return standard_option_margin(single(positions, equity=equity), ETH, OCFG)


@pytest.mark.parametrize(
    ("series", "rate"),
    [
        (call(2400), 0.10),  # OTM 20 % > shortA: the floor shortB
        (call(2100), 0.10),  # OTM 5 %: max(0.15 - 0.05, 0.10)
        (call(2040), 0.13),  # OTM 2 %: 0.15 - 0.02
        (call(1800), 0.15),  # ITM: OTM 0
        (put(1700), 0.10),  # OTM 15 %
        (put(1900), 0.10),  # OTM 5 %
        (put(1960), 0.13),  # OTM 2 %
        (put(2200), 0.15),  # ITM
    ],
)
def test_short_option_im_is_the_otm_adjusted_rate_of_spot(series: Series, rate: float) -> None:
    mark = float(option_marks([series], ETH)[0])
    got = _std([(series, -w(2))], equity=w(500))
    assert got.im[0] == pytest.approx(2 * 2000 * rate, rel=1e-12)
    assert got.mm[0] == pytest.approx(2 * 2000 * rate * 0.7, rel=1e-12)
    assert got.value[0] == pytest.approx(-2 * mark, rel=1e-12)
    assert got.equity[0] == pytest.approx(500 - 2 * mark, rel=1e-12)


def test_long_option_counts_at_its_haircut_and_needs_nothing() -> None:
    mark = float(option_marks([put(2000)], ETH)[0])
    got = _std([(put(2000), w(3))])
    assert got.im[0] == 0.0 and got.mm[0] == 0.0
    assert got.value[0] == pytest.approx(3 * mark * 0.8, rel=1e-12)


def test_atm_30_day_call_mark_by_hand() -> None:
    # sd = 0.8 sqrt(30/365); ATM call with r = 0: S (2 N(sd / 2) - 1)
    sd = 0.8 * math.sqrt(30 / 365)
    want = 2000 * (2 * 0.5 * math.erfc(-sd / 2 / math.sqrt(2)) - 1)
    assert float(option_marks([call(2000)], ETH)[0]) == pytest.approx(want, rel=1e-13)


def test_expired_marks_use_the_settlement_price_else_the_spot() -> None:
    exp = NOW - 10
    marks = option_marks(
        [
            Series(0, True, exp, w(1900), w(2100)),
            Series(0, True, exp, w(1900)),
            Series(0, False, exp, w(1900), w(1850)),
            Series(0, False, NOW, w(2100)),  # expiring at this block: expired
        ],
        ETH,
    )
    assert list(marks) == pytest.approx([200.0, 100.0, 50.0, 100.0])


def test_positions_of_the_same_series_add_up() -> None:
    one = _std([(call(2100), -w(3))])
    two = _std([(call(2100), -w(1)), (call(2100), -w(2))])
    assert two.im[0] == pytest.approx(one.im[0]) and two.value[0] == pytest.approx(one.value[0])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.integers(0, 31), st.integers(0, 255), max_size=32))
def test_witness_round_trip(scenarios: dict[int, int]) -> None:
    bits = encode_witness(scenarios)
    assert 0 <= bits < 2**256
    assert decode_witness(bits) == {m: scenarios.get(m, 0) for m in range(32)}
    assert encode_witness(decode_witness(bits)) == bits


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 14), st.integers(0, 2), st.sampled_from([3, 5, 9, 15]))
def test_scenario_index_round_trip(i: int, j: int, points: int) -> None:
    i %= points
    k = scenario_index(i, j, points)
    assert 0 <= k < 3 * points and scenario_coords(k, points) == (i, j)


def test_witness_rejects_bad_market_or_scenario() -> None:
    with pytest.raises(PmInputError):
        encode_witness({32: 1})
    with pytest.raises(PmInputError):
        encode_witness({0: 256})
    with pytest.raises(PmInputError):
        witness_loss(single([(call(2000), -w(1))]), ETH, PCFG, [[27]])


def test_witness_bits_of_markets_not_held_are_ignored() -> None:
    book = single([], perp=w(1))
    held = witness_loss(book, ETH, PCFG, [[0]])
    assert held[0] == pytest.approx(360 + 10)
    empty = OptionBook.from_positions([[]], [[0]], [0])
    assert witness_loss(empty, ETH, PCFG, [[200]])[0] == 0.0
    assert portfolio_margin(empty, ETH, PCFG).worst[0, 0] == -1


def test_configs_round_trip_their_solidity_tuples() -> None:
    assert OptionsConfig.from_wad_tuple(OCFG.to_wad_tuple()) == OCFG
    assert PortfolioConfig.from_wad_tuple(PCFG.to_wad_tuple()) == PCFG
    assert PCFG.n_scenarios == 27


@pytest.mark.parametrize(
    "change",
    [
        {"spot_points": 8},
        {"spot_points": 17},
        {"im_factor": WAD - 1},
        {"vol_up": 2**64},
        {"cont_perp": -1},
    ],
)
def test_portfolio_config_rejects_values_outside_the_spec(change: dict[str, int]) -> None:
    fields = dict(
        zip(
            [
                "spot_shock",
                "spot_points",
                "vol_up",
                "vol_down",
                "vol_pow",
                "max_vol_scale",
                "min_vol",
                "cont_perp",
                "cont_option",
                "im_factor",
            ],
            PCFG.to_wad_tuple(),
            strict=True,
        )
    )
    fields.update(change)
    with pytest.raises(PmInputError):
        PortfolioConfig(**fields)


def test_book_rejects_a_series_on_a_market_it_does_not_have() -> None:
    with pytest.raises(PmInputError):
        OptionBook.from_positions([[(call(2000, m=1), w(1))]], [[0]], [0])
