"""The keeper prices pending LP requests (ERC-7540 fulfilment) in the first block it can: a
requester cannot wait for a better price while a keeper runs."""

from __future__ import annotations

import time
from pathlib import Path

from plimsoll.units import token_units
from tests.keeper.conftest import Running, Setup


def test_keeper_fulfils_pending_pool_requests_after_the_next_round(
    setup: Setup, tmp_path: Path
) -> None:
    s = setup
    dep, w3 = s.dep, s.w3
    pool = dep.pool.functions
    lp = str(w3.eth.accounts[10])
    dep.send(dep.cash.functions.mint(lp, token_units(5_000, 6)), lp)
    dep.send(dep.cash.functions.approve(dep.pool.address, 2**256 - 1), lp)
    dep.send(pool.requestDeposit(token_units(5_000, 6), lp, lp), lp)
    # The pool holds the traders' positions: the request waits for a round of the ETH feed.
    assert pool.canFulfil(lp).call() == [False, False]
    keeper = s.keeper(tmp_path, s.keeper_key(), "pool")
    with Running(keeper):
        time.sleep(1.0)
        assert pool.pendingDepositRequest(0, lp).call() == token_units(5_000, 6)  # waits
        dep.new_round()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and pool.pendingDepositRequest(0, lp).call() != 0:
            w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
            time.sleep(0.2)
    assert pool.pendingDepositRequest(0, lp).call() == 0, "the keeper priced the request"
    assert pool.maxDeposit(lp).call() == token_units(5_000, 6)
    assert keeper.summary()["pool_fulfilments_sent"] >= 1
