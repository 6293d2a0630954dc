"""One exception root for the SDK, keepers and CLI.

Every failure the SDK raises on purpose is a :class:`PlimsollError`; a contract revert comes back
as :class:`ContractRevert` with the custom error's name and decoded arguments, not hex.
"""

from __future__ import annotations

from typing import Any


class PlimsollError(Exception):
    """Root of every error the Plimsoll SDK raises."""


class BuildError(PlimsollError):
    """The contracts could not be compiled."""


class ChainError(PlimsollError):
    """The chain (RPC or a local node) is unreachable or misbehaved."""


class DeploymentError(PlimsollError):
    """A deployment file is missing, malformed or does not match the chain."""


class ContractRevert(PlimsollError):
    """A call or transaction reverted with a (decoded) custom error.

    Attributes
    ----------
    name : str
        The Solidity error's name, e.g. ``"InsufficientMargin"`` (``"Error"`` for a string
        revert, ``"Panic"`` for a panic code, ``"Unknown"`` when undecodable).
    args : dict
        The error's arguments by name.
    data : str
        The raw revert data as hex.
    message : str or None
        A human sentence saying what went wrong and what to do (amounts with their units),
        set by the SDK that knows the action (:meth:`PlimsollClient.explain`); ``str(e)`` is
        this sentence followed by the error's name, or the raw ``Name(args)`` without it.
    """

    def __init__(
        self, name: str, args: dict[str, Any], data: str, message: str | None = None
    ) -> None:
        self.name = name
        self.args_by_name = args
        self.data = data
        self.message = message
        shown = ", ".join(f"{k}={v}" for k, v in args.items())
        self.raw = f"{name}({shown})"
        super().__init__(f"{message} ({name})" if message else self.raw)

    def explained(self, message: str) -> ContractRevert:
        """The same revert with a human ``message``."""
        return ContractRevert(self.name, self.args_by_name, self.data, message)


class RiskInputError(PlimsollError, ValueError):
    """A risk-library input is outside its domain.

    Thrown when, e.g., a volatility is negative, a strike or spot is not positive, a time to
    expiry is negative, a confidence level is outside (0, 1), or an input is not finite.
    """
