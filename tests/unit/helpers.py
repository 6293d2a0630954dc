"""Helpers for the unit tests: funding accounts, trading, reverts, time, and an independent
integer model of the margin formulas documented in contracts/core/MarginEngine.sol.

Kept free of pytest fixtures so that every test module can import it (``from helpers import``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError

from plimsoll.build import compile_contracts
from plimsoll.chain import revert_data
from plimsoll.deploy import FEED_DECIMALS, Deployment
from plimsoll.errors import ContractRevert
from plimsoll.units import WAD, token_units, wad

DAY = 86_400
MAX_UINT = 2**256 - 1

# Pause flags (PlimsollStorage).
PAUSE_DEPOSIT = 1
PAUSE_WITHDRAW = 2
PAUSE_TRADE = 4
PAUSE_TRANSFER = 8
PAUSE_LIQUIDATE = 16
PAUSE_POOL = 32
PAUSE_ALL = 63

ETH, BTC, SOL = 0, 1, 2  # market ids
WETH, WBTC = 1, 2  # asset ids


def usdc(x: float | int | str) -> int:
    """A USDC amount (6 decimals) in token units."""
    return token_units(x, 6)


def b32(name: str) -> bytes:
    """A Solidity ``bytes32`` string literal as eth_abi decodes it."""
    return name.encode().ljust(32, b"\0")


# ------------------------------------------------------------------ reverts


@contextmanager
def reverts(error: str, /, **args: Any) -> Iterator[dict[str, ContractRevert]]:
    """Expect a decoded ContractRevert named ``error`` whose arguments include ``args``."""
    box: dict[str, ContractRevert] = {}
    with pytest.raises(ContractRevert) as info:
        yield box
    err = info.value
    box["err"] = err
    assert err.name == error, f"expected {error}, got {err}"
    for k, v in args.items():
        got = err.args_by_name[k]
        if isinstance(v, str) and isinstance(got, str):  # addresses: compare checksum-free
            v, got = v.lower(), got.lower()
        assert got == v, f"{error}.{k}: expected {v}, got {got} ({err})"


def call(dep: Deployment, fn: Any, **kw: Any) -> Any:
    """``fn.call()`` that raises a decoded ContractRevert on a revert, like ``dep.send``."""
    try:
        return fn.call(kw or None)
    except (ContractCustomError, ContractPanicError, ContractLogicError) as exc:
        raise dep.decoder.decode(revert_data(exc)) from exc


# ------------------------------------------------------------------ accounts and tokens


def fund(
    dep: Deployment, who: str, asset_id: int, amount: int, token: Contract | None = None
) -> None:
    """Mint ``amount`` [token units] of asset ``asset_id`` (or ``token``) to ``who`` and
    approve the core."""
    tok = token if token is not None else dep.token(asset_id)
    dep.send(tok.functions.mint(who, amount), who)
    dep.send(tok.functions.approve(dep.core.address, MAX_UINT), who)


def deposit(dep: Deployment, who: str, sub: int, asset_id: int, amount: int) -> Any:
    fund(dep, who, asset_id, amount)
    return dep.send(dep.core.functions.deposit(sub, asset_id, amount), who)


def trade(dep: Deployment, who: str, sub: int, market: int, size: int, acceptable: int = 0) -> Any:
    return dep.send(dep.core.functions.trade(sub, market, size, acceptable), who)


def cash_of(dep: Deployment, who: str, sub: int = 0) -> int:
    return int(dep.core.functions.getAccount(who, sub).call()[0])


def position(dep: Deployment, who: str, sub: int, market: int) -> tuple[int, int, int]:
    p = dep.core.functions.getPosition(who, sub, market).call()
    return int(p[0]), int(p[1]), int(p[2])


def margin(
    dep: Deployment, who: str, sub: int = 0, block: int | str = "latest"
) -> tuple[int, int, int]:
    e, im, mm = dep.core.functions.accountMargin(who, sub).call(block_identifier=block)
    return int(e), int(im), int(mm)


def pool_cash(dep: Deployment) -> int:
    return cash_of(dep, dep.pool.address, 0)


def insurance(dep: Deployment) -> int:
    return int(dep.core.functions.insuranceFund().call())


def events(receipt: Any, contract: Contract, name: str) -> list[dict[str, Any]]:
    """Decoded ``name`` events of ``contract`` in ``receipt`` (args only)."""
    ev = getattr(contract.events, name)()
    return [dict(e["args"]) for e in ev.process_receipt(receipt, errors=_DISCARD)]


try:  # web3 7
    from web3.logs import DISCARD as _DISCARD
except ImportError:  # pragma: no cover
    _DISCARD = None  # type: ignore[assignment]


def set_price(dep: Deployment, feed_id: int, price: float | int | str) -> None:
    dep.set_price(feed_id, price)


def answer(price: float | int | str) -> int:
    """A feed answer (8 decimals) for a USD price."""
    return int(wad(price) // 10 ** (18 - FEED_DECIMALS))


def warp(w3: Web3, seconds: int) -> None:
    """Move the chain clock forward and mine a block."""
    w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def refresh_feeds(dep: Deployment) -> None:
    """Re-post every mock feed's current answer so that none is stale after a warp."""
    for f in dep.feeds.values():
        ans = f.functions.latestRoundData().call()[1]
        dep.send(f.functions.updateAnswer(ans), dep.admin)


def mine(w3: Web3) -> int:
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    return int(w3.eth.block_number)


def impersonate(w3: Web3, who: str) -> None:
    w3.provider.make_request("anvil_impersonateAccount", [who])  # type: ignore[arg-type]
    w3.provider.make_request("anvil_setBalance", [who, hex(10**21)])  # type: ignore[arg-type]


def deploy(w3: Web3, name: str, sender: str, *args: Any) -> Contract:
    art = compile_contracts()[name]
    factory = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    tx = factory.constructor(*args).transact({"from": sender, "gas": 15_000_000})
    rcpt = w3.eth.wait_for_transaction_receipt(tx)
    assert rcpt["status"] == 1, f"deploying {name} failed"
    return w3.eth.contract(address=rcpt["contractAddress"], abi=art.abi)


def custody_holds(dep: Deployment) -> None:
    """The custody invariant: every token's balance in the core covers what the core books."""
    core = dep.core
    assert (
        dep.cash.functions.balanceOf(core.address).call() * 10**12
        >= core.functions.cashBooked().call()
    )
    for aid in range(1, core.functions.assetCount().call() + 1):
        cfg = core.functions.assetConfig(aid).call()
        tok = dep.w3.eth.contract(address=cfg[0], abi=dep.cash.abi)
        assert tok.functions.balanceOf(core.address).call() >= cfg[6], (
            f"asset {aid} under-collateralized"
        )


def market_cfg(dep: Deployment, market: int) -> dict[str, Any]:
    c = dep.core.functions.marketConfig(market).call()
    keys = [
        "feedId",
        "enabled",
        "imBaseWad",
        "mmFactorWad",
        "takerFeeWad",
        "sizeSlopeWad",
        "maxFundingRateWad",
        "skewScale",
        "maxOpenInterest",
    ]
    return dict(zip(keys, c, strict=True))


def market_tuple(cfg: dict[str, Any]) -> tuple[Any, ...]:
    return (
        cfg["feedId"],
        cfg["enabled"],
        cfg["imBaseWad"],
        cfg["mmFactorWad"],
        cfg["takerFeeWad"],
        cfg["sizeSlopeWad"],
        cfg["maxFundingRateWad"],
        cfg["skewScale"],
        cfg["maxOpenInterest"],
    )


def configure_market(dep: Deployment, market: int, **changes: Any) -> None:
    cfg = market_cfg(dep, market)
    cfg.update(changes)
    dep.send(dep.core.functions.configureMarket(market, market_tuple(cfg)), dep.admin)


LIQ_KEYS = [
    "penaltyWad",
    "keeperShareWad",
    "bufferWad",
    "collateralBonusWad",
    "keeperRewardCap",
    "dustNotional",
    "keeperRewardMin",
]


def liq_cfg(dep: Deployment) -> dict[str, int]:
    return dict(zip(LIQ_KEYS, dep.core.functions.liquidationConfig().call(), strict=True))


def set_liq(dep: Deployment, **changes: int) -> None:
    cfg = liq_cfg(dep)
    cfg.update(changes)
    dep.send(dep.core.functions.setLiquidationConfig(tuple(cfg[k] for k in LIQ_KEYS)), dep.admin)


# ------------------------------------------------------------------ independent margin model
# Integer re-implementation of the formulas in MarginEngine.sol's header. Python's // floors
# toward minus infinity; Solidity's signed / truncates toward zero (tdiv below).


def mul_down(x: int, y: int) -> int:
    assert x >= 0 and y >= 0
    return x * y // WAD


def mul_up(x: int, y: int) -> int:
    assert x >= 0 and y >= 0
    return -(-x * y // WAD)


def smul_floor(x: int, y: int) -> int:
    return x * y // WAD


def smul_ceil(x: int, y: int) -> int:
    return -(-x * y // WAD)


def tdiv(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def funding_rate_per_day(cfg: dict[str, Any], long_oi: int, short_oi: int) -> int:
    prop = tdiv((long_oi - short_oi) * WAD, cfg["skewScale"])
    prop = max(-WAD, min(WAD, prop))
    return tdiv(prop * cfg["maxFundingRateWad"], WAD)


def current_index(cfg: dict[str, Any], state: list[Any], price: int, ts: int) -> int:
    long_oi, short_oi, index, last = int(state[0]), int(state[1]), int(state[2]), int(state[3])
    elapsed = ts - last
    if elapsed == 0:
        return index
    return index + tdiv(funding_rate_per_day(cfg, long_oi, short_oi) * price * elapsed, WAD * DAY)


def feed_price(dep: Deployment, feed_id: int, block: int | str = "latest") -> int:
    """The feed's raw answer normalized to WAD (read from the aggregator, not the router)."""
    f = dep.feeds[feed_id]
    ans = f.functions.latestRoundData().call(block_identifier=block)[1]
    return int(ans) * 10 ** (18 - f.functions.decimals().call())


@dataclass
class ModelMargin:
    equity: int
    im: int
    mm: int
    notional: int


def model_margin(dep: Deployment, owner: str, sub: int, block: int) -> ModelMargin:
    """Equity, IM, MM of (owner, sub) at ``block``, recomputed from raw state in integer math."""
    core = dep.core
    ts = int(dep.w3.eth.get_block(block)["timestamp"])
    acct = core.functions.getAccount(owner, sub).call(block_identifier=block)
    cash, asset_mask, market_mask = int(acct[0]), int(acct[1]), int(acct[2])
    equity = cash
    for i in range(1, 16):
        if not (asset_mask >> i) & 1:
            continue
        a = core.functions.assetConfig(i).call(block_identifier=block)
        bal = core.functions.collateralBalance(owner, sub, i).call(block_identifier=block)
        price = feed_price(dep, a[3], block)
        equity += mul_down(mul_down(bal * 10 ** (18 - a[1]), price), a[2])
    im = mm = notional_sum = 0
    for m in range(16):
        if not (market_mask >> m) & 1:
            continue
        cfg = market_cfg(dep, m)
        price = feed_price(dep, cfg["feedId"], block)
        state = core.functions.marketState(m).call(block_identifier=block)
        index = current_index(cfg, state, price, ts)
        size, open_notional, pos_index = core.functions.getPosition(owner, sub, m).call(
            block_identifier=block
        )
        funding = smul_ceil(size, index - pos_index)
        equity += smul_floor(size, price) - open_notional - funding
        notional = mul_up(abs(size), price)
        rate = min(cfg["imBaseWad"] + mul_up(abs(size), cfg["sizeSlopeWad"]), WAD)
        im += mul_up(notional, rate)
        mm += mul_up(notional, mul_up(rate, cfg["mmFactorWad"]))
        notional_sum += notional
    return ModelMargin(equity, im, mm, notional_sum)


def position_requirements(cfg: dict[str, Any], size: int, price: int) -> tuple[int, int, int]:
    notional = mul_up(abs(size), price)
    rate = min(cfg["imBaseWad"] + mul_up(abs(size), cfg["sizeSlopeWad"]), WAD)
    return notional, mul_up(notional, rate), mul_up(notional, mul_up(rate, cfg["mmFactorWad"]))


def fee_of(cfg: dict[str, Any], size: int, price: int) -> int:
    return mul_up(mul_up(abs(size), price), cfg["takerFeeWad"])
