"""The wallet app's server: a read API over the SDK, and the page (``plimsoll app``).

No keys live here. The page asks the API for numbers (the SDK's: the same the CLI prints and the
notifier sends), asks it to *prepare* an action (amounts parsed and checked, calldata built,
every step simulated from the trader's address and a revert said in words before anything is
signed), and has the wallet sign and send each step.

    GET  /api/config                chain, contracts, assets, markets
    GET  /api/account/{owner}?sub=  status (human amounts), margin-call notice, history,
                                    subaccounts in use, wallet balances
    GET  /api/options               live series: mark, IV, greeks
    GET  /api/pool?owner=           share price, the owner's shares
    POST /api/prepare               {action, owner, sub, ...} -> steps [{label, to, data}] and a
                                    preview, or {"error": sentence}
    POST /api/simulate              {owner, to, data, action} -> {"ok": true} or {"error": ...}
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError

from plimsoll.chain import revert_data
from plimsoll.client import MAX, PlimsollClient
from plimsoll.errors import PlimsollError
from plimsoll.units import WAD, TokenAmount, Wad, fmt_usd, parse_wad

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"


class _Refused(PlimsollError):
    """An action the page asked for cannot be prepared; the message says why."""


def _addr(owner: str) -> str:
    if not Web3.is_address(owner):
        raise _Refused(f"not an address: {owner!r}")
    return str(Web3.to_checksum_address(owner))


def _step(label: str, contract: Any, fn: str, args: list[Any]) -> dict[str, Any]:
    return {"label": label, "to": contract.address, "data": contract.encode_abi(fn, args=args)}


def simulate(client: PlimsollClient, owner: str, to: str, data: str, action: str = "") -> int:
    """``eth_call`` the step from ``owner``; a revert raises its explained ContractRevert.
    Returns a gas limit for the wallet: the estimate + 30% (+ 30k), since funding accrual and
    the block's timestamp can make the mined transaction cost more than the estimate."""
    tx: Any = {"from": owner, "to": Web3.to_checksum_address(to), "data": data}
    try:
        client.w3.eth.call(tx)
        estimate = int(client.w3.eth.estimate_gas(tx))
    except (ContractCustomError, ContractPanicError, ContractLogicError) as exc:
        raise client.explain(client.decoder.decode(revert_data(exc)), action) from exc
    return estimate * 13 // 10 + 30_000


def prepare(client: PlimsollClient, body: dict[str, Any]) -> dict[str, Any]:
    """The wallet steps of one action, each labelled in words; the first one simulated."""
    action = str(body.get("action", ""))
    owner = _addr(str(body.get("owner", "")))
    sub = client.check_sub(body.get("sub", 0))
    core, pool = client.core, client.pool
    steps: list[dict[str, Any]] = []
    preview: dict[str, Any] | None = None
    needs_prior = False  # later steps depend on the first (approve -> deposit)

    def amount_of(aid: int, value: Any, max_from: int | None = None) -> TokenAmount:
        if isinstance(value, str) and value.strip().lower() == MAX and max_from is not None:
            units = TokenAmount(client.max_withdrawable(aid, max_from, owner))
            if units == 0:
                raise _Refused(f"subaccount {max_from} holds no {client.symbol(aid)}")
            return units
        return client.amount(aid, str(value))

    if action in ("deposit", "lp_deposit"):
        aid = 0 if action == "lp_deposit" else client.asset_id(str(body.get("asset", "USDC")))
        units = amount_of(aid, body.get("amount"))
        spender = core if action == "deposit" else pool
        token = client.token(aid)
        held = int(token.functions.balanceOf(owner).call())
        if held < units:
            raise _Refused(
                f"your wallet holds {client.fmt(aid, held)}; this needs {client.fmt(aid, units)}"
            )
        prior = int(token.functions.allowance(owner, spender.address).call())
        if prior < units:
            steps.append(
                _step(
                    f"approve exactly {client.fmt(aid, units)}",
                    token,
                    "approve",
                    [spender.address, int(units)],
                )
            )
            needs_prior = True
        if action == "deposit":
            steps.append(
                _step(
                    f"deposit {client.fmt(aid, units)} into subaccount {sub}",
                    core,
                    "deposit",
                    [sub, aid, int(units)],
                )
            )
        else:
            steps.append(
                _step(
                    f"request a deposit of {client.fmt(aid, units)} into the pool (priced after "
                    "the next price round, 0.05% fee; then claim)",
                    pool,
                    "requestDeposit",
                    [int(units), owner, owner],
                )
            )
        if needs_prior:
            steps[-1]["revoke"] = _step(
                f"reset the {client.symbol(aid)} allowance",
                token,
                "approve",
                [spender.address, prior],
            )
    elif action == "withdraw":
        aid = client.asset_id(str(body.get("asset", "USDC")))
        units = amount_of(aid, body.get("amount"), sub)
        steps.append(
            _step(
                f"withdraw {client.fmt(aid, units)} from subaccount {sub}",
                core,
                "withdraw",
                [sub, aid, int(units)],
            )
        )
    elif action == "transfer":
        aid = client.asset_id(str(body.get("asset", "USDC")))
        to_sub = client.check_sub(body.get("to_sub", 1))
        if to_sub == sub:
            raise _Refused("transfer: the two subaccounts are the same")
        units = amount_of(aid, body.get("amount"), sub)
        steps.append(
            _step(
                f"move {client.fmt(aid, units)} from subaccount {sub} to {to_sub}",
                core,
                "transfer",
                [sub, to_sub, aid, int(units)],
            )
        )
    elif action in ("trade", "close"):
        m = client.market_id(str(body.get("market", "")))
        name = client.markets[m]["name"]
        if action == "close":
            size = Wad(-int(core.functions.getPosition(owner, sub, m).call()[0]))
            if size == 0:
                raise _Refused(f"no open position in {name} in subaccount {sub}")
        else:
            size = parse_wad(str(body.get("size", "")), name.split("-")[0], "size")
        preview = client.preview_trade(owner, sub, m, size)
        slip = _slippage(body)
        mark = client.mark_price(m)
        limit = mark * (1 + slip) if size > 0 else mark * (1 - slip)
        preview["acceptable_price"] = fmt_usd(int(limit))
        verb = "buy" if size > 0 else "sell"
        unit = name.split("-")[0]
        steps.append(
            _step(
                f"{verb} {abs(size) / WAD:g} {unit} of {name} (worst price {fmt_usd(int(limit))})",
                core,
                "trade",
                [sub, m, int(size), int(limit)],
            )
        )
    elif action == "option":
        sid = client.series_id(str(body.get("series", "")))
        size = parse_wad(str(body.get("size", "")), "options", "size")
        preview = client.preview_option(sid, size, owner, sub)
        ref = Decimal(int(preview["unit_price_wad"]))
        slip = _slippage(body)
        opt_limit = int(ref * (1 + slip)) if size > 0 else int(ref * (1 - slip))
        preview["limit_price"] = fmt_usd(opt_limit)
        steps.append(
            _step(
                f"{'buy' if size > 0 else 'sell'} {abs(size) / WAD:g} of {preview['series']}",
                client.options,
                "trade",
                [sub, sid, int(size), opt_limit],
            )
        )
    elif action == "isolate":
        market = str(body.get("market", "cross"))
        flag = 0 if market.lower() == "cross" else client.market_id(market) + 1
        where = "cross margin" if flag == 0 else f"isolated to {client.markets[flag - 1]['name']}"
        steps.append(
            _step(f"make subaccount {sub} {where}", core, "configureSubaccount", [sub, flag])
        )
    elif action == "portfolio":
        on = bool(body.get("enabled", True))
        steps.append(
            _step(
                f"{'switch on' if on else 'switch off'} portfolio margin for subaccount {sub}",
                core,
                "setPortfolioMargin",
                [sub, on],
            )
        )
    elif action == "lp_withdraw":
        value = body.get("amount")
        held = int(pool.functions.balanceOf(owner).call())
        if isinstance(value, str) and value.strip().lower() == MAX:
            shares = held
            if shares == 0:
                raise _Refused("you hold no pool shares")
        else:
            units = client.amount(0, str(value))
            shares = int(pool.functions.convertToShares(int(units)).call())
            if shares > held:
                worth = int(pool.functions.convertToAssets(held).call())
                raise _Refused(
                    f"your shares are worth {client.fmt(0, worth)}: ask for at most that (or max)"
                )
        worth = int(pool.functions.convertToAssets(shares).call())
        steps.append(
            _step(
                f"request the withdrawal of shares worth {client.fmt(0, worth)} today (priced "
                "after the next price round, 0.05% fee; then claim)",
                pool,
                "requestRedeem",
                [shares, owner, owner],
            )
        )
    elif action == "lp_claim":
        f = pool.functions
        dep_ok, red_ok = f.canFulfil(owner).call()
        if dep_ok:
            steps.append(_step("price your pending pool deposit", pool, "fulfilDeposit", [owner]))
        if red_ok:
            steps.append(_step("price your pending pool withdrawal", pool, "fulfilRedeem", [owner]))
        pend_dep = int(f.pendingDepositRequest(0, owner).call())
        pend_red = int(f.pendingRedeemRequest(0, owner).call())
        pend = pend_dep + pend_red
        # Pricing makes exactly the pending amount claimable (assets for a deposit, shares for
        # a redemption): the claims take that plus what was claimable already.
        dep_assets = int(f.maxDeposit(owner).call()) + (pend_dep if dep_ok else 0)
        red_shares = int(f.maxRedeem(owner).call()) + (pend_red if red_ok else 0)
        if dep_assets:
            steps.append(
                _step("claim your pool shares", pool, "deposit", [dep_assets, owner, owner])
            )
        if red_shares:
            steps.append(_step("claim your pool cash", pool, "redeem", [red_shares, owner, owner]))
        if not steps:
            raise _Refused(
                "nothing to claim yet: your request waits for the next price round"
                if pend
                else "nothing to claim: request a pool deposit or withdrawal first"
            )
        needs_prior = dep_ok or red_ok
    else:
        raise _Refused(f"unknown action {action!r}")
    first = steps[0]
    first["gas"] = simulate(
        client, owner, first["to"], first["data"], _ACTION_WORD.get(action, action)
    )
    if not needs_prior:
        for later in steps[1:]:
            later["gas"] = simulate(client, owner, later["to"], later["data"], action)
    return {"action": action, "steps": steps, "preview": preview}


_ACTION_WORD = {"close": "trade", "option": "option trade", "lp_deposit": "approve"}


def _slippage(body: dict[str, Any]) -> Decimal:
    try:
        pct = Decimal(str(body.get("slippage", "1")))
    except InvalidOperation:
        raise _Refused(f"slippage: {body.get('slippage')!r} is not a number") from None
    if not Decimal(0) <= pct <= Decimal(50):
        raise _Refused("slippage must be between 0 and 50 %")
    return pct / 100


def notices_for(path: Path | None, owner: str, sub: int) -> list[dict[str, Any]]:
    """The notifier's margin-call notices (its JSON-lines file) of ``(owner, sub)`` as history
    entries."""
    if path is None or not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            n = json.loads(line)
        except json.JSONDecodeError:
            continue
        if str(n.get("owner", "")).lower() != owner.lower() or int(n.get("subaccount", -1)) != sub:
            continue
        move = n.get("move_to_liquidation")
        text = (
            f"margin call: equity {fmt_usd(int(Decimal(str(n['equity'])) * WAD))} below initial "
            f"margin {fmt_usd(int(Decimal(str(n['initial_margin'])) * WAD), up=True)}"
            + ("" if move is None else f", {float(move):+.2%} to liquidation")
            + f" (sub {sub})"
        )
        out.append(
            {
                "block": int(n["block"]),
                "tx": "",
                "kind": "margin_call",
                "text": text,
                "subaccounts": [sub],
            }
        )
    return out


def account_view(
    client: PlimsollClient, owner: str, sub: int, notices: Path | None = None
) -> dict[str, Any]:
    """Everything the overview shows for one subaccount, as the CLI would print it."""
    owner = _addr(owner)
    sub = client.check_sub(sub)
    status = client.account(owner, sub)
    out = status.to_json()
    out["health_value"] = None if status.maintenance_margin == 0 else float(status.health)
    notice = None
    if status.margin_call and client.deployment["contracts"].get("PlimsollLens"):
        n = client.margin_call(owner, sub)
        if n is not None:
            notice = n.to_json()
            notice["shortfall_text"] = fmt_usd(n.shortfall, up=True, unit="USDC")
            notice["move_text"] = (
                None if n.move_to_liquidation is None else f"{n.move_to_liquidation:+.2%}"
            )
    out["margin_call_notice"] = notice
    history = client.history(owner)
    out["subaccounts"] = sorted({0, sub} | {s for h in history for s in h.subaccounts})
    entries = [h.to_json() for h in history if sub in h.subaccounts]
    entries += notices_for(notices, owner, sub)
    out["history"] = sorted(entries, key=lambda e: int(e["block"]))
    out["wallet"] = {
        client.symbol(a): client.fmt(a, int(client.token(a).functions.balanceOf(owner).call()))
        for a in range(len(client.assets) + 1)
    }
    out["pool"] = client.pool_info(owner)
    return out


def create_app(client: PlimsollClient, rpc_url: str, notices: Path | None = None) -> FastAPI:
    """The FastAPI app over ``client`` (read-only: it holds no key); ``notices``: the
    notifier's JSON-lines file, whose margin calls join each account's history."""
    app = FastAPI(title="Plimsoll wallet app", docs_url=None, redoc_url=None)
    if not (STATIC / "app.js").exists():
        raise PlimsollError(
            f"the app bundle {STATIC / 'app.js'} is missing: run `make setup` (it bundles it)"
        )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(PlimsollError)
    async def _error(_: Request, exc: PlimsollError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.get("/")
    def index() -> Response:
        return FileResponse(HERE / "web" / "index.html", media_type="text/html")

    @app.get("/api/config")
    def config() -> dict[str, Any]:
        return {
            "chain_id": int(client.w3.eth.chain_id),
            "rpc_url": rpc_url,
            "contracts": client.deployment["contracts"],
            "assets": [{"id": 0, "symbol": "USDC", "decimals": client.asset_decimals(0)}]
            + [
                {"id": a["id"], "symbol": a["symbol"], "decimals": a["decimals"]}
                for a in client.assets
            ],
            "markets": [{"id": m["id"], "name": m["name"]} for m in client.markets],
        }

    @app.get("/api/account/{owner}")
    def account(owner: str, sub: int = 0) -> dict[str, Any]:
        return account_view(client, owner, sub, notices)

    @app.get("/api/options")
    def options() -> list[dict[str, Any]]:
        if not client.deployment["contracts"].get("OptionsMarket"):
            return []
        now = int(client.w3.eth.get_block("latest")["timestamp"])
        return [s.to_json(now) for s in client.option_series()]

    @app.get("/api/pool")
    def pool(owner: str | None = None) -> dict[str, Any]:
        return client.pool_info(_addr(owner) if owner else None)

    @app.post("/api/prepare")
    async def prepare_route(request: Request) -> dict[str, Any]:
        return prepare(client, await _json(request))

    @app.post("/api/simulate")
    async def simulate_route(request: Request) -> dict[str, Any]:
        body = await _json(request)
        gas = simulate(
            client,
            _addr(str(body.get("owner", ""))),
            str(body.get("to", "")),
            str(body.get("data", "")),
            str(body.get("action", "")),
        )
        return {"ok": True, "gas": gas}

    return app


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except json.JSONDecodeError:
        raise _Refused("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise _Refused("the request body must be a JSON object")
    return body


def serve(
    client: PlimsollClient,
    rpc_url: str,
    host: str = "127.0.0.1",
    port: int = 8600,
    notices: Path | None = None,
) -> int:
    """Run the app with uvicorn until interrupted (``plimsoll app``)."""
    import sys

    import uvicorn

    app = create_app(client, rpc_url, notices)
    print(f"plimsoll app: http://{host}:{port} (chain {client.w3.eth.chain_id})", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0
