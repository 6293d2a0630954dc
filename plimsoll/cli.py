"""``plimsoll``: one command line for traders, operators and developers.

Set-up (local chain)::

    plimsoll deploy   [--rpc URL] [--out deployments/local.json]   mocks, markets, option series
    plimsoll faucet   ASSET AMOUNT [--to ADDRESS]     test tokens (mocks) or ETH for gas (anvil)
    plimsoll keystore new --out FILE [--password-file P]            a new encrypted key

Trader::

    plimsoll account  OWNER [--sub N] [--history]    equity, IM, MM, free collateral, positions
    plimsoll history  OWNER [--sub N]                deposits, trades, liquidations, ...
    plimsoll deposit  ASSET AMOUNT [--sub N]         e.g. deposit USDC 1000 (exact approval)
    plimsoll withdraw ASSET AMOUNT|max [--sub N]
    plimsoll transfer ASSET AMOUNT|max FROM_SUB TO_SUB
    plimsoll trade    MARKET SIZE [--sub N] [--acceptable-price P]   e.g. trade ETH-PERP -1.5
    plimsoll close    MARKET [--sub N]
    plimsoll isolate  SUB MARKET|cross               set an empty subaccount's margin scope
    plimsoll portfolio-margin on|off [--sub N]
    plimsoll options  [--market ETH-PERP]            option series: mark, IV, greeks
    plimsoll option-trade SERIES SIZE [--sub N] [--limit-price P]
    plimsoll option-close SERIES [--sub N]
    plimsoll lp deposit AMOUNT | lp withdraw AMOUNT|max  (requests, priced after the next price
                                  round) | lp claim | lp fulfil [ADDRESS] | lp info [OWNER]
    plimsoll app      [--rpc URL] [--deployment F] [--port N]   the wallet web app

Operator / developer: ``sync``, ``keeper run``, ``capital-efficiency``.

Risk manager::

    plimsoll simulate [--scenario black_thursday|--csv F|--monte-carlo jump|garch] [--out DIR]
    plimsoll calibrate [--target-gap 0.1%] [--target-insurance 1%] [--timelock ADDRESS]

Common flags: ``--rpc`` (default $PLIMSOLL_RPC or http://127.0.0.1:8545), ``--deployment``
(default deployments/local.json), and a signer: ``--keystore FILE`` with ``--password-file`` or
$PLIMSOLL_KEYSTORE_PASSWORD, or ``--from ADDRESS`` for an account the node unlocks (local
chains). Amounts and sizes are human numbers ("1.5", "1,000") in the asset's unit; more decimals
than the asset has are refused. Every amount printed carries its unit.

Exit codes: 0 done; 1 an error (bad input, unreachable RPC, insufficient wallet balance); 2 a
command-line usage error; 3 a contract revert (decoded: what is wrong and what to do). Errors
are one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3

from plimsoll.errors import ContractRevert, PlimsollError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_REVERT = 0, 1, 2, 3
DEFAULT_DEPLOYMENT = Path("deployments/local.json")


class UsageError(PlimsollError):
    """The command line itself is wrong (exit 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (and exit 2), not usage + message."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see --help)")


def _w3(rpc: str) -> Web3:
    w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 30}))
    try:
        _ = w3.eth.chain_id
    except Exception as e:  # noqa: BLE001 - any transport failure is "unreachable"
        raise PlimsollError(
            f"cannot reach RPC {rpc}: {type(e).__name__} (start a chain: `anvil`, see README)"
        ) from e
    return w3


def _signer(args: argparse.Namespace) -> LocalAccount | str:
    from plimsoll.keys import load_keystore, read_password

    if args.keystore:
        return load_keystore(args.keystore, read_password(args.password_file))
    if args.sender:
        if not Web3.is_address(args.sender):
            raise PlimsollError(f"not an address: {args.sender!r}")
        return str(Web3.to_checksum_address(args.sender))
    raise PlimsollError("no signer: pass --keystore (with --password-file) or --from ADDRESS")


def _deployment_path(path: Path) -> Path:
    """The deployment file; brownie's ``deployments/development.json`` when the default
    ``local.json`` is missing."""
    if path == DEFAULT_DEPLOYMENT and not path.exists():
        brownie = path.with_name("development.json")
        if brownie.exists():
            return brownie
    if not path.exists():
        raise PlimsollError(
            f"no deployment file {path}: run `plimsoll deploy` first (or pass --deployment)"
        )
    return path


def _client(args: argparse.Namespace, signed: bool) -> Any:
    from plimsoll.client import PlimsollClient

    path = _deployment_path(args.deployment)
    w3 = _w3(args.rpc)
    return PlimsollClient.from_file(w3, path, _signer(args) if signed else None)


def _sub(text: str) -> int:
    try:
        i = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if i < 0 or i >= 2**256:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return i


def _common(p: argparse.ArgumentParser, signer: bool = True, sub: bool = True) -> None:
    p.add_argument("--rpc", default=os.environ.get("PLIMSOLL_RPC", "http://127.0.0.1:8545"))
    p.add_argument("--deployment", type=Path, default=DEFAULT_DEPLOYMENT)
    if signer:
        p.add_argument("--keystore", type=Path)
        p.add_argument("--password-file", type=Path)
        p.add_argument("--from", dest="sender")
    if sub:
        p.add_argument("--sub", type=_sub, default=0, help="subaccount id (>= 0)")


def _done(client: Any, receipt: Any, **extra: Any) -> int:
    """Print one JSON line: the steps in words, the tx hash, gas, decoded events."""
    out = {
        "steps": list(client.steps),
        **extra,
        "tx": "0x" + bytes(HexBytes(receipt["transactionHash"])).hex(),
        "gas": int(receipt["gasUsed"]),
        "events": [e.name for e in client.decode_events(receipt)],
    }
    print(json.dumps(out))
    return EXIT_OK


# ---------------------------------------------------------------------------------- commands


def cmd_deploy(args: argparse.Namespace) -> int:
    from plimsoll.build import compiled_is_fresh
    from plimsoll.deploy import deploy_local

    w3 = _w3(args.rpc)
    if not compiled_is_fresh():
        print(
            "plimsoll: compiling the contracts (the first time takes about a minute)...",
            file=sys.stderr,
            flush=True,
        )
    # Admin behind a timelock with delay 0, as every local deployment (schedule + execute).
    dep = deploy_local(w3, admin=args.sender or None, series=not args.no_series, timelock_delay=0)
    dep.save(args.out)
    print(
        json.dumps(
            {
                "deployment": str(args.out),
                "contracts": dep.to_json()["contracts"],
                "option_series": len(dep.series),
            }
        )
    )
    return EXIT_OK


def cmd_account(args: argparse.Namespace) -> int:
    client = _client(args, signed=False)
    status = client.account(args.owner, args.sub)
    history = client.history(status.owner, args.sub) if args.history or status.empty else []
    if status.empty and not history:
        raise PlimsollError(f"unknown account {status.owner}/{args.sub}: nothing deposited")
    out = status.to_json()
    if status.margin_call and client.deployment["contracts"].get("PlimsollLens"):
        notice = client.margin_call(status.owner, args.sub)
        out["margin_call_notice"] = notice.to_json() if notice is not None else None
    if history:
        out["history"] = [h.to_json() for h in history]
    print(json.dumps(out))
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    client = _client(args, signed=False)
    print(json.dumps([h.to_json() for h in client.history(args.owner, args.sub)]))
    return EXIT_OK


def cmd_move(args: argparse.Namespace) -> int:
    """deposit / withdraw: the same parsing, one client call apart."""
    client = _client(args, signed=True)
    if args.cmd == "deposit":
        r = client.deposit(args.asset, args.amount, args.sub)
    else:
        r = client.withdraw(args.asset, args.amount, args.sub)
    return _done(client, r)


def cmd_transfer(args: argparse.Namespace) -> int:
    client = _client(args, signed=True)
    return _done(client, client.transfer(args.asset, args.amount, args.from_sub, args.to_sub))


def cmd_trade(args: argparse.Namespace) -> int:
    client = _client(args, signed=True)
    return _done(client, client.trade(args.market, args.size, args.sub, args.acceptable_price))


def cmd_close(args: argparse.Namespace) -> int:
    client = _client(args, signed=True)
    return _done(client, client.close(args.market, args.sub))


def cmd_isolate(args: argparse.Namespace) -> int:
    client = _client(args, signed=True)
    market = None if args.market.lower() == "cross" else args.market
    return _done(client, client.isolate(args.subaccount, market))


def cmd_portfolio(args: argparse.Namespace) -> int:
    client = _client(args, signed=True)
    return _done(client, client.set_portfolio_margin(args.sub, args.state == "on"))


def cmd_options(args: argparse.Namespace) -> int:
    client = _client(args, signed=False)
    now = int(client.w3.eth.get_block("latest")["timestamp"])
    series = client.option_series()
    if args.market:
        name = client.markets[client.market_id(args.market)]["name"]
        series = [s for s in series if s.market == name]
    print(json.dumps([s.to_json(now) for s in series]))
    return EXIT_OK


def cmd_option_trade(args: argparse.Namespace) -> int:
    client = _client(args, signed=True)
    return _done(client, client.option_trade(args.series, args.size, args.sub, args.limit_price))


def cmd_option_close(args: argparse.Namespace) -> int:
    client = _client(args, signed=True)
    return _done(client, client.option_close(args.series, args.sub))


def cmd_lp(args: argparse.Namespace) -> int:
    if args.action == "info":
        client = _client(args, signed=False)
        print(json.dumps(client.pool_info(args.value)))
        return EXIT_OK
    if args.action == "claim":
        client = _client(args, signed=True)
        r = client.pool_claim()
        return _done(client, r, pool=client.pool_info(client.address))
    if args.action == "fulfil":
        client = _client(args, signed=True)
        who = args.value or client.address
        f = client.pool_fulfil(who)
        if f is None:
            raise PlimsollError(
                f"nothing of {who} can be priced now: nothing pending, or it waits for the next "
                "price round (`plimsoll lp info <address>`)"
            )
        return _done(client, f, pool=client.pool_info(who))
    if args.value is None:
        raise UsageError(f"plimsoll lp {args.action}: give an amount (or max)")
    client = _client(args, signed=True)
    if args.action == "deposit":
        r = client.pool_deposit(args.value)
    else:
        r = client.pool_withdraw(args.value)
    return _done(client, r, pool=client.pool_info(client.address))


def cmd_faucet(args: argparse.Namespace) -> int:
    gas_only = args.asset.upper() == "ETH" and args.to and not (args.keystore or args.sender)
    client = _client(args, signed=not gas_only)
    r = client.faucet(args.asset, args.amount, args.to)
    if r is None:
        print(json.dumps({"steps": list(client.steps)}))
        return EXIT_OK
    return _done(client, r)


def cmd_keystore(args: argparse.Namespace) -> int:
    from eth_account import Account

    from plimsoll.keys import read_password, write_keystore

    if args.out.exists():
        raise PlimsollError(f"{args.out} exists: not overwriting a keystore")
    account = Account.create()
    write_keystore(account, args.out, read_password(args.password_file))
    print(json.dumps({"address": account.address, "keystore": str(args.out)}))
    return EXIT_OK


def cmd_app(args: argparse.Namespace) -> int:
    from plimsoll.app.server import serve

    client = _client(args, signed=False)
    return serve(client, args.rpc, args.host, args.port, args.notices)


class _Bars:
    """tqdm progress bars per phase (``index``: blocks, ``read``: accounts), on stderr."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bars: dict[str, Any] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        unit = "blocks" if phase == "index" else "accounts"
        bar = self.bars.get(phase)
        if bar is None:
            bar = self.bars[phase] = tqdm(
                total=total, desc=phase, unit=f" {unit}", file=sys.stderr, leave=True
            )
        bar.total = total
        bar.update(done - bar.n if phase == "read" else done)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def cmd_sync(args: argparse.Namespace) -> int:
    """Index every account from the deploy block (checkpointed) and report margin for all."""
    import numpy as np

    from plimsoll.margin import compute_margin
    from plimsoll.sync import AccountIndexer, RpcClient, StateReader

    client = _client(args, signed=False)
    contracts = client.deployment["contracts"]
    if "PlimsollLens" not in contracts:
        raise PlimsollError(f"{args.deployment} has no PlimsollLens address")
    rpc = RpcClient(client.w3)
    bars = _Bars(not args.no_progress)
    args.db.parent.mkdir(parents=True, exist_ok=True)
    indexer = AccountIndexer(
        client.w3,
        contracts["Plimsoll"],
        args.db,
        int(client.deployment.get("deploy_block", 0)),
        rpc=rpc,
        progress=bars,
    )
    reader = StateReader(
        client.w3, contracts["Plimsoll"], contracts["PlimsollLens"], rpc=rpc, progress=bars
    )
    block = indexer.sync()
    accounts = [(a.owner, a.subaccount) for a in indexer.accounts()]
    state = reader.read(accounts, block)
    bars.close()
    result = compute_margin(state)
    liq = np.asarray(result.liquidatable, dtype=bool)
    eq, im = np.asarray(result.equity, dtype=object), np.asarray(result.im, dtype=object)
    margin_call = [bool(m <= e < i) for e, i, m in zip(eq, im, result.mm, strict=True)]
    print(
        json.dumps(
            {
                "block": block,
                "accounts": len(accounts),
                "liquidatable": int(liq.sum()),
                "margin_call": int(sum(margin_call)),
                "rpc_requests": rpc.requests,
            }
        )
    )
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="plimsoll", description="Plimsoll margin protocol CLI")
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    p = sub.add_parser("deploy", help="deploy with mocks on a local chain")
    p.add_argument("--rpc", default=os.environ.get("PLIMSOLL_RPC", "http://127.0.0.1:8545"))
    p.add_argument("--out", type=Path, default=DEFAULT_DEPLOYMENT)
    p.add_argument("--from", dest="sender", help="unlocked deployer (default: first account)")
    p.add_argument("--no-series", action="store_true", help="list no option series")
    p.set_defaults(fn=cmd_deploy)

    p = sub.add_parser("account", help="status of a subaccount (human amounts, JSON)")
    p.add_argument("owner")
    p.add_argument("--history", action="store_true", help="include the account's history")
    _common(p, signer=False)
    p.set_defaults(fn=cmd_account)
    p = sub.add_parser("history", help="what happened to an account")
    p.add_argument("owner")
    _common(p, signer=False, sub=False)
    p.add_argument("--sub", type=_sub, default=None, help="one subaccount (default: all)")
    p.set_defaults(fn=cmd_history)

    for name in ("deposit", "withdraw"):
        p = sub.add_parser(name, help=f"{name} collateral")
        p.add_argument("asset", help="USDC, WETH, WBTC or an asset id")
        p.add_argument(
            "amount",
            help="human amount, e.g. 1000 or 0.5" + (" or max" if name == "withdraw" else ""),
        )
        _common(p)
        p.set_defaults(fn=cmd_move)
    p = sub.add_parser("transfer", help="move collateral between your subaccounts")
    p.add_argument("asset")
    p.add_argument("amount", help="human amount or max")
    p.add_argument("from_sub", type=_sub)
    p.add_argument("to_sub", type=_sub)
    _common(p, sub=False)
    p.set_defaults(fn=cmd_transfer)
    p = sub.add_parser("trade", help="change a perpetual position")
    p.add_argument("market", help="ETH-PERP, BTC-PERP, SOL-PERP or a market id")
    p.add_argument("size", help="signed size delta in units of the underlying, e.g. -1.5")
    p.add_argument("--acceptable-price", help="worst fill price accepted [USD]")
    _common(p)
    p.set_defaults(fn=cmd_trade)
    p = sub.add_parser("close", help="close a perpetual position")
    p.add_argument("market")
    _common(p)
    p.set_defaults(fn=cmd_close)
    p = sub.add_parser("isolate", help="make an empty subaccount isolated (or cross)")
    p.add_argument("subaccount", type=_sub)
    p.add_argument("market", help="a market, or cross")
    _common(p, sub=False)
    p.set_defaults(fn=cmd_isolate)
    p = sub.add_parser("portfolio-margin", help="switch a subaccount to portfolio margin")
    p.add_argument("state", choices=["on", "off"])
    _common(p)
    p.set_defaults(fn=cmd_portfolio)
    p = sub.add_parser("options", help="list option series (mark, IV, greeks)")
    p.add_argument("--market")
    _common(p, signer=False, sub=False)
    p.set_defaults(fn=cmd_options)
    p = sub.add_parser("option-trade", help="buy (size > 0) or sell options of a series")
    p.add_argument("series", help="series id or name (see `plimsoll options`)")
    p.add_argument("size")
    p.add_argument("--limit-price", help="most paid / least received per option [USD]")
    _common(p)
    p.set_defaults(fn=cmd_option_trade)
    p = sub.add_parser("option-close", help="close an option position")
    p.add_argument("series")
    _common(p)
    p.set_defaults(fn=cmd_option_close)
    p = sub.add_parser(
        "lp",
        help="liquidity pool (requests priced after the next price round): deposit, withdraw "
        "(request), claim, fulfil (anyone's), info",
    )
    p.add_argument("action", choices=["deposit", "withdraw", "claim", "fulfil", "info"])
    p.add_argument(
        "value", nargs="?", help="amount in USDC (or max); the address for info and fulfil"
    )
    _common(p, sub=False)
    p.set_defaults(fn=cmd_lp)
    p = sub.add_parser("faucet", help="mint test tokens (local mock tokens only)")
    p.add_argument("asset")
    p.add_argument("amount")
    p.add_argument("--to", help="recipient (default: the signer)")
    _common(p, sub=False)
    p.set_defaults(fn=cmd_faucet)
    p = sub.add_parser("keystore", help="create an encrypted keystore")
    p.add_argument("action", choices=["new"])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--password-file", type=Path)
    p.set_defaults(fn=cmd_keystore)
    p = sub.add_parser("app", help="serve the wallet web app on localhost")
    _common(p, signer=False, sub=False)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8600)
    p.add_argument("--notices", type=Path, help="the notifier's JSON-lines file (history)")
    p.set_defaults(fn=cmd_app)

    p = sub.add_parser("sync", help="index every account and report margin for all of them")
    _common(p, signer=False)
    p.add_argument("--db", type=Path, default=Path(".state/cli-index.sqlite"))
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(fn=cmd_sync)
    sub.add_parser("capital-efficiency", help="margin of option strategies by mode (table, PNG)")
    sub.add_parser("simulate", help="cascade simulation: bad debt of a crash, with feedback")
    sub.add_parser("calibrate", help="margin parameters that meet bad-debt targets")
    p = sub.add_parser("keeper", help="run a keeper")
    p.add_argument("what", choices=["run"])
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(fn=None)
    return ap


def _capital(argv: list[str]) -> int:
    from plimsoll.capital import main as capital_main

    if "--png" in argv:
        i = argv.index("--png")
        target = Path(argv[i + 1]) if i + 1 < len(argv) else None
        if target is None or target.suffix.lower() != ".png":
            raise UsageError(f"--png needs a file name ending in .png, got {target}")
        if not target.resolve().parent.is_dir():
            raise PlimsollError(f"cannot write {target}: no directory {target.parent}")
    return capital_main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:2] == ["keeper", "run"]:
            from keepers.liquidator import main as keeper_main

            return keeper_main(argv[2:])
        if argv[:1] == ["capital-efficiency"]:
            return _capital(argv[1:])
        if argv[:1] == ["simulate"]:
            from plimsoll.sim.cli import simulate_main

            return simulate_main(argv[1:])
        if argv[:1] == ["calibrate"]:
            from plimsoll.sim.cli import calibrate_main

            return calibrate_main(argv[1:])
        try:
            args = parser().parse_args(argv)
        except SystemExit as e:  # --help
            return int(e.code or 0)
        return int(args.fn(args))
    except UsageError as e:
        print(f"plimsoll: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ContractRevert as e:
        print(f"plimsoll: reverted: {e}", file=sys.stderr)
        return EXIT_REVERT
    except PlimsollError as e:
        print(f"plimsoll: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("plimsoll: interrupted", file=sys.stderr)
        return EXIT_ERROR
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, never a traceback
        text = " ".join(str(e).split())[:300]
        print(f"plimsoll: unexpected {type(e).__name__}: {text}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
