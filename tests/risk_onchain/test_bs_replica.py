"""plimsoll.risk_fixed equals the contract to the wei, and rejects the same inputs.

Random inputs (fixed seeds) over the whole accepted domain, not only the pricing grid: spot and
strike from 1e-6 to 1e9 USD, S/K 0.2-5, vol 0-500%, tau 0-5 years, rate -10%..+30%.
"""

from __future__ import annotations

import random

import pytest
from web3.contract import Contract
from web3.exceptions import ContractCustomError

from plimsoll import risk_fixed as rf
from plimsoll.chain import ErrorDecoder, revert_data
from tests.risk_onchain.conftest import BATCH

WAD = rf.WAD
N = 300


def _random_option(rnd: random.Random) -> tuple[int, int, int, int, int]:
    strike = int(10 ** rnd.uniform(-6, 9) * WAD)
    spot = max(1, int(strike * 10 ** rnd.uniform(-0.7, 0.7)))
    vol = rnd.choice([0, rnd.randint(0, 5 * WAD), rnd.randint(0, WAD // 10)])
    tau = rnd.choice([0, 1, rnd.randint(0, 5 * rf.YEAR), rnd.randint(0, 7 * 86400)])
    rate = rnd.randint(-WAD // 10, 3 * WAD // 10)
    return spot, strike, vol, tau, rate


def test_cdf_pair_matches_contract(bs_harness: Contract) -> None:
    rnd = random.Random(1)
    xs = [rnd.randint(-12 * WAD, 12 * WAD) for _ in range(N)]
    xs += [rnd.randint(-WAD, WAD) for _ in range(N)]
    got = []
    for i in range(0, len(xs), BATCH):
        got += bs_harness.functions.cdfBatch(xs[i : i + BATCH]).call()
    assert got == [rf.cdf(x) for x in xs]
    for x in xs[:50]:
        assert tuple(bs_harness.functions.cdfPair(x).call()) == rf.cdf_pair(x)


def test_price_and_prepare_match_contract(bs_harness: Contract) -> None:
    rnd = random.Random(2)
    opts = [_random_option(rnd) for _ in range(N)]
    calls, puts = bs_harness.functions.priceBatch(opts).call({"gas": 10**9})
    assert list(zip(calls, puts, strict=True)) == [rf.price(*o) for o in opts]
    for _, strike, _, tau, rate in opts[:100]:
        got = tuple(bs_harness.functions.prepare(strike, tau, rate).call())
        assert got == rf.prepare(strike, tau, rate).as_tuple()


def test_fast_path_matches_contract(bs_harness: Contract) -> None:
    rnd = random.Random(3)
    for _ in range(N // 3):
        spot, strike, vol, tau, rate = _random_option(rnd)
        p = rf.prepare(strike, tau, rate)
        ln_spot = rf.ln_wad(spot) + rnd.randint(-3, 3)  # a caller's ln S0 + ln f, off by wei
        got = bs_harness.functions.priceAtLn(p.as_tuple(), spot, ln_spot, vol).call()
        assert tuple(got) == rf.price_at_ln(p, spot, ln_spot, vol)
        got = bs_harness.functions.priceAt(p.as_tuple(), spot, vol).call()
        assert tuple(got) == rf.price_at(p, spot, vol)


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((0, WAD, WAD, 86400, 0), "InvalidSpot"),
        ((10**36 + 1, WAD, WAD, 86400, 0), "InvalidSpot"),
        ((WAD, 0, WAD, 86400, 0), "InvalidStrike"),
        ((WAD, 10**36 + 1, WAD, 86400, 0), "InvalidStrike"),
        ((WAD, WAD, 1_000 * WAD + 1, 86400, 0), "VolTooHigh"),
        ((WAD, WAD, WAD, 10 * rf.YEAR + 1, 0), "TauTooLong"),
        ((WAD, WAD, WAD, 86400, WAD + 1), "RateOutOfRange"),
        ((WAD, WAD, WAD, 86400, -WAD - 1), "RateOutOfRange"),
    ],
)
def test_rejects_the_same_inputs(
    bs_harness: Contract, bs_decoder: ErrorDecoder, args: tuple[int, ...], name: str
) -> None:
    with pytest.raises(ContractCustomError) as exc:
        bs_harness.functions.price(*args).call()
    assert bs_decoder.decode(revert_data(exc.value)).name == name
    with pytest.raises(rf.RiskInputError) as mine:
        rf.price(*args)
    assert mine.value.name == name


def test_rejects_ln_spot_out_of_range(bs_harness: Contract, bs_decoder: ErrorDecoder) -> None:
    p = rf.prepare(WAD, 86400, 0)
    for ln_spot in (43 * WAD, -43 * WAD, -(2**255)):
        with pytest.raises(ContractCustomError) as exc:
            bs_harness.functions.priceAtLn(p.as_tuple(), WAD, ln_spot, WAD).call()
        assert bs_decoder.decode(revert_data(exc.value)).name == "LnSpotOutOfRange"
        with pytest.raises(rf.RiskInputError):
            rf.price_at_ln(p, WAD, ln_spot, WAD)
