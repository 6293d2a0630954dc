"""``plimsoll``: one command line for traders, operators and developers.

    plimsoll deploy   [--rpc URL] [--out deployments/local.json]
    plimsoll account  OWNER [--sub N]                      status as JSON
    plimsoll deposit  ASSET AMOUNT [--sub N]               e.g. deposit USDC 1000
    plimsoll withdraw ASSET AMOUNT [--sub N]
    plimsoll trade    MARKET SIZE [--sub N] [--acceptable-price P]   e.g. trade ETH-PERP -1.5
    plimsoll sync     [--db FILE]                          index all accounts (progress bar)
    plimsoll keeper run [keeper flags]                     see `plimsoll keeper run --help`
    plimsoll capital-efficiency [--png F] [--json] [--set k=v]   option strategies: isolated /
                                                           cross standard vs portfolio margin

Common flags: ``--rpc`` (default $PLIMSOLL_RPC or http://127.0.0.1:8545), ``--deployment``
(default deployments/local.json), and a signer: ``--keystore FILE`` with ``--password-file`` or
$PLIMSOLL_KEYSTORE_PASSWORD, or ``--from ADDRESS`` for an account the node unlocks (local
chains). Amounts and sizes are human numbers ("1.5"). Errors print one line and exit non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from plimsoll.errors import ContractRevert, PlimsollError
from plimsoll.units import Wad, token_units, wad

EXIT_USAGE, EXIT_ERROR, EXIT_REVERT = 2, 1, 3


def _w3(rpc: str) -> Web3:
    w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 30}))
    try:
        _ = w3.eth.chain_id
    except Exception as e:  # noqa: BLE001 - any transport failure is "unreachable"
        raise PlimsollError(f"cannot reach RPC {rpc}: {type(e).__name__}") from e
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


def _client(args: argparse.Namespace, signed: bool) -> Any:
    from plimsoll.client import PlimsollClient

    w3 = _w3(args.rpc)
    return PlimsollClient.from_file(w3, args.deployment, _signer(args) if signed else None)


def _common(p: argparse.ArgumentParser, signer: bool = True) -> None:
    p.add_argument("--rpc", default=os.environ.get("PLIMSOLL_RPC", "http://127.0.0.1:8545"))
    p.add_argument("--deployment", type=Path, default=Path("deployments/local.json"))
    if signer:
        p.add_argument("--keystore", type=Path)
        p.add_argument("--password-file", type=Path)
        p.add_argument("--from", dest="sender")
    p.add_argument("--sub", type=int, default=0, help="subaccount id")


def cmd_deploy(args: argparse.Namespace) -> int:
    from plimsoll.deploy import deploy_local

    w3 = _w3(args.rpc)
    dep = deploy_local(w3, admin=args.sender or None)
    dep.save(args.out)
    print(json.dumps({"deployment": str(args.out), **dep.to_json()["contracts"]}))
    return 0


def cmd_account(args: argparse.Namespace) -> int:
    client = _client(args, signed=False)
    status = client.account(args.owner, args.sub)
    if status.cash == 0 and not status.collateral and not status.positions:
        raise PlimsollError(f"unknown account {status.owner}/{args.sub}: nothing deposited")
    out = status.to_json()
    if status.margin_call and client.deployment["contracts"].get("PlimsollLens"):
        notice = client.margin_call(status.owner, args.sub)
        out["margin_call_notice"] = notice.to_json() if notice is not None else None
    print(json.dumps(out))
    return 0


def cmd_move(args: argparse.Namespace) -> int:
    """deposit / withdraw: the same parsing, one client call apart."""
    client = _client(args, signed=True)
    aid = client.asset_id(args.asset)
    amount = token_units(args.amount, client.asset_decimals(aid))
    _check_positive(amount, args.amount)
    action = client.deposit if args.cmd == "deposit" else client.withdraw
    r = action(aid, amount, args.sub)
    print(json.dumps({"tx": r["transactionHash"].hex(), "gas": r["gasUsed"]}))
    return 0


def cmd_trade(args: argparse.Namespace) -> int:
    client = _client(args, signed=True)
    size = wad(args.size)
    if size == 0:
        raise PlimsollError("size must not be zero")
    price = wad(args.acceptable_price) if args.acceptable_price else 0
    r = client.trade(args.market, Wad(size), args.sub, price)
    events = [e.name for e in client.decode_events(r)]
    print(json.dumps({"tx": r["transactionHash"].hex(), "gas": r["gasUsed"], "events": events}))
    return 0


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
    return 0


def _check_positive(amount: int, text: str) -> None:
    if amount <= 0:
        raise PlimsollError(f"amount must be positive, got {text}")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="plimsoll", description="Plimsoll margin protocol CLI")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("deploy", help="deploy with mocks on a local chain")
    p.add_argument("--rpc", default=os.environ.get("PLIMSOLL_RPC", "http://127.0.0.1:8545"))
    p.add_argument("--out", type=Path, default=Path("deployments/local.json"))
    p.add_argument("--from", dest="sender", help="unlocked deployer (default: first account)")
    p.set_defaults(fn=cmd_deploy)
    p = sub.add_parser("account", help="status of a subaccount")
    p.add_argument("owner")
    _common(p, signer=False)
    p.set_defaults(fn=cmd_account)
    for name in ("deposit", "withdraw"):
        p = sub.add_parser(name, help=f"{name} collateral")
        p.add_argument("asset", help="USDC, WETH, WBTC or an asset id")
        p.add_argument("amount", help="human amount, e.g. 1000 or 0.5")
        _common(p)
        p.set_defaults(fn=cmd_move)
    p = sub.add_parser("trade", help="change a perpetual position")
    p.add_argument("market", help="ETH-PERP, BTC-PERP, SOL-PERP or a market id")
    p.add_argument("size", help="signed size delta in units of the underlying")
    p.add_argument("--acceptable-price")
    _common(p)
    p.set_defaults(fn=cmd_trade)
    p = sub.add_parser("sync", help="index every account and report margin for all of them")
    _common(p, signer=False)
    p.add_argument("--db", type=Path, default=Path(".state/cli-index.sqlite"))
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(fn=cmd_sync)
    sub.add_parser("capital-efficiency", help="margin of option strategies by mode (table, PNG)")
    p = sub.add_parser("keeper", help="run a keeper")
    p.add_argument("what", choices=["run"])
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(fn=None)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["keeper", "run"]:
        from keepers.liquidator import main as keeper_main

        return keeper_main(argv[2:])
    if argv[:1] == ["capital-efficiency"]:
        from plimsoll.capital import main as capital_main

        return capital_main(argv[1:])
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0) and EXIT_USAGE
    try:
        return int(args.fn(args))
    except ContractRevert as e:
        print(f"plimsoll: reverted: {e}", file=sys.stderr)
        return EXIT_REVERT
    except PlimsollError as e:
        print(f"plimsoll: {e}", file=sys.stderr)
        return EXIT_ERROR
    except (ValueError, ArithmeticError) as e:
        print(f"plimsoll: bad input: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
