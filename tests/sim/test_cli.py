"""``plimsoll simulate`` / ``plimsoll calibrate``: reports, one JSON line, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plimsoll.cli import main


def _last_json(out: str) -> dict:  # type: ignore[type-arg]
    return json.loads(out.strip().splitlines()[-1])


def test_simulate_scenario_writes_a_report_and_one_json_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["simulate", "--scenario", "gap_down", "--accounts", "150", "--steps", "48",
               "--compare-feedback", "--out", str(tmp_path / "r"), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    head = _last_json(out)
    assert set(head) >= {"title", "feedback all", "feedback off"}
    assert head["feedback all"]["liquidations"] > 0
    assert "USD" in out and "bad debt" in out
    for f in ("summary.md", "headline.json", "series.csv", "price.png", "liquidations.png",
              "insurance.png"):
        assert (tmp_path / "r" / f).stat().st_size > 0, f
    series = (tmp_path / "r" / "series.csv").read_text().splitlines()
    assert len(series) == 49 + 1  # header + 49 times
    assert series[0].startswith("time_s,price_feedback_usd,price_no_feedback_usd,oracle_usd")


def test_simulate_monte_carlo_reports_distributions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["simulate", "--monte-carlo", "garch", "--paths", "12", "--steps", "24",
               "--accounts", "100", "--out", str(tmp_path / "mc"), "--no-progress"])
    head = _last_json(capsys.readouterr().out)
    assert rc == 0
    mc = head["mc_feedback all"]
    assert mc["paths"] == 12
    assert mc["protocol_loss_es99_usd"] >= mc["protocol_loss_var99_usd"] >= 0
    assert 0 <= mc["p_insurance_exhausted"] <= 1
    assert (tmp_path / "mc" / "bad_debt_hist.png").stat().st_size > 0


def test_simulate_replays_a_csv_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "p.csv"
    rows = ["timestamp,asset,price"] + [f"{600 * i},ETH,{2000 * (1 - 0.02 * i)}"
                                         for i in range(13)]
    csv.write_text("\n".join(rows) + "\n")
    rc = main(["simulate", "--csv", str(csv), "--accounts", "100", "--out",
               str(tmp_path / "c"), "--no-progress"])
    assert rc == 0
    head = _last_json(capsys.readouterr().out)
    assert head["feedback all"]["liquidations"] > 0  # -24% on ETH liquidates someone


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["simulate", "--scenario", "nope"], "invalid choice"),
        (["simulate", "--accounts", "0"], "must be >= 1"),
        (["simulate", "--csv", "/no/such/file.csv"], "not found"),
        (["simulate", "--insurance", "lots"], "not an amount in USD"),
        (["calibrate", "--target-gap", "abc"], "not a fraction"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc in (1, 2)
    assert needle in err
    assert len(err.strip().splitlines()) == 1


def test_csv_with_an_unknown_asset_says_which_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("timestamp,asset,price\n0,ETH,2000\n60,DOGE,0.1\n")
    assert main(["simulate", "--csv", str(csv), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "bad.csv:3: unknown asset 'DOGE'" in err


def test_calibrate_small_recommends_a_set_with_admin_calls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["calibrate", "--fit-paths", "8", "--holdout-paths", "8", "--accounts", "60",
               "--steps", "24", "--timelock", "0x" + "11" * 20, "--out", str(tmp_path / "cal"),
               "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0
    head = _last_json(out)
    assert head["recommended_holdout"]["capital_cost"] > 0
    calls = json.loads((tmp_path / "cal" / "admin_calls.json").read_text())
    assert [c["function"] for c in calls] == ["configureMarket"] * 3 + ["setLiquidationConfig"]
    assert all(c["calldata"].startswith("0x") and "timelock_schedule" in c for c in calls)
    assert "recommended:" in out and "capital cost" in out
