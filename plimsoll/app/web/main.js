// The Plimsoll wallet page. Numbers come from the read API (the Python SDK: the same the CLI
// prints and the notifier sends); this file only finds a wallet (EIP-6963, then
// window.ethereum), asks the API to prepare an action (parsed, checked, simulated, explained),
// and has the wallet sign each step. It never formats an amount itself.
import { createPublicClient, createWalletClient, custom, defineChain } from "viem";

const $ = (id) => document.getElementById(id);
const st = { cfg: null, provider: null, account: null, chainId: null, sub: 0, view: null, busy: false };
const announced = new Map();

async function api(path, body) {
  const init = body
    ? { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) }
    : {};
  const r = await fetch(path, init);
  const j = await r.json().catch(() => ({ error: `the server answered ${r.status}` }));
  if (!r.ok || (j && j.error)) throw new Error(j.error || r.statusText);
  return j;
}

function say(text, kind = "info") {
  const m = $("msg");
  m.textContent = text;
  m.className = `msg ${kind}`;
}

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "onclick") e.onclick = v;
    else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
}

// ------------------------------------------------------------------ wallets (EIP-6963, EIP-1193)

window.addEventListener("eip6963:announceProvider", (ev) => {
  announced.set(ev.detail.info.uuid, ev.detail);
  renderWallets();
});

function renderWallets() {
  const box = $("wallets");
  box.replaceChildren();
  const found = [...announced.values()];
  if (!found.length && window.ethereum) {
    found.push({ info: { name: "Browser wallet", uuid: "injected" }, provider: window.ethereum });
  }
  if (!found.length) {
    box.append("No wallet found: install MetaMask, Rabby or another browser wallet.");
    return;
  }
  for (const d of found) {
    box.append(el("button", { "data-wallet": d.info.uuid, onclick: () => connect(d.provider) },
      st.provider === d.provider ? `${d.info.name} ✓` : `Connect ${d.info.name}`));
  }
}

async function connect(provider) {
  try {
    const accounts = await provider.request({ method: "eth_requestAccounts" });
    st.provider = provider;
    st.account = accounts[0] || null;
    st.chainId = parseInt(await provider.request({ method: "eth_chainId" }), 16);
  } catch (e) {
    say(e.code === 4001 ? "Connection refused in the wallet." : `Cannot connect: ${e.message}`, "error");
    return;
  }
  if (provider.on) {
    provider.on("accountsChanged", (a) => { st.account = a[0] || null; refresh(); });
    provider.on("chainChanged", (c) => { st.chainId = parseInt(c, 16); refresh(); });
  }
  renderWallets();
  say("Connected.", "ok");
  await refresh();
}

async function switchChain() {
  const chainId = "0x" + st.cfg.chain_id.toString(16);
  try {
    await st.provider.request({ method: "wallet_switchEthereumChain", params: [{ chainId }] });
  } catch (e) {
    if (e.code === 4902) {
      await st.provider.request({
        method: "wallet_addEthereumChain",
        params: [{ chainId, chainName: "Plimsoll local", rpcUrls: [st.cfg.rpc_url],
          nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 } }],
      });
    } else {
      say(`The wallet did not switch: ${e.message}`, "error");
      return;
    }
  }
  st.chainId = parseInt(await st.provider.request({ method: "eth_chainId" }), 16);
  await refresh();
}

// ------------------------------------------------------------------ rendering

async function refresh() {
  const who = $("who");
  if (!st.account) {
    who.textContent = "not connected";
    $("main").classList.add("hidden");
    return;
  }
  who.textContent = `${st.account} · chain ${st.chainId}`;
  const wrong = st.chainId !== st.cfg.chain_id;
  $("wrong-chain").classList.toggle("hidden", !wrong);
  $("wallet-chain").textContent = String(st.chainId);
  $("app-chain").textContent = String(st.cfg.chain_id);
  $("actions").classList.toggle("hidden", wrong);
  try {
    const [view, series] = await Promise.all([
      api(`/api/account/${st.account}?sub=${st.sub}`),
      api("/api/options"),
    ]);
    st.view = view;
    renderOverview(view);
    renderChain(series);
    $("main").classList.remove("hidden");
  } catch (e) {
    say(e.message, "error");
  }
}

function renderOverview(v) {
  const subSel = $("sub");
  subSel.replaceChildren(...v.subaccounts.concat([Math.max(...v.subaccounts) + 1]).map(
    (s) => el("option", { value: String(s) }, String(s))));
  subSel.value = String(st.sub);
  $("mode").textContent = v.mode;
  const rows = [["Equity", v.equity], ["Initial margin", v.initial_margin],
    ["Maintenance margin", v.maintenance_margin], ["Free collateral", v.free_collateral],
    ["Cash", v.cash], ...Object.entries(v.collateral)];
  $("numbers").replaceChildren(...rows.flatMap(([k, val]) => [
    el("dt", {}, k), el("dd", { "data-field": k.toLowerCase().replace(/ /g, "_") }, val)]));
  const h = v.health_value;
  const pct = h === null ? 100 : Math.max(0, Math.min(100, ((h - 1) / 2) * 100));
  const bar = $("gauge");
  bar.style.width = `${pct}%`;
  bar.style.background = h === null || h >= 2 ? "var(--ok)" : h >= 1.2 ? "var(--warn)" : "var(--bad)";
  $("health-text").textContent = h === null
    ? "No positions: nothing can be liquidated."
    : `Health ${h.toFixed(2)} (equity / maintenance margin; liquidation below 1.00)` +
      (v.move_to_liquidation ? ` · a price move of ${v.move_to_liquidation} liquidates` : "");
  const call = $("margin-call");
  const n = v.margin_call_notice;
  call.classList.toggle("hidden", !n);
  if (n) {
    call.replaceChildren(el("b", {}, "Margin call. "),
      `Add ${n.shortfall_text} (or reduce positions) to get back above initial margin.`,
      n.move_text ? ` A uniform price move of ${n.move_text} makes this subaccount liquidatable.` : "");
    call.setAttribute("data-shortfall", n.shortfall_text);
    call.setAttribute("data-move", n.move_text || "");
  }
  const tb = $("positions").querySelector("tbody");
  tb.replaceChildren(...v.positions.map((p) => el("tr", { "data-market": p.market },
    el("td", {}, p.market), el("td", {}, p.size), el("td", {}, p.entry_price),
    el("td", {}, p.mark_price), el("td", {}, p.unrealized_pnl), el("td", {}, p.funding_owed),
    el("td", {}, p.liquidation_price || "—"),
    el("td", {}, el("button", { "data-close": p.market,
      onclick: () => act("close", { market: p.market, slippage: "1" }, true) }, "Close")))));
  if (!v.positions.length) tb.append(el("tr", {}, el("td", { colspan: "8", class: "mute" }, "No open positions.")));
  const ot = $("option-positions");
  ot.classList.toggle("hidden", !v.options.length);
  ot.querySelector("tbody").replaceChildren(...v.options.map((o) => el("tr", {},
    el("td", {}, o.series), el("td", {}, o.size), el("td", {}, o.mark), el("td", {}, o.value),
    el("td", {}, el("button", { onclick: () => act("option", { series: String(o.series_id),
      size: o.size.startsWith("-") ? o.size.slice(1).split(" ")[0] : "-" + o.size.split(" ")[0] }, true) }, "Close")))));
  $("history").replaceChildren(...v.history.slice().reverse().map((h) =>
    el("li", { "data-kind": h.kind }, `#${h.block} ${h.text}`)));
  if (!v.history.length) $("history").append(el("li", { class: "mute" }, "Nothing yet."));
  $("wallet").replaceChildren(...Object.entries(v.wallet).flatMap(([k, val]) => [el("dt", {}, k), el("dd", { "data-wallet-asset": k }, val)]));
  const pl = v.pool;
  $("pool").textContent =
    `Pool share price ${pl.share_price} · your shares ${pl.shares} (${pl.value})` +
    ` · pending deposit ${pl.pending_deposit} · pending withdrawal ${pl.pending_withdrawal}` +
    ` · claimable ${pl.claimable_shares} and ${pl.claimable_cash} · ${pl.status}`;
  $("pool").setAttribute("data-status", pl.status);
}

function renderChain(series) {
  const tb = $("chain").querySelector("tbody");
  tb.replaceChildren(...series.map((s) => {
    const size = el("input", { value: "1", style: "width:4rem", "data-size": String(s.id) });
    return el("tr", { "data-series": s.name },
      el("td", {}, s.name), el("td", {}, s.mark), el("td", {}, s.iv),
      el("td", {}, String(s.greeks.delta)), el("td", {}, String(s.greeks.gamma)),
      el("td", {}, String(s.greeks.vega)), el("td", {}, String(s.greeks.theta)),
      el("td", {}, size),
      el("td", {},
        el("button", { "data-buy": s.name, onclick: () => act("option", { series: String(s.id), size: size.value }, true) }, "Buy"),
        el("button", { "data-sell": s.name, onclick: () => act("option", { series: String(s.id), size: "-" + size.value }, true) }, "Sell")));
  }));
  if (!series.length) tb.append(el("tr", {}, el("td", { colspan: "9", class: "mute" }, "No live series.")));
}

// ------------------------------------------------------------------ actions

function clients() {
  const chain = defineChain({
    id: st.cfg.chain_id, name: "Plimsoll", nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [st.cfg.rpc_url] } },
  });
  const transport = custom(st.provider);
  return {
    wallet: createWalletClient({ chain, transport }),
    reader: createPublicClient({ chain, transport, pollingInterval: 150 }),
  };
}

function showPending(prep, note) {
  const box = $("pending");
  box.classList.remove("hidden");
  const kids = [];
  if (prep.preview) {
    const p = prep.preview;
    kids.push(el("b", {}, "Preview"), el("dl", { class: "kv", id: "preview" },
      ...Object.entries(p).filter(([k]) => !k.endsWith("_wad")).flatMap(([k, v]) =>
        [el("dt", {}, k.replace(/_/g, " ")), el("dd", { "data-preview": k }, v === null ? "—" : String(v))])));
  }
  kids.push(el("ol", { class: "steps" }, ...prep.steps.map((s, i) => el("li", { "data-step": String(i) }, s.label))));
  if (note) kids.push(note);
  box.replaceChildren(...kids);
}

function markStep(i, cls) {
  const li = document.querySelector(`#pending li[data-step="${i}"]`);
  if (li) li.className = cls;
}

// Prepare on the server (checked, simulated, explained); with confirm, show the preview and
// wait for "Sign"; then each step: simulate again, the wallet signs, wait for the receipt.
async function act(action, fields, confirm = false) {
  if (st.busy) return;
  if (st.chainId !== st.cfg.chain_id) {
    say("Switch your wallet to the deployment's chain first.", "error");
    return;
  }
  st.busy = true;
  $("pending").classList.add("hidden");
  $("pending").replaceChildren();
  try {
    say("Checking…");
    let prep;
    try {
      prep = await api("/api/prepare", { action, owner: st.account, sub: st.sub, ...fields });
    } catch (e) {
      say(e.message, "error");
      $("pending").classList.add("hidden");
      return;
    }
    if (confirm) {
      const ok = await new Promise((resolve) => {
        const sign = el("button", { class: "primary", id: "sign", onclick: () => resolve(true) }, "Sign");
        const cancel = el("button", { id: "cancel", onclick: () => resolve(false) }, "Cancel");
        showPending(prep, el("div", { id: "confirm" }, sign, " ", cancel));
        say(prep.preview && prep.preview.allowed === false ? prep.preview.reason : "Review, then sign.",
          prep.preview && prep.preview.allowed === false ? "error" : "info");
      });
      $("confirm").remove();
      if (!ok) {
        $("pending").classList.add("hidden");
        say("Cancelled: nothing was sent.");
        return;
      }
    } else {
      showPending(prep);
    }
    await runSteps(action, prep.steps);
  } finally {
    st.busy = false;
  }
}

async function runSteps(action, steps) {
  const { wallet, reader } = clients();
  for (let i = 0; i < steps.length; i++) {
    const s = steps[i];
    markStep(i, "active");
    if (i > 0 || s.gas === undefined) {
      try {
        const sim = await api("/api/simulate", { owner: st.account, to: s.to, data: s.data, action });
        s.gas = sim.gas;
      } catch (e) {
        say(e.message, "error");
        return offerRevoke(s);
      }
    }
    let hash;
    try {
      say(`Confirm in your wallet: ${s.label}`);
      hash = await wallet.sendTransaction({ account: st.account, to: s.to, data: s.data, gas: BigInt(s.gas) });
    } catch (e) {
      const rejected = e.code === 4001 || (e.cause && e.cause.code === 4001) || /reject/i.test(e.message);
      say(rejected ? `You rejected "${s.label}": nothing was sent.` : `Not sent: ${e.shortMessage || e.message}`, "error");
      if (i > 0) return offerRevoke(s);
      await refresh();
      return;
    }
    say(`Sent ${s.label}; waiting for it to be mined…`);
    let receipt;
    try {
      receipt = await reader.waitForTransactionReceipt({ hash, timeout: 120_000 });
    } catch (e) {
      say(`No receipt for ${hash} yet (dropped or still pending); refresh later.`, "error");
      await refresh();
      return;
    }
    if (receipt.status !== "success") {
      say(`"${s.label}" was mined but reverted; nothing changed.`, "error");
      await refresh();
      return;
    }
    markStep(i, "done");
  }
  say(`Done: ${steps.map((s) => s.label).join("; ")}.`, "ok");
  await refresh();
}

function offerRevoke(step) {
  if (!step.revoke) return refresh();
  const b = el("button", { id: "revoke", onclick: async () => {
    $("pending").classList.add("hidden");
    await runSteps("approve", [step.revoke]);
  } }, "Reset the allowance");
  $("pending").append(el("div", {}, "The approval given for this step is still there. ", b));
  return refresh();
}

function wireForms() {
  const assets = st.cfg.assets.map((a) => a.symbol);
  const markets = st.cfg.markets.map((m) => m.name);
  for (const f of document.querySelectorAll("form")) {
    for (const s of f.querySelectorAll('select[name="asset"]')) s.replaceChildren(...assets.map((a) => el("option", {}, a)));
    for (const s of f.querySelectorAll('select[name="market"]')) s.append(...markets.map((m) => el("option", { value: m }, m)));
    const max = f.querySelector("[data-max]");
    if (max) max.onclick = () => { f.querySelector('input[name="amount"]').value = "max"; };
  }
  const on = (id, action, confirm = false, extra = (d) => d) => {
    $(id).addEventListener("submit", (ev) => {
      ev.preventDefault();
      act(action, extra(Object.fromEntries(new FormData(ev.target).entries())), confirm);
    });
  };
  on("f-deposit", "deposit");
  on("f-withdraw", "withdraw");
  on("f-transfer", "transfer");
  on("f-trade", "trade", true);
  on("f-isolate", "isolate");
  on("f-portfolio", "portfolio", false, (d) => ({ enabled: d.enabled === "1" }));
  on("f-lp-deposit", "lp_deposit");
  on("f-lp-withdraw", "lp_withdraw");
  on("f-lp-claim", "lp_claim");
  $("sub").onchange = (ev) => { st.sub = Number(ev.target.value); refresh(); };
  $("switch-chain").onclick = switchChain;
}

async function main() {
  try {
    st.cfg = await api("/api/config");
  } catch (e) {
    say(`The app server is not answering: ${e.message}`, "error");
    return;
  }
  wireForms();
  window.dispatchEvent(new Event("eip6963:requestProvider"));
  renderWallets();
  say("Connect a wallet to start.");
  window.plimsoll = { st, refresh };
}

main();
