"""Plimsoll Python SDK: typed chain client, deployment and margin tooling over web3.py.

Runs on web3.py alone; brownie is only the contracts' developer workflow.
"""

from plimsoll.errors import ContractRevert, PlimsollError

__all__ = ["ContractRevert", "PlimsollError"]
__version__ = "0.1.0"
