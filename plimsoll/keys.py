"""Keys from encrypted keystores (eth-account JSON v3), never raw keys in files.

The password comes from a file (``--password-file``) or an environment variable
(``PLIMSOLL_KEYSTORE_PASSWORD`` by default).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from plimsoll.errors import PlimsollError

PASSWORD_ENV = "PLIMSOLL_KEYSTORE_PASSWORD"


class KeystoreError(PlimsollError):
    """A keystore or its password could not be read or did not match."""


def read_password(password_file: Path | None = None, env: str = PASSWORD_ENV) -> str:
    if password_file is not None:
        try:
            return Path(password_file).read_text().rstrip("\n")
        except OSError as e:
            raise KeystoreError(f"cannot read password file {password_file}: {e}") from e
    if env in os.environ:
        return os.environ[env]
    raise KeystoreError(f"no keystore password: pass --password-file or set {env}")


def load_keystore(path: Path, password: str) -> LocalAccount:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise KeystoreError(f"cannot read keystore {path}: {e}") from e
    try:
        key = Account.decrypt(data, password)
    except ValueError as e:
        raise KeystoreError(f"keystore {path}: wrong password or corrupt file") from e
    account: LocalAccount = Account.from_key(key)
    return account


def write_keystore(
    account: LocalAccount, path: Path, password: str, kdf_iterations: int = 2**14
) -> Path:
    """Encrypt ``account`` to ``path`` (scrypt; modest n for local development)."""
    data = Account.encrypt(account.key, password, kdf="scrypt", iterations=kdf_iterations)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    os.chmod(path, 0o600)
    return path
