"""Bit-exact integer replica of ``contracts/libraries/BlackScholes.sol``.

Every function returns exactly what the Solidity library returns for the same inputs: the same
WAD integers, rounded the same way (EVM ``sdiv`` truncates toward zero, ``sar`` floors), with
solady 0.1.26's ``expWad``, ``lnWad`` and ``sqrt`` reproduced as the integer algorithms they
are. Off-chain portfolio margin can therefore reproduce on-chain option values to the wei.
``tests/risk_onchain/test_bs_replica.py`` checks equality against the contract on random inputs.

All quantities are Python ints on the WAD scale (1e18) unless stated: prices [wad USD], vol and
rate [wad per year], ``tau`` [s] (annualized by 365 days).

Notes
-----
This is a parity tool, written per element in plain Python ints (256-bit EVM arithmetic has no
numpy dtype); about 6 us per call/put pair (measured). Use float64 code for bulk what-if
analysis and this module where the result must equal the chain's.

References
----------
W. J. Cody, "Rational Chebyshev approximations for the error function", Math. Comp. 23 (1969),
631-637; coefficients of SPECFUN's ANORM (1992).

Examples
--------
>>> call, put = price(100 * WAD, 100 * WAD, WAD // 5, 365 * 86400, WAD // 20)
>>> call, put
(10450583572185566856, 5573526022256967755)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from plimsoll.errors import PlimsollError

WAD = 10**18
YEAR = 365 * 86400  # [s]
MAX_PRICE = 10**36
MAX_VOL = 1_000 * WAD
MAX_TAU = 10 * YEAR
MAX_RATE = WAD
MAX_ABS_LN_SPOT = 42 * WAD
MAX_CDF_ERROR = 5  # [wei], the contract's documented bound on |cdf(x) - N(x)|


class RiskInputError(PlimsollError):
    """An input the contract would reject; ``name`` is the Solidity custom error's name.

    Attributes
    ----------
    name : str
        ``"InvalidSpot"``, ``"InvalidStrike"``, ``"VolTooHigh"``, ``"TauTooLong"``,
        ``"RateOutOfRange"`` or ``"LnSpotOutOfRange"``.
    value : int
        The offending argument.
    """

    def __init__(self, name: str, value: int) -> None:
        super().__init__(f"{name}({value})")
        self.name = name
        self.value = value


# --------------------------------------------------------------------------- EVM integer ops


def _sdiv(a: int, b: int) -> int:
    """EVM ``sdiv`` / Solidity int256 ``/``: quotient truncated toward zero."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


# ------------------------------------------------------------------------ solady 0.1.26 math


def exp_wad(x: int) -> int:
    """solady ``FixedPointMathLib.expWad``: e^(x / 1e18) [wad], as the integer algorithm.

    Raises
    ------
    OverflowError
        Where solady reverts with ``ExpOverflow()`` (x >= ~135.3e18).
    """
    if x <= -41446531673892822313:
        return 0
    if x >= 135305999368893231589:
        raise OverflowError("ExpOverflow")
    x = _sdiv(x << 78, 5**18)
    k = (_sdiv(x << 96, 54916777467707473351141471128) + 2**95) >> 96
    x = x - k * 54916777467707473351141471128
    y = x + 1346386616545796478920950773328
    y = ((y * x) >> 96) + 57155421227552351082224309758442
    p = y + x - 94201549194550492254356042504812
    p = ((p * y) >> 96) + 28719021644029726153956944680412240
    p = p * x + (4385272521454847904659076985693276 << 96)
    q = x - 2855989394907223263936484059900
    q = ((q * x) >> 96) + 50020603652535783019961831881945
    q = ((q * x) >> 96) - 533845033583426703283633433725380
    q = ((q * x) >> 96) + 3604857256930695427073651918091429
    q = ((q * x) >> 96) - 14423608567350463180887372962807573
    q = ((q * x) >> 96) + 26449188498355588339934803723976023
    r = _sdiv(p, q)
    return (r * 3822833074963236453042738258902158003155416615667) >> (195 - k)


def ln_wad(x: int) -> int:
    """solady ``FixedPointMathLib.lnWad``: ln(x / 1e18) [wad], as the integer algorithm.

    Raises
    ------
    ValueError
        Where solady reverts with ``LnWadUndefined()`` (x <= 0).
    """
    if x <= 0:
        raise ValueError("LnWadUndefined")
    r = 255 - (x.bit_length() - 1)  # 255 ^ log2(x), what the lookup computes
    x = ((x << r) & (2**256 - 1)) >> 159  # in [2**96, 2**97)
    p = ((3273285459638523848632254066296 + x) * x) >> 96
    p = ((24828157081833163892658089445524 + p) * x) >> 96
    p = (((43456485725739037958740375743393 + p) * x) >> 96) - 11111509109440967052023855526967
    p = ((p * x) >> 96) - 45023709667254063763336534515857
    p = ((p * x) >> 96) - 14706773417378608786704636184526
    p = p * x - (795164235651350426258249787498 << 96)
    q = 5573035233440673466300451813936 + x
    q = 71694874799317883764090561454958 + ((x * q) >> 96)
    q = 283447036172924575727196451306956 + ((x * q) >> 96)
    q = 401686690394027663651624208769553 + ((x * q) >> 96)
    q = 204048457590392012362485061816622 + ((x * q) >> 96)
    q = 31853899698501571402653359427138 + ((x * q) >> 96)
    q = 909429971244387300277376558375 + ((x * q) >> 96)
    p = _sdiv(p, q)
    p = 1677202110996718588342820967067443963516166 * p
    p = 16597577552685614221487285958193947469193820559219878177908093499208371 * (159 - r) + p
    p = 600920179829731861736702779321621459595472258049074101567377883020018308 + p
    return p >> 174


# ------------------------------------------------------------------------------- normal CDF

_THRESHOLD = 662_910_000_000_000_000
_ROOT32 = 5_656_854_248_000_000_000
_CUTOFF = 9 * WAD
_SQRPI = 398_942_280_401_432_678
_A = (
    2_235_252_035_460_683_929,
    161_028_231_068_555_878_810,
    1_067_689_485_460_370_958_200,
    18_154_981_253_343_561_249_000,
    65_682_337_918_207_449,
)
_B = (
    47_202_581_904_688_241_870,
    976_098_551_737_776_693_220,
    10_260_932_208_618_978_205_000,
    45_507_789_335_026_729_956_000,
)
_C = (
    398_941_512_088_134_668,
    8_883_149_794_388_375_941,
    93_506_656_132_177_855_979,
    597_270_276_394_800_262_260,
    2_494_537_585_290_372_671_100,
    6_848_190_450_536_282_332_600,
    11_602_651_437_647_350_124_000,
    9_842_714_838_383_978_021_800,
    10_765_576_774,
)
_D = (
    22_266_688_044_328_115_691,
    235_387_901_782_624_998_610,
    1_519_377_599_407_554_805_000,
    6_485_558_298_266_760_755_000,
    18_615_571_640_885_098_091_000,
    34_900_952_721_145_977_266_000,
    38_912_003_286_093_271_411_000,
    19_685_429_676_859_990_727_000,
)
_P = (
    215_898_534_057_956_990,
    127_401_161_160_247_364,
    22_235_277_870_649_807,
    1_421_619_193_227_893,
    29_112_874_951_169,
    23_073_441_764_940_173,
)
_Q = (
    1_284_260_096_144_911_210,
    468_238_212_480_865_118,
    65_988_137_868_928_552,
    3_782_396_332_027_582,
    72_975_155_508_397,
)


def cdf_pair(x: int) -> tuple[int, int]:
    """N(x) and N(-x) [wad] exactly as ``BlackScholes.cdfPair``; they add up to WAD.

    Parameters
    ----------
    x : int
        The argument [wad], any int256.

    Returns
    -------
    (p, q) : tuple of int
        p = N(x), q = N(-x) [wad], |error| <= MAX_CDF_ERROR wei each.
    """
    y = abs(x)
    if y >= _CUTOFF:
        return (0, WAD) if x < 0 else (WAD, 0)
    if y <= _THRESHOLD:
        z = y * y // WAD
        num = _A[4] * z // WAD
        den = z
        for i in range(3):
            num = (num + _A[i]) * z // WAD
            den = (den + _B[i]) * z // WAD
        t = y * (num + _A[3]) // (den + _B[3])
        p = WAD // 2 - t if x < 0 else WAD // 2 + t
        return p, WAD - p
    if y <= _ROOT32:
        num = _C[8] * y // WAD
        den = y
        for i in range(7):
            num = (num + _C[i]) * y // WAD
            den = (den + _D[i]) * y // WAD
        r = (num + _C[7]) * WAD // (den + _D[7])
    else:
        w = 10**54 // (y * y)
        num = _P[5] * w // WAD
        den = w
        for i in range(4):
            num = (num + _P[i]) * w // WAD
            den = (den + _Q[i]) * w // WAD
        r = w * (num + _P[4]) // (den + _Q[4])
        r = (_SQRPI - r) * WAD // y
    tail = exp_wad(-(y * y // (2 * WAD))) * r // WAD
    return (tail, WAD - tail) if x < 0 else (WAD - tail, tail)


def cdf(x: int) -> int:
    """N(x) [wad] exactly as ``BlackScholes.cdf`` (|error| <= MAX_CDF_ERROR wei)."""
    return cdf_pair(x)[0]


# ----------------------------------------------------------------------------------- prices


@dataclass(frozen=True)
class Prepared:
    """``BlackScholes.Prepared``: the scenario-independent part of one option [wad]."""

    strike: int
    discounted_strike: int  # K e^{-rT}, rounded down
    ln_strike: int
    rate_tau: int  # r T, rounded toward zero
    sqrt_tau: int  # sqrt(T), rounded down

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        """The struct in ABI order, for contract calls."""
        return (self.strike, self.discounted_strike, self.ln_strike, self.rate_tau, self.sqrt_tau)


def prepare(strike: int, tau: int, rate: int) -> Prepared:
    """``BlackScholes.prepare``: ln K, sqrt(T), r T and K e^{-rT} for a strike, tau [s], rate.

    Raises
    ------
    RiskInputError
        ``InvalidStrike``, ``TauTooLong`` or ``RateOutOfRange``, as the contract reverts.
    """
    if strike == 0 or strike > MAX_PRICE:
        raise RiskInputError("InvalidStrike", strike)
    if tau > MAX_TAU:
        raise RiskInputError("TauTooLong", tau)
    if rate > MAX_RATE or rate < -MAX_RATE:
        raise RiskInputError("RateOutOfRange", rate)
    rate_tau = _sdiv(rate * tau, YEAR)
    kd = strike if rate_tau == 0 else strike * exp_wad(-rate_tau) // WAD
    return Prepared(strike, kd, ln_wad(strike), rate_tau, math.isqrt(tau * 10**36 // YEAR))


def intrinsic(spot: int, discounted_strike: int) -> tuple[int, int]:
    """max(S - K e^{-rT}, 0), max(K e^{-rT} - S, 0) [wad]."""
    return max(spot - discounted_strike, 0), max(discounted_strike - spot, 0)


def price_at_ln(p: Prepared, spot: int, ln_spot: int, vol: int) -> tuple[int, int]:
    """``BlackScholes.priceAtLn``: call and put [wad] at one scenario, ln(spot) given.

    Raises
    ------
    RiskInputError
        ``InvalidSpot``, ``VolTooHigh`` or ``LnSpotOutOfRange``.
    """
    if spot == 0 or spot > MAX_PRICE:
        raise RiskInputError("InvalidSpot", spot)
    if vol > MAX_VOL:
        raise RiskInputError("VolTooHigh", vol)
    if ln_spot < -MAX_ABS_LN_SPOT or ln_spot > MAX_ABS_LN_SPOT:
        raise RiskInputError("LnSpotOutOfRange", ln_spot)
    kd = p.discounted_strike
    sd = vol * p.sqrt_tau // WAD
    if sd == 0:
        return intrinsic(spot, kd)
    d1 = _sdiv((ln_spot - p.ln_strike + p.rate_tau) * WAD, sd) + sd // 2
    d2 = d1 - sd
    n1, m1 = cdf_pair(d1)
    n2, m2 = cdf_pair(d2)
    sn, kn = spot * n1 // WAD, kd * n2 // WAD
    km, sm = kd * m2 // WAD, spot * m1 // WAD
    return max(sn - kn, 0), max(km - sm, 0)


def price_at(p: Prepared, spot: int, vol: int) -> tuple[int, int]:
    """``BlackScholes.priceAt``: call and put [wad] at one (spot, vol) scenario."""
    if spot == 0 or spot > MAX_PRICE:
        raise RiskInputError("InvalidSpot", spot)
    return price_at_ln(p, spot, ln_wad(spot), vol)


def price(spot: int, strike: int, vol: int, tau: int, rate: int) -> tuple[int, int]:
    """``BlackScholes.price``: call and put [wad USD] of one European option.

    Parameters
    ----------
    spot, strike : int
        S and K [wad USD], in (0, 1e36].
    vol : int
        Annualized volatility [wad], <= 10e18.
    tau : int
        Time to expiry [s], <= 10 years; T = tau / 365 days.
    rate : int
        Continuously compounded rate [wad per year], |rate| <= 1e18.

    Returns
    -------
    (call, put) : tuple of int
        [wad USD], each >= 0.
    """
    return price_at(prepare(strike, tau, rate), spot, vol)
