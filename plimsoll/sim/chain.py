"""The chain engine: one path of a scenario on anvil, with the real contracts, Chainlink-style
feeds and the real keeper process; the external market and the feedback loop are driven from
Python between blocks. :func:`run_chain` is the entry point; its result carries the fast
engine's :class:`~plimsoll.sim.engine.SimResult` (one path), so reports and plots take
either engine's, and each account's outcome (``tests/sim/test_agreement.py`` compares them).

The chain side (:class:`ChainWorld`): a local anvil with the protocol deployed from the
model's :class:`~plimsoll.sim.model.SimConfig` (:func:`plimsoll.deploy.deploy_local`: its
assets, collateral haircuts, markets, liquidation config, insurance fund and pool; funding
off, as in the model), the book opened on chain in bounded batches (``scripts/demo.py``'s
rule), the liquidation keeper (``python -m keepers.liquidator``, as ``scripts/demo.py`` and
``tests/faults`` start it) with a keystore key and a health port, and blocks mined one at a
time by the engine (automine off, ``evm_mine``) at the step's time, with the base fee of the
model's EIP-1559 market (``anvil_setNextBlockBaseFeePerGas``). Feed updates follow the model's
market by Chainlink's rule (:class:`~plimsoll.sim.market.MarketDriver`); what the keeper did
is read back from the chain (events, the insurance fund, the pool's assets), never from the
keeper, and the collateral it bought is sold into the model's market at the next step.

Speed (``bench/sim_chain_bench.py``, 48 steps x 4 blocks, a shared 2-core machine at load
8-11): opening the book 18-35 transactions/s (1,000 accounts: 9,390 transactions, 528 s),
then 4.1 blocks/s with 50 accounts, 1.6 with 500, 1.1 with 1,000 (76 s for the day).

Model vs chain, beyond what ``tests/sim/test_agreement.py`` states: the chain does not fill
blocks with others' gas, so the model's block space (``keeper_capacity``) does not bind the
real keeper (anvil's 60M gas blocks take ~260 liquidations); the keeper prices gas with
``eth_estimateGas`` and its own tip, not ``gas_per_liquidation`` and the spike tip; books
with options or portfolio margin are refused.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from eth_abi import decode as abi_decode
from eth_account import Account
from eth_utils import keccak
from web3 import Web3

from plimsoll.chain import LocalNode, free_port
from plimsoll.deploy import FEED_DECIMALS, Deployment
from plimsoll.errors import PlimsollError
from plimsoll.sim.engine import SimResult
from plimsoll.sim.market import external_share
from plimsoll.sim.model import SimConfig, SimInputError
from plimsoll.sim.paths import PricePaths
from plimsoll.sim.population import Book
from plimsoll.units import WAD, token_units, wad

ROOT = Path(__file__).resolve().parents[2]
YEAR = 365 * 86_400.0
F = npt.NDArray[np.float64]
GWEI = 10**9

#: Set-up transactions in flight at most (anvil stalls when flooded; scripts/demo.py).
SETUP_BATCH = 256
#: Gas of a set-up transaction (deposit, trade, approve, mint).
SETUP_GAS = 900_000
#: The fee cap of the engine's own transactions before the engine sets base fees (set-up);
#: afterwards their cap is the next block's base fee (``ChainWorld._tx``).
ENGINE_MAX_FEE = 100_000 * GWEI
#: The highest base fee posted to anvil [wei]: the model's EIP-1559 market compounds a spike
#: over every block of a step (x1.12 per block) and anvil 1.7.1 panics on a base fee near
#: 2.6e8 gwei; no keeper pays anywhere near this (its caps: 500 and 5,000 gwei), so the cap
#: changes nothing the keeper does. The series keep the model's figure.
MAX_BASE_FEE = 100_000 * GWEI


class ChainSimError(PlimsollError):
    """The chain engine could not run its scenario (node, keeper or set-up failed)."""


def rpc(w3: Web3, method: str, params: list[Any]) -> Any:
    """A raw JSON-RPC call; an error answer raises :class:`ChainSimError`."""
    resp = w3.provider.make_request(method, params)  # type: ignore[arg-type]
    if "error" in resp:
        raise ChainSimError(f"{method} failed: {resp['error']}")
    return resp.get("result")


def _topic(sig: str) -> str:
    return "0x" + keccak(text=sig).hex()


TOPIC_LIQUIDATED = _topic(
    "Liquidated(address,uint256,address,uint256,uint256,uint256,uint256,uint256)"
)
TOPIC_COLLATERAL = _topic("CollateralLiquidated(address,uint256,address,uint256,uint256,uint256)")
TOPIC_BAD_DEBT = _topic("BadDebtSettled(address,uint256,uint256,uint256,uint256)")
TOPIC_FORFEITED = _topic("CollateralForfeited(address,uint256,uint256,uint256)")
TOPIC_RECOVERED = _topic("RecoveredSold(address,uint256,uint256,uint256)")


def _addr(topic: str) -> str:
    return Web3.to_checksum_address("0x" + topic[-40:])


@dataclass(frozen=True)
class LiquidationEvent:
    """One ``Liquidated`` event (amounts [wad USD], ``fraction`` [wad])."""

    owner: str
    sub: int
    liquidator: str
    fraction: int
    closed_notional: int
    penalty: int
    reward: int
    bad_debt: int
    tx_index: int


@dataclass(frozen=True)
class CollateralEvent:
    """One ``CollateralLiquidated`` event: the buyer repaid ``repaid`` [wad USD] of the
    account's cash debt and received ``seized`` [token units] of asset ``asset_id``."""

    owner: str
    sub: int
    buyer: str
    asset_id: int
    repaid: int
    seized: int
    tx_index: int


@dataclass(frozen=True)
class RecoveredSoldEvent:
    """One ``RecoveredSold`` event: ``buyer`` bought ``amount`` [token units] of the recovery
    account's asset ``asset_id`` for ``paid`` [cash token units], paid into the insurance
    fund."""

    buyer: str
    asset_id: int
    amount: int
    paid: int
    tx_index: int


@dataclass(frozen=True)
class BadDebtEvent:
    """One ``BadDebtSettled`` event (all [wad USD])."""

    owner: str
    sub: int
    deficit: int
    from_insurance: int
    socialized: int
    tx_index: int


@dataclass
class BlockOutcome:
    """What one mined block did, read from the chain."""

    block: int
    timestamp: int
    base_fee: int  # [wei]
    gas_used: int
    gas_limit: int
    liquidations: list[LiquidationEvent] = field(default_factory=list)
    collateral: list[CollateralEvent] = field(default_factory=list)
    bad_debt: list[BadDebtEvent] = field(default_factory=list)
    forfeited: list[tuple[str, int, int, int]] = field(default_factory=list)
    recovered_sold: list[RecoveredSoldEvent] = field(default_factory=list)
    insurance_fund: int = 0  # [wad USD] after the block
    lp_share_price: float = 0.0  # [USD per share unit] after the block
    reverted_keeper_txs: int = 0  # the keeper's transactions in this block that reverted
    keeper_gas: int = 0  # gas the keeper's transactions used
    keeper_txs: int = 0  # the keeper's transactions in the block
    keeper_fees: int = 0  # [wei] what they paid
    statuses: dict[str, int] = field(default_factory=dict)  # tx hash -> status, every tx


@dataclass(frozen=True)
class AccountSpec:
    """One account as it is opened on chain.

    ``owner`` indexes the node's unlocked accounts (the engine maps it to an address);
    ``isolated_market`` makes subaccount ``sub`` an isolated one on that market;
    ``deposits`` are (asset id, amount [token units]) with 0 the cash token; ``trades`` are
    (market id, size [wad], signed), filled at the oracle mark."""

    owner: int
    sub: int
    deposits: tuple[tuple[int, int], ...]
    trades: tuple[tuple[int, int], ...]
    isolated_market: int | None = None


@dataclass
class KeeperProcess:
    """The liquidation keeper running as its own process (``python -m keepers.liquidator``)."""

    proc: subprocess.Popen[str]
    port: int
    address: str
    log: Path  # its stderr (a file: a pipe nobody reads would fill and stall it)
    summary: dict[str, Any] = field(default_factory=dict)

    def log_tail(self, n: int = 1500) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def health(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                return dict(json.loads(r.read()))
        except urllib.error.HTTPError as e:  # 503 while unhealthy: the body says why
            return dict(json.loads(e.read()))

    def last_block(self) -> int:
        try:
            return int(self.health().get("last_block", -1))
        except OSError:
            return -1

    def stop(self, timeout: float = 60.0) -> dict[str, Any]:
        """SIGTERM, wait, and the keeper's own summary (its last stdout line)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate(timeout=10)
        lines = out.strip().splitlines()
        if lines:
            try:
                self.summary = dict(json.loads(lines[-1]))
            except json.JSONDecodeError:
                self.summary = {}
        return self.summary


class ChainWorld:
    """A local chain with the protocol deployed, the book open and the keeper running.

    The engine drives it block by block: :meth:`post_prices` (feed updates), :meth:`send`
    (traders' actions), :meth:`mine` (one block at a given timestamp and base fee),
    :meth:`wait_keeper` (the keeper has processed the block: its transactions for it are in
    the mempool), :meth:`outcome` (the block's events and balances).
    """

    def __init__(self, node: LocalNode, w3: Web3, dep: Deployment, workdir: Path) -> None:
        self.node = node
        self.w3 = w3
        self.dep = dep
        self.workdir = workdir
        self.keepers: list[KeeperProcess] = []
        self.accounts: list[tuple[str, int]] = []
        self.timestamp = int(w3.eth.get_block("latest")["timestamp"])
        self._share_unit = 0
        self.next_fee = 0  # [wei] base fee of the next block once the engine sets it

    # ------------------------------------------------------------------ book

    def owner(self, i: int) -> str:
        """Address of unlocked account ``i`` of the book (the node's first two are the admin's
        and a spare)."""
        return str(self.w3.eth.accounts[2 + i])

    def open_book(self, specs: Sequence[AccountSpec]) -> list[tuple[str, int]]:
        """Open every account on chain: mint and approve what each deposits, configure
        isolated subaccounts, deposit, trade. At most :data:`SETUP_BATCH` transactions are in
        flight (``scripts/demo.py``'s bound); they are mined together (automine off, blocks
        mined until the mempool is empty: 5-10 times faster than a block per transaction),
        then their receipts are checked; a failed one raises."""
        core, w3 = self.dep.core, self.w3
        pending: list[tuple[Any, str]] = []
        self.automine(False)

        def flush() -> None:
            for _ in range(10 * SETUP_BATCH):
                self.mine_now()
                status = rpc(w3, "txpool_status", [])
                if not int(status.get("pending", "0x0"), 16):
                    break
            for h, what in pending:
                r = w3.eth.wait_for_transaction_receipt(h, timeout=300)
                if r["status"] != 1:
                    raise ChainSimError(f"opening the book: {what} reverted")
            pending.clear()

        def tx(fn: Any, sender: str, what: str) -> None:
            pending.append((fn.transact({"from": sender, "gas": SETUP_GAS}), what))
            if len(pending) >= SETUP_BATCH:
                flush()

        approved: set[tuple[str, int]] = set()
        totals: dict[tuple[str, int], int] = {}
        for s in specs:
            for asset_id, amount in s.deposits:
                key = (self.owner(s.owner), asset_id)
                totals[key] = totals.get(key, 0) + amount
        for (addr, asset_id), amount in totals.items():
            tok = self.dep.token(asset_id)
            tx(tok.functions.mint(addr, amount), addr, f"mint {asset_id} to {addr}")
            if (addr, asset_id) not in approved:
                tx(
                    tok.functions.approve(core.address, 2**256 - 1),
                    addr,
                    f"approve {asset_id} by {addr}",
                )
                approved.add((addr, asset_id))
        flush()  # tokens before deposits (another sender's order is not kept)
        for s in specs:
            addr = self.owner(s.owner)
            if s.isolated_market is not None:
                tx(
                    core.functions.configureSubaccount(s.sub, s.isolated_market + 1),
                    addr,
                    f"isolate {addr}:{s.sub}",
                )
            for asset_id, amount in s.deposits:
                tx(core.functions.deposit(s.sub, asset_id, amount), addr, f"deposit {addr}:{s.sub}")
        flush()
        for s in specs:
            addr = self.owner(s.owner)
            for market, size in s.trades:
                tx(core.functions.trade(s.sub, market, size, 0), addr, f"trade {addr}:{s.sub}")
        flush()
        self.automine(True)
        self.accounts = [(self.owner(s.owner), s.sub) for s in specs]
        return self.accounts

    # ------------------------------------------------------------------ keeper

    def start_keeper(self, name: str = "keeper", extra: Sequence[str] = ()) -> KeeperProcess:
        """The liquidation keeper as its own process with a fresh keystore key, gas money and
        cash for collateral purchases; returns once its /health reports a processed block
        (the engine mines while it approves its cash at start-up)."""
        w3, dep = self.w3, self.dep
        key = Account.create()
        rpc(w3, "anvil_setBalance", [key.address, hex(10**24)])
        h = dep.cash.functions.mint(key.address, token_units(100_000_000, 6)).transact(
            self._tx(dep.admin, 200_000)
        )
        self.mine_now()
        w3.eth.wait_for_transaction_receipt(h, timeout=60)
        from keepers.config import keeper_command  # the SDK imports keepers only lazily

        deployment = self.workdir / "deployment.json"
        dep.save(deployment)
        port = free_port()
        cmd = keeper_command(
            key,
            self.workdir,
            name,
            self.node.url,
            deployment,
            port,
            password="sim-password",
            extra=("--poll-interval", "0.02", "--log-level", "warning", *extra),
        )
        log = self.workdir / f"{name}.log"
        with log.open("w") as err:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True)
        k = KeeperProcess(proc, port, str(key.address), log)
        self.keepers.append(k)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ChainSimError(f"the keeper exited at start-up: {k.log_tail()}")
            if k.last_block() >= 0:
                return k
            self.mine_now()  # the keeper approves cash at start and waits for the receipt
            time.sleep(0.2)
        raise ChainSimError("the keeper did not become healthy within 90 s")

    def wait_keeper(self, block: int, timeout: float = 60.0) -> None:
        """Until every keeper has processed ``block`` (its transactions for it are sent): the
        next block is then mined with them, so the keeper's latency is the protocol's one
        block and not the machine's load."""
        deadline = time.monotonic() + timeout
        for k in self.keepers:
            while k.last_block() < block:
                if k.proc.poll() is not None:
                    raise ChainSimError(f"the keeper exited: {k.log_tail(500)}")
                if time.monotonic() > deadline:
                    raise ChainSimError(f"the keeper did not process block {block} in time")
                time.sleep(0.01)

    def stop_keepers(self) -> list[dict[str, Any]]:
        return [k.stop() for k in self.keepers]

    # ------------------------------------------------------------------ blocks

    def _tx(self, sender: str, gas: int) -> Any:
        """Parameters of an engine transaction (feed updates, traders' actions): no tip, and a
        fee cap of exactly the next block's base fee once the engine sets it. Anvil orders a
        block by the fee cap (``--order fees``), so these come after every keeper
        transaction of the same block, as in the fast engine (keepers, then traders), and
        they never move the going tip the keeper reads from ``eth_feeHistory``."""
        return {
            "from": sender,
            "gas": gas,
            "maxFeePerGas": self.next_fee or ENGINE_MAX_FEE,
            "maxPriorityFeePerGas": 0,
        }

    def automine(self, on: bool) -> None:
        rpc(self.w3, "evm_setAutomine", [on])

    def mine_now(self) -> int:
        """One block now (set-up: no scenario timestamp, no base fee)."""
        rpc(self.w3, "evm_mine", [])
        b = self.w3.eth.get_block("latest")
        self.timestamp = int(b["timestamp"])
        return int(b["number"])

    def mine(self, timestamp: int, next_base_fee: int | None = None) -> int:
        """Mine one block at ``timestamp`` [s] (strictly after the last one), then set the base
        fee [wei] of the block after it (``eth_feeHistory`` reports it at once, so the keeper
        prices its transactions with it; None: what EIP-1559 gives)."""
        timestamp = max(int(timestamp), self.timestamp + 1)
        rpc(self.w3, "evm_mine", [timestamp])
        if next_base_fee is not None:
            self.set_next_base_fee(next_base_fee)
        self.timestamp = timestamp
        return int(self.w3.eth.block_number)

    def set_next_base_fee(self, wei: int) -> None:
        self.next_fee = min(max(1, int(wei)), MAX_BASE_FEE)
        rpc(self.w3, "anvil_setNextBlockBaseFeePerGas", [hex(self.next_fee)])

    def idle(self) -> bool:
        """No keeper has a transaction in flight and the mempool is empty."""
        status = rpc(self.w3, "txpool_status", [])
        if int(status.get("pending", "0x0"), 16) or int(status.get("queued", "0x0"), 16):
            return False
        return all(int(k.health().get("inflight", 0)) == 0 for k in self.keepers)

    def post_prices(self, answers: dict[int, float]) -> list[Any]:
        """A feed update (``MockFeed.updateAnswer``) per feed id -> price [USD], sent from the
        admin, mined with the next block (after the keeper's transactions: no tip)."""
        out = []
        for feed_id, price in answers.items():
            answer = round(price * 10**FEED_DECIMALS)
            if answer <= 0:
                raise ChainSimError(f"feed {feed_id}: a price of {price} USD cannot be posted")
            out.append(
                self.dep.feeds[feed_id]
                .functions.updateAnswer(answer)
                .transact(self._tx(self.dep.admin, 200_000))
            )
        return out

    def send(self, fn: Any, sender: str, gas: int = SETUP_GAS) -> str:
        """A trader's (or the engine's) transaction for the next block, no tip; its hash
        (0x..., lower case)."""
        return "0x" + bytes(fn.transact(self._tx(sender, gas))).hex()

    # ------------------------------------------------------------------ reading

    def insurance_fund(self, block: Any = "latest") -> int:
        return int(self.dep.core.functions.insuranceFund().call(block_identifier=block))

    def lp_share_price(self, block: Any = "latest") -> float:
        """Cash [USD] one whole pool share is worth (shares have the cash token's decimals
        plus the pool's 6 virtual ones)."""
        pool = self.dep.pool
        if not self._share_unit:
            self._share_unit = 10 ** int(pool.functions.decimals().call())
        assets = int(pool.functions.convertToAssets(self._share_unit).call(block_identifier=block))
        return assets / 10**6

    def outcome(self, block: int) -> BlockOutcome:
        """The block's liquidations, collateral purchases, bad debt and the balances after it."""
        w3 = self.w3
        blk = w3.eth.get_block(block)
        out = BlockOutcome(
            block=block,
            timestamp=int(blk["timestamp"]),
            base_fee=int(blk.get("baseFeePerGas", 0) or 0),
            gas_used=int(blk["gasUsed"]),
            gas_limit=int(blk["gasLimit"]),
        )
        logs = rpc(
            w3,
            "eth_getLogs",
            [
                {
                    "fromBlock": hex(block),
                    "toBlock": hex(block),
                    "address": self.dep.core.address,
                    "topics": [
                        [
                            TOPIC_LIQUIDATED,
                            TOPIC_COLLATERAL,
                            TOPIC_BAD_DEBT,
                            TOPIC_FORFEITED,
                            TOPIC_RECOVERED,
                        ]
                    ],
                }
            ],
        )
        for log in logs:
            t = log["topics"]
            data = bytes.fromhex(log["data"][2:])
            idx = int(log["transactionIndex"], 16)
            if t[0] == TOPIC_LIQUIDATED:
                f, n, pen, rew, bad = abi_decode(["uint256"] * 5, data)
                out.liquidations.append(
                    LiquidationEvent(
                        _addr(t[1]), int(t[2], 16), _addr(t[3]), f, n, pen, rew, bad, idx
                    )
                )
            elif t[0] == TOPIC_COLLATERAL:
                asset_id, repaid, seized = abi_decode(["uint256"] * 3, data)
                out.collateral.append(
                    CollateralEvent(
                        _addr(t[1]), int(t[2], 16), _addr(t[3]), asset_id, repaid, seized, idx
                    )
                )
            elif t[0] == TOPIC_BAD_DEBT:
                deficit, ins, soc = abi_decode(["uint256"] * 3, data)
                out.bad_debt.append(
                    BadDebtEvent(_addr(t[1]), int(t[2], 16), deficit, ins, soc, idx)
                )
            elif t[0] == TOPIC_FORFEITED:
                (amount,) = abi_decode(["uint256"], data)
                out.forfeited.append((_addr(t[1]), int(t[2], 16), int(t[3], 16), amount))
            elif t[0] == TOPIC_RECOVERED:
                amount, paid = abi_decode(["uint256"] * 2, data)
                out.recovered_sold.append(
                    RecoveredSoldEvent(_addr(t[1]), int(t[2], 16), amount, paid, idx)
                )
        keepers = {k.address.lower() for k in self.keepers}
        receipts = rpc(w3, "eth_getBlockReceipts", [hex(block)]) or []
        for r in receipts:
            status = int(r["status"], 16)
            out.statuses[str(r["transactionHash"]).lower()] = status
            if str(r["from"]).lower() in keepers:
                out.keeper_txs += 1
                gas = int(r["gasUsed"], 16)
                out.keeper_gas += gas
                out.keeper_fees += gas * int(r["effectiveGasPrice"], 16)
                if status != 1:
                    out.reverted_keeper_txs += 1
        out.insurance_fund = self.insurance_fund(block)
        out.lp_share_price = self.lp_share_price(block)
        return out

    def close(self) -> None:
        for k in self.keepers:
            if k.proc.poll() is None:
                k.proc.kill()
                k.proc.communicate(timeout=10)
        self.node.stop()


# ====================================================================== the engine


@dataclass(frozen=True)
class ChainOptions:
    """How the chain engine runs (not part of the model).

    ``funding``: False lists every market with ``maxFundingRate`` 0, as the model leaves
    funding out (:mod:`plimsoll.sim.population`); True keeps ``plimsoll.deploy``'s funding.
    ``fast_forward``: once the keeper has nothing in flight and nothing waits in the mempool,
    the rest of a step's blocks are mined at once (``anvil_mine``) instead of one by one.
    ``keeper_args``: extra flags for ``keepers.liquidator``."""

    funding: bool = False
    fast_forward: bool = True
    keeper_args: tuple[str, ...] = ()
    keeper_timeout: float = 60.0
    workdir: Path | None = None


def comparable_config(cfg: SimConfig, path: PricePaths, blocks_per_step: int) -> SimConfig:
    """``cfg`` set up for comparing the fast engine with the chain on ``path``: blocks of
    ``blocks_per_step`` per step, a flat 2 gwei base fee + 1 gwei tip with spikes only on
    moves (random spikes would draw from each engine's own random stream), keepers one block
    behind, collateral sales and the pool hedger on."""
    dt = float(path.times[1] - path.times[0])
    return replace(
        cfg,
        gas=replace(
            cfg.gas,
            block_time=dt / blocks_per_step,
            base_fee=2.0,
            priority_fee=1.0,
            spikes_per_day=0.0,
            spike_on_move=10.0,
        ),
        keeper=replace(cfg.keeper, latency_blocks=1),
        feedback=replace(cfg.feedback, sell_collateral=True, hedger=True),
    )


def _deploy_world(w3: Web3, cfg: SimConfig, opts: ChainOptions, dt_max: float) -> Deployment:
    """``deploy_local`` with the model's assets, collateral, markets, liquidation config,
    insurance and pool; every feed's staleness limit is its heartbeat plus two steps (the
    model posts at the first step past the heartbeat)."""
    from plimsoll.deploy import AssetSpec as ChainAsset
    from plimsoll.deploy import MarketSpec as ChainMarket
    from plimsoll.deploy import deploy_local

    assets = [
        ChainAsset(
            c.symbol, c.decimals, c.asset + 1, wad(c.haircut), token_units(10**12, c.decimals)
        )
        for c in cfg.collateral
    ]
    markets = [
        ChainMarket(
            m.name,
            m.asset + 1,
            im_base=wad(m.im_base),
            mm_factor=wad(m.mm_factor),
            size_slope=wad(m.size_slope),
            taker_fee=wad(m.taker_fee),
            max_open_interest=wad(10**9),
            **({} if opts.funding else {"max_funding_rate": 0}),
        )
        for m in cfg.markets
    ]
    prices: dict[int, float | int] = {i + 1: a.price for i, a in enumerate(cfg.assets)}
    dep = deploy_local(
        w3,
        pool_liquidity=token_units(cfg.pool_liquidity, 6),
        insurance=token_units(cfg.insurance, 6),
        assets=assets,
        markets=markets,
        prices=prices,
        options=False,
        # RiskLimits from the risk keeper's policy: scalars in [floor, cap], at most max_step
        # per update, one update a minute per market, MM rises ramped in over `ramp`
        risk_limits=(
            wad(cfg.vol_policy.floor),
            wad(cfg.vol_policy.cap),
            wad(cfg.vol_policy.max_step),
            60,
            int(cfg.vol_policy.ramp),
        ),
    )
    for i, a in enumerate(cfg.assets):
        dep.send(
            dep.oracle.functions.setFeed(
                i + 1,
                dep.feeds[i + 1].address,
                int(a.heartbeat + 2 * dt_max) + 60,
                WAD // 10**6,
                10**9 * WAD,
            ),
            dep.admin,
        )
    lc = cfg.liquidation
    dep.send(
        dep.core.functions.setLiquidationConfig(
            (
                wad(lc.penalty),
                wad(lc.keeper_share),
                wad(lc.buffer),
                wad(lc.collateral_bonus),
                wad(lc.reward_cap),
                wad(lc.dust_notional),
                wad(lc.reward_min),
            )
        ),
        dep.admin,
    )
    return dep


def _mul_up(a: int, b: int) -> int:
    return -(-a * b // WAD)


def _wad9(x: float) -> int:
    """A float rounded to 1e-9 and scaled to wad (``book_to_state``'s rounding)."""
    return int(round(x * 1e9)) * 10**9


def _tokens(x: float, decimals: int) -> int:
    """Token units of ``x`` tokens (``book_to_state``'s rounding)."""
    return int(round(x * 10.0 ** min(decimals, 9))) * int(10 ** max(decimals - 9, 0))


def book_specs(book: Book, cfg: SimConfig, taker_fee: int | None = None) -> list[AccountSpec]:
    """The chain's set-up of every account of ``book``: one owner each (subaccount 1 when
    isolated, on its one market; 0 when cross), cash and collateral deposited, positions
    opened at the starting prices. The taker fee the trades pay is deposited on top, so the
    cash after opening is the book's.

    Raises
    ------
    SimInputError
        A book with options, portfolio margin or negative cash (the chain engine opens
        perps and collateral only).
    """
    if np.any(book.opt_qty != 0) or np.any(book.portfolio):
        raise SimInputError(
            "the chain engine opens perps and collateral only: draw the book with"
            " p_options=0 and p_portfolio=0"
        )
    if np.any(book.cash < 0):
        raise SimInputError("the chain engine needs cash >= 0 USD in every account of the book")
    specs = []
    unit = 10**12  # wad per cash token unit (6 decimals)
    for i in range(book.n_accounts):
        trades = []
        fee = 0
        for m, spec in enumerate(cfg.markets):
            size = _wad9(float(book.sizes[i, m]))
            if size == 0:
                continue
            price = _wad9(cfg.assets[spec.asset].price)
            rate = wad(spec.taker_fee) if taker_fee is None else taker_fee  # [wad]
            fee += _mul_up(_mul_up(abs(size), price), rate)  # PerpEngine._fill
            trades.append((m, size))
        cash_wad = _wad9(float(book.cash[i])) + fee
        deposits = [(0, -(-cash_wad // unit))] if cash_wad > 0 else []
        for c, col in enumerate(cfg.collateral):
            amount = _tokens(float(book.balances[i, c]), col.decimals)
            if amount > 0:
                deposits.append((c + 1, amount))
        iso = None
        if book.isolated[i]:
            held = [m for m, _ in trades]
            if len(held) > 1:
                raise SimInputError(f"account {i} is isolated but holds {len(held)} markets")
            iso = held[0] if held else 0
        specs.append(
            AccountSpec(
                owner=i,
                sub=1 if iso is not None else 0,
                deposits=tuple(deposits),
                trades=tuple(trades),
                isolated_market=iso,
            )
        )
    return specs


@dataclass
class ChainRun:
    """What the chain engine measured on one path.

    ``result`` is the fast engine's :class:`~plimsoll.sim.engine.SimResult` for this one path
    (reports and plots take either engine's); ``series`` adds the chain's own per-step figures
    (``liquidation_events``, ``blocks`` mined); per account: the step of its first
    liquidation and first collateral purchase (-1: none) and its bad debt [USD]."""

    result: SimResult
    series: dict[str, Any]
    liquidated_step: npt.NDArray[np.int64]
    collateral_step: npt.NDArray[np.int64]
    bad_debt: F
    accounts: list[tuple[str, int]]
    keeper: dict[str, Any]
    blocks: int
    seconds_setup: float
    seconds_run: float
    trader_actions: int = 0
    trader_reverts: int = 0

    @property
    def liquidated_accounts(self) -> set[int]:
        return {int(i) for i in np.flatnonzero(self.liquidated_step >= 0)}

    @property
    def bad_debt_accounts(self) -> set[int]:
        return {int(i) for i in np.flatnonzero(self.bad_debt > 0)}


def _feedback_loss(cfg: SimConfig, sizes: F, bal: F, mp: F, cp: F, ratio: F) -> F:
    """Equity at the oracle prices without the accumulated impact minus equity now [USD] (N,)
    (the fast engine's feedback share of a deficit)."""
    m_asset = np.array([m.asset for m in cfg.markets])
    c_asset = np.array([c.asset for c in cfg.collateral])
    hc = np.array([c.haircut for c in cfg.collateral])
    dm = mp * (ratio[m_asset] - 1.0)
    dc = cp * (ratio[c_asset] - 1.0) * hc
    out: F = (sizes * dm).sum(-1) + (bal * dc).sum(-1)
    return out


def run_chain(
    cfg: SimConfig,
    path: PricePaths,
    book: Book,
    seed: int = 0,
    opts: ChainOptions | None = None,
    progress: Callable[[int], None] | None = None,
) -> ChainRun:
    """Run one path of ``path`` on anvil with the real contracts and the real keeper.

    Per step k (``cfg.blocks_per(dt)`` blocks of ``dt / blocks`` seconds each):

    1. the external market (:class:`~plimsoll.sim.market.MarketDriver`: impact of what the
       keeper sold last step, scaled by the path's liquidity) and Chainlink's rule: the
       answers to post are sent to the feeds;
    2. block 1 is mined at the step's time with the base fee of the gas market; it holds the
       feed updates, after the keeper's transactions from the previous step (they tip, the
       engine does not);
    3. the book is read at block 1 (``plimsoll.sync`` + ``plimsoll.margin``, the contract's
       integers): accounts liquidatable, traders in margin call
       (the fast engine's rule) send their top-ups / reductions;
    4. the keeper process sees each block and sends; the engine mines the step's next block
       when the keeper has processed the last one (its latency is the chain's one block,
       not the machine's load), and mines the rest of the step at once when the keeper has
       nothing in flight;
    5. liquidations, collateral purchases and bad debt come from the blocks' events; the
       collateral the keeper bought is sold on the external market next step (feedback);
       the base fee follows EIP-1559 on the external demand plus the keeper's gas.

    Returns
    -------
    ChainRun
        ``series`` has the fast engine's :class:`~plimsoll.sim.engine.SimResult` fields for
        this one path.

    Raises
    ------
    SimInputError
        The book or config cannot be run on chain (options, portfolio margin, a step shorter
        than its blocks).
    ChainSimError
        The node or the keeper failed.
    """
    import tempfile

    from plimsoll.margin import compute_margin
    from plimsoll.sim.market import MarketDriver, next_base_fee
    from plimsoll.sync import StateReader

    opts = opts or ChainOptions()
    if path.n_paths != 1:
        path = path.path(0)
    if tuple(path.assets) != tuple(cfg.asset_names):
        raise SimInputError(f"the path prices {path.assets}, the config {cfg.asset_names}")
    times = np.asarray(path.times, dtype=float)
    dts = np.diff(times)
    blocks_of = [cfg.blocks_per(float(dt)) for dt in dts]
    for dt, nb in zip(dts, blocks_of, strict=True):
        if dt < nb:
            raise SimInputError(f"a step of {dt} s cannot hold {nb} blocks of >= 1 s")
    if cfg.vol_policy.response > 0 and dts.min() < 60:
        raise SimInputError("the vol-scalar policy needs steps of >= 60 s (one update a minute)")
    t0 = time.monotonic()
    tmp = tempfile.TemporaryDirectory() if opts.workdir is None else None
    workdir = opts.workdir or Path(tmp.name if tmp else ".")
    node = LocalNode(accounts=book.n_accounts + 2)
    w3 = node.start()
    world: ChainWorld | None = None
    try:
        dep = _deploy_world(w3, cfg, opts, float(dts.max()))
        world = ChainWorld(node, w3, dep, workdir)
        specs = book_specs(book, cfg)
        accounts = world.open_book(specs)
        ks = cfg.keeper
        off: tuple[str, ...] = ()
        if not ks.buy_recovered:  # a boolean flag only turns a key on: off goes in a config
            conf = workdir / "keeper-no-recovery.toml"
            conf.write_text("recovery-purchases = false\n")
            off = ("--config", str(conf))
        world.start_keeper(
            extra=(
                *off,
                "--recovery-max-usd-per-block",
                str(ks.recovery_max_usd_per_block),
                "--max-per-block",
                str(ks.max_per_block),
                "--min-profit-usd",
                str(ks.min_profit),
                "--guard-move",
                str(ks.guard_move),
                "--gas-token-feed",
                "0",
                "--eth-price-usd",
                str(ks.gas_token_price),
                "--priority-fee-gwei",
                str(cfg.gas.priority_fee),
                "--loss-budget-usd-per-hour",
                "1e15",
                *opts.keeper_args,
            )
        )
        seconds_setup = time.monotonic() - t0
        world.automine(False)
        reader = StateReader(w3, dep.core.address, dep.contracts["PlimsollLens"].address)
        run = _Runner(cfg, path, book, world, reader, compute_margin, seed)
        run.start(times, next_base_fee, MarketDriver)
        t1 = time.monotonic()
        for k in range(1, path.n_steps + 1):
            run.step(k, blocks_of[k - 1], opts)
            if progress is not None:
                progress(k)
        summaries = world.stop_keepers()
        return ChainRun(
            result=run.result(),
            series=run.series(),
            liquidated_step=run.liq_step,
            collateral_step=run.coll_step,
            bad_debt=run.bad_by_account,
            accounts=accounts,
            keeper=summaries[0] if summaries else {},
            blocks=int(w3.eth.block_number) - run.first_block + 1,
            seconds_setup=seconds_setup,
            seconds_run=time.monotonic() - t1,
            trader_actions=run.trader_actions,
            trader_reverts=run.trader_reverts,
        )
    finally:
        if world is not None:
            world.close()
        else:
            node.stop()
        if tmp is not None:
            tmp.cleanup()


class _Runner:
    """The per-step loop of :func:`run_chain` and the series it records."""

    def __init__(
        self,
        cfg: SimConfig,
        path: PricePaths,
        book: Book,
        world: ChainWorld,
        reader: Any,
        compute_margin: Callable[[Any], Any],
        seed: int,
    ) -> None:
        self.cfg, self.path, self.book, self.world = cfg, path, book, world
        self.reader, self.compute_margin, self.seed = reader, compute_margin, seed
        n, t = book.n_accounts, path.n_steps
        a = len(cfg.assets)
        self.n = n
        self.index = {(o.lower(), s): i for i, (o, s) in enumerate(world.accounts)}
        self.s: dict[str, Any] = {
            "fundamental": np.zeros((t + 1, a)),
            "market": np.zeros((t + 1, a)),
            "oracle": np.zeros((t + 1, a)),
            "liquidatable": np.zeros(t + 1),
            "liquidated": np.zeros(t + 1),
            "liquidation_events": np.zeros(t + 1),
            "collateral_liquidated": np.zeros(t + 1),
            "keeper_wait": np.full(t + 1, np.nan),
            "base_fee": np.zeros(t + 1),
            "insurance": np.zeros(t + 1),
            "insurance_low": np.zeros(t + 1),  # the lowest after any block of the step
            "lp_value": np.zeros(t + 1),
            "bad_debt": np.zeros((t + 1, 4)),
            "recovered": np.zeros(t + 1),
            "recovered_sold": np.zeros(t + 1),
            "keeper_gas": np.zeros(t + 1),  # gas the keeper's transactions used in the step
            "keeper_txs": np.zeros(t + 1),  # its transactions mined in the step
            "blocks": np.zeros(t + 1, dtype=np.int64),
        }
        self.liq_step = np.full(n, -1, dtype=np.int64)
        self.coll_step = np.full(n, -1, dtype=np.int64)
        self.bad_by_account = np.zeros(n)
        self.first_liq = np.full(n, -1, dtype=np.int64)
        self.last_liq_step = np.full(n, -1, dtype=np.int64)
        self.settled = np.zeros(n, dtype=bool)
        self.gap_acc = np.zeros(n, dtype=bool)
        self.sell_queue = np.zeros((max(1, cfg.feedback.sell_steps), a))
        self.keeper_profit = 0.0
        self.hedge = np.zeros(len(cfg.markets))  # [units] the pool hedger's position
        self.hedge_cost = np.zeros(len(cfg.markets))  # [USD]
        self._hedge_value = 0.0
        self.ewma_var = np.full(len(cfg.assets), cfg.vol_policy.base_vol**2)
        self.spike = False
        self.s_im = np.ones(len(cfg.markets))  # the policy's scalars (float, as the model)
        self.scalar_wad = [WAD] * len(cfg.markets)  # what the engine last set on chain
        self._mkt: F = np.array([a.price for a in cfg.assets])
        self._pending_bad: F = np.zeros(4)
        self.trader_actions = 0
        self.trader_reverts = 0
        self._trader_txs: list[str] = []
        self.first_block = 0
        self.m_asset = np.array([m.asset for m in cfg.markets])
        self.c_asset = np.array([c.asset for c in cfg.collateral])
        self.c_dec = [c.decimals for c in cfg.collateral]

    # ------------------------------------------------------------------ set-up

    def start(self, times: F, next_base_fee: Any, driver_cls: Any) -> None:
        cfg, w = self.cfg, self.world
        self.times = times
        self.next_base_fee = next_base_fee
        self.drv = driver_cls(cfg, times, self.path.prices[0], seed=self.seed)
        # The fast engine's random stream for one path (``simulate`` on ``path.path(i)``:
        # default_rng([seed, 0])), drawn in its order: a gas-spike uniform every step, the
        # actions of traders newly in margin call when there are any. The same draws make the
        # same spikes and the same actions in both engines.
        self.rng = np.random.default_rng([self.seed, 0])
        self.spike_until = -1.0
        self.in_call = np.zeros(self.n, dtype=bool)
        self.act = np.zeros(self.n, dtype=np.int8)
        self.due = np.full(self.n, np.inf)
        self.fee = float(cfg.gas.base_fee)  # [gwei] of the coming step's blocks
        # Every feed posts the path's first prices in the first block (fresh answers).
        p0 = self.path.prices[0, 0]
        self.t_origin = w.timestamp + 60 - float(times[0])
        w.post_prices({i + 1: float(p) for i, p in enumerate(p0)})
        self.first_block = w.mine(int(self.t_origin + times[0]), self._wei(self.fee))
        w.wait_keeper(self.first_block)
        self._record(0, p0, p0, p0, self.first_block)

    @staticmethod
    def _wei(gwei: float) -> int:
        """[wei] of a base fee in gwei, at most :data:`MAX_BASE_FEE` (the model's may be inf)."""
        return int(round(min(gwei * GWEI, MAX_BASE_FEE)))

    # ------------------------------------------------------------------ a step

    def step(self, k: int, blocks: int, opts: ChainOptions) -> None:
        cfg, w = self.cfg, self.world
        t_prev, t_now = float(self.times[k - 1]), float(self.times[k])
        traded = self.sell_queue[0].copy()
        self.sell_queue = np.roll(self.sell_queue, -1, axis=0)
        self.sell_queue[-1] = 0.0
        before = self.drv.posted.copy()
        inp = self.drv.advance(traded / float(self.path.liquidity[k]))
        # gas-demand spikes: a crash step or a Poisson arrival (the fast engine's draw)
        g = cfg.gas
        move = float(np.abs(np.log(self.path.prices[0, k] / self.path.prices[0, k - 1])).max())
        u = float(self.rng.random(1)[0])
        start = move >= g.spike_on_move or u < 1.0 - np.exp(
            -g.spikes_per_day * (t_now - t_prev) / 86_400.0
        )
        self.spike = bool(start or t_now <= self.spike_until)
        if start:
            self.spike_until = max(self.spike_until, t_now + g.spike_seconds)
        if inp.oracle_updates:
            w.post_prices({a + 1: p for a, p in inp.oracle_updates.items()})
        if cfg.vol_policy.response > 0:
            self._vol_scalars(np.log(self.drv.posted / before), t_now - t_prev)
        fee_wei = self._wei(self.fee)
        b = w.mine(int(self.t_origin + t_now), fee_wei)
        first = b
        w.wait_keeper(b, opts.keeper_timeout)
        # The book at block 1: liquidatable, margin calls, the feedback share of equity.
        state = self.reader.read(w.accounts, b)
        res = self.compute_margin(state)
        eq = np.array([int(x) for x in res.equity], dtype=float) / WAD
        mm = np.array([int(x) for x in res.mm], dtype=float) / WAD
        im = np.array([int(x) for x in res.im], dtype=float) / WAD
        sizes = np.array(state.sizes, dtype=float).reshape(self.n, -1) / WAD
        bal = np.zeros((self.n, len(cfg.collateral)))
        for c in range(len(cfg.collateral)):
            bal[:, c] = np.asarray(state.balances[:, c], dtype=float) / 10.0 ** self.c_dec[c]
        has_pos = (sizes != 0).any(axis=1)
        liq = has_pos & np.asarray(res.liquidatable, dtype=bool) & ~self.settled
        newly = liq & (self.first_liq < 0)
        self.first_liq = np.where(liq, np.where(newly, k, self.first_liq), -1)
        posted = self.drv.posted.copy()
        mp, cp = posted[self.m_asset], posted[self.c_asset]
        fb_gain = _feedback_loss(cfg, sizes, bal, mp, cp, np.exp(-self.drv.log_impact))
        totals = _StepTotals(blocks=blocks)
        self._mkt = inp.market_price
        self._absorb(w.outcome(b), k, 0, cp, totals, fb_gain)
        # Blocks 2.. of the step: the keeper's transactions land. Traders in margin call (at
        # block 1's prices) decide once the keeper's first round has landed (an account it
        # closed is no longer in call), and their transactions come after the keeper's.
        j, traded_now = 1, False
        while True:
            if not traded_now and (j >= 2 or w.idle()):
                now = state
                if j >= 2:  # after the keeper's round: reductions cut what is left
                    now = self.reader.read(w.accounts, b)
                    has_pos = (np.array(now.sizes, dtype=float).reshape(self.n, -1) != 0).any(1)
                call = has_pos & ~self.settled & (eq < cfg.traders.call_level * mm)
                for act in self._traders_due(t_now, call):
                    self._trader_act(act, now, eq, im)
                traded_now = True
            if j >= blocks or (opts.fast_forward and w.idle()):
                break
            # The step's later blocks 1 s apart: the model is discrete in steps (nothing it
            # has moves within one), and the contract's MM ramp then moves as it does there.
            b = w.mine(int(self.t_origin + t_now) + j, fee_wei)
            w.wait_keeper(b, opts.keeper_timeout)
            self._absorb(w.outcome(b), k, j, cp, totals, fb_gain)
            j += 1
        # The pool hedger (the fast engine's rule): the pool is short what the book is long;
        # it trades the difference on the external market at the next step.
        if cfg.feedback.hedger:
            end = self.reader.read(w.accounts, b)
            net = np.array(end.sizes, dtype=float).reshape(self.n, -1).sum(0) / WAD
            trade = cfg.feedback.hedge_ratio * net - self.hedge
            px = inp.market_price[self.m_asset]
            self.hedge_cost += trade * px
            self.hedge = self.hedge + trade
            for m in range(len(cfg.markets)):
                self.sell_queue[0][self.m_asset[m]] += trade[m] * px[m]
        self._hedge_value = float(
            (self.hedge * inp.market_price[self.m_asset]).sum() - self.hedge_cost.sum()
        )
        # The gas market after the step: external demand plus the keeper's gas.
        # (the driver's spike, others' share at the fee in force during the step, as the
        # fast engine; the keeper's share is what its transactions used on chain)
        spike = np.array([self.spike])
        share = float(external_share(spike, np.array([self.fee]), cfg.gas)[0])
        used = share + totals.keeper_gas / (cfg.gas.gas_limit * blocks)
        self.fee = float(self.next_base_fee(self.fee, used, blocks, cfg.gas))
        self.drv.base_fee = self.fee
        w.set_next_base_fee(self._wei(self.fee))
        self.s["liquidatable"][k] = float(liq.sum())
        self.s["liquidated"][k] = float(len(totals.liquidated))
        self.s["liquidation_events"][k] = float(totals.liquidations)
        self.s["collateral_liquidated"][k] = float(len(totals.collateral))
        if totals.waits:
            self.s["keeper_wait"][k] = float(np.mean(totals.waits))
        self.s["blocks"][k] = b - first + 1
        self._pending_bad = totals.bad
        self.s["recovered"][k] = self.s["recovered"][k - 1] + totals.recovered
        self.s["recovered_sold"][k] = self.s["recovered_sold"][k - 1] + totals.recovered_sold
        self.s["insurance_low"][k] = totals.insurance_low
        self.s["keeper_gas"][k] = totals.keeper_gas
        self.s["keeper_txs"][k] = totals.keeper_txs
        self._record(k, inp.fundamental_price, inp.market_price, posted, b)

    def _traders_due(self, now: float, call: npt.NDArray[np.bool_]) -> list[Any]:
        """The fast engine's trader rule: an account newly in margin call draws its action
        (top up, reduce, nothing) and acts ``delay`` seconds later if still in call."""
        from plimsoll.sim.agents import NOTHING, TOP_UP, draw_trader_actions
        from plimsoll.sim.traders import TraderAction

        ts = self.cfg.traders
        new = call & ~self.in_call
        if new.any():
            drawn = draw_trader_actions(self.rng, (1, self.n), ts)[0]
            self.act = np.where(new, drawn, self.act)
            self.due = np.where(new, now + ts.delay, self.due)
        self.due = np.where(call, self.due, np.inf)
        self.in_call = call
        go = call & (self.due <= now)
        self.due[go] = np.inf
        return [
            TraderAction(
                int(i),
                int(self.act[i]),
                ts.topup_fraction if self.act[i] == TOP_UP else ts.reduce_fraction,
            )
            for i in np.flatnonzero(go & (self.act != NOTHING))
        ]

    def _vol_scalars(self, ret: F, dt: float) -> None:
        """The risk keeper's policy (the fast engine's rule, ``keepers/risk.py``): EWMA of the
        oracle's returns, target 1 + response x (vol / base vol - 1) within [floor, cap] and
        max_step of the current scalar; sent as ``setVolScalar`` (the admin is the risk
        keeper) with the step's feed updates. The contract applies IM at once and ramps MM
        in from the block of the update."""
        vp, core = self.cfg.vol_policy, self.world.dep.core
        lam = vp.ewma_lambda ** (dt / vp.sample_seconds)
        self.ewma_var = lam * self.ewma_var + (1 - lam) * ret**2 / (dt / YEAR)
        target = np.clip(
            1 + vp.response * (np.sqrt(self.ewma_var) / vp.base_vol - 1), vp.floor, vp.cap
        )[self.m_asset]
        new = np.clip(target, self.s_im * (1 - vp.max_step), self.s_im * (1 + vp.max_step))
        step = wad(vp.max_step)
        for m, v in enumerate(new):
            prev = int(self.scalar_wad[m])
            scalar = round(float(v) * 1e12) * 10**6
            # the contract's own limits, on its integers (the float clip can round past them)
            scalar = min(
                max(scalar, prev - prev * step // WAD, wad(vp.floor)),
                prev + prev * step // WAD,
                wad(vp.cap),
            )
            if scalar != prev:
                self.world.send(
                    core.functions.setVolScalar(m, scalar), self.world.dep.admin, gas=300_000
                )
                self.scalar_wad[m] = scalar
        self.s_im = new

    def _trader_act(self, act: Any, state: Any, eq: F, im: F) -> None:
        from plimsoll.sim.agents import TOP_UP

        owner, sub = self.world.accounts[act.account]
        core = self.world.dep.core
        self.trader_actions += 1
        if act.kind == TOP_UP:
            usd = act.fraction * max(float(im[act.account] - eq[act.account]), 0.0)
            amount = int(np.ceil(usd * 10**6))
            if amount <= 0:
                return
            cash = self.world.dep.cash
            self._trader_txs.append(self.world.send(cash.functions.mint(owner, amount), owner))
            self._trader_txs.append(self.world.send(core.functions.deposit(sub, 0, amount), owner))
            return
        keep = round(act.fraction * 10**6)
        for m in range(len(self.cfg.markets)):
            size = int(state.sizes[act.account][m])
            if size == 0:
                continue
            cut = abs(size) * keep // 10**6
            if cut:
                delta = -cut if size > 0 else cut
                self._trader_txs.append(
                    self.world.send(core.functions.trade(sub, m, delta, 0), owner)
                )

    def _absorb(
        self, out: BlockOutcome, k: int, j: int, cp: F, totals: _StepTotals, fb_gain: F
    ) -> None:
        """Books the events of block ``j`` (0 = the step's first) of step ``k`` into the
        step's totals and the per-account records."""
        lc = self.cfg.liquidation
        left = []
        for h in self._trader_txs:
            st = out.statuses.get(h)
            if st is None:
                left.append(h)
            elif st != 1:
                self.trader_reverts += 1
        self._trader_txs = left
        totals.keeper_gas += out.keeper_gas
        totals.insurance_low = min(totals.insurance_low, out.insurance_fund / WAD)
        totals.keeper_txs += out.keeper_txs
        self.keeper_profit -= out.keeper_fees / 1e18 * self.cfg.keeper.gas_token_price
        events: list[tuple[int, Any]] = [(e.tx_index, e) for e in out.bad_debt]
        events += [(e.tx_index, e) for e in out.liquidations]
        events += [(e.tx_index, e) for e in out.collateral]
        # Within a transaction the deficit is booked before the Liquidated /
        # CollateralLiquidated event: sort by transaction, bad debt first.
        events.sort(key=lambda x: (x[0], 0 if isinstance(x[1], BadDebtEvent) else 1))
        seized_usd = np.zeros(len(self.cfg.assets))
        for _, e in events:
            i = self.index.get((e.owner.lower(), e.sub))
            if i is None:
                continue
            if isinstance(e, BadDebtEvent):
                deficit = e.deficit / WAD
                self.bad_by_account[i] += deficit
                fb = min(max(float(fb_gain[i]), 0.0), deficit)
                rest = deficit - fb
                if 0 <= self.last_liq_step[i] < k:
                    cause = 2  # penalty_rules: liquidated at an earlier step
                elif 0 <= self.first_liq[i] < k:
                    cause = 1  # keeper_delay
                else:
                    cause = 0  # gap
                    self.gap_acc[i] = True
                totals.bad[cause] += rest
                totals.bad[3] += fb
                self.settled[i] = True
            elif isinstance(e, LiquidationEvent):
                totals.liquidations += 1
                totals.liquidated.add(i)
                if self.liq_step[i] < 0:
                    self.liq_step[i] = k
                if self.first_liq[i] >= 0:
                    # blocks since the step's first block where it became liquidatable, in
                    # the model's blocks (idle blocks are not mined; the fast engine's count)
                    totals.waits.append((k - int(self.first_liq[i])) * totals.blocks + j)
                self.keeper_profit += e.reward / WAD
                self.last_liq_step[i] = k
                self.first_liq[i] = -1
            else:
                totals.collateral.add(i)  # accounts, as the fast engine counts them
                if self.coll_step[i] < 0:
                    self.coll_step[i] = k
                self.keeper_profit += e.repaid / WAD * lc.collateral_bonus
                c = e.asset_id - 1
                seized_usd[self.c_asset[c]] += e.seized / 10.0 ** self.c_dec[c] * cp[c]
        for owner, sub, asset_id, amount in out.forfeited:
            # collateral forfeited to the recovery account with a deficit, at the market
            if (owner.lower(), sub) in self.index and asset_id >= 1:
                c = asset_id - 1
                px = float(self._mkt[self.c_asset[c]])
                totals.recovered += amount / 10.0 ** self.c_dec[c] * px
        for r in out.recovered_sold:
            # the keeper bought recovered collateral (keepers/recovery_pass.py): the cash went
            # to the insurance fund; it sells the tokens like those of its collateral purchases
            c = r.asset_id - 1
            totals.recovered_sold += r.paid / 10**6
            seized_usd[self.c_asset[c]] += r.amount / 10.0 ** self.c_dec[c] * cp[c]
            self.keeper_profit += r.amount / 10.0 ** self.c_dec[c] * cp[c] - r.paid / 10**6
        if self.cfg.feedback.sell_collateral and seized_usd.any():
            self.sell_queue -= seized_usd[None] / self.sell_queue.shape[0]

    def _record(self, k: int, fund: F, market: F, oracle: F, block: int) -> None:
        s = self.s
        s["fundamental"][k], s["market"][k], s["oracle"][k] = fund, market, oracle
        s["base_fee"][k] = self.fee
        s["insurance"][k] = self.world.insurance_fund(block) / WAD
        if k == 0:
            s["insurance_low"][0] = s["insurance"][0]
        s["lp_value"][k] = self._lp_value(block) + self._hedge_value
        if k:
            s["bad_debt"][k] = s["bad_debt"][k - 1] + self._pending_bad
        self._pending_bad = np.zeros(4)

    def _lp_value(self, block: int) -> float:
        pool = self.world.dep.pool
        return int(pool.functions.totalAssets().call(block_identifier=block)) / 10**6

    def series(self) -> dict[str, Any]:
        return dict(self.s)

    def result(self) -> SimResult:
        s = self.s
        return SimResult(
            times=self.times,
            assets=tuple(self.cfg.asset_names),
            n_accounts=self.n,
            fundamental=s["fundamental"][None],
            market=s["market"][None],
            oracle=s["oracle"][None],
            liquidatable=s["liquidatable"][None],
            liquidated=s["liquidated"][None],
            collateral_liquidated=s["collateral_liquidated"][None],
            keeper_wait=s["keeper_wait"][None],
            base_fee=s["base_fee"][None],
            insurance=s["insurance"][None],
            insurance_low=s["insurance_low"][None],
            lp_value=s["lp_value"][None],
            bad_debt=s["bad_debt"][None],
            recovered=s["recovered"][None],
            recovered_sold=s["recovered_sold"][None],
            gap_accounts=np.array([float(self.gap_acc.sum())]),
            bad_accounts=np.array([float((self.bad_by_account > 0).sum())]),
            keeper_profit=np.array([self.keeper_profit]),
            liquidated_step=self.liq_step[None],
            collateral_step=self.coll_step[None],
            account_bad_debt=self.bad_by_account[None],
        )


@dataclass
class _StepTotals:
    blocks: int = 1  # the step's blocks in the model
    liquidations: int = 0  # Liquidated events
    liquidated: set[int] = field(default_factory=set)
    collateral: set[int] = field(default_factory=set)
    keeper_gas: int = 0
    keeper_txs: int = 0
    waits: list[int] = field(default_factory=list)
    bad: F = field(default_factory=lambda: np.zeros(4))
    recovered: float = 0.0  # [USD] market value of collateral forfeited with a deficit
    recovered_sold: float = 0.0  # [USD] paid into the insurance fund by buyRecovered
    insurance_low: float = float("inf")  # [USD] the fund's lowest after a block of the step
