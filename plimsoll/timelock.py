"""Admin changes through the deployment's timelock (OpenZeppelin ``TimelockController``).

Every admin function of a Plimsoll deployment (listing, risk parameters, oracles, roles) is owned
by ``PlimsollTimelock``: a change is *scheduled* (the ``CallScheduled`` event announces it), waits
at least the timelock's ``minDelay`` and is then *executed*. Executing early reverts with
``TimelockUnexpectedOperationState``. :class:`Timelock` drives the two steps; on a local chain
with delay 0 (the demo's deployment) :meth:`Timelock.call` does both at once, so development stays
one command.
"""

from __future__ import annotations

import os
from typing import Any

from web3 import Web3
from web3.contract import Contract
from web3.types import TxReceipt

from plimsoll.chain import ErrorDecoder, send

ZERO32 = b"\x00" * 32


class Timelock:
    """The deployment's timelock, used by ``proposer`` (who also executes)."""

    def __init__(self, contract: Contract, proposer: str, decoder: ErrorDecoder) -> None:
        self.contract = contract
        self.proposer = proposer
        self.decoder = decoder

    @property
    def w3(self) -> Web3:
        return self.contract.w3

    def min_delay(self) -> int:
        """The shortest delay [s] between scheduling and executing a change."""
        return int(self.contract.functions.getMinDelay().call())

    @staticmethod
    def _target(fn: Any) -> tuple[str, bytes]:
        return str(fn.address), bytes.fromhex(fn._encode_transaction_data()[2:])

    def operation_id(self, fn: Any, salt: bytes) -> bytes:
        target, data = self._target(fn)
        return bytes(self.contract.functions.hashOperation(target, 0, data, ZERO32, salt).call())

    def schedule(self, fn: Any, delay: int | None = None, salt: bytes | None = None) -> bytes:
        """Announces the admin call ``fn`` (a web3 contract function); returns the salt that
        :meth:`execute` needs. ``delay`` defaults to the timelock's minimum."""
        salt = salt or os.urandom(32)
        target, data = self._target(fn)
        wait = self.min_delay() if delay is None else delay
        send(
            self.contract.functions.schedule(target, 0, data, ZERO32, salt, wait),
            self.proposer,
            self.decoder,
        )
        return salt

    def execute(self, fn: Any, salt: bytes) -> TxReceipt:
        """Executes a scheduled call whose delay has passed (reverts before)."""
        target, data = self._target(fn)
        return send(
            self.contract.functions.execute(target, 0, data, ZERO32, salt),
            self.proposer,
            self.decoder,
        )

    def call(self, fn: Any) -> TxReceipt:
        """Schedule and execute ``fn`` at once: only where the delay is 0 (local chains)."""
        return self.execute(fn, self.schedule(fn))
