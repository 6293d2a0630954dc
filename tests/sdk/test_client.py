"""The SDK as a trader uses it: receipts decoded, human amounts only, exact approvals, errors in
words, every trader action (issue 15, items 1-5)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3

from plimsoll.client import PlimsollClient
from plimsoll.deploy import Deployment
from plimsoll.errors import ContractRevert, PlimsollError
from plimsoll.tx import _format_receipt
from plimsoll.units import WAD, AmountError, TokenAmount, Wad, wad


def _nonce(w3: Web3, who: str) -> int:
    return int(w3.eth.get_transaction_count(Web3.to_checksum_address(who)))


def _allowance(dep: Deployment, asset_id: int, owner: str, spender: str) -> int:
    return int(dep.token(asset_id).functions.allowance(owner, spender).call())


# ------------------------------------------------------------------ item 1: receipts decoded


def test_keystore_signed_trade_succeeds_and_its_events_decode(
    client: PlimsollClient, dep: Deployment
) -> None:
    client.faucet("USDC", "10000")
    client.deposit("USDC", "5000")
    r = client.trade("ETH-PERP", "1")
    assert r["status"] == 1
    events = client.decode_events(r)
    traded = [e for e in events if e.name == "Traded"]
    assert len(traded) == 1
    assert traded[0].args["sizeDelta"] == WAD and traded[0].args["owner"] == client.address
    assert isinstance(traded[0].block, int) and traded[0].block == r["blockNumber"]
    # the position is open exactly once
    assert dep.core.functions.getPosition(client.address, 0, 0).call()[0] == WAD


def test_raw_batch_receipt_is_formatted_like_web3s(
    w3: Web3, client: PlimsollClient, dep: Deployment
) -> None:
    client.faucet("USDC", "100")
    r = client.deposit("USDC", "100")
    raw = w3.provider.make_request(  # type: ignore[arg-type]
        "eth_getTransactionReceipt", ["0x" + bytes(HexBytes(r["transactionHash"])).hex()]
    )["result"]
    formatted = _format_receipt(raw)
    assert formatted["status"] == 1 and formatted["blockNumber"] == r["blockNumber"]
    assert [log["logIndex"] for log in formatted["logs"]] == [log["logIndex"] for log in r["logs"]]
    names = [e.name for e in client.decode_events(formatted)]
    assert names == [e.name for e in client.decode_events(r)] == ["Deposited"]  # USDC's own
    # Transfer is not mistaken for the pool's


# ------------------------------------------------------------------ item 2: no bare ints


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.deposit("USDC", 1000),
        lambda c: c.withdraw("USDC", 5),
        lambda c: c.trade("ETH-PERP", 1),
        lambda c: c.trade("ETH-PERP", 0.5),
        lambda c: c.transfer("USDC", 1, 0, 1),
        lambda c: c.pool_deposit(10),
        lambda c: c.deposit("USDC", Wad(10)),
    ],
)
def test_bare_int_or_wrong_unit_is_refused_and_nothing_is_sent(
    w3: Web3, client: PlimsollClient, call: Any
) -> None:
    before = _nonce(w3, client.address)
    with pytest.raises(AmountError) as e:
        call(client)
    assert "Decimal" in str(e.value) or "expected TokenAmount" in str(e.value)
    assert _nonce(w3, client.address) == before


def test_human_and_typed_amounts_are_exact(client: PlimsollClient, dep: Deployment) -> None:
    client.faucet("USDC", "1,000")
    client.deposit("USDC", Decimal("250.5"))
    client.deposit("USDC", TokenAmount(500_000))  # 0.5 USDC in base units
    cash = dep.core.functions.getAccount(client.address, 0).call()[0]
    assert cash == wad("251")
    client.trade("ETH-PERP", Decimal("0.01"))
    assert dep.core.functions.getPosition(client.address, 0, 0).call()[0] == wad("0.01")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("0.0000015", "more than 6 decimals"),
        ("abc", "is not a number"),
        ("-5", "must be positive"),
        ("0", "must be positive"),
        ("NaN", "not a finite number"),
    ],
)
def test_bad_or_truncating_amount_is_refused(
    client: PlimsollClient, text: str, needle: str
) -> None:
    with pytest.raises(AmountError, match=needle):
        client.amount("USDC", text)


# ------------------------------------------------------------------ item 3: exact approvals


def test_deposit_approves_exactly_and_says_so(client: PlimsollClient, dep: Deployment) -> None:
    client.faucet("WETH", "3")
    client.deposit("WETH", "2.5")
    assert client.steps[0].startswith("approved exactly 2.50 WETH")
    assert _allowance(dep, 1, client.address, dep.core.address) == 0  # used up, none left
    assert dep.core.functions.collateralBalance(client.address, 0, 1).call() == wad("2.5")


def test_deposit_without_tokens_sends_nothing_and_leaves_no_allowance(
    w3: Web3, client: PlimsollClient, dep: Deployment
) -> None:
    before = _nonce(w3, client.address)
    with pytest.raises(PlimsollError, match=r"holds 0.00 USDC, deposit needs 100.00 USDC"):
        client.deposit("USDC", "100")
    assert _nonce(w3, client.address) == before
    assert _allowance(dep, 0, client.address, dep.core.address) == 0


def test_failed_deposit_resets_the_allowance_it_gave(
    client: PlimsollClient, dep: Deployment
) -> None:
    client.faucet("WBTC", "60000")
    with pytest.raises(ContractRevert) as e:
        client.deposit("WBTC", "60000")  # above the 50,000 WBTC cap
    assert e.value.name == "CapExceeded" and "50,000.00 WBTC" in str(e.value)
    assert _allowance(dep, 2, client.address, dep.core.address) == 0
    assert any("allowance reset to 0.00 WBTC" in s for s in client.steps)


# ------------------------------------------------------------------ item 5: errors in words


def test_insufficient_margin_says_how_much_more_in_usdc(
    client: PlimsollClient, dep: Deployment
) -> None:
    client.faucet("USDC", "5000")
    client.deposit("USDC", "5000")
    with pytest.raises(ContractRevert) as e:
        client.trade("ETH-PERP", "100")
    rev = e.value
    need = rev.args_by_name["initialMargin"] - rev.args_by_name["equity"]
    cents = -(-need // 10**16)  # rounded up: the trader needs at least this
    shown = f"{cents // 100:,}.{cents % 100:02d} USDC"
    assert str(rev).startswith(f"needs {shown} more margin, or a smaller size")
    assert rev.name == "InsufficientMargin"


def test_withdraw_too_much_names_the_balance(client: PlimsollClient) -> None:
    client.faucet("USDC", "100")
    client.deposit("USDC", "100")
    with pytest.raises(ContractRevert, match=r"holds 100.00 USDC, asked for 150.00 USDC"):
        client.withdraw("USDC", "150")


# ------------------------------------------------------------------ item 4: every action


def test_close_withdraw_max_transfer_and_history(client: PlimsollClient, dep: Deployment) -> None:
    client.faucet("USDC", "3000")
    client.deposit("USDC", "3000")
    client.transfer("USDC", "1000", 0, 1)
    client.trade("ETH-PERP", "-0.5")
    client.close("ETH-PERP")
    assert dep.core.functions.getPosition(client.address, 0, 0).call()[0] == 0
    client.withdraw("USDC", "max")
    client.withdraw("USDC", "max", 1)
    assert dep.core.functions.getAccount(client.address, 0).call()[0] < 10**12  # dust < 1e-6
    assert dep.core.functions.getAccount(client.address, 1).call()[0] == 0
    kinds = [h.kind for h in client.history(client.address)]
    assert kinds == ["deposit", "transfer", "trade", "trade", "withdraw", "withdraw"]
    with pytest.raises(PlimsollError, match="no open position"):
        client.close("ETH-PERP")


def test_isolate_and_portfolio_margin_switch(client: PlimsollClient, dep: Deployment) -> None:
    client.isolate(3, "BTC-PERP")
    assert dep.core.functions.getAccount(client.address, 3).call()[3] == 2
    client.faucet("USDC", "1000")
    client.deposit("USDC", "1000", 3)
    with pytest.raises(ContractRevert, match="isolated to BTC-PERP"):
        client.trade("ETH-PERP", "0.1", 3)
    client.set_portfolio_margin(0, True)
    assert client.account(client.address, 0).portfolio_margin
    assert client.account(client.address, 3).mode == "isolated BTC-PERP, standard margin"


def test_lp_deposit_and_withdraw_max(client: PlimsollClient, dep: Deployment) -> None:
    client.faucet("USDC", "1000")
    client.pool_deposit("1000")  # a request: priced after the next price round
    assert dep.pool.functions.pendingDepositRequest(0, client.address).call() == 1000 * 10**6
    assert dep.pool.functions.balanceOf(client.address).call() == 0
    assert _allowance(dep, 0, client.address, dep.pool.address) == 0
    info = client.pool_info(client.address)
    assert info["pending_deposit"] == "1,000.00 USDC"
    dep.new_round()
    client.pool_claim()  # prices its own request, then claims the shares
    assert dep.pool.functions.balanceOf(client.address).call() > 0
    info = client.pool_info(client.address)
    assert info["share_price"].endswith(" USDC") and info["value"].endswith(" USDC")
    assert info["status"] == "nothing pending"
    client.pool_withdraw("max")
    assert dep.pool.functions.balanceOf(client.address).call() == 0
    # The pool holds no position here: no price round to wait for, the claim prices it.
    client.pool_claim()
    with pytest.raises(PlimsollError, match="nothing to claim"):
        client.pool_claim()
    # the deposit came back less the 0.05% entry and exit fees (kept by the pool) and rounding
    got = dep.cash.functions.balanceOf(client.address).call()
    assert 1000 * 10**6 * 9_990 // 10_000 - 10 <= got <= 1000 * 10**6 * 9_990 // 10_000 + 600_000


def test_options_series_listed_bought_and_closed(
    client: PlimsollClient, dep: Deployment, with_series: list[dict[str, Any]]
) -> None:
    series = client.option_series()
    assert len(series) == len(with_series) == 24
    eth_calls = [s for s in series if s.market == "ETH-PERP" and s.is_call]
    atm = next(s for s in eth_calls if s.strike == wad(2000))
    assert atm.mark > 0 and atm.vol == wad("0.8")
    greeks = atm.greeks(int(dep.w3.eth.get_block("latest")["timestamp"]))
    assert 0.45 < greeks["delta"] < 0.6
    client.faucet("USDC", "5000")
    client.deposit("USDC", "5000")
    client.option_trade(atm.name, "2")
    status = client.account(client.address)
    assert [(o.series.series_id, o.size) for o in status.options] == [(atm.series_id, wad(2))]
    client.option_close(atm.series_id)
    assert client.account(client.address).options == []
    assert [h.kind for h in client.history(client.address)].count("option_trade") == 2


def test_account_numbers_and_liquidation_price_are_where_it_liquidates(
    client: PlimsollClient, dep: Deployment, accounts: list[str]
) -> None:
    client.faucet("USDC", "1000")
    client.deposit("USDC", "1000")
    client.trade("ETH-PERP", "4")
    st = client.account(client.address)
    (pos,) = st.positions
    assert pos.entry_price == wad(2000) and pos.mark_price == wad(2000)
    assert pos.unrealized_pnl == 0
    assert st.free_collateral == st.equity - st.initial_margin > 0
    assert pos.liquidation_price is not None
    liq = pos.liquidation_price / WAD
    assert 1_700 < liq < 2_000
    dep.set_price(1, round(liq * 1.002, 2))
    above = client.account(client.address)
    assert not above.liquidatable
    assert above.positions[0].unrealized_pnl == 4 * (wad(round(liq * 1.002, 2)) - wad(2000)) // 1
    dep.set_price(1, round(liq * 0.998, 2))
    assert client.account(client.address).liquidatable
    dep.send(dep.core.functions.liquidate(client.address, 0), accounts[9])
    hist = client.history(client.address)
    assert hist[-1].kind == "liquidation" and "liquidated" in hist[-1].text
    assert client.account(client.address).to_json()["equity"].endswith(" USD")


def test_subaccount_must_be_a_whole_nonnegative_number(client: PlimsollClient) -> None:
    for bad in (-1, "x", "1.5"):
        with pytest.raises(PlimsollError, match="subaccount must be a whole number"):
            client.check_sub(bad)


def test_read_only_client_refuses_to_act(w3: Web3, dep: Deployment) -> None:
    ro = PlimsollClient(w3, dep.to_json())
    with pytest.raises(PlimsollError, match="no signer"):
        ro.deposit("USDC", "1")


def test_local_account_type(key: LocalAccount, client: PlimsollClient) -> None:
    assert client.address == key.address and client.sender is not None


def _usd(text: str) -> float:
    return float(text.split()[0].replace(",", ""))


@pytest.mark.parametrize(("size", "portfolio"), [("2", False), ("-3", False), ("-3", True)])
def test_option_preview_margins_after_match_the_contract_after_the_trade(
    client: PlimsollClient,
    dep: Deployment,
    with_series: list[dict[str, Any]],
    size: str,
    portfolio: bool,
) -> None:
    client.faucet("USDC", "20000")
    client.deposit("USDC", "20000")
    if portfolio:
        client.set_portfolio_margin(0, True)
    put = next(
        s
        for s in client.option_series()
        if s.market == "ETH-PERP" and not s.is_call and s.strike == wad(1800)
    )
    pre = client.preview_option(put.series_id, size, client.address, 0)
    assert pre["margin_mode"] == ("portfolio" if portfolio else "standard")
    client.option_trade(put.series_id, size)
    equity, im, mm = dep.core.functions.accountMargin(client.address, 0).call()
    # the mirror vs the contract: within a cent (float mirror; rounding of the shown cents)
    assert _usd(pre["equity_after"]) == pytest.approx(equity / WAD, abs=0.02)
    assert _usd(pre["initial_margin_after"]) == pytest.approx(im / WAD, abs=0.02)
    assert _usd(pre["maintenance_margin_after"]) == pytest.approx(mm / WAD, abs=0.02)
