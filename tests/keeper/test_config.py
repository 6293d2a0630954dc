"""Keeper configuration: a TOML file, flags that override it, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from keepers.liquidator import build_config
from keepers.ops import ConfigError, parse_shard


def test_config_file_with_flags_overriding(tmp_path: Path) -> None:
    cfg_file = tmp_path / "keeper.toml"
    cfg_file.write_text(
        'rpc = "http://a:1"\ndeployment = "d.json"\nshard = "1/3"\n'
        "max-per-block = 7\ndry-run = true\n"
    )
    cfg = build_config(["--config", str(cfg_file), "--rpc", "http://b:2"])
    assert cfg.rpc == "http://b:2"  # the flag wins
    assert cfg.deployment == Path("d.json")
    assert cfg.shard == (1, 3)
    assert cfg.max_per_block == 7 and cfg.dry_run is True


def test_unknown_key_and_missing_rpc_are_clear_errors(tmp_path: Path) -> None:
    cfg_file = tmp_path / "keeper.toml"
    cfg_file.write_text('rpc = "x"\ndeployment = "d.json"\nspeed = 11\n')
    with pytest.raises(ConfigError, match="unknown config keys: speed"):
        build_config(["--config", str(cfg_file)])
    with pytest.raises(ConfigError, match="--rpc is required"):
        build_config(["--deployment", "d.json"])


@pytest.mark.parametrize("text", ["3", "2/2", "a/b", "-1/2"])
def test_bad_shards_are_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_shard(text)


def test_keeper_command_writes_a_keystore_the_keeper_can_open(tmp_path: Path) -> None:
    import os
    import stat

    from eth_account import Account

    from keepers.config import keeper_command
    from plimsoll.keys import load_keystore, read_password

    key = Account.create()
    cmd = keeper_command(
        key, tmp_path, "k1", "http://x:1", tmp_path / "d.json", 9101, extra=("--dry-run",)
    )
    assert cmd[1:3] == ["-m", "keepers.liquidator"] and cmd[-1] == "--dry-run"
    args = dict(zip(cmd[3:-1:2], cmd[4:-1:2], strict=True))
    assert args["--rpc"] == "http://x:1" and args["--port"] == "9101"
    assert args["--db"] == str(tmp_path / "k1.sqlite")
    pw = Path(args["--password-file"])
    assert stat.S_IMODE(os.stat(pw).st_mode) == 0o600
    opened = load_keystore(Path(args["--keystore"]), read_password(pw))
    assert opened.address == key.address
    # the keeper's own parser takes the command line as it is
    cfg = build_config(cmd[3:])
    assert cfg.keystore == Path(args["--keystore"]) and cfg.dry_run and cfg.port == 9101
