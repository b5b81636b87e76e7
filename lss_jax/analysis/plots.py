"""Figures (matplotlib, Agg backend; imported lazily so the numerical core never needs it)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lss_jax._io import save_figure  # noqa: E402

COLORS = {"exact": "black", "bd": "tab:blue", "lss": "tab:orange", "exact_msm": "tab:gray", "bd_crosscheck": "tab:cyan"}


def _aligned(f, ref, mask):
    ok = mask & np.isfinite(f)
    return f - np.mean(f[ok] - ref[ok])


def four_well_figures(out_dir, *, edges, f_exact, f_bd, f_lss, populated, bd, lss, frame_time, lag_time, grid, rows,
                      p_exact, p_learned, timescales, kT) -> list[Path]:
    """Write the Fig. 2-style panels of the four-well validation; returns the paths."""
    out_dir = Path(out_dir)
    centers = 0.5 * (edges[1:] + edges[:-1])
    width = edges[1] - edges[0]
    paths = []

    # 1. stationary density and free energy: exact / BD / LSS
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, f in (("exact", f_exact), ("bd", f_bd), ("lss", f_lss)):
        p = np.exp(-f / kT) / width
        ax1.plot(centers, p, color=COLORS[name], lw=2 if name == "exact" else 1.3,
                 ls="-" if name != "lss" else "--", label={"exact": "exact", "bd": "BD", "lss": "LSS"}[name])
        fa = _aligned(f, f_exact, populated)
        ax2.plot(centers[populated], fa[populated], color=COLORS[name], lw=2 if name == "exact" else 1.3,
                 ls="-" if name != "lss" else "--")
    ax1.set(xlabel="x", ylabel="stationary density π(x)", title="Stationary density")
    ax2.set(xlabel="x", ylabel="F(x) / kT", title="Free energy (aligned)")
    ax1.legend(frameon=False)
    fig.tight_layout()
    paths.append(out_dir / "stationary_density.png")
    save_figure(fig, paths[-1], dpi=130)
    plt.close(fig)

    # 2. a stretch of trajectory: BD vs LSS, same time window
    window = min(20.0, len(bd) * frame_time, lss.shape[1] * lag_time)
    fig, axes = plt.subplots(2, 1, figsize=(10, 4.2), sharex=True, sharey=True)
    n_bd = int(window / frame_time)
    n_lss = int(window / lag_time)
    axes[0].plot(np.arange(n_bd) * frame_time, bd[:n_bd], color=COLORS["bd"], lw=0.5)
    axes[0].set(ylabel="x", title="BD")
    axes[1].plot(np.arange(n_lss) * lag_time, lss[0, :n_lss], color=COLORS["lss"], lw=0.5)
    axes[1].set(xlabel="time", ylabel="x", title="LSS (frames τ apart)")
    fig.tight_layout()
    paths.append(out_dir / "trajectories.png")
    save_figure(fig, paths[-1], dpi=130)
    plt.close(fig)

    # 3. transition density p_tau(y | x): exact vs learned, maps and slices
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    x_rows = grid[rows]
    extent = (grid[0], grid[-1], x_rows[0], x_rows[-1])
    vmax = max(p_exact.max(), p_learned.max())
    for ax, p, title in ((axes[0], p_exact, "exact"), (axes[1], p_learned, "learned (MDN)")):
        im = ax.imshow(p, origin="lower", aspect="auto", extent=extent, vmin=0, vmax=vmax, cmap="viridis")
        ax.set(xlabel="y = x(t+τ)", title=f"p_τ(y|x), {title}")
    axes[0].set_ylabel("x(t)")
    fig.colorbar(im, ax=axes[:2], shrink=0.9)
    for i, q in enumerate(np.linspace(0.1, 0.9, 4)):
        r = int(q * (len(rows) - 1))
        color = plt.cm.plasma(i / 4)
        axes[2].plot(grid, p_exact[r], color=color, lw=2, label=f"x = {x_rows[r]:.2f}")
        axes[2].plot(grid, p_learned[r], color=color, lw=1.2, ls="--")
    axes[2].set(xlabel="y", ylabel="p_τ(y|x)", title="slices: exact (solid), learned (dashed)")
    axes[2].legend(frameon=False, fontsize=8)
    paths.append(out_dir / "transition_density.png")
    save_figure(fig, paths[-1], dpi=130)
    plt.close(fig)

    # 4. implied timescales
    fig, ax = plt.subplots(figsize=(6, 3.8))
    names = [n for n in ("exact", "exact_msm", "bd", "bd_crosscheck", "lss") if n in timescales]
    k = len(timescales["exact"])
    for j, name in enumerate(names):
        ax.bar(np.arange(k) + (j - len(names) / 2 + 0.5) * 0.15, timescales[name], width=0.15,
               color=COLORS[name], label=name)
    ax.set(xticks=np.arange(k), xticklabels=[f"t{i + 1}" for i in range(k)], yscale="log", ylabel="time",
           title=f"Implied timescales (MSMs at lag τ = {lag_time:g})")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    paths.append(out_dir / "implied_timescales.png")
    save_figure(fig, paths[-1], dpi=130)
    plt.close(fig)
    return paths
