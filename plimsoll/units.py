"""Units as types that refuse to mix silently.

Plimsoll has one scale per dimension: ``Wad`` (1e18 fixed point) for prices, ratios and USD
values; token amounts stay in the token's own decimals (``TokenAmount``) at the edges. The only
conversions are :func:`to_wad` and :func:`from_wad_down` / :func:`from_wad_up`, with the rounding
direction in the name, as in the contracts' ``WadMath``.
"""

from __future__ import annotations

from typing import Any

from plimsoll.errors import PlimsollError

WAD = 10**18


class UnitMismatchError(PlimsollError, TypeError):
    """Two quantities of different units were added, subtracted or compared."""


class _Unit(int):
    """An int that remembers its unit: adding, subtracting or comparing it with a quantity
    of another unit raises :class:`UnitMismatchError` instead of silently mixing scales.
    Plain ints mix freely (the result keeps the unit for + and -); products and quotients
    are plain numbers (amount x price is meaningful, its unit is the caller's to name)."""

    __slots__ = ()

    def _other(self, other: Any, op: str) -> Any:
        if isinstance(other, _Unit) and type(other) is not type(self):
            raise UnitMismatchError(
                f"cannot {op} {type(self).__name__} and {type(other).__name__}: convert with "
                "to_wad / from_wad_down / from_wad_up first"
            )
        return other

    def __add__(self, other: Any) -> Any:
        r = int.__add__(self, self._other(other, "add"))
        return type(self)(r) if isinstance(other, int) else r

    __radd__ = __add__

    def __sub__(self, other: Any) -> Any:
        r = int.__sub__(self, self._other(other, "subtract"))
        return type(self)(r) if isinstance(other, int) else r

    def __rsub__(self, other: Any) -> Any:
        r = int.__rsub__(self, self._other(other, "subtract"))
        return type(self)(r) if isinstance(other, int) else r

    def __neg__(self) -> Any:
        return type(self)(-int(self))

    def __eq__(self, other: object) -> bool:
        return int.__eq__(self, self._other(other, "compare"))

    def __ne__(self, other: object) -> bool:
        return int.__ne__(self, self._other(other, "compare"))

    def __lt__(self, other: Any) -> bool:
        return int.__lt__(self, self._other(other, "compare"))

    def __le__(self, other: Any) -> bool:
        return int.__le__(self, self._other(other, "compare"))

    def __gt__(self, other: Any) -> bool:
        return int.__gt__(self, self._other(other, "compare"))

    def __ge__(self, other: Any) -> bool:
        return int.__ge__(self, self._other(other, "compare"))

    __hash__ = int.__hash__

    def __repr__(self) -> str:
        return f"{type(self).__name__}({int(self)})"


class Wad(_Unit):
    """A value on the 1e18 fixed-point scale (prices, ratios, USD values)."""


class TokenAmount(_Unit):
    """An amount in a token's own smallest units."""


def wad(x: float | int | str) -> Wad:
    """A human number as WAD (``wad(1.5) == 1_500_000_000_000_000_000``), exact for strings."""
    from decimal import Decimal

    return Wad(int(Decimal(str(x)) * WAD))


def to_wad(amount: TokenAmount, decimals: int) -> Wad:
    """A token amount in WAD; exact (decimals <= 18)."""
    if not 0 <= decimals <= 18:
        raise ValueError(f"decimals must be in 0..18, got {decimals}")
    return Wad(int(amount) * 10 ** (18 - decimals))


def from_wad_down(value: Wad, decimals: int) -> TokenAmount:
    """A non-negative WAD value in token units, rounded down."""
    if value < 0:
        raise ValueError("from_wad_down takes a non-negative value")
    return TokenAmount(int(value) // 10 ** (18 - decimals))


def from_wad_up(value: Wad, decimals: int) -> TokenAmount:
    """A non-negative WAD value in token units, rounded up."""
    if value < 0:
        raise ValueError("from_wad_up takes a non-negative value")
    return TokenAmount(-(-int(value) // 10 ** (18 - decimals)))


def token_units(x: float | int | str, decimals: int) -> TokenAmount:
    """A human amount of a token in its smallest units (exact for strings)."""
    from decimal import Decimal

    return TokenAmount(int(Decimal(str(x)) * 10**decimals))
