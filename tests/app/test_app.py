"""The wallet app in a real browser: connect, wrong chain, deposit with exact approval, a perp
opened with a preview and closed, an option bought, LP deposit, the margin-call banner with the
notifier's numbers, withdraw max, and bad inputs that send nothing. The page's numbers are the
SDK's for the same account. A screenshot per flow lands in build/app-screenshots/ (the
overview, the trade preview and the margin-call banner also in docs/)."""

from __future__ import annotations

import time
from typing import Any

from web3 import Web3

from plimsoll.client import PlimsollClient
from plimsoll.deploy import DEFAULT_PRICES, Deployment, list_default_series
from plimsoll.units import WAD, wad

USDC = 10**6


def _fund(dep: Deployment, who: str, usdc: int, deposit: int = 0) -> None:
    dep.send(dep.cash.functions.mint(who, usdc * USDC), who)
    if deposit:
        dep.send(dep.cash.functions.approve(dep.core.address, deposit * USDC), who)
        dep.send(dep.core.functions.deposit(0, 0, deposit * USDC), who)


def _ready(w: Any) -> None:
    w.page.wait_for_selector("#main:not(.hidden)")


def _field(w: Any, name: str) -> str:
    return str(w.page.inner_text(f"dd[data-field='{name}']"))


def test_connect_shows_the_sdks_numbers_for_the_account(
    open_wallet: Any, dep: Deployment, accounts: list[str], sdk: PlimsollClient
) -> None:
    trader = accounts[3]
    _fund(dep, trader, 10_000, deposit=5_000)
    dep.send(dep.core.functions.trade(0, 0, wad("2.5"), 0), trader)
    t0 = time.monotonic()
    w = open_wallet(trader)
    _ready(w)
    first_view = time.monotonic() - t0
    status = sdk.account(trader, 0).to_json()
    for name in ("equity", "initial_margin", "maintenance_margin", "free_collateral", "cash"):
        assert _field(w, name) == status[name], name
    row = w.page.inner_text("tr[data-market='ETH-PERP']")
    pos = status["positions"][0]
    for key in ("size", "entry_price", "mark_price", "unrealized_pnl", "liquidation_price"):
        assert pos[key] in row, (key, row)
    assert "deposited 5,000.00 USDC" in w.page.inner_text("#history")
    assert w.page.inner_text("dd[data-wallet-asset='USDC']") == "5,000.00 USDC"
    assert w.errors == []
    assert first_view < 10  # connect + first overview (includes the wallet round trips)
    w.shot("app-overview", docs=True)


def test_account_change_in_the_wallet_is_followed(
    open_wallet: Any, dep: Deployment, accounts: list[str], sdk: PlimsollClient
) -> None:
    a, b = accounts[15], accounts[16]
    _fund(dep, a, 1_000, deposit=300)
    _fund(dep, b, 1_000, deposit=700)
    w = open_wallet(a)
    _ready(w)
    assert _field(w, "equity") == "300.00 USD"
    w.page.evaluate(f"window.__switchAccount('{b}')")
    w.page.wait_for_selector(f"#who:has-text('{b}')")
    w.page.wait_for_selector("dd[data-field='equity']:has-text('700.00 USD')")
    assert _field(w, "equity") == sdk.account(b, 0).to_json()["equity"]


def test_wrong_chain_is_detected_and_switched(
    open_wallet: Any, accounts: list[str], w3: Web3
) -> None:
    w = open_wallet(accounts[3], chain="0x1")
    w.page.wait_for_selector("#wrong-chain:not(.hidden)")
    assert "chain 1" in w.page.inner_text("#wrong-chain")
    assert w.page.is_hidden("#actions")
    w.shot("wrong-chain")
    w.page.click("#switch-chain")
    w.page.wait_for_selector("#wrong-chain.hidden", state="attached")
    w.page.wait_for_selector("#actions", state="visible", timeout=10_000)
    w.page.wait_for_selector(f"#who:has-text('chain {w3.eth.chain_id}')", timeout=10_000)
    assert w.page.is_hidden("#wrong-chain")


def test_deposit_approves_exactly_then_deposits(
    open_wallet: Any, dep: Deployment, accounts: list[str]
) -> None:
    trader = accounts[4]
    _fund(dep, trader, 1_000)
    w = open_wallet(trader)
    _ready(w)
    w.page.fill("#f-deposit input[name=amount]", "250.5")
    w.page.click("#f-deposit button.primary")
    assert "Done" in w.wait_message("ok")
    steps = w.page.inner_text("#pending")
    assert "approve exactly 250.50 USDC" in steps and "deposit 250.50 USDC" in steps
    assert len(w.sent()) == 2
    assert dep.cash.functions.allowance(trader, dep.core.address).call() == 0
    assert dep.core.functions.getAccount(trader, 0).call()[0] == wad("250.5")
    w.page.wait_for_selector("dd[data-field='cash']:has-text('250.50 USD')")
    w.shot("deposit")


def test_trade_preview_then_open_and_close(
    open_wallet: Any, dep: Deployment, accounts: list[str], sdk: PlimsollClient
) -> None:
    trader = accounts[5]
    _fund(dep, trader, 10_000, deposit=5_000)
    w = open_wallet(trader)
    _ready(w)
    expected = sdk.preview_trade(trader, 0, "ETH-PERP", "8")
    w.page.fill("#f-trade input[name=size]", "8")
    w.page.click("#f-trade button.primary")
    w.page.wait_for_selector("#sign")
    for key in ("fill_price", "fee", "initial_margin_after", "health_after"):
        shown = w.page.inner_text(f"dd[data-preview='{key}']")
        assert shown == str(expected[key]), key
    assert w.sent() == []  # nothing is signed before "Sign"
    w.shot("app-trade-preview", docs=True)
    w.page.click("#sign")
    assert "Done" in w.wait_message("ok")
    assert dep.core.functions.getPosition(trader, 0, 0).call()[0] == wad(8)
    after = sdk.account(trader, 0)
    assert after.to_json()["initial_margin"] == expected["initial_margin_after"]
    w.page.wait_for_selector("button[data-close='ETH-PERP']")
    w.page.click("button[data-close='ETH-PERP']")
    w.page.wait_for_selector("#sign")
    w.page.click("#sign")
    assert "Done" in w.wait_message("ok")
    assert dep.core.functions.getPosition(trader, 0, 0).call()[0] == 0
    w.shot("trade-closed")


def test_option_buy_from_the_chain(
    open_wallet: Any, dep: Deployment, accounts: list[str], sdk: PlimsollClient
) -> None:
    list_default_series(
        dep.w3, dep.contracts["OptionsMarket"], dep.markets, DEFAULT_PRICES, dep.admin, dep.decoder
    )
    trader = accounts[6]
    _fund(dep, trader, 10_000, deposit=5_000)
    w = open_wallet(trader)
    _ready(w)
    atm = next(
        s
        for s in sdk.option_series()
        if s.market == "ETH-PERP" and s.is_call and s.strike == wad(2000)
    )
    w.page.wait_for_selector(f"tr[data-series='{atm.name}']")
    row = w.page.inner_text(f"tr[data-series='{atm.name}']")
    assert atm.to_json()["mark"] in row and "80.00%" in row
    w.page.fill(f"input[data-size='{atm.series_id}']", "2")
    w.page.click(f"button[data-buy='{atm.name}']")
    w.page.wait_for_selector("#sign")
    preview = sdk.preview_option(atm.series_id, "2", trader, 0)
    for key in ("premium", "fee", "initial_margin_after", "equity_after", "health_after"):
        shown = "—" if preview[key] is None else str(preview[key])  # a long needs no MM
        assert w.page.inner_text(f"dd[data-preview='{key}']") == shown, key
    w.page.click("#sign")
    assert "Done" in w.wait_message("ok")
    ids, sizes = dep.contracts["OptionsMarket"].functions.positions(trader, 0).call()
    assert list(ids) == [atm.series_id] and list(sizes) == [2 * WAD]
    w.page.wait_for_selector("#option-positions:not(.hidden)")
    w.shot("option-bought")


def test_lp_deposit_shows_shares(
    open_wallet: Any, dep: Deployment, accounts: list[str], sdk: PlimsollClient
) -> None:
    trader = accounts[7]
    _fund(dep, trader, 2_000)
    w = open_wallet(trader)
    _ready(w)
    w.page.fill("#f-lp-deposit input[name=amount]", "1000")
    w.page.click("#f-lp-deposit button.primary")
    assert "request a deposit of 1,000.00 USDC" in w.wait_message(
        "ok", contains="request a deposit"
    )
    assert dep.pool.functions.pendingDepositRequest(0, trader).call() == 1_000 * 10**6
    assert dep.pool.functions.balanceOf(trader).call() == 0  # not priced yet
    assert dep.cash.functions.allowance(trader, dep.pool.address).call() == 0
    w.page.wait_for_selector("#pool:has-text('pending deposit 1,000.00 USDC')")
    dep.new_round()  # the next price round: the request can be priced
    w.page.click("#f-lp-claim button.primary")
    assert "claim your pool shares" in w.wait_message("ok", contains="claim your pool shares")
    assert dep.pool.functions.balanceOf(trader).call() > 0
    assert dep.pool.functions.pendingDepositRequest(0, trader).call() == 0
    info = sdk.pool_info(trader)
    w.page.wait_for_selector(f"#pool:has-text('{info['shares']}')")
    w.shot("lp-deposit")


def test_margin_call_banner_shows_the_notifiers_numbers(
    open_wallet: Any, dep: Deployment, accounts: list[str], sdk: PlimsollClient
) -> None:
    trader = accounts[8]
    _fund(dep, trader, 2_000, deposit=1_000)
    dep.send(dep.core.functions.trade(0, 0, wad(4), 0), trader)
    dep.set_price(1, 1_900)
    notice = sdk.margin_call(trader, 0)
    assert notice is not None  # MM <= equity < IM: the notifier's zone
    w = open_wallet(trader)
    _ready(w)
    banner = w.page.locator("#margin-call")
    banner.wait_for(state="visible")
    expected_shortfall = sdk.account(trader, 0)  # same block
    assert expected_shortfall.margin_call
    from plimsoll.units import fmt_usd

    assert banner.get_attribute("data-shortfall") == fmt_usd(notice.shortfall, up=True, unit="USDC")
    assert notice.move_to_liquidation is not None
    assert banner.get_attribute("data-move") == f"{notice.move_to_liquidation:+.2%}"
    assert "Margin call" in banner.inner_text()
    w.shot("app-margin-call", docs=True)


def test_withdraw_max_empties_the_subaccount(
    open_wallet: Any, dep: Deployment, accounts: list[str]
) -> None:
    trader = accounts[9]
    _fund(dep, trader, 1_000, deposit=700)
    w = open_wallet(trader)
    _ready(w)
    w.page.click("#f-withdraw button[data-max]")
    assert w.page.input_value("#f-withdraw input[name=amount]") == "max"
    w.page.click("#f-withdraw button.primary")
    assert "withdraw 700.00 USDC" in w.wait_message("ok")
    assert dep.core.functions.getAccount(trader, 0).call()[0] == 0
    assert dep.cash.functions.balanceOf(trader).call() == 1_000 * USDC
    w.shot("withdraw-max")


def test_bad_inputs_show_a_sentence_and_send_nothing(
    open_wallet: Any, dep: Deployment, accounts: list[str]
) -> None:
    trader = accounts[10]
    _fund(dep, trader, 2_000, deposit=1_000)
    w = open_wallet(trader)
    _ready(w)
    # over-withdraw
    w.page.fill("#f-withdraw input[name=amount]", "5000")
    w.page.click("#f-withdraw button.primary")
    assert "holds 1,000.00 USDC, asked for 5,000.00 USDC" in w.wait_message("error")
    # too much leverage: refused at preparation (simulated), before any preview to sign
    w.page.fill("#f-trade input[name=size]", "100")
    w.page.click("#f-trade button.primary")
    msg = w.wait_message("error")
    assert msg.startswith("needs ") and "USDC more margin, or a smaller size" in msg
    # not a number, more decimals than USDC has
    w.page.fill("#f-deposit input[name=amount]", "ten")
    w.page.click("#f-deposit button.primary")
    assert "'ten' is not a number" in w.wait_message("error")
    w.page.fill("#f-deposit input[name=amount]", "0.0000001")
    w.page.click("#f-deposit button.primary")
    assert "more than 6 decimals" in w.wait_message("error")
    # a rejected signature: nothing sent, the page stays consistent
    w.page.evaluate("window.__rejectNext = true")
    w.page.fill("#f-deposit input[name=amount]", "100")
    w.page.click("#f-deposit button.primary")
    assert "You rejected" in w.wait_message("error")
    assert w.sent() == []
    assert dep.cash.functions.allowance(trader, dep.core.address).call() == 0
    assert _field(w, "cash") == "1,000.00 USD"
    w.shot("bad-inputs")


def test_deposit_rejected_after_its_approval_offers_to_reset_the_allowance(
    open_wallet: Any, dep: Deployment, accounts: list[str]
) -> None:
    trader = accounts[14]
    _fund(dep, trader, 500)
    w = open_wallet(trader)
    _ready(w)
    w.page.evaluate("window.__rejectNth = 2")  # approve goes through, the deposit is rejected
    w.page.fill("#f-deposit input[name=amount]", "200")
    w.page.click("#f-deposit button.primary")
    assert 'You rejected "deposit 200.00 USDC' in w.wait_message("error")
    assert dep.cash.functions.allowance(trader, dep.core.address).call() == 200 * USDC
    w.page.wait_for_selector("#revoke")
    w.page.click("#revoke")
    assert "reset the USDC allowance" in w.wait_message("ok")
    assert dep.cash.functions.allowance(trader, dep.core.address).call() == 0
    assert dep.core.functions.getAccount(trader, 0).call()[0] == 0
    assert len(w.sent()) == 2  # the approval and its reset; no deposit
    w.shot("deposit-rejected-revoked")


def test_transfer_isolate_portfolio_margin_and_lp_withdraw_max(
    open_wallet: Any, dep: Deployment, accounts: list[str], sdk: PlimsollClient
) -> None:
    trader = accounts[17]
    _fund(dep, trader, 2_000, deposit=1_000)
    w = open_wallet(trader)
    _ready(w)
    w.page.fill("#f-transfer input[name=amount]", "100")
    w.page.fill("#f-transfer input[name=to_sub]", "1")
    w.page.click("#f-transfer button.primary")
    assert "move 100.00 USDC from subaccount 0 to 1" in w.wait_message("ok")
    w.page.select_option("#sub", "1")
    w.page.wait_for_selector("dd[data-field='cash']:has-text('100.00 USD')")
    w.page.select_option("#sub", "2")  # a new, empty subaccount
    w.page.wait_for_selector("#mode:has-text('cross')")
    w.page.select_option("#f-isolate select[name=market]", "BTC-PERP")
    w.page.click("#f-isolate button.primary")
    w.wait_message("ok")
    w.page.wait_for_selector("#mode:has-text('isolated BTC-PERP')")
    assert sdk.account(trader, 2).isolated_market == "BTC-PERP"
    w.page.select_option("#sub", "0")
    w.page.wait_for_selector("dd[data-field='cash']:has-text('900.00 USD')")
    w.page.click("#f-portfolio button.primary")
    w.wait_message("ok")
    w.page.wait_for_selector("#mode:has-text('portfolio margin')")
    assert sdk.account(trader, 0).portfolio_margin
    w.page.fill("#f-lp-deposit input[name=amount]", "500")
    w.page.click("#f-lp-deposit button.primary")
    w.wait_message("ok", contains="request a deposit")
    dep.new_round()
    w.page.click("#f-lp-claim button.primary")
    w.wait_message("ok", contains="claim your pool shares")
    assert dep.pool.functions.balanceOf(trader).call() > 0
    w.page.click("#f-lp-withdraw button[data-max]")
    w.page.click("#f-lp-withdraw button.primary")
    assert "request the withdrawal" in w.wait_message("ok", contains="request the withdrawal")
    assert dep.pool.functions.balanceOf(trader).call() == 0
    cash0 = dep.cash.functions.balanceOf(trader).call()
    dep.new_round()
    w.page.click("#f-lp-claim button.primary")
    w.wait_message("ok", contains="claim your pool cash")
    got = dep.cash.functions.balanceOf(trader).call() - cash0
    # 500 in, 0.05% entry and exit fees (and rounding) kept by the pool.
    assert 499_400_000 <= got < 500 * 10**6  # (it gets back its tiny share of its fees)
    w.shot("transfer-isolate-portfolio-lp")
