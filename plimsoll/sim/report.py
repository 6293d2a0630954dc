"""Outputs of a simulation: per-step series, Monte Carlo distributions, a report directory.

A report directory holds ``summary.md`` (short, human units), PNG plots (``price.png``: price
with and without feedback and the oracle; ``liquidations.png``: cumulative liquidations;
``insurance.png``: insurance fund and LP share price; ``bad_debt_hist.png``: the Monte Carlo
distribution of bad debt; ``sensitivity.png``: a parameter sweep), ``series.csv`` (one path,
per step) and ``headline.json`` (one JSON line of headline figures).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from plimsoll.risk import empirical_var_es
from plimsoll.sim.engine import CAUSES, SimResult, headline

F = npt.NDArray[np.float64]


def series(res: SimResult, path: int = 0, asset: int = 0) -> dict[str, F]:
    """Per-step series of one path: price with / without feedback and at the oracle (of
    ``asset``), accounts liquidatable and liquidated, keeper wait [blocks], base fee [gwei],
    insurance fund [USD], LP share price, cumulative bad debt by cause [USD]."""
    out: dict[str, F] = {
        "time_s": res.times,
        "price_feedback_usd": res.market[path, :, asset],
        "price_no_feedback_usd": res.fundamental[path, :, asset],
        "oracle_usd": res.oracle[path, :, asset],
        "liquidatable": res.liquidatable[path],
        "liquidated": res.liquidated[path],
        "collateral_liquidated": res.collateral_liquidated[path],
        "keeper_wait_blocks": res.keeper_wait[path],
        "base_fee_gwei": res.base_fee[path],
        "insurance_usd": res.insurance[path],
        "lp_share_price": res.lp_share_price[path],
    }
    for i, c in enumerate(CAUSES):
        out[f"bad_debt_{c}_usd"] = res.bad_debt[path, :, i]
    return out


def write_series_csv(res: SimResult, path: Path, which: int = 0) -> None:
    s = series(res, which)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(list(s))
        for row in zip(*s.values(), strict=True):
            w.writerow([f"{v:.6g}" for v in row])


def distribution(res: SimResult, confidence: float = 0.99) -> dict[str, float]:
    """Monte Carlo figures: headline plus VaR / ES of the protocol's loss (bad debt booked,
    USD) at ``confidence`` (``plimsoll.risk.empirical_var_es``)."""
    h = headline(res)
    loss = res.bad_debt_total
    m = empirical_var_es(-loss, confidence)
    h[f"protocol_loss_var{int(confidence * 100)}_usd"] = float(m.var)
    h[f"protocol_loss_es{int(confidence * 100)}_usd"] = float(m.es)
    return h


@dataclass
class Sensitivity:
    """A one-parameter sweep: parameter name, values and the metric at each (label: unit)."""

    parameter: str
    values: list[float]
    metrics: dict[str, list[float]] = field(default_factory=dict)


def usd(x: float) -> str:
    return f"{x:,.0f} USD"


def pct(x: float, digits: int = 2) -> str:
    return f"{100 * x:.{digits}f}%"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_prices(runs: dict[str, SimResult], path: Path, asset: int = 0) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=90)
    first = next(iter(runs.values()))
    h = first.times / 3600
    ax.plot(h, first.fundamental[0, :, asset], color="black", lw=1.2, label="no feedback")
    for label, r in runs.items():
        ax.plot(h, r.market[0, :, asset], lw=1.0, label=f"market, {label}")
        ax.step(h, r.oracle[0, :, asset], where="post", lw=0.7, ls="--",
                label=f"oracle, {label}")
    ax.set_xlabel("hours")
    ax.set_ylabel(f"{first.assets[asset]} [USD]")
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _two_panels(
    runs: dict[str, SimResult],
    path: Path,
    panels: tuple[tuple[str, Callable[[SimResult], Any]], tuple[str, Callable[[SimResult], Any]]],
) -> None:
    """Two side-by-side time series per run: (title, series of a run) for each panel."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), dpi=90)
    for label, r in runs.items():
        h = r.times / 3600
        for ax, (_, series) in zip(axes, panels, strict=True):
            ax.plot(h, series(r), label=label)
    for ax, (title, _) in zip(axes, panels, strict=True):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("hours")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_cumulative(runs: dict[str, SimResult], path: Path) -> None:
    _two_panels(
        runs,
        path,
        (
            (
                "cumulative liquidations",
                lambda r: np.cumsum(r.liquidated[0] + r.collateral_liquidated[0]),
            ),
            ("cumulative bad debt [kUSD]", lambda r: r.bad_debt[0].sum(-1) / 1e3),
        ),
    )


def plot_insurance(runs: dict[str, SimResult], path: Path) -> None:
    _two_panels(
        runs,
        path,
        (
            ("insurance fund [kUSD]", lambda r: r.insurance[0] / 1e3),
            ("LP share price", lambda r: r.lp_share_price[0]),
        ),
    )


def plot_histogram(mc: dict[str, SimResult], path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=90)
    hi = max(float(r.bad_debt_total.max()) for r in mc.values()) / 1e3
    bins = np.linspace(0, max(hi, 1e-3), 40)
    for label, r in mc.items():
        ax.hist(r.bad_debt_total / 1e3, bins=bins, alpha=0.55, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("bad debt per path [kUSD]")
    ax.set_ylabel("paths")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_sensitivity(sens: list[Sensitivity], path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, len(sens), figsize=(3.2 * len(sens), 3.0), dpi=90,
                             squeeze=False)
    for ax, s in zip(axes[0], sens, strict=True):
        for name, vals in s.metrics.items():
            ax.plot(s.values, vals, marker="o", label=name)
        ax.set_xlabel(s.parameter, fontsize=8)
        ax.set_yscale("symlog", linthresh=1e-4)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(
    out: Path,
    title: str,
    runs: dict[str, SimResult],
    mc: dict[str, SimResult] | None = None,
    sens: list[Sensitivity] | None = None,
    notes: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Writes the report directory; returns the headline figures (also in headline.json)."""
    out.mkdir(parents=True, exist_ok=True)
    head: dict[str, Any] = {"title": title}
    lines = [f"# {title}", ""]
    if notes:
        lines += notes + [""]
    lines += ["## Scenario runs (one path)", "",
              "| run | liquidations | bad debt | of it: gap / keeper delay / penalty rules / "
              "feedback | net of recovered collateral | recovered sold to the fund | "
              "insurance left | LP drawdown | lowest price (market / no feedback) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for label, r in runs.items():
        bd = r.bad_debt[0, -1]
        n_liq = int(r.liquidated[0].sum() + r.collateral_liquidated[0].sum())
        lines.append(
            f"| {label} | {n_liq} | {usd(bd.sum())} | "
            + " / ".join(usd(x) for x in bd)
            + f" | {usd(r.net_loss[0])} | {usd(r.recovered_sold[0, -1])} | "
            f"{usd(r.insurance[0, -1])} | {pct(r.lp_drawdown[0])} | "
            f"{r.market[0, :, 0].min():,.2f} / {r.fundamental[0, :, 0].min():,.2f} USD |")
        head[label] = {
            "liquidations": n_liq,
            "bad_debt_usd": round(float(bd.sum()), 2),
            **{f"bad_debt_{c}_usd": round(float(x), 2) for c, x in zip(CAUSES, bd, strict=True)},
            "net_loss_usd": round(float(r.net_loss[0]), 2),
            "recovered_sold_usd": round(float(r.recovered_sold[0, -1]), 2),
            "insurance_left_usd": round(float(r.insurance[0, -1]), 2),
            "lp_drawdown": round(float(r.lp_drawdown[0]), 5),
            "accounts_bad_debt": int(r.bad_accounts[0]),
            "accounts_met_mm_then_bad_debt": int(r.gap_accounts[0]),
        }
    plot_prices(runs, out / "price.png")
    plot_cumulative(runs, out / "liquidations.png")
    plot_insurance(runs, out / "insurance.png")
    lines += ["", "![price](price.png)", "![liquidations](liquidations.png)",
              "![insurance](insurance.png)", ""]
    write_series_csv(next(iter(runs.values())), out / "series.csv")
    if mc:
        lines += ["## Monte Carlo", "",
                  "| run | paths | mean bad debt | 99% VaR / ES of loss | P(insurance exhausted) |"
                  " P(met MM, then bad debt) | mean LP drawdown |", "|---|---|---|---|---|---|---|"]
        for label, r in mc.items():
            d = distribution(r)
            lines.append(
                f"| {label} | {r.n_paths} | {usd(d['bad_debt_mean_usd'])} | "
                f"{usd(d['protocol_loss_var99_usd'])} / {usd(d['protocol_loss_es99_usd'])} | "
                f"{pct(d['p_insurance_exhausted'])} | {pct(d['p_gap_bad_debt'], 3)} | "
                f"{pct(d['lp_drawdown_mean'])} |")
            head[f"mc_{label}"] = {k: round(v, 6) for k, v in d.items()}
        plot_histogram(mc, out / "bad_debt_hist.png")
        lines += ["", "![bad debt](bad_debt_hist.png)", ""]
    if sens:
        plot_sensitivity(sens, out / "sensitivity.png")
        lines += ["## Sensitivity", "", "![sensitivity](sensitivity.png)", ""]
        head["sensitivity"] = [{"parameter": s.parameter, "values": s.values, **s.metrics}
                               for s in sens]
    if extra:
        head.update(extra)
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    (out / "headline.json").write_text(json.dumps(head, separators=(",", ":")) + "\n")
    return head
