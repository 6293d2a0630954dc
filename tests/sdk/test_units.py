"""Units refuse to mix silently; conversions round in the direction their names say."""

from __future__ import annotations

import json

import pytest

from plimsoll.errors import PlimsollError
from plimsoll.units import (
    TokenAmount,
    UnitMismatchError,
    Wad,
    from_wad_down,
    from_wad_up,
    to_wad,
    token_units,
    wad,
)


def test_adding_or_comparing_wad_and_token_amount_raises() -> None:
    usd = wad(100)
    usdc = token_units(100, 6)
    for op in (lambda: usd + usdc, lambda: usdc - usd, lambda: usd < usdc, lambda: usd == usdc):
        with pytest.raises(UnitMismatchError, match="Wad and TokenAmount|TokenAmount and Wad"):
            op()
    assert issubclass(UnitMismatchError, PlimsollError)


def test_same_unit_and_plain_ints_mix_and_keep_the_unit() -> None:
    a = wad("1.5") + wad("0.5") - 1
    assert isinstance(a, Wad) and a == 2 * 10**18 - 1
    b = 5 + token_units(1, 6)
    assert isinstance(b, TokenAmount) and b == 1_000_005
    assert isinstance(-a, Wad)
    # amount x price is meaningful: a plain int whose unit the caller names
    assert type(token_units(2, 6) * wad(3)) is int


def test_conversions_are_exact_or_round_as_named() -> None:
    assert to_wad(token_units("1.000001", 6), 6) == wad("1.000001")
    assert isinstance(to_wad(TokenAmount(1), 6), Wad)
    assert from_wad_down(Wad(1_999_999_999_999), 6) == 1
    assert from_wad_up(Wad(1_000_000_000_001), 6) == 2
    with pytest.raises(ValueError):
        to_wad(TokenAmount(1), 19)


def test_units_serialize_and_encode_as_plain_numbers() -> None:
    assert json.dumps({"x": wad(1)}) == '{"x": 1000000000000000000}'
    assert repr(token_units(1, 6)) == "TokenAmount(1000000)"
    assert hash(wad(1)) == hash(10**18)


# ------------------------------------------------------------------ human amounts (issue 15)

from decimal import Decimal  # noqa: E402

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from plimsoll.units import AmountError, fmt_units, parse_amount, parse_wad  # noqa: E402


@given(units=st.integers(1, 10**30), decimals=st.integers(0, 18))
def test_printed_amount_parses_back_to_the_same_base_units(units: int, decimals: int) -> None:
    text = fmt_units(units, decimals, "TOK")
    assert text.endswith(" TOK")
    assert parse_amount(text.removesuffix(" TOK"), decimals, "TOK") == units


@given(units=st.integers(1, 10**20), decimals=st.integers(0, 17))
def test_one_digit_past_the_decimals_is_refused_never_truncated(units: int, decimals: int) -> None:
    d = Decimal(units).scaleb(-decimals) + Decimal(1).scaleb(-decimals - 1)
    with pytest.raises(AmountError, match="more than"):
        parse_amount(str(d), decimals, "TOK")


@given(value=st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans()))
def test_bare_numbers_are_refused_with_what_to_pass(value: object) -> None:
    with pytest.raises(AmountError, match="pass a human amount of USDC as a str or Decimal"):
        parse_amount(value, 6, "USDC")


def test_sizes_are_signed_wads_and_typed_values_pass_through() -> None:
    assert parse_wad("-1.5", "ETH") == -(3 * 10**18 // 2)
    assert parse_wad(Wad(7), "ETH") == 7
    assert parse_amount(TokenAmount(7), 6, "USDC") == 7
    with pytest.raises(AmountError, match="must not be zero"):
        parse_wad("0", "ETH")
    with pytest.raises(AmountError, match="expected TokenAmount"):
        parse_amount(Wad(7), 6, "USDC")


def test_rounding_of_shown_margins_is_in_the_named_direction() -> None:
    assert fmt_units(2_624_461, 3, "USDC", 2) == "2,624.46 USDC"
    assert fmt_units(2_624_461, 3, "USDC", 2, up=True) == "2,624.47 USDC"
    assert fmt_units(-1, 18, "USD", 2) == "0.00 USD"
