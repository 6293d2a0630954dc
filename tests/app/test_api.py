"""The app's read API without a browser: prepared steps, refusals in words, history with the
notifier's margin calls."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from plimsoll.app.server import account_view, prepare
from plimsoll.client import PlimsollClient
from plimsoll.deploy import Deployment
from plimsoll.errors import PlimsollError
from plimsoll.units import wad


def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_deposit_is_prepared_as_exact_approval_then_deposit(
    sdk: PlimsollClient, dep: Deployment, accounts: list[str]
) -> None:
    who = accounts[11]
    dep.send(dep.cash.functions.mint(who, 500 * 10**6), who)
    out = prepare(sdk, {"action": "deposit", "owner": who, "asset": "USDC", "amount": "120"})
    labels = [s["label"] for s in out["steps"]]
    assert labels == ["approve exactly 120.00 USDC", "deposit 120.00 USDC into subaccount 0"]
    assert out["steps"][0]["gas"] > 21_000  # simulated and estimated
    assert "gas" not in out["steps"][1]  # simulated by the page once the approval is mined
    assert out["steps"][1]["revoke"]["label"] == "reset the USDC allowance"


def test_refusals_come_back_as_one_sentence(
    app_url: str, dep: Deployment, accounts: list[str]
) -> None:
    who = accounts[12]
    code, body = _post(
        f"{app_url}/api/prepare",
        {"action": "deposit", "owner": who, "asset": "USDC", "amount": "100"},
    )
    assert code == 400 and body == {"error": "your wallet holds 0.00 USDC; this needs 100.00 USDC"}
    code, body = _post(
        f"{app_url}/api/prepare", {"action": "withdraw", "owner": who, "amount": "1"}
    )
    assert code == 400 and body["error"].startswith("the subaccount holds 0.00 USDC")
    code, body = _post(f"{app_url}/api/prepare", {"action": "fly", "owner": who})
    assert code == 400 and body["error"] == "unknown action 'fly'"


def test_history_includes_the_notifiers_margin_calls(
    sdk: PlimsollClient, dep: Deployment, accounts: list[str], tmp_path: Path
) -> None:
    who = accounts[13]
    dep.send(dep.cash.functions.mint(who, 1_000 * 10**6), who)
    dep.send(dep.cash.functions.approve(dep.core.address, 1_000 * 10**6), who)
    dep.send(dep.core.functions.deposit(0, 0, 1_000 * 10**6), who)
    dep.send(dep.core.functions.trade(0, 0, wad(4), 0), who)
    dep.set_price(1, 1_900)
    notice = sdk.margin_call(who, 0)
    assert notice is not None
    path = tmp_path / "notices.jsonl"
    path.write_text(json.dumps(notice.to_json()) + "\n")
    view = account_view(sdk, who, 0, path)
    kinds = [h["kind"] for h in view["history"]]
    assert kinds == ["deposit", "trade", "margin_call"]
    assert f"{notice.move_to_liquidation:+.2%} to liquidation" in view["history"][-1]["text"]
    assert view["margin_call_notice"]["shortfall"] == notice.to_json()["shortfall"]


def test_prepare_refuses_a_bad_owner(sdk: PlimsollClient) -> None:
    with pytest.raises(PlimsollError, match="not an address"):
        prepare(sdk, {"action": "deposit", "owner": "0x12", "amount": "1"})
