"""The liquidation keeper's recovery duty: buy the collateral the protocol recovered.

When an account's last position closes (or its collateral is bought) and its collateral at
the haircut no longer covers its cash debt, the core writes the whole debt off at once
(insurance fund first, then the LPs) and forfeits the account's collateral to the protocol's
recovery account (``recoveredBalance(assetId)``). ``buyRecovered(assetId, amount)`` sells it
at the oracle price / (1 + collateral bonus) and pays the cash into the insurance fund
(event ``RecoveredSold``). Nobody else calls it: without this pass a crash drains the fund
while the collateral that should refill it sits in the contract.

Every ``recovery_every_blocks`` blocks the keeper reads ``recoveredBalance`` of every listed
asset; where some is held, the asset's feed is graded OK and the purchase pays (the bonus
discount at the oracle price minus the gas at the keeper's fee policy, as the liquidation
pass values gas: :func:`keepers.profit.gas_cost_usd`, at least ``min_profit_usd``), it buys,
within ``recovery_max_usd_per_block`` of cash per block and the cash it holds. Each skip
reason is logged once per asset until it changes (no log line every block). The keeper
sells what it bought as it sees fit; this pass only buys.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from web3 import Web3
from web3.logs import DISCARD as _DISCARD

from keepers.ops import KeeperMetrics, log
from keepers.profit import gas_cost_usd
from plimsoll.client import load_abi
from plimsoll.tx import GWEI, Outcome, PendingTx

if TYPE_CHECKING:
    from keepers.config import KeeperConfig

logger = logging.getLogger("plimsoll.liquidator")

WAD = 10**18
#: Gas of one ``buyRecovered`` when it cannot be estimated (dry run: no cash to pull); one
#: measured 124,075 on anvil (tests/keeper/test_recovery.py).
RECOVERY_GAS = 130_000
_OK = 0  # OracleRouter grade OK


def _up(a: int, b: int) -> int:
    return -(-a // b)


def paid_for(amount: int, decimals: int, price: int, bonus: int, cash_decimals: int) -> int:
    """Cash [cash token units] ``buyRecovered`` takes for ``amount`` [token units] of an asset
    with ``decimals`` at oracle ``price`` [wad USD] and collateral ``bonus`` [wad]: the
    contract's ``toWad(amount).mulWadUp(price).divWadUp(WAD + bonus).fromWadUp(cashDecimals)``,
    every step rounded up (the fund is never short-changed)."""
    value = _up(amount * 10 ** (18 - decimals) * price, WAD)
    return _up(_up(value * WAD, WAD + bonus), 10 ** (18 - cash_decimals))


@dataclass(frozen=True)
class Purchase:
    """One ``buyRecovered`` the keeper can make."""

    asset_id: int
    amount: int  # [token units] bought
    paid: int  # [cash token units] to the insurance fund
    value: int  # [wad USD] of ``amount`` at the oracle
    discount: int  # [wad USD] value - paid: the keeper's gross gain at the oracle price


def plan_purchase(
    asset_id: int,
    held: int,
    decimals: int,
    price: int,
    bonus: int,
    cash_decimals: int,
    budget: int,
) -> Purchase | None:
    """The largest purchase of ``held`` [token units] recovered collateral whose price is
    within ``budget`` [cash token units] (the per-block cap and the keeper's cash, whichever is
    less); None when not one token unit fits or the price is 0."""
    if held <= 0 or price <= 0 or budget <= 0:
        return None
    amount = held
    if paid_for(held, decimals, price, bonus, cash_decimals) > budget:
        # budget x (1 + bonus) / price in token units, rounded down; rounding up of the price
        # may still exceed the budget by a unit: step down until it fits.
        budget_wad = budget * 10 ** (18 - cash_decimals)
        amount = budget_wad * (WAD + bonus) // WAD * WAD // price // 10 ** (18 - decimals)
        amount = min(amount, held)
        while amount > 0 and paid_for(amount, decimals, price, bonus, cash_decimals) > budget:
            amount -= 1
        while amount < held and paid_for(amount + 1, decimals, price, bonus, cash_decimals) <= (
            budget
        ):
            amount += 1
    if amount <= 0:
        return None
    paid = paid_for(amount, decimals, price, bonus, cash_decimals)
    value = amount * 10 ** (18 - decimals) * price // WAD
    paid_wad = paid * 10 ** (18 - cash_decimals)
    return Purchase(asset_id, amount, paid, value, value - paid_wad)


def worth_buying(discount: int, gas_usd: int, min_profit: int) -> bool:
    """The profit rule of a purchase (all wad USD): the discount at the oracle price pays the
    gas and the operator's minimum profit. Unlike a liquidation, nothing is at risk while the
    keeper waits (the collateral is the protocol's, its debt already written off), so a
    purchase is never sent at a loss."""
    return discount > gas_usd and discount - gas_usd >= min_profit


class RecoveryPass:
    """Mixin of the liquidation keeper (needs ``cfg``, ``w3``, ``client``, ``sender``,
    ``metrics``, ``lc``, ``cash_decimals``, ``can_send``, ``_estimate``, ``gas_price_wei``,
    ``gas_token_price``)."""

    cfg: KeeperConfig
    w3: Web3
    client: Any
    sender: Any
    metrics: KeeperMetrics
    lc: Any
    cash_decimals: int
    stats_recovery_purchases: int = 0
    stats_recovery_paid_usd: float = 0.0

    def _recovery_state(self) -> None:
        if not hasattr(self, "_rec_inflight"):
            self._rec_inflight: dict[int, PendingTx] = {}
            self._rec_skip: dict[int, str] = {}
            self._rec_assets: dict[int, tuple[int, int]] = {}  # id -> (decimals, feed id)
            self._rec_router: Any = None
            self._rec_allowance_ok = False

    def _recovery_skip(self, asset_id: int, reason: str, **fields: Any) -> None:
        """Logs why asset ``asset_id`` is not bought, once until the reason changes."""
        if self._rec_skip.get(asset_id) != reason:
            self._rec_skip[asset_id] = reason
            log(
                logger,
                logging.INFO,
                f"recovered collateral not bought: {reason}",
                asset=asset_id,
                **fields,
            )

    def _recovery_outcomes(self) -> None:
        """Counts the purchases that mined (from their ``RecoveredSold`` event)."""
        core = self.client.core
        for asset_id, p in list(self._rec_inflight.items()):
            if p.outcome is Outcome.PENDING:
                continue
            del self._rec_inflight[asset_id]
            if p.outcome is not Outcome.SUCCEEDED or p.receipt is None:
                log(
                    logger,
                    logging.WARNING,
                    "recovered collateral purchase failed",
                    asset=asset_id,
                    outcome=p.outcome.value,
                )
                continue
            for ev in core.events.RecoveredSold().process_receipt(p.receipt, errors=_DISCARD):
                paid_usd = int(ev["args"]["paid"]) / 10**self.cash_decimals
                self.stats_recovery_purchases += 1
                self.stats_recovery_paid_usd += paid_usd
                self.metrics.recovery_purchases.inc()
                self.metrics.recovery_paid_usd.inc(paid_usd)
                log(
                    logger,
                    logging.INFO,
                    "recovered collateral bought",
                    asset=asset_id,
                    amount=int(ev["args"]["amount"]),
                    paid_usd=paid_usd,
                    block=p.receipt["blockNumber"],
                )

    def _recovery_pass(self, block: int) -> None:
        """Reads the recovery account's balances at ``block`` and buys what pays."""
        cfg = self.cfg
        if not cfg.recovery_purchases:
            return
        self._recovery_state()
        self._recovery_outcomes()
        if block % max(1, cfg.recovery_every_blocks):
            return
        core = self.client.core
        f = core.functions
        n_assets = int(f.assetCount().call(block_identifier=block))
        held: list[tuple[int, int]] = []
        for asset_id in range(1, n_assets + 1):
            bal = int(f.recoveredBalance(asset_id).call(block_identifier=block))
            if bal == 0:
                self._rec_skip.pop(asset_id, None)
            elif asset_id not in self._rec_inflight:
                held.append((asset_id, bal))
        if not held:
            return
        can, why = self.can_send()  # type: ignore[attr-defined]
        if not can and self.sender is not None:
            for asset_id, bal in held:
                self._recovery_skip(asset_id, f"cannot send ({why})", held=bal)
            return
        if self._rec_router is None:
            self._rec_router = self.w3.eth.contract(
                address=f.oracle().call(), abi=load_abi("OracleRouter")
            )
        cash_left = 10**80
        if self.sender is not None:
            me = self.sender.address
            cash = self.client.cash.functions
            cash_left = int(cash.balanceOf(me).call(block_identifier=block))
            if not self._rec_allowance_ok:
                allowance = int(cash.allowance(me, core.address).call(block_identifier=block))
                if allowance < 2**200:
                    for asset_id, bal in held:
                        self._recovery_skip(
                            asset_id,
                            "the keeper's cash is not approved to the core (enable"
                            " collateral_liquidation or recovery_purchases: the keeper approves"
                            " at start)",
                            held=bal,
                        )
                    return
                self._rec_allowance_ok = True
        spend_cap = int(cfg.recovery_max_usd_per_block * 10**self.cash_decimals)
        gas_price = self.gas_price_wei()  # type: ignore[attr-defined]
        token_price = self.gas_token_price()  # type: ignore[attr-defined]
        plans: list[Purchase] = []
        for asset_id, bal in held:
            if asset_id not in self._rec_assets:
                a = f.assetConfig(asset_id).call()
                self._rec_assets[asset_id] = (int(a[1]), int(a[3]))
            decimals, feed = self._rec_assets[asset_id]
            price, status = self._rec_router.functions.priceInfo(feed).call(block_identifier=block)
            if int(status) != _OK or int(price) <= 0:
                self._recovery_skip(asset_id, "price not graded OK", held=bal, status=int(status))
                continue
            budget = min(spend_cap, cash_left)
            plan = plan_purchase(
                asset_id,
                bal,
                decimals,
                int(price),
                self.lc.collateral_bonus,
                self.cash_decimals,
                budget,
            )
            if plan is None:
                self._recovery_skip(
                    asset_id,
                    "no cash to pay with" if cash_left <= 0 else "spend cap reached",
                    held=bal,
                    cash_usd=cash_left / 10**self.cash_decimals,
                    spend_cap_usd=cfg.recovery_max_usd_per_block,
                )
                continue
            data = f.buyRecovered(asset_id, plan.amount)._encode_transaction_data()
            if self.sender is not None:
                ((gas, err),) = self._estimate([data])  # type: ignore[attr-defined]
                if gas is None:
                    self._recovery_skip(asset_id, f"the purchase would fail ({err})", held=bal)
                    continue
            else:
                gas = RECOVERY_GAS
            gas_usd = gas_cost_usd(gas, gas_price, token_price)
            if not worth_buying(plan.discount, gas_usd, int(cfg.min_profit_usd * WAD)):
                self._recovery_skip(
                    asset_id,
                    "gas above the discount",
                    held=bal,
                    discount_usd=plan.discount / WAD,
                    gas_usd=gas_usd / WAD,
                )
                continue
            spend_cap -= plan.paid
            cash_left -= plan.paid
            self._rec_skip.pop(asset_id, None)
            plans.append(plan)
            what = {
                "asset": asset_id,
                "amount": plan.amount,
                "paid_usd": plan.paid / 10**self.cash_decimals,
                "discount_usd": plan.discount / WAD,
                "gas_usd": gas_usd / WAD,
            }
            if self.sender is None:
                log(logger, logging.INFO, "dry-run: would buy recovered collateral", **what)
                continue
            (p,) = self.sender.send_many(
                [(core.address, data, f"recover:{asset_id}")],
                gas=gas * 13 // 10 + 30_000,
                max_fee_cap=int(cfg.max_fee_gwei * GWEI),
            )
            if p is None:
                log(
                    logger,
                    logging.WARNING,
                    "recovered collateral purchase refused",
                    asset=asset_id,
                    error=self.sender.last_error,
                )
                continue
            self._rec_inflight[asset_id] = p
            log(logger, logging.INFO, "recovered collateral purchase sent", block=block, **what)
