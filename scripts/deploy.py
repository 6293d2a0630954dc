"""Deploy Plimsoll (with mock tokens and feeds) and write a deployment file.

    brownie run scripts/deploy.py                  # on brownie's development chain (anvil)
    python scripts/deploy.py --rpc http://127.0.0.1:8545 [--out deployments/local.json]

Both paths run the same SDK code (plimsoll.deploy.deploy_local) over web3.py; under brownie it
uses brownie's web3 connection and its first account. The deployer must be an account the node
unlocks (anvil/ganache); production deployments (real tokens and Chainlink feeds, a keystore
key) are the CLI's job.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from web3 import Web3

from plimsoll.deploy import Deployment, deploy_local
from plimsoll.errors import PlimsollError

ROOT = Path(__file__).resolve().parent.parent


def _report(dep: Deployment, out: Path) -> None:
    dep.save(out)
    for name, c in dep.contracts.items():
        print(f"{name:14s} {c.address}")
    print(f"deployment written to {out}")


def main() -> None:
    """brownie entry point: `brownie run scripts/deploy.py`."""
    import brownie

    dep = deploy_local(brownie.web3, admin=brownie.accounts[0].address, timelock_delay=0)
    _report(dep, ROOT / "deployments" / f"{brownie.network.show_active()}.json")


def cli(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description="Deploy Plimsoll with mocks on a local chain")
    ap.add_argument("--rpc", default="http://127.0.0.1:8545")
    ap.add_argument("--out", type=Path, default=ROOT / "deployments" / "local.json")
    ap.add_argument(
        "--timelock-delay",
        type=int,
        default=0,
        help="seconds every admin change waits in the timelock (default 0: local chains)",
    )
    args = ap.parse_args(argv)
    w3 = Web3(Web3.HTTPProvider(args.rpc))
    try:
        if not w3.is_connected():
            raise PlimsollError(f"cannot reach {args.rpc}")
        _report(deploy_local(w3, timelock_delay=args.timelock_delay), args.out)
    except PlimsollError as e:
        print(f"deploy failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
