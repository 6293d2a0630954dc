"""Units as types that refuse to mix silently.

Plimsoll has one scale per dimension: ``Wad`` (1e18 fixed point) for prices, ratios and USD
values; token amounts stay in the token's own decimals (``TokenAmount``) at the edges. The only
conversions are :func:`to_wad` and :func:`from_wad_down` / :func:`from_wad_up`, with the rounding
direction in the name, as in the contracts' ``WadMath``.
"""

from __future__ import annotations

from typing import NewType

WAD = 10**18

Wad = NewType("Wad", int)
"""A value on the 1e18 fixed-point scale."""

TokenAmount = NewType("TokenAmount", int)
"""An amount in a token's own smallest units."""


def wad(x: float | int | str) -> Wad:
    """A human number as WAD (``wad(1.5) == 1_500_000_000_000_000_000``), exact for strings."""
    from decimal import Decimal

    return Wad(int(Decimal(str(x)) * WAD))


def to_wad(amount: TokenAmount, decimals: int) -> Wad:
    """A token amount in WAD; exact (decimals <= 18)."""
    if not 0 <= decimals <= 18:
        raise ValueError(f"decimals must be in 0..18, got {decimals}")
    return Wad(amount * 10 ** (18 - decimals))


def from_wad_down(value: Wad, decimals: int) -> TokenAmount:
    """A non-negative WAD value in token units, rounded down."""
    if value < 0:
        raise ValueError("from_wad_down takes a non-negative value")
    return TokenAmount(value // 10 ** (18 - decimals))


def from_wad_up(value: Wad, decimals: int) -> TokenAmount:
    """A non-negative WAD value in token units, rounded up."""
    if value < 0:
        raise ValueError("from_wad_up takes a non-negative value")
    return TokenAmount(-(-value // 10 ** (18 - decimals)))


def token_units(x: float | int | str, decimals: int) -> TokenAmount:
    """A human amount of a token in its smallest units (exact for strings)."""
    from decimal import Decimal

    return TokenAmount(int(Decimal(str(x)) * 10**decimals))
