"""The liquidation keeper's pool duty: price pending LP requests (ERC-7540 fulfilment).

LP deposits and redemptions are requests, priced at the share price of the first moment when
every feed the pool uses has a round newer than the request (``LiquidityPool.canFulfil``).
Anyone may fulfil; whoever fulfils picks the moment, so the keeper does it in the first block
it can: a requester who waited for a better price would hold a free option against the LPs.
Each block the keeper reads the pool's new ``DepositRequest`` / ``RedeemRequest`` events,
keeps the controllers with something pending, and sends ``fulfilDeposit`` /
``fulfilRedeem`` for those the pool can price now. A refused fulfilment (the pool closed, a
redemption larger than the pool's free cash) is logged and retried on a later block.
"""

from __future__ import annotations

import logging
from typing import Any

from eth_utils import keccak
from web3 import Web3

from keepers.ops import log

logger = logging.getLogger("plimsoll.liquidator")

FULFIL_GAS = 1_500_000
_TOPICS = [
    "0x" + keccak(text=sig).hex()
    for sig in (
        "DepositRequest(address,address,uint256,address,uint256)",
        "RedeemRequest(address,address,uint256,address,uint256)",
    )
]


class PoolPass:
    """Mixin of the liquidation keeper (needs ``w3``, ``client``, ``sender``)."""

    w3: Web3
    client: Any
    sender: Any
    pool_from_block: int = -1
    pool_controllers: set[str]
    pool_sent: dict[tuple[str, str], int]
    stats_fulfilments: int = 0

    def _pool_pass(self, block: int) -> None:
        """Collect new requesters up to ``block``, then fulfil what the pool can price."""
        if not hasattr(self, "pool_controllers"):
            self.pool_controllers, self.pool_sent = set(), {}
        pool = self.client.pool
        start = (
            self.pool_from_block
            if self.pool_from_block >= 0
            else int(self.client.deployment.get("deploy_block", 0))
        )
        if block >= start:
            logs = self.w3.eth.get_logs(
                {"address": pool.address, "fromBlock": start, "toBlock": block, "topics": [_TOPICS]}
            )
            for lg in logs:
                self.pool_controllers.add(
                    Web3.to_checksum_address("0x" + lg["topics"][1].hex()[-40:])
                )
            self.pool_from_block = block + 1
        if self.sender is None or not self.pool_controllers:
            return
        txs: list[tuple[str, bytes | str, str]] = []
        done: list[str] = []
        for who in sorted(self.pool_controllers):
            f = pool.functions
            pend_dep = int(f.pendingDepositRequest(0, who).call(block_identifier=block))
            pend_red = int(f.pendingRedeemRequest(0, who).call(block_identifier=block))
            if pend_dep == 0 and pend_red == 0:
                done.append(who)
                continue
            dep_ok, red_ok = f.canFulfil(who).call(block_identifier=block)
            for ok, side, fn in (
                (dep_ok, "deposit", f.fulfilDeposit),
                (red_ok, "redeem", f.fulfilRedeem),
            ):
                if ok and self.pool_sent.get((who, side), -10) < block - 2:
                    self.pool_sent[(who, side)] = block
                    txs.append(
                        (pool.address, fn(who)._encode_transaction_data(), f"fulfil-{side}:{who}")
                    )
        for who in done:
            self.pool_controllers.discard(who)
        if txs:
            self.sender.send_many(txs, gas=FULFIL_GAS)
            self.stats_fulfilments += len(txs)
            log(logger, logging.INFO, "pool fulfilments sent", count=len(txs), block=block)
