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
