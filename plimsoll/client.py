"""Typed client for traders and tools: load a deployment, act, read account status.

Runs on web3.py alone (ABIs ship in ``plimsoll/abi``). Transactions are signed locally with an
``eth_account`` key (from a keystore, see :mod:`plimsoll.keys`) through :class:`TxSender`, or sent
by the node for an unlocked address on a local chain. Every revert comes back as
:class:`~plimsoll.errors.ContractRevert` with the custom error's name and arguments.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError
from web3.logs import DISCARD
from web3.types import TxReceipt

from plimsoll.chain import ErrorDecoder, revert_data
from plimsoll.errors import ContractRevert, DeploymentError, PlimsollError
from plimsoll.margin_call import MarginCallNotice
from plimsoll.tx import TxSender
from plimsoll.units import (
    WAD,
    AmountError,
    TokenAmount,
    Wad,
    fmt_units,
    fmt_usd,
    parse_amount,
    parse_wad,
    to_wad,
)

ABI_DIR = Path(__file__).resolve().parent / "abi"


def load_abi(name: str) -> list[dict[str, Any]]:
    path = ABI_DIR / f"{name}.json"
    if not path.exists():
        raise DeploymentError(f"ABI {name} is not shipped ({path})")
    abi: list[dict[str, Any]] = json.loads(path.read_text())
    return abi


@dataclass(frozen=True)
class Position:
    """A perpetual position with the numbers a trader watches (USD values and prices [wad]).

    ``entry_price`` is the price of the last settlement (every change settles the position to
    the mark, so it is the fill price of the last trade); ``funding`` is what the position owes
    since then (negative: it is owed); ``liquidation_price`` is where the account becomes
    liquidatable if every price moves by the same fraction (None for accounts holding options,
    whose value is not linear in the price, or when no move down to zero reaches it)."""

    market: str
    size: Wad  # [wad] signed
    open_notional: Wad  # [wad USD]
    market_id: int = 0
    entry_price: Wad = Wad(0)
    mark_price: Wad = Wad(0)
    unrealized_pnl: Wad = Wad(0)
    funding: Wad = Wad(0)
    liquidation_price: Wad | None = None

    def to_json(self) -> dict[str, Any]:
        unit = self.market.split("-")[0]
        return {
            "market": self.market,
            "size": fmt_units(self.size, 18, unit),
            "side": "long" if self.size > 0 else "short",
            "entry_price": fmt_usd(self.entry_price),
            "mark_price": fmt_usd(self.mark_price),
            "unrealized_pnl": fmt_usd(self.unrealized_pnl),
            "funding_owed": fmt_usd(self.funding),
            "liquidation_price": (
                None if self.liquidation_price is None else fmt_usd(self.liquidation_price)
            ),
        }


@dataclass(frozen=True)
class OptionSeries:
    """A listed option series with its mark (prices [wad USD], vol [wad])."""

    series_id: int
    market: str
    is_call: bool
    expiry: int  # [s]
    strike: Wad
    settlement_price: Wad
    mark: Wad
    spot: Wad
    vol: Wad

    @property
    def name(self) -> str:
        import datetime as dt

        day = dt.datetime.fromtimestamp(self.expiry, dt.UTC).strftime("%Y-%m-%d")
        strike = fmt_units(self.strike, 18, "", 0 if self.strike % WAD == 0 else 2).replace(",", "")
        return f"{self.market.split('-')[0]}-{day}-{strike}-{'C' if self.is_call else 'P'}"

    def greeks(self, now: int) -> dict[str, float]:
        """Black-Scholes greeks at rate 0 (the contract's model): delta, gamma, vega (per
        1.00 vol), theta (per day)."""
        from plimsoll.risk.bs import greeks

        tau = max(self.expiry - now, 1) / (365 * 86400)
        if self.spot == 0 or self.vol == 0:
            return {"delta": 0.0, "gamma": 0.0, "vega": 0.0, "theta": 0.0}
        g = greeks(self.spot / WAD, self.strike / WAD, tau, self.vol / WAD, is_call=self.is_call)
        return {
            "delta": round(float(g.delta), 4),
            "gamma": round(float(g.gamma), 6),
            "vega": round(float(g.vega), 4),
            "theta": round(float(g.theta) / 365, 4),
        }

    def to_json(self, now: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.series_id,
            "name": self.name,
            "market": self.market,
            "type": "call" if self.is_call else "put",
            "expiry": self.expiry,
            "strike": fmt_usd(self.strike),
            "mark": fmt_usd(self.mark),
            "spot": fmt_usd(self.spot),
            "iv": f"{self.vol / WAD:.2%}",
            "settled": self.settlement_price != 0,
        }
        if now is not None:
            out["greeks"] = self.greeks(now)
        return out


@dataclass(frozen=True)
class OptionPosition:
    series: OptionSeries
    size: Wad  # [wad] signed: > 0 long

    @property
    def value(self) -> Wad:
        return Wad(self.size * self.series.mark // WAD)

    def to_json(self) -> dict[str, Any]:
        return {
            "series": self.series.name,
            "series_id": self.series.series_id,
            "size": fmt_units(self.size, 18, "contracts"),
            "mark": fmt_usd(self.series.mark),
            "value": fmt_usd(self.value),
        }


@dataclass(frozen=True)
class AccountStatus:
    """One subaccount as the contract sees it now (all USD values [wad])."""

    owner: str
    subaccount: int
    equity: Wad
    initial_margin: Wad
    maintenance_margin: Wad
    liquidatable: bool
    cash: Wad
    collateral: dict[str, TokenAmount]
    positions: list[Position]
    isolated_market: str | None
    portfolio_margin: bool = False
    options: list[OptionPosition] = field(default_factory=list)
    decimals: dict[str, int] = field(default_factory=dict)
    move_to_liquidation: float | None = None

    @property
    def free_collateral(self) -> Wad:
        """equity - IM (negative: what must be added before any new risk) [wad USD]."""
        return Wad(self.equity - self.initial_margin)

    @property
    def health(self) -> float:
        """equity / MM (inf without positions); below 1 the account is liquidatable."""
        if self.maintenance_margin == 0:
            return float("inf")
        return self.equity / self.maintenance_margin

    @property
    def margin_call(self) -> bool:
        """MM <= equity < IM: no new risk, but not liquidatable."""
        return self.maintenance_margin <= self.equity < self.initial_margin

    @property
    def empty(self) -> bool:
        return self.cash == 0 and not self.collateral and not self.positions and not self.options

    @property
    def mode(self) -> str:
        margin = "portfolio" if self.portfolio_margin else "standard"
        where = f"isolated {self.isolated_market}" if self.isolated_market else "cross"
        return f"{where}, {margin} margin"

    def to_json(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "subaccount": self.subaccount,
            "mode": self.mode,
            "equity": fmt_usd(self.equity),
            "initial_margin": fmt_usd(self.initial_margin, up=True),
            "maintenance_margin": fmt_usd(self.maintenance_margin, up=True),
            "free_collateral": fmt_usd(self.free_collateral),
            "health": None if self.maintenance_margin == 0 else round(self.health, 4),
            "liquidatable": self.liquidatable,
            "margin_call": self.margin_call,
            "cash": fmt_usd(self.cash) + (" (debt)" if self.cash < 0 else ""),
            "collateral": {
                k: fmt_units(v, self.decimals.get(k, 18), k) for k, v in self.collateral.items()
            },
            "positions": [p.to_json() for p in self.positions],
            "options": [o.to_json() for o in self.options],
            "move_to_liquidation": (
                None if self.move_to_liquidation is None else f"{self.move_to_liquidation:+.2%}"
            ),
            "isolated_market": self.isolated_market,
        }


@dataclass(frozen=True)
class Event:
    name: str
    args: dict[str, Any]
    block: int
    log_index: int


@dataclass(frozen=True)
class HistoryEntry:
    """One thing that happened to a subaccount, said in words (amounts with units)."""

    block: int
    log_index: int
    tx: str
    kind: str  # deposit, withdraw, transfer, trade, option_trade, liquidation, ...
    text: str
    subaccounts: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "block": self.block,
            "tx": self.tx,
            "kind": self.kind,
            "text": self.text,
            "subaccounts": list(self.subaccounts),
        }


#: What an SDK action accepts where a token amount is meant: a human amount (``Decimal`` or
#: ``str``, in the token's units) or ``TokenAmount`` (base units). A bare int is refused.
Amount = Decimal | str | TokenAmount
#: Sizes and prices: human (``Decimal``/``str``) or ``Wad``.
Quantity = Decimal | str | Wad
MAX = "max"


class PlimsollClient:
    """A deployment on a chain, and (optionally) who acts on it.

    Parameters
    ----------
    w3 : Web3
    deployment : dict
        The JSON a deploy writes (``contracts``, ``assets``, ``markets``, ``deploy_block``).
    signer : LocalAccount or str or None
        A local key (signed, EIP-1559, nonce-managed), an address the node unlocks (local
        chains), or None for read-only use.
    on_step : callable, optional
        Called with each step of an action in words ("approved exactly 100 USDC to 0x..");
        the last action's steps are also in ``steps``.

    Amounts are never bare ints: pass human amounts (``Decimal("1000")`` or ``"1000"``, in the
    token's units) or typed base units (``TokenAmount``, ``Wad``).
    """

    def __init__(
        self,
        w3: Web3,
        deployment: dict[str, Any],
        signer: LocalAccount | str | None = None,
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        self.w3 = w3
        self.deployment = deployment
        try:
            addrs = deployment["contracts"]
            self.core = w3.eth.contract(address=addrs["Plimsoll"], abi=load_abi("Plimsoll"))
            self.pool = w3.eth.contract(
                address=addrs["LiquidityPool"], abi=load_abi("LiquidityPool")
            )
            self.cash = w3.eth.contract(address=addrs["USDC"], abi=load_abi("MockERC20"))
            self.assets: list[dict[str, Any]] = list(deployment["assets"])
            self.markets: list[dict[str, Any]] = list(deployment["markets"])
        except KeyError as e:
            raise DeploymentError(f"deployment file lacks {e}") from e
        self.decoder = ErrorDecoder(
            [
                load_abi(n)
                for n in ("Plimsoll", "LiquidityPool", "OracleRouter", "MockERC20", "OptionsMarket")
            ]
        )
        self.signer = signer
        self.sender = TxSender(w3, signer) if isinstance(signer, LocalAccount) else None
        self.on_step = on_step
        self.steps: list[str] = []  # what the last action did, in words (approvals too)
        self._options: Contract | None = None
        self._oracle: Contract | None = None

    @classmethod
    def from_file(
        cls, w3: Web3, path: Path, signer: LocalAccount | str | None = None
    ) -> PlimsollClient:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise DeploymentError(f"cannot read deployment file {path}: {e}") from e
        client = cls(w3, data, signer)
        if data.get("chain_id") not in (None, w3.eth.chain_id):
            raise DeploymentError(
                f"{path} is for chain {data['chain_id']}, the RPC serves chain {w3.eth.chain_id}"
            )
        if not w3.eth.get_code(client.core.address):
            raise DeploymentError(f"no contract at {client.core.address} on this chain")
        return client

    # ------------------------------------------------------------------ lookups

    def asset_id(self, asset: int | str) -> int:
        if isinstance(asset, int) or str(asset).isdigit():
            i = int(asset)
            if i == 0 or 1 <= i <= len(self.assets):
                return i
        elif str(asset).upper() in ("USDC", "CASH"):
            return 0
        else:
            for a in self.assets:
                if a["symbol"].upper() == str(asset).upper():
                    return int(a["id"])
        raise PlimsollError(f"unknown asset {asset!r}")

    def asset_decimals(self, asset_id: int) -> int:
        return 6 if asset_id == 0 else int(self.assets[asset_id - 1]["decimals"])

    def token(self, asset_id: int) -> Contract:
        if asset_id == 0:
            cash: Contract = self.cash
            return cash
        addr = Web3.to_checksum_address(self.assets[asset_id - 1]["address"])
        token: Contract = self.w3.eth.contract(address=addr, abi=load_abi("MockERC20"))
        return token

    def market_id(self, market: int | str) -> int:
        """A market by id, name (``ETH-PERP``) or underlying (``ETH``)."""
        if isinstance(market, int) or str(market).isdigit():
            i = int(market)
            if 0 <= i < len(self.markets):
                return i
        else:
            text = str(market).upper()
            for m in self.markets:
                if text in (m["name"].upper(), m["name"].upper().split("-")[0]):
                    return int(m["id"])
        raise PlimsollError(
            f"unknown market {market!r} (markets: {', '.join(m['name'] for m in self.markets)})"
        )

    def symbol(self, asset_id: int) -> str:
        return "USDC" if asset_id == 0 else str(self.assets[asset_id - 1]["symbol"])

    def amount(self, asset: int | str, value: Any, what: str = "amount") -> TokenAmount:
        """``value`` (human ``Decimal``/``str`` or ``TokenAmount``) of ``asset`` in base units;
        a bare int, truncation and non-positive amounts are refused."""
        aid = self.asset_id(asset)
        return parse_amount(value, self.asset_decimals(aid), self.symbol(aid), what)

    def fmt(self, asset_id: int, units: int) -> str:
        """Base units of ``asset_id`` as a human amount with its symbol."""
        return fmt_units(units, self.asset_decimals(asset_id), self.symbol(asset_id))

    @property
    def address(self) -> str:
        if self.signer is None:
            raise PlimsollError("this client has no signer")
        return str(self.signer.address if isinstance(self.signer, LocalAccount) else self.signer)

    @property
    def options(self) -> Contract:
        addr = self.deployment["contracts"].get("OptionsMarket")
        if not addr:
            raise DeploymentError("this deployment has no OptionsMarket")
        if self._options is None:
            self._options = self.w3.eth.contract(address=addr, abi=load_abi("OptionsMarket"))
        return self._options

    def _step(self, text: str) -> None:
        self.steps.append(text)
        if self.on_step is not None:
            self.on_step(text)

    # ------------------------------------------------------------------ sending

    def simulate(self, fn: Any, action: str = "") -> None:
        """``eth_call`` the transaction from this client's signer; a revert raises its decoded,
        explained :class:`ContractRevert` (nothing is signed or spent)."""
        try:
            fn.call({"from": self.address})
        except (ContractCustomError, ContractPanicError, ContractLogicError) as exc:
            raise self.explain(self.decoder.decode(revert_data(exc)), action) from exc

    def send(self, fn: Any, action: str = "") -> TxReceipt:
        """Sends any bound contract call from this client's signer: simulated first (a revert
        raises its decoded ContractRevert and spends nothing), then sent and waited for. A
        transaction mined but reverted raises too (the replayed reason), so a caller never
        mistakes it for success; a mined success is never reported as a failure."""
        sender = self.address
        self.simulate(fn, action)
        if self.sender is not None:
            tx = fn.build_transaction({"from": sender, "gas": 0})
            p = self.sender.wait(
                self.sender.send({"to": tx["to"], "data": tx["data"]}, label=fn.fn_name)
            )
            receipt = p.receipt
        else:
            tx_hash = fn.transact({"from": sender})
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        if receipt is None or receipt["status"] != 1:
            tx_hex = "?" if receipt is None else _hex(receipt["transactionHash"])
            try:
                self.simulate(fn, action)
            except ContractRevert as rev:
                raise rev.explained(
                    f"transaction {tx_hex} was mined but reverted: {rev.message or rev.raw}"
                ) from None
            raise ContractRevert(
                "Unknown",
                {"tx": tx_hex},
                "0x",
                f"transaction {tx_hex} was mined but reverted (out of gas or a state change "
                "since the simulation); nothing changed, check `plimsoll account` and retry",
            )
        return receipt

    def _with_exact_allowance(
        self, asset_id: int, spender: str, amount: TokenAmount, fn: Any, action: str
    ) -> TxReceipt:
        """Approve exactly ``amount`` (when the current allowance is short), run ``fn``, and
        restore the previous allowance if ``fn`` fails, so that no allowance is left behind."""
        token = self.token(asset_id)
        owner = self.address
        held = int(token.functions.balanceOf(owner).call())
        if held < amount:
            raise PlimsollError(
                f"the wallet {owner} holds {self.fmt(asset_id, held)}, {action} needs "
                f"{self.fmt(asset_id, amount)}; nothing was sent (local chains: "
                f"`plimsoll faucet {self.symbol(asset_id)} <amount>` mints test tokens)"
            )
        prior = int(token.functions.allowance(owner, spender).call())
        approved = False
        if prior < amount:
            self.send(token.functions.approve(spender, int(amount)), "approve")
            approved = True
            self._step(f"approved exactly {self.fmt(asset_id, amount)} to {spender}")
        else:
            self._step(f"existing allowance {self.fmt(asset_id, prior)} covers it")
        try:
            return self.send(fn, action)
        except PlimsollError:
            if approved:
                self.send(token.functions.approve(spender, prior), "approve")
                self._step(f"{action} failed: allowance reset to {self.fmt(asset_id, prior)}")
            raise

    # ------------------------------------------------------------------ trader actions

    def deposit(self, asset: int | str, amount: Amount, sub: int = 0) -> TxReceipt:
        """Deposit ``amount`` of ``asset`` (human ``"1000"``/``Decimal`` or ``TokenAmount``)
        into subaccount ``sub``; approves exactly that amount first (reset on failure)."""
        self.steps = []
        sub = self.check_sub(sub)
        aid = self.asset_id(asset)
        units = self.amount(aid, amount)
        r = self._with_exact_allowance(
            aid, self.core.address, units, self.core.functions.deposit(sub, aid, units), "deposit"
        )
        self._step(f"deposited {self.fmt(aid, units)} into subaccount {sub}")
        return r

    def max_withdrawable(self, asset: int | str, sub: int = 0, owner: str | None = None) -> int:
        """The whole balance of ``asset`` in ``(owner, sub)`` [token units] (cash: its positive
        balance rounded down to whole token units): what ``withdraw(..., "max")`` sends. The
        core takes ``type(uint256).max`` as "everything" (for cash, the sub-unit remainder of
        its 18-decimal book goes to the insurance fund, so no dust is left behind)."""
        aid = self.asset_id(asset)
        who = Web3.to_checksum_address(owner or self.address)
        if aid == 0:
            cash = int(self.core.functions.getAccount(who, sub).call()[0])
            return int(max(cash, 0) // 10 ** (18 - self.asset_decimals(0)))
        return int(self.core.functions.collateralBalance(who, sub, aid).call())

    def withdraw(self, asset: int | str, amount: Amount, sub: int = 0) -> TxReceipt:
        """Withdraw ``amount`` (or ``"max"``: everything) of ``asset`` from subaccount ``sub``."""
        self.steps = []
        sub = self.check_sub(sub)
        aid = self.asset_id(asset)
        if isinstance(amount, str) and amount.strip().lower() == MAX:
            units = TokenAmount(self.max_withdrawable(aid, sub))
            if units == 0:
                raise PlimsollError(f"subaccount {sub} holds no {self.symbol(aid)} to withdraw")
            arg = 2**256 - 1  # everything, dust included
        else:
            units = self.amount(aid, amount)
            arg = int(units)
        r = self.send(self.core.functions.withdraw(sub, aid, arg), "withdraw")
        self._step(f"withdrew {self.fmt(aid, units)} from subaccount {sub}")
        return r

    def transfer(self, asset: int | str, amount: Amount, from_sub: int, to_sub: int) -> TxReceipt:
        """Move ``amount`` (or ``"max"``) of ``asset`` between two of the signer's subaccounts."""
        self.steps = []
        from_sub, to_sub = self.check_sub(from_sub), self.check_sub(to_sub)
        if from_sub == to_sub:
            raise PlimsollError("transfer: the two subaccounts are the same")
        aid = self.asset_id(asset)
        if isinstance(amount, str) and amount.strip().lower() == MAX:
            units = TokenAmount(self.max_withdrawable(aid, from_sub))
            if units == 0:
                raise PlimsollError(f"subaccount {from_sub} holds no {self.symbol(aid)}")
            arg = 2**256 - 1  # everything, dust included
        else:
            units = self.amount(aid, amount)
            arg = int(units)
        r = self.send(self.core.functions.transfer(from_sub, to_sub, aid, arg), "transfer")
        self._step(f"moved {self.fmt(aid, units)} from subaccount {from_sub} to {to_sub}")
        return r

    def trade(
        self,
        market: int | str,
        size_delta: Quantity,
        sub: int = 0,
        acceptable_price: Quantity | None = None,
    ) -> TxReceipt:
        """Change a position by ``size_delta`` (human ``"-1.5"``/``Decimal`` units of the
        underlying, or ``Wad``); ``acceptable_price`` [USD] is the worst fill accepted."""
        self.steps = []
        sub = self.check_sub(sub)
        m = self.market_id(market)
        unit = self.markets[m]["name"].split("-")[0]
        size = parse_wad(size_delta, unit, "size")
        price = (
            Wad(0)
            if acceptable_price is None
            else parse_wad(acceptable_price, "USD", "acceptable price", signed=False)
        )
        r = self.send(self.core.functions.trade(sub, m, int(size), int(price)), "trade")
        self._step(
            f"{'bought' if size > 0 else 'sold'} {fmt_units(abs(size), 18, unit)} of "
            f"{self.markets[m]['name']} in subaccount {sub}"
        )
        return r

    def close(self, market: int | str, sub: int = 0) -> TxReceipt:
        """Close the whole position in ``market``."""
        sub = self.check_sub(sub)
        m = self.market_id(market)
        size = int(self.core.functions.getPosition(self.address, sub, m).call()[0])
        if size == 0:
            raise PlimsollError(
                f"no open position in {self.markets[m]['name']} in subaccount {sub}"
            )
        return self.trade(m, Wad(-size), sub)

    def isolate(self, sub: int, market: int | str | None) -> TxReceipt:
        """Make an empty subaccount isolated to ``market`` (None: cross margin)."""
        self.steps = []
        sub = self.check_sub(sub)
        flag = 0 if market is None else self.market_id(market) + 1
        r = self.send(self.core.functions.configureSubaccount(sub, flag), "isolate")
        where = (
            "cross margin" if market is None else f"isolated to {self.markets[flag - 1]['name']}"
        )
        self._step(f"subaccount {sub} is now {where}")
        return r

    def set_portfolio_margin(self, sub: int, enabled: bool = True) -> TxReceipt:
        """Switch a cross subaccount to portfolio margin (or back to standard)."""
        self.steps = []
        sub = self.check_sub(sub)
        r = self.send(self.core.functions.setPortfolioMargin(sub, enabled), "portfolio margin")
        self._step(f"subaccount {sub} uses {'portfolio' if enabled else 'standard'} margin")
        return r

    def pool_deposit(self, amount: Amount) -> TxReceipt:
        """Request a deposit of cash into the liquidity pool (ERC-7540; exact approval, reset
        on failure). The request is priced at the first price round of every feed the pool
        uses after it (anyone may fulfil it: ``pool_fulfil``), then claimed (``pool_claim``)."""
        self.steps = []
        units = self.amount(0, amount)
        fn = self.pool.functions.requestDeposit(int(units), self.address, self.address)
        r = self._with_exact_allowance(0, self.pool.address, units, fn, "LP deposit request")
        self._step(
            f"requested a deposit of {self.fmt(0, units)} into the liquidity pool: it is priced "
            "after the next price round (5 bp entry fee), then claim it"
        )
        return r

    def pool_withdraw(self, amount: Amount) -> TxReceipt:
        """Request the redemption of shares worth ``amount`` of cash at today's share price (or
        ``"max"``: every share). Priced after the next price round, then claimed."""
        self.steps = []
        p = self.pool.functions
        held = int(p.balanceOf(self.address).call())
        if isinstance(amount, str) and amount.strip().lower() == MAX:
            shares = held
            if shares == 0:
                raise PlimsollError("this wallet holds no pool shares")
        else:
            units = self.amount(0, amount)
            shares = int(p.convertToShares(int(units)).call())
            if shares > held:
                raise PlimsollError(
                    f"your shares are worth {self.fmt(0, int(p.convertToAssets(held).call()))}; "
                    f"ask for at most that (or max)"
                )
        worth = int(p.convertToAssets(shares).call())
        r = self.send(p.requestRedeem(shares, self.address, self.address), "LP withdraw request")
        self._step(
            f"requested the redemption of shares worth {self.fmt(0, worth)} today: they are "
            "priced after the next price round (5 bp exit fee), then claim the cash"
        )
        return r

    def pool_fulfil(self, controller: str | None = None) -> TxReceipt | None:
        """Price ``controller``'s pending pool requests (anyone may; default: this wallet).
        Returns the last receipt, or None when nothing can be fulfilled yet."""
        self.steps = []
        who = Web3.to_checksum_address(controller or self.address)
        dep, red = self.pool.functions.canFulfil(who).call()
        r = None
        if dep:
            r = self.send(self.pool.functions.fulfilDeposit(who), "fulfil LP deposit")
            self._step(f"priced the pending deposit of {who}")
        if red:
            r = self.send(self.pool.functions.fulfilRedeem(who), "fulfil LP redemption")
            self._step(f"priced the pending redemption of {who}")
        return r

    def pool_claim(self) -> TxReceipt:
        """Claim everything claimable in the pool: the shares of priced deposits and the cash of
        priced redemptions. Fulfils this wallet's own priceable requests first."""
        self.steps = []
        p = self.pool.functions
        me = self.address
        dep, red = p.canFulfil(me).call()
        if dep:
            self.send(p.fulfilDeposit(me), "fulfil LP deposit")
            self._step("priced your pending deposit")
        if red:
            self.send(p.fulfilRedeem(me), "fulfil LP redemption")
            self._step("priced your pending redemption")
        dep_assets = int(p.maxDeposit(me).call())  # claimable deposit [cash units]
        red_shares = int(p.maxRedeem(me).call())  # claimable redemption [shares]
        r = None
        if dep_assets:
            r = self.send(p.deposit(dep_assets, me, me), "claim LP shares")
            got = int(p.balanceOf(me).call())
            dec = int(p.decimals().call())
            self._step(f"claimed your pool shares (you hold {fmt_units(got, dec, 'shares')})")
        if red_shares:
            assets = int(p.maxWithdraw(me).call())
            r = self.send(p.redeem(red_shares, me, me), "claim LP cash")
            self._step(f"claimed {self.fmt(0, assets)} from the pool")
        if r is None:
            pend = int(p.pendingDepositRequest(0, me).call()) + int(
                p.pendingRedeemRequest(0, me).call()
            )
            if pend:
                raise PlimsollError(
                    "nothing to claim yet: your request waits for the next price round "
                    "(`plimsoll lp info` shows it); try again after it"
                )
            raise PlimsollError("nothing to claim: request a deposit or withdrawal first")
        return r

    def pool_info(self, owner: str | None = None) -> dict[str, Any]:
        """Share price [USDC per share], total assets, and the owner's shares, their value and
        its pending (not yet priced) and claimable requests."""
        p = self.pool.functions
        dec = int(p.decimals().call())
        one_share = 10**dec
        out: dict[str, Any] = {
            "total_assets": self.fmt(0, int(p.totalAssets().call())),
            "share_price": fmt_units(
                int(p.convertToAssets(one_share).call()), self.asset_decimals(0), "USDC", 6
            ),
            "fee": "0.05% on entry and on exit",
        }
        if owner:
            who = Web3.to_checksum_address(owner)
            shares = int(p.balanceOf(who).call())
            out["shares"] = fmt_units(shares, dec, "shares")
            out["value"] = self.fmt(0, int(p.convertToAssets(shares).call()))
            pend_dep = int(p.pendingDepositRequest(0, who).call())
            pend_red = int(p.pendingRedeemRequest(0, who).call())
            dep_ok, red_ok = p.canFulfil(who).call()
            out["pending_deposit"] = self.fmt(0, pend_dep)
            out["pending_withdrawal"] = (
                f"{fmt_units(pend_red, dec, 'shares')} "
                f"(~{self.fmt(0, int(p.convertToAssets(pend_red).call()))})"
            )
            out["claimable_shares"] = fmt_units(int(p.maxMint(who).call()), dec, "shares")
            out["claimable_cash"] = self.fmt(0, int(p.maxWithdraw(who).call()))
            waiting = (pend_dep and not dep_ok) or (pend_red and not red_ok)
            out["status"] = (
                "waiting for the next price round"
                if waiting
                else "ready to price: `plimsoll lp claim`"
                if (pend_dep or pend_red)
                else "ready to claim: `plimsoll lp claim`"
                if (int(p.maxMint(who).call()) or int(p.maxRedeem(who).call()))
                else "nothing pending"
            )
        return out

    def option_series(self, live_only: bool = True) -> list[OptionSeries]:
        """Listed option series with mark, spot and implied vol (live ones by default)."""
        o = self.options.functions
        ids = (
            [int(i) for i in o.liveSeries().call()]
            if live_only
            else list(range(int(o.seriesCount().call())))
        )
        out = []
        for i in ids:
            market_id, is_call, expiry, strike, settle = o.series(i).call()
            try:
                value, spot, vol = o.mark(i).call()
            except (ContractCustomError, ContractPanicError, ContractLogicError):
                value = spot = vol = 0
            out.append(
                OptionSeries(
                    i,
                    self.markets[int(market_id)]["name"],
                    bool(is_call),
                    int(expiry),
                    Wad(strike),
                    Wad(settle),
                    Wad(value),
                    Wad(spot),
                    Wad(vol),
                )
            )
        return out

    def series_id(self, series: int | str) -> int:
        """A series by id or by name (``ETH-2027-01-06-2000-C``)."""
        text = str(series).strip()
        if text.isdigit():
            i = int(text)
            if i < int(self.options.functions.seriesCount().call()):
                return i
        else:
            for s in self.option_series(live_only=False):
                if s.name.upper() == text.upper():
                    return s.series_id
        raise PlimsollError(f"unknown option series {series!r} (`plimsoll options` lists them)")

    def option_trade(
        self,
        series: int | str,
        size_delta: Quantity,
        sub: int = 0,
        limit_price: Quantity | None = None,
    ) -> TxReceipt:
        """Buy (> 0) or sell (< 0) ``size_delta`` options of ``series``; ``limit_price``
        [USD per option] is the most paid (buying) or least received (selling)."""
        self.steps = []
        sub = self.check_sub(sub)
        sid = self.series_id(series)
        size = parse_wad(size_delta, "options", "size")
        limit = (
            Wad(0)
            if limit_price is None
            else parse_wad(limit_price, "USD", "limit price", signed=False)
        )
        r = self.send(self.options.functions.trade(sub, sid, int(size), int(limit)), "option trade")
        self._step(
            f"{'bought' if size > 0 else 'sold'} {fmt_units(abs(size), 18, 'options')} of "
            f"series {sid} in subaccount {sub}"
        )
        return r

    def option_close(self, series: int | str, sub: int = 0) -> TxReceipt:
        sid = self.series_id(series)
        ids, sizes = self.options.functions.positions(self.address, sub).call()
        held = dict(zip((int(i) for i in ids), (int(q) for q in sizes), strict=True))
        if not held.get(sid):
            raise PlimsollError(f"no position in option series {sid} in subaccount {sub}")
        return self.option_trade(sid, Wad(-held[sid]), sub)

    def faucet(self, asset: int | str, amount: Amount, to: str | None = None) -> TxReceipt | None:
        """Test funds on a local chain: mock tokens are minted (``mint`` is open on the mocks);
        ``"ETH"`` (gas) is added with anvil's ``anvil_setBalance`` (no transaction: None)."""
        self.steps = []
        who = Web3.to_checksum_address(to or self.address)
        if str(asset).upper() == "ETH":
            wei = parse_amount(amount, 18, "ETH")
            before = int(self.w3.eth.get_balance(who))
            provider: Any = self.w3.provider
            answer = provider.make_request("anvil_setBalance", [who, hex(before + wei)])
            if answer.get("error"):
                raise PlimsollError("this chain has no ETH faucet (anvil_setBalance refused)")
            self._step(f"added {fmt_units(wei, 18, 'ETH')} of gas money to {who}")
            return None
        aid = self.asset_id(asset)
        units = self.amount(aid, amount)
        token = self.token(aid)
        if not any(f.get("name") == "mint" for f in token.abi):
            raise PlimsollError(f"{self.symbol(aid)} is not a mock token: there is no faucet")
        r = self.send(token.functions.mint(who, int(units)), "faucet")
        self._step(f"minted {self.fmt(aid, units)} to {who}")
        return r

    def set_vol_scalar(self, market: int | str, scalar: Wad) -> TxReceipt:
        """Post a market's volatility scalar [wad] (the risk keeper or the admin)."""
        if not isinstance(scalar, Wad):
            raise AmountError("set_vol_scalar takes a Wad (e.g. wad('1.2'))")
        return self.send(self.core.functions.setVolScalar(self.market_id(market), int(scalar)))

    # ------------------------------------------------------------------ validation, errors

    @staticmethod
    def check_sub(sub: Any) -> int:
        """A subaccount id: a whole number >= 0."""
        try:
            i = int(str(sub).strip())
        except ValueError:
            raise PlimsollError(f"subaccount must be a whole number >= 0, got {sub!r}") from None
        if i < 0 or i >= 2**256:
            raise PlimsollError(f"subaccount must be a whole number >= 0, got {sub!r}")
        return i

    def explain(self, rev: ContractRevert, action: str = "") -> ContractRevert:
        """``rev`` with a human sentence: what went wrong, in units, and what to do."""
        a = rev.args_by_name
        n = rev.name

        def usd_up(x: int) -> str:
            return fmt_usd(max(int(x), 0), up=True, unit="USDC")

        def usd(x: int) -> str:
            return fmt_usd(int(x))

        msg: str | None = None
        if n == "InsufficientMargin":
            need = int(a["initialMargin"]) - int(a["equity"])
            fix = {
                "withdraw": "withdraw less",
                "transfer": "transfer less",
                "trade": "a smaller size",
                "option trade": "a smaller size",
            }.get(action, "less risk")
            msg = (
                f"needs {usd_up(need)} more margin, or {fix} (equity "
                f"{usd(int(a['equity']))}, initial margin {usd(int(a['initialMargin']))})"
            )
        elif n == "BelowMaintenance":
            msg = (
                f"the account is below maintenance margin (equity {usd(int(a['equity']))} < "
                f"{usd(int(a['maintenanceMargin']))}): only reducing trades are allowed"
            )
        elif n == "InsufficientBalance":
            aid = int(a["assetId"])
            bal = int(a["balance"])  # token units, cash included (whole units of its balance)
            msg = (
                f"the subaccount holds {self.fmt(aid, bal)}, asked for "
                f"{self.fmt(aid, int(a['requested']))}; {action or 'move'} at most that (or max)"
            )
        elif n == "InsufficientLiquidity":
            msg = (
                f"only {self.fmt(0, int(a['available']))} is available now, asked for "
                f"{self.fmt(0, int(a['requested']))}; try a smaller amount"
            )
        elif n == "SlippageExceeded":
            msg = (
                f"the price {usd(int(a['price']))} is worse than your limit "
                f"{usd(int(a['acceptablePrice']))}; raise the limit or try again"
            )
        elif n == "OptionSlippage":
            msg = (
                f"the option price {usd(int(a['unitPrice']))} is worse than your limit "
                f"{usd(int(a['limitPrice']))}"
            )
        elif n == "OpenInterestExceeded":
            msg = (
                f"the market's open interest would reach {fmt_units(int(a['openInterest']), 18)}"
                f", above its limit {fmt_units(int(a['limit']), 18)}: trade a smaller size"
            )
        elif n == "MarketReduceOnly":
            msg = "the market's price is not trusted right now: only reducing trades are allowed"
        elif n in ("PriceNotTrusted", "OptionPriceNotTrusted"):
            msg = "the oracle price is stale or suspect right now; try again in a few minutes"
        elif n == "SubaccountNotEmpty":
            msg = (
                f"subaccount {a['subaccount']} is not empty: isolate only an empty subaccount "
                "(use a new subaccount id)"
            )
        elif n == "IsolatedMarketMismatch":
            msg = (
                f"subaccount {a['subaccount']} is isolated to "
                f"{self.markets[int(a['isolatedMarket'])]['name']}: trade "
                f"{self.markets[int(a['marketId'])]['name']} from another subaccount"
            )
        elif n == "CapExceeded":
            aid = int(a["assetId"])
            msg = f"the deposit cap of {self.fmt(aid, int(a['cap']))} would be exceeded"
        elif n == "ActionPaused" or n == "TradingPaused":
            msg = "this action is paused by the guardian; try again later"
        elif n == "ZeroAmount" or n == "ZeroSize":
            msg = "the amount must not be zero"
        elif n == "NotPortfolio":
            msg = "this needs a subaccount in portfolio margin (`plimsoll portfolio-margin on`)"
        elif n == "SeriesExpired":
            msg = f"option series {a['seriesId']} has expired"
        elif n == "UnknownSeries":
            msg = f"there is no option series {a['seriesId']} (`plimsoll options` lists them)"
        elif n == "OptionReduceOnly":
            msg = "this series is reduce-only right now (untrusted price or expiry near)"
        elif n == "OptionsDisabled":
            msg = f"options on {self.markets[int(a['marketId'])]['name']} are disabled"
        elif n == "ERC20InsufficientBalance":
            msg = (
                f"the wallet holds {self.fmt(0, int(a['balance']))}, needs "
                f"{self.fmt(0, int(a['needed']))}"
            )
        elif n == "ERC20InsufficientAllowance":
            msg = "the token allowance is too small: approve the amount first"
        elif n == "ERC4626ExceededMaxWithdraw":
            msg = f"you can claim at most {self.fmt(0, int(a['max']))} from the pool now"
        elif n == "ERC4626ExceededMaxRedeem":
            msg = "more than you can claim now (`plimsoll lp info` shows what is claimable)"
        elif n == "PoolClosed":
            why = {
                1: "paused",
                2: "a price it uses cannot be read",
                3: "a price it uses is not trusted",
            }
            reason = why.get(int(a["reason"]), "its equity is gone")
            msg = f"the pool prices no request now ({reason}); your request waits, try again later"
        elif n == "NotYetPriceable":
            msg = (
                "the request waits for the next price round of every feed the pool uses; "
                "try again after it"
            )
        elif n == "RequestPending":
            msg = (
                "you already have a request and a price round has come since: claim it "
                "first (`plimsoll lp claim`)"
            )
        elif n == "NothingPending":
            msg = "nothing is pending for this address"
        elif n == "NotOperator":
            msg = "only the request's controller (or an operator it approved) may do that"
        elif n == "AsyncFlow":
            msg = "the pool has no previews: request, then claim after the next price round"
        elif n == "ERC4626ExceededMaxDeposit" or n == "ERC4626ExceededMaxMint":
            msg = "more than you can claim now (`plimsoll lp info` shows what is claimable)"
        elif n == "PoolUndercollateralized":
            msg = "the liquidity pool would fall below its margin: try a smaller amount"
        elif n == "Unauthorized":
            msg = "this address is not allowed to do that"
        elif n == "Error":
            msg = str(a.get("message", "reverted"))
        elif n == "Unknown":
            msg = "the contract refused it without a reason (check the inputs and balances)"
        if msg is None:
            return rev
        return rev.explained(msg)

    # ------------------------------------------------------------------ reads

    def account(self, owner: str, sub: int = 0, block: int | str = "latest") -> AccountStatus:
        """Equity, margins, free collateral, health, positions (entry, mark, unrealized PnL,
        funding, liquidation price), options and collateral of ``(owner, sub)``."""
        if not Web3.is_address(owner):
            raise PlimsollError(f"not an address: {owner!r}")
        owner = Web3.to_checksum_address(owner)
        sub = self.check_sub(sub)
        blk: Any = block
        c = self.core.functions
        try:
            equity, im, mm = c.accountMargin(owner, sub).call(block_identifier=block)
            liq = c.isLiquidatable(owner, sub).call(block_identifier=block)
            cash, asset_mask, market_mask, iso, flags, *_ = c.getAccount(owner, sub).call(
                block_identifier=block
            )
            collateral: dict[str, TokenAmount] = {}
            decimals: dict[str, int] = {"USDC": self.asset_decimals(0)}
            for a in self.assets:
                if asset_mask >> a["id"] & 1:
                    collateral[a["symbol"]] = TokenAmount(
                        c.collateralBalance(owner, sub, a["id"]).call(block_identifier=block)
                    )
                    decimals[a["symbol"]] = int(a["decimals"])
            raw_positions = []
            for m in self.markets:
                if market_mask >> m["id"] & 1:
                    size, notional, entry_index = c.getPosition(owner, sub, m["id"]).call(
                        block_identifier=block
                    )
                    raw_positions.append((m, int(size), int(notional), int(entry_index)))
            options: list[OptionPosition] = []
            if flags & 1 and self.deployment["contracts"].get("OptionsMarket"):
                ids, sizes = self.options.functions.positions(owner, sub).call(block_identifier=blk)
                by_id = {s.series_id: s for s in self.option_series(live_only=False)}
                options = [
                    OptionPosition(by_id[int(i)], Wad(q))
                    for i, q in zip(ids, sizes, strict=True)
                    if int(q) != 0 and int(i) in by_id
                ]
        except (ContractCustomError, ContractPanicError, ContractLogicError) as exc:
            raise self.explain(self.decoder.decode(revert_data(exc))) from exc
        move = None
        if raw_positions and not flags & 1:
            move = self._move_to_liquidation(owner, sub, int(equity), int(im), int(mm), block)
        positions = []
        for m, size, notional, entry_index in raw_positions:
            mark = self.mark_price(m["id"], block)
            index = int(c.fundingIndex(m["id"]).call(block_identifier=block))
            positions.append(
                Position(
                    m["name"],
                    Wad(size),
                    Wad(notional),
                    int(m["id"]),
                    Wad(abs(notional) * WAD // abs(size)) if size else Wad(0),
                    Wad(mark),
                    Wad(size * mark // WAD - notional),
                    Wad(size * (index - entry_index) // WAD),
                    None if move is None else Wad(int(mark * (1 + move))),
                )
            )
        return AccountStatus(
            owner,
            sub,
            Wad(equity),
            Wad(im),
            Wad(mm),
            bool(liq),
            Wad(cash),
            collateral,
            positions,
            None if iso == 0 else self.markets[iso - 1]["name"],
            bool(flags & 2),
            options,
            decimals,
            move,
        )

    def mark_price(self, market: int | str, block: int | str = "latest") -> int:
        """The oracle price of a market's underlying [wad USD]."""
        m = self.market_id(market)
        if self._oracle is None:
            self._oracle = self.w3.eth.contract(
                address=self.core.functions.oracle().call(), abi=load_abi("OracleRouter")
            )
        blk: Any = block
        ok, price = self._oracle.functions.tryPrice(int(self.markets[m]["feed_id"])).call(
            block_identifier=blk
        )
        return int(price)

    def _move_to_liquidation(
        self, owner: str, sub: int, equity: int, im: int, mm: int, block: int | str
    ) -> float | None:
        """The uniform relative price move that makes the account liquidatable (the
        notifier's formula, :func:`plimsoll.margin_call.liquidation_moves`)."""
        import numpy as np

        from plimsoll.margin import compute_margin
        from plimsoll.margin_call import liquidation_moves, with_contract_margins
        from plimsoll.sync import StateReader

        lens = self.deployment["contracts"].get("PlimsollLens")
        if not lens or mm == 0:
            return None
        reader = StateReader(self.w3, self.core.address, lens)
        state = reader.read([(owner, sub)], None if block == "latest" else int(block))
        rows = np.array([0], dtype=np.int64)
        result = with_contract_margins(compute_margin(state), rows, [(equity, im, mm)])
        x = float(liquidation_moves(state, result, rows)[0])
        return None if np.isnan(x) else x

    def preview_trade(
        self, owner: str, sub: int, market: int | str, size_delta: Quantity
    ) -> dict[str, Any]:
        """What a perp trade would do, before signing: fill price (the oracle mark), fee, and
        equity, IM, MM, health, free collateral and liquidation price after it, from the
        margin mirror on the account's state with the trade applied (standard-margin accounts;
        for accounts holding options the margins after are left out)."""
        import numpy as np

        from plimsoll.margin import compute_margin
        from plimsoll.margin_call import liquidation_moves
        from plimsoll.sync import StateReader

        if not Web3.is_address(owner):
            raise PlimsollError(f"not an address: {owner!r}")
        owner = Web3.to_checksum_address(owner)
        sub = self.check_sub(sub)
        m = self.market_id(market)
        name = self.markets[m]["name"]
        size = int(parse_wad(size_delta, name.split("-")[0], "size"))
        lens = self.deployment["contracts"].get("PlimsollLens")
        if not lens:
            raise DeploymentError("deployment has no PlimsollLens address")
        state = StateReader(self.w3, self.core.address, lens).read([(owner, sub)])
        price = int(state.market_price[m])
        taker_fee = int(self.core.functions.marketConfig(m).call()[4])
        notional = abs(size) * price // WAD
        fee = -(-notional * taker_fee // WAD)
        old = int(state.sizes[0, m])
        # settle the old position at the stored funding index, then apply the delta at the mark
        owed = old * (int(state.funding_index[m]) - int(state.entry_funding_index[0, m])) // WAD
        state.cash[0] = int(state.cash[0]) - fee - owed
        state.open_notional[0, m] = int(state.open_notional[0, m]) + size * price // WAD
        state.entry_funding_index[0, m] = int(state.funding_index[m])
        state.sizes[0, m] = old + size
        out: dict[str, Any] = {
            "market": name,
            "size": fmt_units(size, 18, name.split("-")[0]),
            "fill_price": fmt_usd(price),
            "notional": fmt_usd(notional),
            "fee": fmt_usd(fee, up=True),
            "size_after": fmt_units(old + size, 18, name.split("-")[0]),
        }
        flags = 0 if state.flags is None else int(state.flags[0])
        if flags & 3:
            out["note"] = "margin after is computed on chain for option/portfolio accounts"
            return out
        after = compute_margin(state)
        eq, im, mm = int(after.equity[0]), int(after.im[0]), int(after.mm[0])
        x = float(liquidation_moves(state, after, np.array([0], dtype=np.int64))[0])
        out.update(
            {
                "equity_after": fmt_usd(eq),
                "initial_margin_after": fmt_usd(im, up=True),
                "maintenance_margin_after": fmt_usd(mm, up=True),
                "free_collateral_after": fmt_usd(eq - im),
                "health_after": None if mm == 0 else round(eq / mm, 4),
                "liquidation_price_after": (
                    None if np.isnan(x) or old + size == 0 else fmt_usd(int(price * (1 + x)))
                ),
                "allowed": eq >= im or abs(old + size) < abs(old),
            }
        )
        if not out["allowed"]:
            out["reason"] = (
                f"needs {fmt_usd(im - eq, up=True, unit='USDC')} more margin, or a smaller size"
            )
        return out

    def preview_option(
        self,
        series: int | str,
        size_delta: Quantity,
        owner: str | None = None,
        sub: int = 0,
    ) -> dict[str, Any]:
        """Premium and fee of an option trade before signing (the contract's price rule: mark
        plus the spread, at least ``minFee x spot`` per unit) and, given the account, its
        equity, IM, MM and health after the trade from the options mirror
        (:mod:`plimsoll.pm`: standard or portfolio margin, as the account is)."""
        sid = self.series_id(series)
        size = int(parse_wad(size_delta, "options", "size"))
        s = next(x for x in self.option_series(live_only=False) if x.series_id == sid)
        cfg = self.options.functions.optionsConfig(self.market_id(s.market)).call()
        spread, min_fee = int(cfg[2]), int(cfg[3])
        fee_unit = max(-(-int(s.mark) * spread // WAD), -(-int(s.spot) * min_fee // WAD))
        unit_price = s.mark + fee_unit if size > 0 else max(s.mark - fee_unit, 0)
        out: dict[str, Any] = {
            "series": s.name,
            "size": fmt_units(size, 18, "options"),
            "mark": fmt_usd(s.mark),
            "unit_price": fmt_usd(unit_price),
            "unit_price_wad": str(int(unit_price)),
            "premium": fmt_usd(abs(size) * unit_price // WAD),
            "fee": fmt_usd(abs(size) * fee_unit // WAD, up=True),
            "iv": f"{s.vol / WAD:.2%}",
        }
        if owner is not None:
            cost = size * int(unit_price) // WAD  # paid when buying, received when selling
            out.update(self._option_margin_after(owner, self.check_sub(sub), sid, size, cost))
        return out

    def _option_margin_after(
        self, owner: str, sub: int, sid: int, size: int, cost: int
    ) -> dict[str, Any]:
        """Equity, IM, MM, free collateral and health of ``(owner, sub)`` with ``size`` more
        of series ``sid`` bought for ``cost`` [wad USD] (the keeper's options mirror)."""
        import numpy as np

        from plimsoll import pm
        from plimsoll.margin import compute_margin
        from plimsoll.sync import StateReader

        owner = Web3.to_checksum_address(owner)
        lens = self.deployment["contracts"].get("PlimsollLens")
        if not lens:
            return {}
        state = StateReader(self.w3, self.core.address, lens).read([(owner, sub)])
        result = compute_margin(state)
        o = self.options.functions
        series = [
            pm.Series(int(x[0]), bool(x[1]), int(x[2]), int(x[3]), int(x[4]))
            for x in (o.series(i).call() for i in range(int(o.seriesCount().call())))
        ]
        ids, qs = o.positions(owner, sub).call()
        held = {int(i): int(q) for i, q in zip(ids, qs, strict=True)}
        held[sid] = held.get(sid, 0) + size
        positions = [[(series[i], q) for i, q in held.items() if q != 0]]
        cfgs = [o.optionsConfig(m).call() for m in range(state.n_markets)]
        if self._oracle is None:
            self._oracle = self.w3.eth.contract(
                address=self.core.functions.oracle().call(), abi=load_abi("OracleRouter")
            )
        ivs = [int(self._oracle.functions.priceInfo(int(c[0]) or 1).call()[0]) for c in cfgs]
        market = pm.MarketData(
            spot=tuple(max(1, int(p)) for p in state.market_price),
            iv=tuple(ivs),
            timestamp=int(state.timestamp),
            im_scalar=None if state.im_scalar is None else tuple(int(x) for x in state.im_scalar),
            mm_scalar=None if state.mm_scalar is None else tuple(int(x) for x in state.mm_scalar),
        )
        other = np.array([int(result.equity[0]) - cost], dtype=object)
        book = pm.OptionBook.from_positions(positions, state.sizes[[0]], other)
        portfolio = state.flags is not None and int(state.flags[0]) & 2
        if portfolio:
            r = pm.portfolio_margin(
                book, market, pm.PortfolioConfig.from_wad_tuple(o.portfolioConfig().call())
            )
            eq, im, mm = float(r.equity[0]), float(r.im[0]), float(r.mm[0])
        else:
            r2 = pm.standard_option_margin(book, market, pm.OptionsConfig.from_wad_tuple(cfgs[0]))
            eq = float(r2.equity[0])
            im = float(r2.im[0]) + int(result.im[0]) / WAD
            mm = float(r2.mm[0]) + int(result.mm[0]) / WAD

        def usd(x: float, up: bool = False) -> str:
            return fmt_usd(int(Decimal(repr(x)) * WAD), up=up)

        return {
            "margin_mode": "portfolio" if portfolio else "standard",
            "equity_after": usd(eq),
            "initial_margin_after": usd(im, up=True),
            "maintenance_margin_after": usd(mm, up=True),
            "free_collateral_after": usd(eq - im),
            "health_after": None if mm <= 0 else round(eq / mm, 4),
            "allowed": eq >= im or abs(held[sid]) < abs(held[sid] - size),
        }

    def history(self, owner: str, sub: int | None = None) -> list[HistoryEntry]:
        """What happened to ``owner``'s subaccount ``sub`` (all subaccounts when None), oldest
        first: deposits, withdrawals, transfers, trades, option trades and settlements,
        liquidations and bad debt, mode changes; amounts in words with their units."""
        if not Web3.is_address(owner):
            raise PlimsollError(f"not an address: {owner!r}")
        owner = Web3.to_checksum_address(owner)
        start = int(self.deployment.get("deploy_block", 0))
        out: list[HistoryEntry] = []
        contracts = [self.core]
        if self.deployment["contracts"].get("OptionsMarket"):
            contracts.append(self.options)
        for contract in contracts:
            for name in _HISTORY_EVENTS:
                if not any(e.get("name") == name for e in contract.abi if e["type"] == "event"):
                    continue
                logs = contract.events[name]().get_logs(
                    from_block=start, argument_filters={"owner": owner}
                )
                for log in logs:
                    args = dict(log["args"])
                    if args.get("owner") != owner:
                        continue
                    subs = {int(args[k]) for k in _SUB_KEYS if k in args}
                    if sub is not None and sub not in subs:
                        continue
                    kind, text = self._describe(name, args)
                    out.append(
                        HistoryEntry(
                            int(log["blockNumber"]),
                            int(log["logIndex"]),
                            _hex(log["transactionHash"]),
                            kind,
                            text,
                            tuple(sorted(subs)),
                        )
                    )
        return sorted(out, key=lambda e: (e.block, e.log_index))

    def _describe(self, name: str, a: dict[str, Any]) -> tuple[str, str]:
        sub = a.get("subaccount")
        if name == "Deposited":
            return "deposit", f"deposited {self.fmt(a['assetId'], a['amount'])} (sub {sub})"
        if name == "Withdrawn":
            return "withdraw", f"withdrew {self.fmt(a['assetId'], a['amount'])} (sub {sub})"
        if name == "Transferred":
            return "transfer", (
                f"moved {self.fmt(a['assetId'], a['amount'])} from sub {a['fromSubaccount']} "
                f"to sub {a['toSubaccount']}"
            )
        if name == "Traded":
            m = self.markets[int(a["marketId"])]["name"]
            q = int(a["sizeDelta"])
            return "trade", (
                f"{'bought' if q > 0 else 'sold'} {fmt_units(abs(q), 18, m.split('-')[0])} "
                f"{m} at {fmt_usd(a['price'])}, fee {fmt_usd(a['fee'], up=True)}, realized "
                f"{fmt_usd(a['realizedPnl'])} (sub {sub})"
            )
        if name == "Liquidated":
            return "liquidation", (
                f"liquidated: {int(a['fraction']) / WAD:.0%} closed "
                f"({fmt_usd(a['closedNotional'])} notional), penalty {fmt_usd(a['penalty'])}"
                + (f", bad debt {fmt_usd(a['badDebt'])}" if int(a["badDebt"]) else "")
                + f" (sub {sub})"
            )
        if name == "BadDebtSettled":
            return "bad_debt", f"debt of {fmt_usd(a['deficit'])} written off (sub {sub})"
        if name == "CollateralLiquidated":
            aid = int(a["assetId"])
            return "liquidation", (
                f"collateral sold: {self.fmt(aid, a['seized'])} for "
                f"{fmt_usd(a['repaidWad'])} of debt (sub {sub})"
            )
        if name == "SubaccountConfigured":
            iso = int(a["isolatedMarket"])
            where = "cross" if iso == 0 else f"isolated to {self.markets[iso - 1]['name']}"
            return "mode", f"subaccount {sub} set {where}"
        if name == "PortfolioMarginSet":
            return "mode", f"portfolio margin {'on' if a['enabled'] else 'off'} (sub {sub})"
        if name == "OptionTraded":
            q = int(a["sizeDelta"])
            return "option_trade", (
                f"{'bought' if q > 0 else 'sold'} {fmt_units(abs(q), 18, 'options')} of series "
                f"{a['seriesId']} at mark {fmt_usd(a['mark'])}, premium "
                f"{fmt_usd(a['premium'])}, fee {fmt_usd(a['fee'], up=True)} (sub {sub})"
            )
        if name == "OptionSettled":
            return "option_settled", (
                f"series {a['seriesId']} settled: payoff {fmt_usd(a['payoff'])} (sub {sub})"
            )
        if name == "OptionsLiquidated":
            return "liquidation", (
                f"options liquidated: {int(a['fraction']) / WAD:.0%} closed, realized "
                f"{fmt_usd(a['realized'])} (sub {sub})"
            )
        return name, name

    def margin_call(
        self, owner: str, sub: int = 0, block: int | None = None
    ) -> MarginCallNotice | None:
        """The margin-call notice of ``(owner, sub)`` (None outside MM <= equity < IM): the
        same notice the notifier keeper emits, read through the lens at one block."""
        from plimsoll.margin import compute_margin
        from plimsoll.margin_call import margin_calls
        from plimsoll.sync import StateReader

        if not Web3.is_address(owner):
            raise PlimsollError(f"not an address: {owner!r}")
        lens = self.deployment["contracts"].get("PlimsollLens")
        if not lens:
            raise DeploymentError("deployment has no PlimsollLens address")
        reader = StateReader(self.w3, self.core.address, lens)
        state = reader.read([(Web3.to_checksum_address(owner), sub)], block)
        symbols = {int(m["id"]): str(m["name"]) for m in self.markets}
        notices = margin_calls(state, compute_margin(state), symbols)
        return notices[0] if notices else None

    def decode_events(self, receipt: TxReceipt) -> list[Event]:
        """Every Plimsoll core, pool and options event in a receipt, decoded (each log by the
        contract that emitted it: a token's ``Transfer`` is not the pool's)."""
        out: list[Event] = []
        contracts = [self.core, self.pool]
        if self.deployment["contracts"].get("OptionsMarket"):
            contracts.append(self.options)
        for contract in contracts:
            own: Any = dict(receipt)
            own["logs"] = [
                log
                for log in receipt["logs"]
                if str(log["address"]).lower() == str(contract.address).lower()
            ]
            for ev_abi in contract.abi:
                if ev_abi.get("type") != "event":
                    continue
                for log in contract.events[ev_abi["name"]]().process_receipt(own, errors=DISCARD):
                    out.append(
                        Event(
                            log["event"],
                            dict(log["args"]),
                            int(log["blockNumber"]),
                            int(log["logIndex"]),
                        )
                    )
        return sorted(out, key=lambda e: e.log_index)


def _hex(b: Any) -> str:
    """A hash as 0x-prefixed hex."""
    return "0x" + bytes(HexBytes(b)).hex()


_HISTORY_EVENTS = (
    "Deposited",
    "Withdrawn",
    "Transferred",
    "Traded",
    "Liquidated",
    "BadDebtSettled",
    "CollateralLiquidated",
    "SubaccountConfigured",
    "PortfolioMarginSet",
    "OptionTraded",
    "OptionSettled",
    "OptionsLiquidated",
)
_SUB_KEYS = ("subaccount", "fromSubaccount", "toSubaccount")


def human_to_units(amount: str | Decimal, decimals: int, unit: str = "") -> TokenAmount:
    """A human amount in base units, exactly (see :func:`plimsoll.units.parse_amount`)."""
    return parse_amount(amount, decimals, unit)


__all__ = [
    "AccountStatus",
    "Amount",
    "Event",
    "HistoryEntry",
    "OptionPosition",
    "OptionSeries",
    "PlimsollClient",
    "Position",
    "human_to_units",
    "to_wad",
]
