"""Benchmark: the wallet app's bundle size and how fast its page comes up, locally.

Starts anvil, deploys (with the default option series), serves ``plimsoll app`` (uvicorn) and
loads the page in headless chromium (Playwright, Debian's ``/usr/bin/chromium``) ``--runs``
times with a fresh browser context each time. Reports the bundle size (raw and gzip), first
contentful paint (the browser's own ``first-contentful-paint`` entry), and the time from
navigation to the connected overview of an account with a position (the read API's
``/api/account`` and ``/api/options`` included). Writes ``bench/results/app.json``.

Usage::

    .venv/bin/python bench/app_bench.py [--runs 5]
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plimsoll.app.server import STATIC, create_app  # noqa: E402
from plimsoll.chain import LocalNode, free_port  # noqa: E402
from plimsoll.client import PlimsollClient  # noqa: E402
from plimsoll.deploy import deploy_local  # noqa: E402
from tests.app.conftest import CHROMIUM, WALLET_JS  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    import uvicorn
    from playwright.sync_api import sync_playwright

    bundle = (STATIC / "app.js").read_bytes()
    with LocalNode() as w3:
        url = w3.provider.endpoint_uri  # type: ignore[attr-defined]
        dep = deploy_local(w3, series=True)
        trader = w3.eth.accounts[3]
        dep.send(dep.cash.functions.mint(trader, 10_000 * 10**6), trader)
        dep.send(dep.cash.functions.approve(dep.core.address, 5_000 * 10**6), trader)
        dep.send(dep.core.functions.deposit(0, 0, 5_000 * 10**6), trader)
        dep.send(dep.core.functions.trade(0, 0, 2 * 10**18, 0), trader)
        client = PlimsollClient(w3, dep.to_json())
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(client, url), host="127.0.0.1", port=port, log_level="warning"
            )
        )
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        fcp: list[float] = []
        overview: list[float] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            for _ in range(args.runs):
                ctx = browser.new_context()
                page = ctx.new_page()
                page.add_init_script(
                    WALLET_JS
                    % {"rpc": json.dumps(url), "account": json.dumps(trader), "chain": "null"}
                )
                t0 = time.monotonic()
                page.goto(f"http://127.0.0.1:{port}/")
                page.click("button[data-wallet='plimsoll-test-wallet']")
                page.wait_for_selector("#main:not(.hidden)")
                overview.append(time.monotonic() - t0)
                entries: Any = page.evaluate(
                    "performance.getEntriesByName('first-contentful-paint').map(e => e.startTime)"
                )
                fcp.append(float(entries[0]) / 1000)
                ctx.close()
            browser.close()
        server.should_exit = True
    result = {
        "bundle_bytes": len(bundle),
        "bundle_gzip_bytes": len(gzip.compress(bundle)),
        "first_contentful_paint_s_median": round(statistics.median(fcp), 3),
        "first_contentful_paint_s_max": round(max(fcp), 3),
        "connected_overview_s_median": round(statistics.median(overview), 3),
        "runs": args.runs,
        "machine": f"{platform.machine()} {platform.python_version()}",
    }
    out = ROOT / "bench" / "results" / "app.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
