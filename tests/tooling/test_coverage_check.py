"""scripts/coverage_check.py: inline-assembly lines are set apart, every other line counts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "coverage_check", ROOT / "scripts" / "coverage_check.py"
)
assert _spec is not None and _spec.loader is not None
cc = importlib.util.module_from_spec(_spec)
sys.modules["coverage_check"] = cc
_spec.loader.exec_module(cc)

SOURCE = """contract C {
    function f(uint256 x) internal pure returns (uint256 y) {
        y = x + 1;
        assembly ("memory-safe") {
            if x { y := add(y, 1) }
        }
        return y;
    }
}
"""


def test_assembly_lines_are_the_block_with_its_braces() -> None:
    assert cc.assembly_lines(SOURCE) == {4, 5, 6}


def test_assembly_lines_of_a_file_without_assembly_is_empty() -> None:
    assert cc.assembly_lines("contract C { function g() external {} }\n") == set()


def test_lcov_rows_leave_assembly_out_and_count_the_rest(tmp_path: Path) -> None:
    name = "contracts/options/OptionsStorage.sol"
    asm = sorted(cc.assembly_lines((ROOT / name).read_text()))
    assert asm, "OptionsStorage has inline assembly"
    plain = [n for n in range(1, 40) if n not in asm][:4]
    da = [f"DA:{n},0" for n in asm] + [f"DA:{plain[0]},0"] + [f"DA:{n},3" for n in plain[1:]]
    lcov = "\n".join(
        ["SF:" + name, *da, "end_of_record", "SF:contracts/mocks/MockFeed.sol", "DA:1,0"]
    )
    rows, skipped = cc.rows_from_lcov(lcov)
    assert rows == [(name, 75.0, 3, 4)]  # mocks are not core; assembly lines do not count
    assert skipped == {name: len(asm)}
