"""Custody: deposit, withdraw, transfer, configureSubaccount, fundInsurance, and the custody
invariant (token balance held >= what is booked)."""

from __future__ import annotations

import pytest
from helpers import (
    ETH,
    WBTC,
    WETH,
    cash_of,
    configure_market,
    custody_holds,
    deposit,
    events,
    fund,
    insurance,
    reverts,
    set_price,
    usdc,
    wad,
)

# ------------------------------------------------------------------ deposit


def test_deposit_cash_credits_wad_cash_and_books_it(dep, alice):
    booked = dep.core.functions.cashBooked().call()
    rcpt = deposit(dep, alice, 0, 0, usdc("123.456789"))
    assert cash_of(dep, alice) == wad("123.456789")
    assert dep.core.functions.cashBooked().call() == booked + wad("123.456789")
    assert events(rcpt, dep.core, "Deposited") == [
        {"owner": alice, "subaccount": 0, "assetId": 0, "amount": usdc("123.456789")}
    ]
    custody_holds(dep)


def test_deposit_collateral_credits_balance_total_and_mask(dep, alice):
    deposit(dep, alice, 3, WBTC, 2 * 10**8)
    assert dep.core.functions.collateralBalance(alice, 3, WBTC).call() == 2 * 10**8
    acct = dep.core.functions.getAccount(alice, 3).call()
    assert acct[1] == 1 << WBTC and acct[0] == 0
    assert dep.core.functions.assetConfig(WBTC).call()[6] == 2 * 10**8
    custody_holds(dep)


def test_deposit_rejects_zero_amount(dep, alice):
    fund(dep, alice, 0, usdc(1))
    with reverts("ZeroAmount"):
        dep.send(dep.core.functions.deposit(0, 0, 0), alice)
    with reverts("ZeroAmount"):
        dep.send(dep.core.functions.deposit(0, WETH, 0), alice)


@pytest.mark.parametrize("asset_id", [3, 15, 2**255])
def test_deposit_rejects_unknown_asset(dep, alice, asset_id):
    with reverts("UnknownAsset", assetId=asset_id):
        dep.send(dep.core.functions.deposit(0, asset_id, 1), alice)


def test_deposit_rejects_disabled_asset(dep, admin, alice):
    cfg = dep.core.functions.assetConfig(WETH).call()
    dep.send(dep.core.functions.configureAsset(WETH, cfg[2], cfg[3], cfg[5], False), admin)
    fund(dep, alice, WETH, wad(1))
    with reverts("Disabled", id=WETH):
        dep.send(dep.core.functions.deposit(0, WETH, wad(1)), alice)


def test_withdraw_of_disabled_asset_still_works(dep, admin, alice):
    deposit(dep, alice, 0, WETH, wad(1))
    cfg = dep.core.functions.assetConfig(WETH).call()
    dep.send(dep.core.functions.configureAsset(WETH, cfg[2], cfg[3], cfg[5], False), admin)
    dep.send(dep.core.functions.withdraw(0, WETH, wad(1)), alice)
    assert dep.token(WETH).functions.balanceOf(alice).call() == wad(1)


def test_deposit_rejects_amount_past_cap(dep, admin, alice, bob):
    cfg = dep.core.functions.assetConfig(WETH).call()
    dep.send(dep.core.functions.configureAsset(WETH, cfg[2], cfg[3], wad(10), True), admin)
    deposit(dep, alice, 0, WETH, wad(6))
    fund(dep, bob, WETH, wad(5))
    with reverts("CapExceeded", assetId=WETH, totalAfter=wad(11), cap=wad(10)):
        dep.send(dep.core.functions.deposit(0, WETH, wad(5)), bob)
    dep.send(dep.core.functions.deposit(0, WETH, wad(4)), bob)  # exactly the cap is fine
    assert dep.core.functions.assetConfig(WETH).call()[6] == wad(10)


def test_deposit_rejects_without_allowance(dep, alice):
    dep.send(dep.token(WETH).functions.mint(alice, wad(1)), alice)
    # The token's own error arrives wrapped: TokenCallFailed names the token and the call
    # (transferFrom), and carries the token's revert data, which the SDK decodes too.
    with reverts("TokenCallFailed", token=dep.token(WETH).address) as box:
        dep.send(dep.core.functions.deposit(0, WETH, wad(1)), alice)
    err = box["err"]
    assert err.args_by_name["operation"] == bytes.fromhex("23b872dd")
    assert dep.decoder.decode(err.args_by_name["reason"]).name == "ERC20InsufficientAllowance"
    assert dep.core.functions.collateralBalance(alice, 0, WETH).call() == 0


# ------------------------------------------------------------------ withdraw


def test_withdraw_cash_pays_token_units_and_unbooks(dep, alice):
    deposit(dep, alice, 0, 0, usdc(500))
    booked = dep.core.functions.cashBooked().call()
    rcpt = dep.send(dep.core.functions.withdraw(0, 0, usdc(200)), alice)
    assert cash_of(dep, alice) == wad(300)
    assert dep.cash.functions.balanceOf(alice).call() == usdc(200)
    assert dep.core.functions.cashBooked().call() == booked - wad(200)
    assert events(rcpt, dep.core, "Withdrawn")[0]["amount"] == usdc(200)
    custody_holds(dep)


def test_withdraw_collateral_clears_mask_when_emptied(dep, alice):
    deposit(dep, alice, 0, WETH, wad(2))
    dep.send(dep.core.functions.withdraw(0, WETH, wad(1)), alice)
    assert dep.core.functions.getAccount(alice, 0).call()[1] == 1 << WETH
    dep.send(dep.core.functions.withdraw(0, WETH, wad(1)), alice)
    assert dep.core.functions.getAccount(alice, 0).call()[1] == 0
    assert dep.core.functions.assetConfig(WETH).call()[6] == 0
    assert dep.token(WETH).functions.balanceOf(alice).call() == wad(2)
    custody_holds(dep)


def test_withdraw_rejects_zero_amount(dep, alice):
    deposit(dep, alice, 0, 0, usdc(10))
    with reverts("ZeroAmount"):
        dep.send(dep.core.functions.withdraw(0, 0, 0), alice)


def test_withdraw_rejects_unknown_asset(dep, alice):
    with reverts("UnknownAsset", assetId=7):
        dep.send(dep.core.functions.withdraw(0, 7, 1), alice)


def test_withdraw_rejects_more_cash_than_balance(dep, alice):
    deposit(dep, alice, 0, 0, usdc(100))
    # Both amounts in token units (the balance: its whole token units).
    with reverts("InsufficientBalance", assetId=0, balance=usdc(100), requested=usdc("100.000001")):
        dep.send(dep.core.functions.withdraw(0, 0, usdc("100.000001")), alice)


def test_withdraw_rejects_more_collateral_than_balance(dep, alice):
    deposit(dep, alice, 0, WBTC, 10**8)
    with reverts("InsufficientBalance", assetId=WBTC, balance=10**8, requested=10**8 + 1):
        dep.send(dep.core.functions.withdraw(0, WBTC, 10**8 + 1), alice)


def test_withdraw_rejects_other_subaccounts_balance(dep, alice, bob):
    deposit(dep, alice, 0, 0, usdc(100))
    with reverts("InsufficientBalance", assetId=0, balance=0):
        dep.send(dep.core.functions.withdraw(1, 0, usdc(1)), alice)
    with reverts("InsufficientBalance", assetId=0, balance=0):
        dep.send(dep.core.functions.withdraw(0, 0, usdc(1)), bob)


def test_withdraw_cannot_borrow_cash(dep, alice):
    # Negative cash after a fee: a withdrawal never makes the balance more negative.
    deposit(dep, alice, 0, WETH, wad(10))
    dep.send(dep.core.functions.trade(0, ETH, wad(1), 0), alice)
    assert cash_of(dep, alice) < 0
    with reverts("InsufficientBalance", assetId=0, balance=0, requested=1):
        dep.send(dep.core.functions.withdraw(0, 0, 1), alice)


# ------------------------------------------------------------------ transfer


def test_transfer_moves_cash_and_collateral_between_subaccounts(dep, alice):
    deposit(dep, alice, 0, 0, usdc(100))
    deposit(dep, alice, 0, WETH, wad(3))
    booked = dep.core.functions.cashBooked().call()
    rcpt = dep.send(dep.core.functions.transfer(0, 5, 0, usdc(40)), alice)
    dep.send(dep.core.functions.transfer(0, 5, WETH, wad(3)), alice)
    assert cash_of(dep, alice, 0) == wad(60) and cash_of(dep, alice, 5) == wad(40)
    assert dep.core.functions.collateralBalance(alice, 5, WETH).call() == wad(3)
    assert dep.core.functions.getAccount(alice, 0).call()[1] == 0
    assert dep.core.functions.getAccount(alice, 5).call()[1] == 1 << WETH
    assert dep.core.functions.cashBooked().call() == booked  # internal move
    assert events(rcpt, dep.core, "Transferred") == [
        {"owner": alice, "fromSubaccount": 0, "toSubaccount": 5, "assetId": 0, "amount": usdc(40)}
    ]
    custody_holds(dep)


def test_transfer_rejects_zero_amount(dep, alice):
    deposit(dep, alice, 0, 0, usdc(100))
    with reverts("ZeroAmount"):
        dep.send(dep.core.functions.transfer(0, 1, 0, 0), alice)


def test_transfer_rejects_unknown_asset(dep, alice):
    with reverts("UnknownAsset", assetId=9):
        dep.send(dep.core.functions.transfer(0, 1, 9, 1), alice)


def test_transfer_rejects_more_than_balance(dep, alice):
    deposit(dep, alice, 0, WETH, wad(1))
    with reverts("InsufficientBalance", assetId=WETH, balance=wad(1), requested=wad(2)):
        dep.send(dep.core.functions.transfer(0, 1, WETH, wad(2)), alice)
    deposit(dep, alice, 0, 0, usdc(5))
    with reverts("InsufficientBalance", assetId=0, balance=usdc(5), requested=usdc(6)):
        dep.send(dep.core.functions.transfer(0, 1, 0, usdc(6)), alice)


# ------------------------------------------------------------------ subaccount mode


def test_configure_subaccount_sets_isolated_market(dep, alice):
    rcpt = dep.send(dep.core.functions.configureSubaccount(2, ETH + 1), alice)
    assert dep.core.functions.getAccount(alice, 2).call()[3] == ETH + 1
    assert events(rcpt, dep.core, "SubaccountConfigured")[0]["isolatedMarket"] == ETH + 1
    dep.send(dep.core.functions.configureSubaccount(2, 0), alice)
    assert dep.core.functions.getAccount(alice, 2).call()[3] == 0


def test_configure_subaccount_rejects_unknown_market(dep, alice):
    n = dep.core.functions.marketCount().call()
    with reverts("UnknownMarket", marketId=n):
        dep.send(dep.core.functions.configureSubaccount(1, n + 1), alice)


@pytest.mark.parametrize("asset_id", [0, WETH])
def test_configure_subaccount_rejects_non_empty_subaccount(dep, alice, asset_id):
    deposit(dep, alice, 1, asset_id, 10**6)
    with reverts("SubaccountNotEmpty", owner=alice, subaccount=1):
        dep.send(dep.core.functions.configureSubaccount(1, ETH + 1), alice)


# ------------------------------------------------------------------ insurance fund


def test_fund_insurance_books_cash(dep, alice):
    before, booked = insurance(dep), dep.core.functions.cashBooked().call()
    fund(dep, alice, 0, usdc(250))
    rcpt = dep.send(dep.core.functions.fundInsurance(usdc(250)), alice)
    assert insurance(dep) == before + wad(250)
    assert dep.core.functions.cashBooked().call() == booked + wad(250)
    assert events(rcpt, dep.core, "InsuranceFunded") == [{"from": alice, "amount": usdc(250)}]
    custody_holds(dep)


def test_fund_insurance_rejects_zero_amount(dep, alice):
    with reverts("ZeroAmount"):
        dep.send(dep.core.functions.fundInsurance(0), alice)


def test_custody_invariant_holds_after_a_mixed_sequence(dep, alice, bob):
    deposit(dep, alice, 0, 0, usdc(5000))
    deposit(dep, alice, 1, WETH, wad(2))
    deposit(dep, bob, 0, WBTC, 3 * 10**8)
    dep.send(dep.core.functions.trade(0, ETH, wad(1), 0), alice)
    dep.send(dep.core.functions.transfer(1, 0, WETH, wad(1)), alice)
    dep.send(dep.core.functions.withdraw(0, 0, usdc(1000)), alice)
    dep.send(dep.core.functions.withdraw(0, WBTC, 10**8), bob)
    custody_holds(dep)
    assert dep.core.functions.assetConfig(WBTC).call()[6] == 2 * 10**8
    assert dep.core.functions.assetConfig(WETH).call()[6] == wad(2)


def test_withdraw_rejects_when_cash_is_lent_out(dep, admin, alice, bob):
    # alice's loss is paid from cash debt backed by WETH: the pool is credited without tokens
    # arriving. Once LPs take their tokens out, a winner's cash exceeds what the core holds.
    configure_market(dep, ETH, maxFundingRateWad=0)
    deposit(dep, alice, 0, WETH, wad(400))
    dep.send(dep.core.functions.trade(0, ETH, wad(100), 0), alice)
    set_price(dep, 1, 500)
    dep.send(dep.core.functions.trade(0, ETH, -wad(100), 0), alice)
    assert cash_of(dep, alice) < -wad(150_000)
    dep.lp_redeem(admin, dep.pool.functions.convertToShares(usdc(10_000_000)).call())
    deposit(dep, bob, 0, 0, usdc(20_000))
    dep.send(dep.core.functions.trade(0, ETH, wad(100), 0), bob)
    set_price(dep, 1, 2000)
    dep.send(dep.core.functions.trade(0, ETH, -wad(100), 0), bob)
    held = dep.cash.functions.balanceOf(dep.core.address).call()
    bob_cash = cash_of(dep, bob) // 10**12
    assert bob_cash > held
    with reverts("InsufficientLiquidity", available=held, requested=bob_cash):
        dep.send(dep.core.functions.withdraw(0, 0, bob_cash), bob)
    dep.send(dep.core.functions.withdraw(0, 0, held), bob)  # what is there can leave
    custody_holds(dep)
