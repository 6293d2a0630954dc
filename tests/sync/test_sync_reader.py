"""StateReader against anvil: the MarginState equals the core's own views at the same block."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import Actor, populate
from hypothesis import given, settings
from hypothesis import strategies as st
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError

from plimsoll.deploy import Deployment
from plimsoll.state import MarginState
from plimsoll.sync import LensError, RpcClient, StateReader, sync_state
from plimsoll.units import token_units


def warp(w3: Web3, seconds: int) -> None:
    w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def refresh_feeds(dep: Deployment) -> None:
    for f in dep.feeds.values():
        ans = f.functions.latestRoundData().call()[1]
        dep.send(f.functions.updateAnswer(ans), dep.admin)


def busy_state(dep: Deployment, actor: Actor, accounts: list[str]) -> list[tuple[str, int]]:
    """Accounts with cash (some negative), collateral, long and short positions in several
    markets, isolated subaccounts, and funding accrued over time."""
    populate(actor, accounts)
    alice, bob, carol, dave, keeper, erin = accounts[1:7]
    actor.deposit(erin, 0, 1, token_units(50, 18))  # WETH only: cash goes negative on fees
    actor.deposit(erin, 0, 2, token_units(1, 8))
    actor.trade(erin, 0, 0, "-10")
    actor.trade(erin, 0, 1, "0.3")
    actor.trade(erin, 0, 2, "100")
    actor.trade(alice, 0, 2, "-20")
    warp(dep.w3, 1800)
    refresh_feeds(dep)
    actor.trade(bob, 7, 1, "0.1")  # accrues BTC funding
    actor.set_price(3, 151)
    accts = [(alice, 0), (alice, 1), (alice, 42), (bob, 7), (carol, 3), (dave, 2**200)]
    accts += [(dave, 5), (keeper, 0), (erin, 0), (erin, 99)]  # (erin, 99) was never used
    return accts


def assert_matches_core(
    dep: Deployment, state: MarginState, accts: list[tuple[str, int]], block: int
) -> None:
    core, oracle = dep.core, dep.oracle
    at = {"block_identifier": block}
    n_m = core.functions.marketCount().call(**at)
    n_a = core.functions.assetCount().call(**at)
    assert state.block == block
    assert state.timestamp == dep.w3.eth.get_block(block)["timestamp"]
    assert state.n_accounts == len(accts) and state.n_markets == n_m and state.n_assets == n_a
    assert state.owners == [Web3.to_checksum_address(o) for o, _ in accts]
    assert [int(s) for s in state.subaccounts] == [s for _, s in accts]
    for k, (owner, sub) in enumerate(accts):
        cash, _amask, _mmask, _iso, _flags, *_ = core.functions.getAccount(owner, sub).call(**at)
        assert state.cash[k] == cash
        for m in range(n_m):
            size, notional, index = core.functions.getPosition(owner, sub, m).call(**at)
            assert (state.sizes[k, m], state.open_notional[k, m]) == (size, notional)
            assert state.entry_funding_index[k, m] == index
        for i in range(1, n_a + 1):
            assert state.balances[k, i - 1] == core.functions.collateralBalance(owner, sub, i).call(
                **at
            )
    for i in range(1, n_a + 1):
        token, decimals, haircut, feed, *_ = core.functions.assetConfig(i).call(**at)
        assert state.asset_decimals[i - 1] == decimals
        assert state.asset_haircut[i - 1] == haircut
        assert state.asset_price[i - 1] == oracle.functions.price(feed).call(**at)
    for m in range(n_m):
        cfg = core.functions.marketConfig(m).call(**at)
        st = core.functions.marketState(m).call(**at)
        assert state.market_price[m] == oracle.functions.price(cfg[0]).call(**at)
        assert (state.im_base[m], state.mm_factor[m], state.size_slope[m]) == (
            cfg[2],
            cfg[3],
            cfg[5],
        )
        assert (state.max_funding_rate[m], state.skew_scale[m]) == (cfg[6], cfg[7])
        assert (state.long_oi[m], state.short_oi[m]) == (st[0], st[1])
        assert (state.funding_index[m], state.last_funding_time[m]) == (st[2], st[3])
    # Exact Python integers everywhere a value may not fit int64.
    for arr in (state.cash, state.balances, state.sizes, state.market_price, state.funding_index):
        assert arr.dtype == object


def test_state_equals_core_views_at_pinned_block(
    dep: Deployment, actor: Actor, accounts: list[str], lens: Contract
) -> None:
    accts = busy_state(dep, actor, accounts)
    block = dep.w3.eth.block_number
    # The chain moves on after the pinned block: reads must not see it.
    alice, bob, erin = accounts[1], accounts[2], accounts[6]
    actor.usdc(alice, 0, 777)
    actor.trade(bob, 7, 1, "0.2")
    actor.trade(erin, 0, 0, "3")
    actor.set_price(1, 2100)
    rpc = RpcClient(dep.w3)
    progress: list[tuple[str, int, int]] = []
    reader = StateReader(
        dep.w3,
        dep.core.address,
        lens.address,
        batch_size=3,
        calls_per_request=2,
        rpc=rpc,
        progress=lambda *a: progress.append(a),
    )
    state = reader.read(accts, block)
    assert_matches_core(dep, state, accts, block)
    # 1 markets call + ceil(10 / 3) = 4 account calls, in ceil(5 / 2) = 3 HTTP batches.
    assert rpc.requests == 5 and rpc.round_trips == 3 and rpc.by_method == {"eth_call": 5}
    assert progress[-1] == ("read", len(accts), len(accts))
    assert state.sizes[accts.index((erin, 0)), 0] < 0 < state.sizes[accts.index((erin, 0)), 2]
    assert state.cash[accts.index((erin, 0))] < 0
    # The head differs, as it should.
    later = reader.read(accts)
    assert later.block > block and later.cash[0] != state.cash[0]
    assert_matches_core(dep, later, accts, later.block)


def test_stale_feed_is_reported_not_reverted(
    dep: Deployment, actor: Actor, accounts: list[str], reader: StateReader
) -> None:
    actor.usdc(accounts[1], 0, 10)
    warp(dep.w3, 2 * 3600)  # past every feed's heartbeat
    dep.send(dep.feeds[2].functions.updateAnswer(actor.answer(61_000)), dep.admin)  # BTC fresh
    block = dep.w3.eth.block_number
    with pytest.raises(ContractCustomError):
        dep.oracle.functions.price(1).call(block_identifier=block)
    state = reader.read([(accounts[1], 0)], block)
    table = reader.last_markets
    assert table is not None
    # Stale prices are graded, not zeroed: the latest answers, flagged not OK.
    assert table.market_price_ok == [False, True, False]
    assert list(state.market_price) == [2_000 * 10**18, 61_000 * 10**18, 150 * 10**18]
    # Collateral prices are what the core values collateral at: nothing while stale.
    assert table.asset_price_ok == [False, True]
    assert list(state.asset_price) == [0, 61_000 * 10**18]
    assert state.market_price_ok is not None and state.market_price_ok.tolist() == [
        False,
        True,
        False,
    ]
    assert state.cash[0] == 10 * 10**18


def test_no_accounts_and_missing_lens(dep: Deployment, reader: StateReader) -> None:
    state = reader.read([])
    assert state.n_accounts == 0
    assert state.sizes.shape == (0, 3) and state.balances.shape == (0, 2)
    assert isinstance(state.subaccounts, np.ndarray)
    # An address without lens code (anvil may not keep the state of blocks before the lens
    # was deployed once a test has reverted a snapshot, so no historical block is asked for).
    nowhere = StateReader(dep.w3, dep.core.address, "0x" + "11" * 20, rpc=RpcClient(dep.w3))
    with pytest.raises(LensError):
        nowhere.read([])


def test_sync_state_end_to_end(
    dep: Deployment, actor: Actor, accounts: list[str], lens: Contract, make_indexer: Any
) -> None:
    accts = busy_state(dep, actor, accounts)
    rpc = RpcClient(dep.w3)
    ix = make_indexer(rpc=rpc)
    reader = StateReader(dep.w3, dep.core.address, lens.address, rpc=rpc)
    res = sync_state(ix, reader)
    expected = [a for a in ix.accounts()]
    assert set(expected) == set(accts) - {(accounts[6], 99)}
    assert_matches_core(dep, res.state, expected, res.state.block)
    assert res.state.block == ix.last_block
    assert res.rpc_requests == rpc.requests > 0
    assert res.by_method["eth_getLogs"] == 1 and res.by_method["eth_call"] == 2


def test_checksum_matches_eth_utils() -> None:
    import os

    from eth_utils import to_checksum_address

    from plimsoll.sync import checksum

    for _ in range(100):
        a = "0x" + os.urandom(20).hex()
        assert checksum(a) == to_checksum_address(a) == checksum(to_checksum_address(a))
    good = to_checksum_address("0x" + "ab" * 20)
    bad = good[:2] + good[2:].swapcase()
    with pytest.raises(ValueError):
        checksum(bad)
    with pytest.raises(ValueError):
        checksum("0x1234")


@settings(max_examples=200, deadline=None)
@given(
    core=st.binary(min_size=20, max_size=20),
    rows=st.lists(
        st.tuples(st.binary(min_size=20, max_size=20), st.integers(0, 2**256 - 1)), max_size=40
    ),
)
def test_account_arguments_encode_as_eth_abi_does(
    core: bytes, rows: list[tuple[bytes, int]]
) -> None:
    from eth_abi import encode

    from plimsoll.sync import encode_accounts_args

    owners, subs = [o for o, _ in rows], [s for _, s in rows]
    core_hex = "0x" + core.hex()
    want = encode(["address", "address[]", "uint256[]"], [core_hex, owners, subs])
    assert encode_accounts_args(core_hex, owners, subs) == want


def test_account_arguments_refuse_what_eth_abi_would() -> None:
    from plimsoll.sync import encode_accounts_args

    core = "0x" + "11" * 20
    with pytest.raises(ValueError):
        encode_accounts_args(core, [b"\x01" * 19], [0])
    with pytest.raises(ValueError):
        encode_accounts_args(core, [b"\x01" * 20], [2**256])
    with pytest.raises(ValueError):
        encode_accounts_args(core, [b"\x01" * 20], [])
