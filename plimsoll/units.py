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
    """A human amount of a token in its smallest units (exact for strings; for tests and
    scripts: it truncates below the smallest unit, where :func:`parse_amount` refuses)."""
    from decimal import Decimal

    return TokenAmount(int(Decimal(str(x)) * 10**decimals))


# ---------------------------------------------------------------------------- human amounts
#
# What a person types ("1,000", "0.5", Decimal("2.5")) becomes base units only here, and only
# exactly: a value with more decimals than the token has is refused (never truncated), and a
# bare int is refused where a unit is meant (``deposit("USDC", 1000)`` would otherwise be
# 0.001 USDC). Typed values (``TokenAmount``, ``Wad``) pass through as base units.


class AmountError(PlimsollError, ValueError):
    """An amount or size a person gave cannot be used as it is (not a number, a bare int
    where a unit is meant, more decimals than the token has, not positive)."""


def _decimal(value: Any, what: str) -> Any:
    from decimal import Decimal, InvalidOperation

    if isinstance(value, Decimal):
        d = value
    else:
        text = str(value).strip().replace(",", "").replace("_", "")
        try:
            d = Decimal(text)
        except InvalidOperation:
            raise AmountError(
                f"{what}: {value!r} is not a number (write e.g. 1000 or 0.5)"
            ) from None
    if not d.is_finite():
        raise AmountError(f"{what}: {value!r} is not a finite number")
    return d


def parse_units(
    value: Any,
    decimals: int,
    unit: str,
    *,
    what: str = "amount",
    typed: type = TokenAmount,
    positive: bool = True,
    signed: bool = False,
) -> Any:
    """``value`` in base units of a quantity with ``decimals`` decimals.

    Accepts a human number as ``str`` (commas and underscores allowed) or ``Decimal``, or an
    already typed ``typed`` value (base units, passed through). Refuses a bare ``int`` or
    ``float`` (say which unit you mean), a value of another unit type, more decimals than the
    quantity has (no silent truncation) and, unless ``signed``, a value that is not positive.
    """
    from decimal import localcontext

    with localcontext(prec=_PREC):
        return _parse_units(value, decimals, unit, what, typed, positive, signed)


_PREC = 100  # digits: every uint256 (78 digits) with its decimals, exactly


def _parse_units(
    value: Any, decimals: int, unit: str, what: str, typed: type, positive: bool, signed: bool
) -> Any:
    from decimal import Decimal

    if isinstance(value, _Unit):
        if type(value) is not typed:
            raise AmountError(
                f"{what}: got {type(value).__name__}, expected {typed.__name__} or a human "
                f"amount of {unit}"
            )
        units = int(value)
    elif isinstance(value, (bool, int, float)):
        raise AmountError(
            f"{what}: a bare {type(value).__name__} ({value!r}) is ambiguous; pass a human "
            f"amount of {unit} as a str or Decimal (e.g. Decimal('{value}') for {value} {unit}) "
            f"or base units as {typed.__name__}({value!r})"
        )
    else:
        d = _decimal(value, what)
        scaled = d.scaleb(decimals)
        if scaled != scaled.to_integral_value():
            smallest = format(Decimal(1).scaleb(-decimals), "f")
            raise AmountError(
                f"{what}: {value} {unit} has more than {decimals} decimals; the smallest step is "
                f"{smallest} {unit} (nothing was sent)"
            )
        units = int(scaled)
    if not signed and positive and units <= 0:
        raise AmountError(f"{what} must be positive, got {value} {unit}".rstrip())
    if signed and units == 0:
        raise AmountError(f"{what} must not be zero")
    return typed(units)


def parse_amount(value: Any, decimals: int, unit: str, what: str = "amount") -> TokenAmount:
    """A positive token amount (see :func:`parse_units`)."""
    amount: TokenAmount = parse_units(value, decimals, unit, what=what)
    return amount


def parse_wad(value: Any, unit: str, what: str = "size", signed: bool = True) -> Wad:
    """A size or price on the WAD scale (signed sizes allowed, zero refused)."""
    out: Wad = parse_units(value, 18, unit, what=what, typed=Wad, signed=signed)
    return out


def fmt_units(
    units: int, decimals: int, unit: str = "", places: int | None = None, up: bool = False
) -> str:
    """Base units as a human string with its unit: ``fmt_units(2624470000, 6, "USDC", 2)``
    -> ``"2,624.47 USDC"``. ``places`` rounds (down, or ``up`` away from zero); None shows every
    significant decimal (at least two)."""
    from decimal import localcontext

    with localcontext(prec=_PREC):
        return _fmt_units(units, decimals, unit, places, up)


def _fmt_units(units: int, decimals: int, unit: str, places: int | None, up: bool) -> str:
    from decimal import ROUND_DOWN, ROUND_UP, Decimal

    d = Decimal(int(units)).scaleb(-decimals)
    if places is not None:
        d = d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_UP if up else ROUND_DOWN)
        d = d + 0  # no "-0.00"
        text = f"{d:,.{places}f}"
    else:
        d = d.normalize()
        exp = d.as_tuple().exponent
        shown = max(2, -exp if isinstance(exp, int) and exp < 0 else 0)
        text = f"{d:,.{shown}f}"
    return f"{text} {unit}".rstrip()


def fmt_usd(value: int, places: int = 2, up: bool = False, unit: str = "USD") -> str:
    """A WAD USD value as ``"1,234.56 USD"`` (rounded down unless ``up``)."""
    return fmt_units(int(value), 18, unit, places, up)
