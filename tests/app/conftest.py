"""Browser tests of the wallet app: the real server (uvicorn, over the SDK) on the session's
anvil, Debian's chromium driven by Playwright, and a test-only EIP-1193 wallet injected into
the page that forwards every request to anvil (which signs for its unlocked dev accounts).

The wallet announces itself with EIP-6963 and is also ``window.ethereum``. Test hooks on
``window``: ``__chainId`` (answer this chain id until a switch), ``__rejectNext`` (the next
``eth_sendTransaction`` is rejected with code 4001), ``__rejectNth`` (reject the n-th one),
``__sent`` (every transaction sent), ``__switchAccount(address)`` (the user picks another
account in the wallet).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from plimsoll.chain import LocalNode, free_port
from plimsoll.client import PlimsollClient
from plimsoll.deploy import Deployment

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
ARTIFACTS = ROOT / "build" / "app-screenshots"
CHROMIUM = os.environ.get("PLIMSOLL_CHROMIUM", "/usr/bin/chromium")

WALLET_JS = """
(() => {
  const RPC = %(rpc)s;
  let ACCOUNT = %(account)s;
  let id = 0;
  const listeners = {};
  window.__sent = [];
  window.__chainId = %(chain)s;
  const provider = {
    async request({ method, params }) {
      if (method === "eth_requestAccounts" || method === "eth_accounts") return [ACCOUNT];
      if (method === "eth_chainId" && window.__chainId) return window.__chainId;
      if (method === "wallet_switchEthereumChain") {
        window.__chainId = null;
        (listeners.chainChanged || []).forEach((f) => f(params[0].chainId));
        return null;
      }
      if (method === "eth_sendTransaction") {
        window.__asked = (window.__asked || 0) + 1;
        if (window.__rejectNext || window.__asked === window.__rejectNth) {
          window.__rejectNext = false;
          const e = new Error("User rejected the request.");
          e.code = 4001;
          throw e;
        }
        window.__sent.push(params[0]);
      }
      const r = await fetch(RPC, { method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: ++id, method, params: params || [] }) });
      const j = await r.json();
      if (j.error) {
        const e = new Error(j.error.message);
        e.code = j.error.code;
        e.data = j.error.data;
        throw e;
      }
      return j.result;
    },
    on(ev, f) { (listeners[ev] = listeners[ev] || []).push(f); },
    removeListener() {},
  };
  const info = { uuid: "plimsoll-test-wallet", name: "Test Wallet", rdns: "org.plimsoll.test",
    icon: "data:image/svg+xml,%%3Csvg xmlns='http://www.w3.org/2000/svg'/%%3E" };
  const announce = () => window.dispatchEvent(new CustomEvent("eip6963:announceProvider",
    { detail: Object.freeze({ info, provider }) }));
  window.addEventListener("eip6963:requestProvider", announce);
  announce();
  window.ethereum = provider;
  window.__switchAccount = (a) => {
    ACCOUNT = a;
    (listeners.accountsChanged || []).forEach((f) => f([a]));
  };
})();
"""


@pytest.fixture(scope="session")
def app_url(node: LocalNode, w3: Web3, base_deployment: Deployment) -> Iterator[str]:
    """``plimsoll app`` on the session's deployment (uvicorn in a thread)."""
    import uvicorn

    from plimsoll.app.server import create_app

    client = PlimsollClient(w3, base_deployment.to_json())
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(client, node.url), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the app server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(
            f"no browser at {CHROMIUM}: run `make setup` as root or `apt-get install -y chromium`"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


class Wallet:
    """A page with the test wallet of ``account`` injected and connected."""

    def __init__(self, browser: Any, url: str, rpc: str, account: str, chain: str | None) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.page.add_init_script(
            WALLET_JS
            % {
                "rpc": json.dumps(rpc),
                "account": json.dumps(account),
                "chain": json.dumps(chain),
            }
        )
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(url)
        self.account = account

    def connect(self) -> None:
        self.page.click("button[data-wallet='plimsoll-test-wallet']")
        self.page.wait_for_selector("#who:has-text('chain')")

    def sent(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.page.evaluate("window.__sent")
        return out

    def message(self) -> str:
        return str(self.page.inner_text("#msg"))

    def wait_message(self, kind: str, timeout: float = 30_000, contains: str = "") -> str:
        """The message once it is of ``kind`` (ok, error) and, when given, ``contains`` that
        text (so that a message left by the previous action is not taken for this one's); on
        timeout, fail with what it says."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        sel = f"#msg.{kind}" + (f":has-text({contains!r})" if contains else "")
        try:
            self.page.wait_for_selector(sel, timeout=timeout)
            # The page refreshes the account after an action and takes no new one until then
            # (a click meanwhile is ignored): wait for that, as a person would see it settle.
            self.page.wait_for_function(
                "() => !(window.plimsoll && window.plimsoll.st.busy)", timeout=timeout
            )
        except PlaywrightTimeout:
            raise AssertionError(
                f"no {kind} message; the page says {self.message()!r} (errors {self.errors}; "
                f"steps {self.page.inner_text('#pending')!r}; sent {len(self.sent())})"
            ) from None
        return self.message()

    def shot(self, name: str, docs: bool = False) -> Path:
        """A full-page screenshot in build/app-screenshots/ (every run); with ``docs`` and
        PLIMSOLL_DOCS_SHOTS=1 also into docs/ (how the README's screenshots are refreshed)."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        if docs and os.environ.get("PLIMSOLL_DOCS_SHOTS") == "1":
            (DOCS / path.name).write_bytes(path.read_bytes())
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_wallet(browser: Any, app_url: str, node: LocalNode, dep: Deployment) -> Iterator[Any]:
    """``open_wallet(account, chain=None)``: a connected page for ``account``."""
    opened: list[Wallet] = []

    def make(account: str, chain: str | None = None, connect: bool = True) -> Wallet:
        w = Wallet(browser, app_url, node.url, account, chain)
        opened.append(w)
        if connect:
            w.connect()
        return w

    yield make
    for w in opened:
        w.close()


@pytest.fixture
def sdk(w3: Web3, dep: Deployment) -> PlimsollClient:
    """A read-only SDK client: the numbers the page must show."""
    return PlimsollClient(w3, dep.to_json())
