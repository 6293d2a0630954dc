"""Non-standard ERC-20s (contracts/mocks/WeirdTokens.sol) as collateral: the core books what
actually arrives, never what was asked, and the custody invariant holds after every step."""

from __future__ import annotations

import pytest
from helpers import (
    MAX_UINT,
    custody_holds,
    deploy,
    events,
    margin,
    mul_down,
    reverts,
    wad,
)

FEED = 1  # ETH/USD at 2000
HAIRCUT = wad("0.5")


CAP = wad(10**9)


def list_token(dep, token):
    rcpt = dep.send(dep.core.functions.listAsset(token.address, HAIRCUT, FEED, CAP), dep.admin)
    return events(rcpt, dep.core, "AssetListed")[0]["assetId"]


def booked(dep, asset_id):
    return dep.core.functions.assetConfig(asset_id).call()[6]


def held(dep, token):
    return token.functions.balanceOf(dep.core.address).call()


def nothing_booked(dep, who, asset_id):
    assert dep.core.functions.collateralBalance(who, 0, asset_id).call() == 0
    assert dep.core.functions.getAccount(who, 0).call()[1] == 0
    assert booked(dep, asset_id) == 0


# ------------------------------------------------------------------ fee on transfer


@pytest.fixture
def fee_token(dep, admin):
    return deploy(dep.w3, "FeeOnTransferToken", admin, 100)  # 1%


def test_fee_on_transfer_deposit_credits_what_arrived(dep, fee_token, alice):
    aid = list_token(dep, fee_token)
    dep.send(fee_token.functions.mint(alice, wad(1000)), alice)
    dep.send(fee_token.functions.approve(dep.core.address, MAX_UINT), alice)
    rcpt = dep.send(dep.core.functions.deposit(0, aid, wad(1000)), alice)
    assert events(rcpt, dep.core, "Deposited")[0]["amount"] == wad(990)
    assert dep.core.functions.collateralBalance(alice, 0, aid).call() == wad(990)
    assert booked(dep, aid) == wad(990) == held(dep, fee_token)
    assert margin(dep, alice)[0] == mul_down(mul_down(wad(990), wad(2000)), HAIRCUT)
    custody_holds(dep)


def test_fee_on_transfer_withdraw_unbooks_the_amount_sent(dep, fee_token, alice):
    aid = list_token(dep, fee_token)
    dep.send(fee_token.functions.mint(alice, wad(1000)), alice)
    dep.send(fee_token.functions.approve(dep.core.address, MAX_UINT), alice)
    dep.send(dep.core.functions.deposit(0, aid, wad(1000)), alice)
    dep.send(dep.core.functions.withdraw(0, aid, wad(500)), alice)
    custody_holds(dep)
    dep.send(dep.core.functions.withdraw(0, aid, wad(490)), alice)
    nothing_booked(dep, alice, aid)
    assert held(dep, fee_token) == 0
    assert fee_token.functions.balanceOf(alice).call() == wad(990) * 99 // 100
    custody_holds(dep)


def test_token_taking_everything_reverts_nothing_received(dep, admin, alice):
    greedy = deploy(dep.w3, "FeeOnTransferToken", admin, 10_000)
    aid = list_token(dep, greedy)
    dep.send(greedy.functions.mint(alice, wad(10)), alice)
    dep.send(greedy.functions.approve(dep.core.address, MAX_UINT), alice)
    with reverts("NothingReceived", token=greedy.address):
        dep.send(dep.core.functions.deposit(0, aid, wad(10)), alice)
    nothing_booked(dep, alice, aid)
    custody_holds(dep)


# ------------------------------------------------------------------ returns false


@pytest.fixture
def false_token(dep, admin):
    return deploy(dep.w3, "ReturnsFalseToken", admin)


def test_returns_false_without_allowance_reverts_and_books_nothing(dep, false_token, alice):
    aid = list_token(dep, false_token)
    dep.send(false_token.functions.mint(alice, wad(10)), alice)
    with reverts("TokenCallFailed", token=false_token.address, operation=TRANSFER_FROM):
        dep.send(dep.core.functions.deposit(0, aid, wad(10)), alice)
    nothing_booked(dep, alice, aid)
    assert false_token.functions.balanceOf(alice).call() == wad(10)
    custody_holds(dep)


def test_returns_false_without_balance_reverts_and_books_nothing(dep, false_token, alice):
    aid = list_token(dep, false_token)
    dep.send(false_token.functions.mint(alice, wad(1)), alice)
    dep.send(false_token.functions.approve(dep.core.address, MAX_UINT), alice)
    with reverts("TokenCallFailed", token=false_token.address, operation=TRANSFER_FROM):
        dep.send(dep.core.functions.deposit(0, aid, wad(2)), alice)
    nothing_booked(dep, alice, aid)
    custody_holds(dep)


def test_returns_false_token_works_when_transfers_succeed(dep, false_token, alice):
    aid = list_token(dep, false_token)
    dep.send(false_token.functions.mint(alice, wad(3)), alice)
    dep.send(false_token.functions.approve(dep.core.address, MAX_UINT), alice)
    dep.send(dep.core.functions.deposit(0, aid, wad(3)), alice)
    assert booked(dep, aid) == wad(3) == held(dep, false_token)
    dep.send(dep.core.functions.withdraw(0, aid, wad(3)), alice)
    assert false_token.functions.balanceOf(alice).call() == wad(3)
    nothing_booked(dep, alice, aid)
    custody_holds(dep)


# ------------------------------------------------------------------ missing return value


def test_missing_return_token_deposits_and_withdraws(dep, admin, alice):
    tok = deploy(dep.w3, "MissingReturnToken", admin)
    aid = list_token(dep, tok)
    assert dep.core.functions.assetConfig(aid).call()[1] == 6
    dep.send(tok.functions.mint(alice, 5 * 10**6), alice)
    dep.send(tok.functions.approve(dep.core.address, MAX_UINT), alice)
    dep.send(dep.core.functions.deposit(0, aid, 5 * 10**6), alice)
    assert dep.core.functions.collateralBalance(alice, 0, aid).call() == 5 * 10**6
    assert booked(dep, aid) == 5 * 10**6 == held(dep, tok)
    assert margin(dep, alice)[0] == wad(5 * 2000) // 2  # 6 decimals scaled to WAD, 0.5 haircut
    custody_holds(dep)
    dep.send(dep.core.functions.withdraw(0, aid, 2 * 10**6), alice)
    assert tok.functions.balanceOf(alice).call() == 2 * 10**6
    assert booked(dep, aid) == 3 * 10**6 == held(dep, tok)
    custody_holds(dep)


def test_missing_return_token_failed_transfer_reverts(dep, admin, alice):
    tok = deploy(dep.w3, "MissingReturnToken", admin)
    aid = list_token(dep, tok)
    dep.send(tok.functions.mint(alice, 10**6), alice)  # no allowance: the token itself reverts
    # The token's allowance underflows: its Panic arrives wrapped, naming token and call.
    with reverts("TokenCallFailed", token=tok.address, operation=TRANSFER_FROM) as box:
        dep.send(dep.core.functions.deposit(0, aid, 10**6), alice)
    inner = dep.decoder.decode(box["err"].args_by_name["reason"])
    assert (inner.name, inner.args_by_name["code"]) == ("Panic", 0x11)
    nothing_booked(dep, alice, aid)


# ------------------------------------------------------------------ re-entrancy


@pytest.fixture
def reentrant(dep, admin):
    tok = deploy(dep.w3, "ReentrantToken", admin)
    return tok, list_token(dep, tok)


TRANSFER_FROM = bytes.fromhex("23b872dd")


def reentry_refused(dep, box) -> bool:
    """The token's hook was refused by the core's guard: the token's failure arrives wrapped
    in TokenCallFailed with ReentrancyGuardReentrantCall inside."""
    inner = dep.decoder.decode(box["err"].args_by_name["reason"])
    return inner.name == "ReentrancyGuardReentrantCall"


def _payload(dep, inner, aid):
    fn = "deposit" if inner == "deposit" else "withdraw"
    return dep.core.encode_abi(fn, args=[0, aid, wad(1)])


@pytest.mark.parametrize("inner", ["deposit", "withdraw"])
def test_reentrant_deposit_reverts_and_books_nothing(dep, reentrant, alice, inner):
    tok, aid = reentrant
    dep.send(tok.functions.mint(alice, wad(10)), alice)
    dep.send(tok.functions.approve(dep.core.address, MAX_UINT), alice)
    dep.send(tok.functions.arm(dep.core.address, _payload(dep, inner, aid)), alice)
    with reverts("TokenCallFailed", token=tok.address) as box:
        dep.send(dep.core.functions.deposit(0, aid, wad(5)), alice)
    assert reentry_refused(dep, box)
    nothing_booked(dep, alice, aid)
    assert held(dep, tok) == 0
    assert tok.functions.balanceOf(alice).call() == wad(10)
    custody_holds(dep)


@pytest.mark.parametrize("inner", ["deposit", "withdraw"])
def test_reentrant_withdraw_reverts_and_books_nothing(dep, reentrant, alice, inner):
    tok, aid = reentrant
    dep.send(tok.functions.mint(alice, wad(10)), alice)
    dep.send(tok.functions.approve(dep.core.address, MAX_UINT), alice)
    dep.send(dep.core.functions.deposit(0, aid, wad(5)), alice)  # unarmed: a plain deposit
    dep.send(tok.functions.arm(dep.core.address, _payload(dep, inner, aid)), alice)
    with reverts("TokenCallFailed", token=tok.address) as box:
        dep.send(dep.core.functions.withdraw(0, aid, wad(2)), alice)
    assert reentry_refused(dep, box)
    assert dep.core.functions.collateralBalance(alice, 0, aid).call() == wad(5)
    assert booked(dep, aid) == wad(5) == held(dep, tok)
    assert tok.functions.balanceOf(alice).call() == wad(5)
    custody_holds(dep)


def test_reentrant_token_without_hook_behaves(dep, reentrant, alice):
    tok, aid = reentrant
    dep.send(tok.functions.mint(alice, wad(4)), alice)
    dep.send(tok.functions.approve(dep.core.address, MAX_UINT), alice)
    dep.send(dep.core.functions.deposit(0, aid, wad(4)), alice)
    dep.send(dep.core.functions.withdraw(0, aid, wad(4)), alice)
    nothing_booked(dep, alice, aid)
    custody_holds(dep)


# ------------------------------------------------------------------ too many decimals


def test_high_decimals_token_refused_at_listing(dep, admin):
    tok = deploy(dep.w3, "HighDecimalsToken", admin)
    count = dep.core.functions.assetCount().call()
    with reverts("UnsupportedToken", token=tok.address):
        dep.send(dep.core.functions.listAsset(tok.address, HAIRCUT, FEED, wad(1)), admin)
    assert dep.core.functions.assetCount().call() == count
    assert not dep.core.functions.isListed(tok.address).call()
    custody_holds(dep)
