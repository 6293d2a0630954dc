"""Typed client for traders and tools: load a deployment, act, read account status.

Runs on web3.py alone (ABIs ship in ``plimsoll/abi``). Transactions are signed locally with an
``eth_account`` key (from a keystore, see :mod:`plimsoll.keys`) through :class:`TxSender`, or sent
by the node for an unlocked address on a local chain. Every revert comes back as
:class:`~plimsoll.errors.ContractRevert` with the custom error's name and arguments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError
from web3.logs import DISCARD
from web3.types import TxReceipt

from plimsoll.chain import ErrorDecoder, revert_data
from plimsoll.errors import ContractRevert, DeploymentError, PlimsollError
from plimsoll.margin_call import MarginCallNotice
from plimsoll.tx import Outcome, TxSender
from plimsoll.units import WAD, TokenAmount, Wad, to_wad

ABI_DIR = Path(__file__).resolve().parent / "abi"


def load_abi(name: str) -> list[dict[str, Any]]:
    path = ABI_DIR / f"{name}.json"
    if not path.exists():
        raise DeploymentError(f"ABI {name} is not shipped ({path})")
    abi: list[dict[str, Any]] = json.loads(path.read_text())
    return abi


@dataclass(frozen=True)
class Position:
    market: str
    size: Wad  # [wad] signed
    open_notional: Wad  # [wad USD]


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

    def to_json(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "subaccount": self.subaccount,
            "equity": self.equity / WAD,
            "initial_margin": self.initial_margin / WAD,
            "maintenance_margin": self.maintenance_margin / WAD,
            "health": None if self.maintenance_margin == 0 else round(self.health, 6),
            "liquidatable": self.liquidatable,
            "margin_call": self.margin_call,
            "cash": self.cash / WAD,
            "collateral": {k: int(v) for k, v in self.collateral.items()},
            "positions": [
                {"market": p.market, "size": p.size / WAD, "open_notional": p.open_notional / WAD}
                for p in self.positions
            ],
            "isolated_market": self.isolated_market,
        }


@dataclass(frozen=True)
class Event:
    name: str
    args: dict[str, Any]
    block: int
    log_index: int


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
    """

    def __init__(
        self, w3: Web3, deployment: dict[str, Any], signer: LocalAccount | str | None = None
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
            [load_abi(n) for n in ("Plimsoll", "LiquidityPool", "OracleRouter", "MockERC20")]
        )
        self.signer = signer
        self.sender = TxSender(w3, signer) if isinstance(signer, LocalAccount) else None

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
        if isinstance(market, int) or str(market).isdigit():
            i = int(market)
            if 0 <= i < len(self.markets):
                return i
        else:
            for m in self.markets:
                if m["name"].upper() == str(market).upper():
                    return int(m["id"])
        raise PlimsollError(f"unknown market {market!r}")

    @property
    def address(self) -> str:
        if self.signer is None:
            raise PlimsollError("this client has no signer")
        return str(self.signer.address if isinstance(self.signer, LocalAccount) else self.signer)

    # ------------------------------------------------------------------ sending

    def send(self, fn: Any) -> TxReceipt:
        """Sends any bound contract call from this client's signer: simulated first (a revert
        raises its decoded ContractRevert and spends nothing), then sent and waited for."""
        sender = self.address
        try:  # simulate first: a revert comes back decoded, and nothing is spent
            fn.call({"from": sender})
        except (ContractCustomError, ContractPanicError, ContractLogicError) as exc:
            raise self.decoder.decode(revert_data(exc)) from exc
        if self.sender is not None:
            tx = fn.build_transaction({"from": sender, "gas": 0})
            p = self.sender.wait(
                self.sender.send({"to": tx["to"], "data": tx["data"]}, label=fn.fn_name)
            )
            if p.outcome is not Outcome.SUCCEEDED or p.receipt is None:
                raise ContractRevert("Unknown", {"nonce": p.nonce}, "0x")
            return p.receipt
        tx_hash = fn.transact({"from": sender})
        receipt: TxReceipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        if receipt["status"] != 1:
            raise ContractRevert("Unknown", {"tx": tx_hash.hex()}, "0x")
        return receipt

    def _ensure_allowance(self, token: Contract, spender: str, amount: int) -> None:
        if token.functions.allowance(self.address, spender).call() < amount:
            self.send(token.functions.approve(spender, 2**256 - 1))

    # ------------------------------------------------------------------ trader actions

    def deposit(self, asset: int | str, amount: TokenAmount, sub: int = 0) -> TxReceipt:
        """Deposit ``amount`` [token units]; approves the core first if needed."""
        aid = self.asset_id(asset)
        self._ensure_allowance(self.token(aid), self.core.address, amount)
        return self.send(self.core.functions.deposit(sub, aid, amount))

    def withdraw(self, asset: int | str, amount: TokenAmount, sub: int = 0) -> TxReceipt:
        return self.send(self.core.functions.withdraw(sub, self.asset_id(asset), amount))

    def transfer(
        self, asset: int | str, amount: TokenAmount, from_sub: int, to_sub: int
    ) -> TxReceipt:
        return self.send(
            self.core.functions.transfer(from_sub, to_sub, self.asset_id(asset), amount)
        )

    def trade(
        self, market: int | str, size_delta: Wad, sub: int = 0, acceptable_price: int = 0
    ) -> TxReceipt:
        """Change a position by ``size_delta`` [wad units of the underlying]."""
        return self.send(
            self.core.functions.trade(sub, self.market_id(market), size_delta, acceptable_price)
        )

    def close(self, market: int | str, sub: int = 0) -> TxReceipt:
        m = self.market_id(market)
        size = int(self.core.functions.getPosition(self.address, sub, m).call()[0])
        if size == 0:
            raise PlimsollError(f"no open position in {self.markets[m]['name']}")
        return self.send(self.core.functions.trade(sub, m, -size, 0))

    def isolate(self, sub: int, market: int | str | None) -> TxReceipt:
        """Make an empty subaccount isolated to ``market`` (None: cross margin)."""
        flag = 0 if market is None else self.market_id(market) + 1
        return self.send(self.core.functions.configureSubaccount(sub, flag))

    def pool_deposit(self, amount: TokenAmount) -> TxReceipt:
        self._ensure_allowance(self.cash, self.pool.address, amount)
        return self.send(self.pool.functions.deposit(amount, self.address))

    def pool_withdraw(self, amount: TokenAmount) -> TxReceipt:
        return self.send(self.pool.functions.withdraw(amount, self.address, self.address))

    def set_vol_scalar(self, market: int | str, scalar: Wad) -> TxReceipt:
        """Post a market's volatility scalar [wad] (the risk keeper or the admin)."""
        return self.send(self.core.functions.setVolScalar(self.market_id(market), int(scalar)))

    # ------------------------------------------------------------------ reads

    def account(self, owner: str, sub: int = 0, block: int | str = "latest") -> AccountStatus:
        """Equity, margins, health, positions and collateral of ``(owner, sub)``."""
        if not Web3.is_address(owner):
            raise PlimsollError(f"not an address: {owner!r}")
        owner = Web3.to_checksum_address(owner)
        c = self.core.functions
        try:
            equity, im, mm = c.accountMargin(owner, sub).call(block_identifier=block)
            liq = c.isLiquidatable(owner, sub).call(block_identifier=block)
            cash, asset_mask, market_mask, iso, _flags = c.getAccount(owner, sub).call(
                block_identifier=block
            )
            collateral: dict[str, TokenAmount] = {}
            for a in self.assets:
                if asset_mask >> a["id"] & 1:
                    collateral[a["symbol"]] = TokenAmount(
                        c.collateralBalance(owner, sub, a["id"]).call(block_identifier=block)
                    )
            positions = []
            for m in self.markets:
                if market_mask >> m["id"] & 1:
                    size, notional, _ = c.getPosition(owner, sub, m["id"]).call(
                        block_identifier=block
                    )
                    positions.append(Position(m["name"], Wad(size), Wad(notional)))
        except (ContractCustomError, ContractPanicError, ContractLogicError) as exc:
            raise self.decoder.decode(revert_data(exc)) from exc
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
        )

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
        """Every Plimsoll core and pool event in a receipt, decoded."""
        out: list[Event] = []
        for contract in (self.core, self.pool):
            for ev_abi in contract.abi:
                if ev_abi.get("type") != "event":
                    continue
                for log in contract.events[ev_abi["name"]]().process_receipt(
                    receipt, errors=DISCARD
                ):
                    out.append(
                        Event(
                            log["event"],
                            dict(log["args"]),
                            int(log["blockNumber"]),
                            int(log["logIndex"]),
                        )
                    )
        return sorted(out, key=lambda e: e.log_index)


def human_to_units(amount: str | float, decimals: int) -> TokenAmount:
    from plimsoll.units import token_units

    return token_units(amount, decimals)


__all__ = ["AccountStatus", "Event", "PlimsollClient", "Position", "human_to_units", "to_wad"]
