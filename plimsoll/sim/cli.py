"""``plimsoll simulate`` and ``plimsoll calibrate`` (dispatched from ``plimsoll.cli``).

    plimsoll simulate [--scenario black_thursday | --csv FILE | --monte-carlo jump|garch]
                      [--engine fast|chain]
                      [--paths N] [--steps N] [--accounts N] [--feedback off|collateral|all]
                      [--compare-feedback] [--insurance USD] [--latency-blocks N]
                      [--from-deployment] [--rpc URL] [--deployment F] [--out DIR]
    plimsoll calibrate [--fit-paths N] [--holdout-paths N] [--accounts N] [--steps N]
                       [--target-gap 0.1%] [--target-insurance 1%] [--core ADDRESS]
                       [--timelock ADDRESS] [--out DIR]

Both print a few human lines, write a report directory and end with one JSON line of headline
figures. Errors are one line (exit 1; usage errors exit 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from plimsoll.errors import PlimsollError
from plimsoll.sim.model import FeedbackSpec, KeeperSpec, SimConfig, SimInputError

FEEDBACK = {
    "off": FeedbackSpec(sell_collateral=False, hedger=False),
    "collateral": FeedbackSpec(sell_collateral=True, hedger=False),
    "all": FeedbackSpec(sell_collateral=True, hedger=True),
}


def _fraction(text: str) -> float:
    """'0.1%' -> 0.001, '0.001' -> 0.001."""
    t = text.strip()
    try:
        return float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not a fraction: {text!r} (write 0.1% or 0.001)") from e


def _positive_int(text: str) -> int:
    try:
        v = int(text.replace(",", ""))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from e
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _usd(text: str) -> float:
    try:
        v = float(text.replace(",", "").removesuffix("USD").strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not an amount in USD: {text!r}") from e
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 USD, got {text}")
    return v


class _Progress:
    def __init__(self, total: int, enabled: bool, desc: str, unit: str = "path") -> None:
        self.bar: Any = None
        if enabled and total > 1:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr)

    def __call__(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _parser(prog: str) -> argparse.ArgumentParser:
    from plimsoll.cli import _Parser

    return _Parser(prog=prog)


def _read_deployment_book(args: argparse.Namespace, cfg: SimConfig) -> Any:
    """The book of a live deployment through the indexer (plimsoll.sync)."""
    from web3 import Web3

    from plimsoll.sim.population import book_from_state
    from plimsoll.sync import AccountIndexer, RpcClient, StateReader

    dep_path = Path(args.deployment)
    if not dep_path.is_file():
        raise PlimsollError(f"deployment file {dep_path} not found (run `plimsoll deploy`)")
    dep = json.loads(dep_path.read_text())
    w3 = Web3(Web3.HTTPProvider(args.rpc, request_kwargs={"timeout": 30}))
    try:
        _ = w3.eth.chain_id
    except Exception as e:  # noqa: BLE001 - any transport failure is "unreachable"
        raise PlimsollError(f"cannot reach RPC {args.rpc}: {type(e).__name__}") from e
    contracts = dep["contracts"]
    if "PlimsollLens" not in contracts:
        raise PlimsollError(f"{dep_path} has no PlimsollLens address")
    rpc = RpcClient(w3)
    db = Path(args.out) / "index.sqlite"
    db.parent.mkdir(parents=True, exist_ok=True)
    indexer = AccountIndexer(w3, contracts["Plimsoll"], db, int(dep.get("deploy_block", 0)),
                             rpc=rpc)
    block = indexer.sync()
    accounts = [(a.owner, a.subaccount) for a in indexer.accounts()]
    if not accounts:
        raise PlimsollError("the deployment has no accounts to simulate")
    reader = StateReader(w3, contracts["Plimsoll"], contracts["PlimsollLens"], rpc=rpc)
    state = reader.read(accounts, block)
    # the simulation's starting prices are the deployment's
    prices = [a.price for a in cfg.assets]
    for m, spec in enumerate(cfg.markets):
        prices[spec.asset] = float(state.market_price[m]) / 1e18
    cfg2 = replace(cfg, assets=tuple(replace(a, price=prices[i])
                                     for i, a in enumerate(cfg.assets)))
    return book_from_state(state, cfg2), cfg2


def simulate_main(argv: list[str]) -> int:
    import numpy as np

    from plimsoll.sim.engine import simulate
    from plimsoll.sim.paths import SCENARIOS, garch, jump_diffusion, load_csv, scenario
    from plimsoll.sim.population import PopulationSpec, draw_population
    from plimsoll.sim.report import distribution, pct, usd, write_report

    ap = _parser("plimsoll simulate")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--scenario", choices=sorted(SCENARIOS), default=None)
    src.add_argument("--csv", type=Path, help="a path from timestamp,asset,price rows")
    src.add_argument("--monte-carlo", choices=["jump", "garch"], help="Monte Carlo paths")
    ap.add_argument("--paths", type=_positive_int, default=200, help="Monte Carlo paths")
    ap.add_argument("--steps", type=_positive_int, default=None, help="steps per path")
    ap.add_argument("--accounts", type=_positive_int, default=1000)
    ap.add_argument("--feedback", choices=sorted(FEEDBACK), default="all")
    ap.add_argument("--compare-feedback", action="store_true",
                    help="also run the path with feedback off (the report shows both)")
    ap.add_argument("--insurance", type=_usd, default=None, help="insurance fund [USD]")
    ap.add_argument("--latency-blocks", type=int, default=None, help="keeper latency [blocks]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--from-deployment", action="store_true",
                    help="simulate the book of a live deployment (plimsoll.sync)")
    ap.add_argument("--rpc", default="http://127.0.0.1:8545")
    ap.add_argument("--deployment", default="deployments/local.json")
    ap.add_argument("--out", type=Path, default=None, help="report directory")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--engine", choices=["fast", "chain"], default="fast",
                    help="fast: numpy over every path; chain: the first path on anvil with the"
                         " real contracts and the real keeper (perps and collateral)")
    args = ap.parse_args(argv)

    cfg = replace(SimConfig(), feedback=FEEDBACK[args.feedback])
    if args.insurance is not None:
        cfg = replace(cfg, insurance=args.insurance)
    if args.latency_blocks is not None:
        if args.latency_blocks < 0:
            raise SimInputError("--latency-blocks must be >= 0")
        cfg = replace(cfg, keeper=replace(cfg.keeper, latency_blocks=args.latency_blocks))
    if args.from_deployment:
        args.out = args.out or Path("reports/sim-deployment")
        book, cfg = _read_deployment_book(args, cfg)
    elif args.engine == "chain":  # the chain engine opens perps and collateral
        book = draw_population(PopulationSpec(n_accounts=args.accounts, p_options=0.0,
                                              p_portfolio=0.0), cfg, seed=args.seed)
    else:
        book = draw_population(PopulationSpec(n_accounts=args.accounts), cfg, seed=args.seed)
    if args.csv is not None:
        paths = load_csv(args.csv, cfg)
        name = f"csv {args.csv.name}"
    elif args.monte_carlo is not None:
        gen = jump_diffusion if args.monte_carlo == "jump" else garch
        paths = gen(cfg, args.paths, args.steps or 100, seed=args.seed)
        name = f"Monte Carlo {args.monte_carlo}, {args.paths} paths"
    else:
        sname = args.scenario or "black_thursday"
        paths = scenario(sname, cfg, args.steps, seed=args.seed)
        name = f"scenario {sname}"
    out = args.out or Path("reports") / ("sim-" + name.split(",")[0].replace(" ", "-"))
    if args.engine == "chain":
        from plimsoll.sim.chain import run_chain

        paths = paths.path(0)
        name += " (chain engine: path 0)"
        bar = _Progress(paths.n_steps * (2 if args.compare_feedback else 1),
                        not args.no_progress, "chain", unit="step")

        def sim(c: SimConfig) -> Any:
            return run_chain(c, paths, book, seed=args.seed,
                             progress=lambda _k: bar(1)).result
    else:
        bar = _Progress(paths.n_paths * (2 if args.compare_feedback else 1),
                        not args.no_progress, "simulate")

        def sim(c: SimConfig) -> Any:
            return simulate(c, paths, book, seed=args.seed, progress=bar)

    runs = {f"feedback {args.feedback}": sim(cfg)}
    if args.compare_feedback and args.feedback != "off":
        runs["feedback off"] = sim(replace(cfg, feedback=FEEDBACK["off"]))
    bar.close()
    main_run = next(iter(runs.values()))
    mc = {k: v for k, v in runs.items()} if paths.n_paths > 1 else None
    head = write_report(out, f"Plimsoll simulation: {name}", runs, mc=mc,
                        notes=[f"{book.n_accounts} accounts, {paths.n_steps} steps of "
                               f"{np.diff(paths.times).mean():,.0f} s; insurance fund "
                               f"{usd(cfg.insurance)}, pool {usd(cfg.pool_liquidity)}."])
    d = distribution(main_run)
    print(f"{name}: {book.n_accounts} accounts, {paths.n_paths} path(s), {paths.n_steps} steps")
    print(f"bad debt: mean {usd(d['bad_debt_mean_usd'])}, worst {usd(d['bad_debt_max_usd'])};"
          f" P(insurance exhausted) {pct(d['p_insurance_exhausted'])}; "
          f"P(met MM, then bad debt) {pct(d['p_gap_bad_debt'], 3)}")
    print(f"liquidations per path: {d['liquidations_mean']:,.0f}; 99% ES of protocol loss "
          f"{usd(d['protocol_loss_es99_usd'])}; mean LP drawdown {pct(d['lp_drawdown_mean'])}")
    print(f"report: {out}/summary.md")
    print(json.dumps(head, separators=(",", ":")))
    return 0


def calibrate_main(argv: list[str]) -> int:
    from plimsoll.sim.calibrate import (
        Targets,
        admin_calls,
        calibrate,
        risk_keeper_policy,
        sdk_snippet,
        stress_paths,
    )
    from plimsoll.sim.population import PopulationSpec
    from plimsoll.sim.report import pct, write_report

    ap = _parser("plimsoll calibrate")
    ap.add_argument("--fit-paths", type=_positive_int, default=200)
    ap.add_argument("--holdout-paths", type=_positive_int, default=400)
    ap.add_argument("--accounts", type=_positive_int, default=500)
    ap.add_argument("--steps", type=_positive_int, default=96)
    ap.add_argument("--target-gap", type=_fraction, default=0.001,
                    help="max P(account met MM at the previous update, then bad debt)")
    ap.add_argument("--target-insurance", type=_fraction, default=0.01,
                    help="max P(insurance fund exhausted)")
    ap.add_argument("--insurance", type=_usd, default=None, help="insurance fund [USD]")
    ap.add_argument("--core", default="0x" + "00" * 20, help="core address for the calldata")
    ap.add_argument("--timelock", default=None, help="timelock address (schedule calldata)")
    ap.add_argument("--delay", type=int, default=0, help="timelock delay [s]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("reports/calibration"))
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    for name in ("target_gap", "target_insurance"):
        if not 0 <= getattr(args, name) < 1:
            raise SimInputError(f"--{name.replace('_', '-')} must be in [0, 100%)")
    cfg = SimConfig(keeper=KeeperSpec())
    if args.insurance is not None:
        cfg = replace(cfg, insurance=args.insurance)
    spec = PopulationSpec(n_accounts=args.accounts)
    fit = stress_paths(cfg, args.fit_paths, args.steps, seed=1000 + args.seed)
    hold = stress_paths(cfg, args.holdout_paths, args.steps, seed=5000 + args.seed)
    say = None if args.quiet else (lambda m: print(f"  {m}", file=sys.stderr, flush=True))
    cal = calibrate(cfg, spec, fit, hold, Targets(args.target_gap, args.target_insurance),
                    seed=args.seed, progress=say)
    rec, dep = cal.recommended, cal.deployed
    calls = admin_calls(cfg, rec.params, args.core, args.timelock, args.delay)
    policy = risk_keeper_policy(rec.params)
    # sensitivity: the recommended set with one parameter moved
    sens = _sensitivity(cal)
    extra = {
        "targets": {"p_gap_bad_debt": args.target_gap,
                    "p_insurance_exhausted": args.target_insurance},
        "deployed_fit": dep.row(), "recommended_fit": rec.row(),
        "deployed_holdout": cal.holdout_deployed.row(),
        "recommended_holdout": cal.holdout_recommended.row(),
        "holdout_meets_targets": cal.holdout_recommended.meets,
        "es_margin": cal.es_margin, "risk_keeper_policy": policy,
    }
    head = write_report(args.out, "Plimsoll margin calibration (held-out Monte Carlo paths)",
                        {"deployed": cal.holdout_results["deployed"],
                         "recommended": cal.holdout_results["recommended"]},
                        mc=cal.holdout_results, sens=sens, extra=extra,
                        notes=_calibration_notes(cal))
    (args.out / "admin_calls.json").write_text(json.dumps(calls, indent=2) + "\n")
    (args.out / "sdk_calls.py.txt").write_text(sdk_snippet(cfg, rec.params) + "\n")
    (args.out / "risk_keeper.json").write_text(json.dumps(policy, indent=2) + "\n")
    (args.out / "search.json").write_text(json.dumps([e.row() for e in cal.searched],
                                                     indent=1) + "\n")
    p = rec.params
    print(f"recommended: IM x{p.im_scale:g}, MM factor {p.mm_factor:g}, slope x{p.slope_scale:g},"
          f" penalty {pct(p.penalty)}, buffer {pct(p.buffer, 0)}, vol response "
          f"{p.vol_response:g} (base vol {pct(p.base_vol, 0)})")
    print(f"capital cost: IM {pct(rec.capital_cost)} of notional (deployed "
          f"{pct(dep.capital_cost)})")
    hd, hr = cal.holdout_deployed, cal.holdout_recommended
    print(f"held-out ({cal.holdout_paths} paths): P(met MM, then bad debt) "
          f"{pct(hd.p_gap_bad_debt, 3)} -> {pct(hr.p_gap_bad_debt, 3)}; P(insurance exhausted)"
          f" {pct(hd.p_insurance_exhausted)} -> {pct(hr.p_insurance_exhausted)}; targets "
          f"{'met' if hr.meets else 'NOT met'}")
    print(f"admin calls: {args.out}/admin_calls.json; report: {args.out}/summary.md")
    print(json.dumps(head, separators=(",", ":")))
    return 0


def _sensitivity(cal: Any) -> list[Any]:
    from plimsoll.sim.report import Sensitivity

    rec = cal.recommended.params
    out = []
    for name in ("im_scale", "mm_factor", "buffer", "vol_response"):
        pts = sorted((getattr(e.params, name), e) for e in cal.searched
                     if all(getattr(e.params, f) == getattr(rec, f)
                            for f in ("im_scale", "mm_factor", "slope_scale", "penalty",
                                      "buffer", "vol_response", "base_vol") if f != name))
        if len(pts) < 2:
            continue
        s = Sensitivity(name, [float(v) for v, _ in pts])
        s.metrics["P(gap bad debt)"] = [e.p_gap_bad_debt for _, e in pts]
        s.metrics["P(insurance exhausted)"] = [e.p_insurance_exhausted for _, e in pts]
        s.metrics["IM / notional"] = [e.capital_cost for _, e in pts]
        out.append(s)
    return out


def _calibration_notes(cal: Any) -> list[str]:
    from plimsoll.sim.report import pct

    rec, dep = cal.recommended, cal.deployed
    hd, hr = cal.holdout_deployed, cal.holdout_recommended
    rows = [
        f"Targets: P(account met MM at the previous oracle update, then bad debt) <= "
        f"{pct(cal.targets.p_gap_bad_debt, 3)}, P(insurance exhausted) <= "
        f"{pct(cal.targets.p_insurance_exhausted)}. Fitted on {cal.fit_paths} paths, validated "
        f"on {cal.holdout_paths} held-out paths (other seeds), {cal.accounts} accounts.",
        "",
        "| set | IM x | MM factor | slope x | penalty | buffer | vol response | IM / notional |"
        " P(gap) held-out | P(ins. exhausted) held-out | mean bad debt held-out |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, e, h in (("deployed", dep, hd), ("recommended", rec, hr)):
        p = e.params
        rows.append(
            f"| {label} | {p.im_scale:g} | {p.mm_factor:g} | {p.slope_scale:g} | "
            f"{pct(p.penalty)} | {pct(p.buffer, 0)} | {p.vol_response:g}@{pct(p.base_vol, 0)} |"
            f" {pct(e.capital_cost)} | {pct(h.p_gap_bad_debt, 3)} | "
            f"{pct(h.p_insurance_exhausted)} | {h.bad_debt_mean_usd:,.0f} USD |")
    rows += ["", "ES(99%) margin over the liquidation horizon (EWMA vol) vs the recommended MM:",
             "", "| market | horizon | EWMA vol | ES99 normal | ES99 paths | MM rate | IM rate |",
             "|---|---|---|---|---|---|---|"]
    for r in cal.es_margin:
        rows.append(f"| {r['market']} | {r['horizon_s']:,.0f} s | {pct(r['ewma_vol'], 0)} | "
                    f"{pct(r['es99_normal'])} | {pct(r['es99_paths'])} | {pct(r['mm_rate'])} | "
                    f"{pct(r['im_rate'])} |")
    return rows
