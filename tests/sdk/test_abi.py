"""The ABIs shipped in plimsoll/abi are the compiled contracts' (run `make abi` after a change)."""

from __future__ import annotations

import json

import pytest

from plimsoll.build import ABI_DIR, SHIPPED, compile_contracts


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_abi_matches_the_compiled_contract(name: str) -> None:
    compiled = compile_contracts()[name].abi
    shipped = json.loads((ABI_DIR / f"{name}.json").read_text())
    key = json.dumps
    assert sorted(map(key, shipped)) == sorted(map(key, compiled)), f"run `make abi` ({name})"
