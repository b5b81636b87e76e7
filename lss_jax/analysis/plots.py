"""Every figure of lss_jax in one place (matplotlib, Agg backend).

The analysis modules compute numbers and never import this module; whoever wants a figure imports it: the
command line (``report``, ``demo``: :mod:`lss_jax.cli.commands`), the end-to-end experiments
(:mod:`lss_jax.pipelines`, :mod:`lss_jax.adaptive.four_well`), notebooks and benchmarks. Importing it selects
matplotlib's Agg backend, so it is imported lazily, where a figure is drawn. :func:`report_figures` draws those
of the molecular validation report (:func:`lss_jax.analysis.molecular.run_validation`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lss_jax.engine.io import atomic_path, save_figure  # noqa: E402

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

    # 1. stationary density, free energy, and the error of every compared bin: exact / BD / LSS
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 3.8))
    for name, f in (("exact", f_exact), ("bd", f_bd), ("lss", f_lss)):
        p = np.exp(-f / kT) / width
        ax1.plot(centers, p, color=COLORS[name], lw=2 if name == "exact" else 1.3,
                 ls="-" if name != "lss" else "--", label={"exact": "exact", "bd": "BD", "lss": "LSS"}[name])
        fa = _aligned(f, f_exact, populated)
        ax2.plot(centers[populated], fa[populated], color=COLORS[name], lw=2 if name == "exact" else 1.3,
                 ls="-" if name != "lss" else "--")
        if name != "exact":
            err = np.where(populated, fa - f_exact, np.nan)
            rmse = np.sqrt(np.nanmean(err**2))
            ax3.plot(centers, err, "o-" if name == "lss" else ".-", ms=3, color=COLORS[name], lw=1,
                     label=f"{'LSS' if name == 'lss' else 'BD'} (RMSE {rmse:.3f} kT)")
    ax1.set(xlabel="x", ylabel="stationary density π(x)", title="Stationary density")
    ax2.set(xlabel="x", ylabel="F(x) / kT", title="Free energy (aligned)")
    ax3.axhline(0, color="k", lw=0.8)
    ax3.set(xlabel="x", ylabel="F − F_exact (kT)", title="Error per bin (π ≥ 10⁻³ max π)")
    ax3.legend(frameon=False, fontsize=8)
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


def _fes_panel(ax, f, xe, ye, title, vmax, xlabel, ylabel):
    fa = f - np.nanmin(np.where(np.isfinite(f), f, np.nan))
    fa = np.where(np.isfinite(fa), fa, np.nan)
    im = ax.pcolormesh(xe, ye, fa.T, vmin=0, vmax=vmax, cmap="viridis", shading="flat")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return im


def _phi_psi_figure(path, f2_md, f2_lss, p2_md, xe, ye, vmax) -> Path:
    """F(phi, psi): MD, LSS and their difference."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    im = _fes_panel(axes[0], f2_md, xe, ye, "MD: F(φ, ψ) / kT", vmax, "φ (rad)", "ψ (rad)")
    _fes_panel(axes[1], f2_lss, xe, ye, "LSS: F(φ, ψ) / kT", vmax, "φ (rad)", "ψ (rad)")
    fig.colorbar(im, ax=axes[:2])
    ok = np.isfinite(f2_md) & np.isfinite(f2_lss) & (p2_md >= 1e-3 * p2_md.max())
    with np.errstate(invalid="ignore"):
        diff = np.where(ok, f2_lss - f2_md, np.nan)
    diff -= np.nanmean(diff)
    im2 = axes[2].pcolormesh(xe, ye, diff.T, vmin=-1.5, vmax=1.5, cmap="RdBu_r", shading="flat")
    axes[2].set(title="LSS − MD (aligned, kT)", xlabel="φ (rad)", ylabel="ψ (rad)")
    fig.colorbar(im2, ax=axes[2])
    save_figure(fig, path, dpi=120)
    plt.close(fig)
    return path


def _profile_panel(ax, edges, f_md, f_lss, mask, xlabel, title, f_md_se=None):
    """A 1-D free-energy profile of MD (with its 2-SE band) and the LSS, aligned on the compared bins."""
    c = 0.5 * (edges[1:] + edges[:-1])
    shift = np.nanmin(np.where(mask, f_md, np.nan))
    ax.plot(c[mask], f_md[mask] - shift, color=COLORS["bd"], label="MD")
    if f_md_se is not None:
        ax.fill_between(c[mask], (f_md - 2 * f_md_se - shift)[mask], (f_md + 2 * f_md_se - shift)[mask],
                        color=COLORS["bd"], alpha=0.25, label="MD ± 2 SE (5 blocks)")
    fl = _aligned(f_lss, f_md, mask & np.isfinite(f_lss)) - shift
    ax.plot(c[mask], fl[mask], color=COLORS["lss"], ls="--", label="LSS")
    ax.set(xlabel=xlabel, ylabel="F / kT", title=title)
    ax.legend(frameon=False, fontsize=8)


def molecular_figures(out_dir, *, psi1_edges, f_md, f_md_se, f_lss, mask1, f2_md, f2_lss, p2_md, xe, ye, t_md, t_md_se,
                      t_lss, t_lss_se, ft_md, ft_lss, txe, tye, rg_md, rg_lss, nov_lss, nov_md, lss_latent, lag_time,
                      conformers, kT, tic1=None) -> list[Path]:
    """Figures of the molecular validation (see :func:`lss_jax.analysis.molecular.run_validation`). ``f2_md=None``
    (atoms without backbone torsions) leaves out F(phi, psi); ``tic1 = (edges, f_md, f_lss, mask, f_md_se)``
    adds F(TIC 1) beside the TICA surfaces."""
    out_dir = Path(out_dir)
    paths = []
    vmax = 8.0
    if f2_md is not None:
        paths.append(_phi_psi_figure(out_dir / "free_energy_phi_psi.png", f2_md, f2_lss, p2_md, xe, ye, vmax))

    # F(psi_1) with block errors; implied timescales
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    _profile_panel(ax1, psi1_edges, f_md, f_lss, mask1, "ψ₁ (SRV)", "Free energy along the slowest coordinate",
                   f_md_se)
    k = len(t_md)
    ax2.bar(np.arange(k) - 0.18, t_md, 0.35, yerr=2 * np.nan_to_num(t_md_se), color=COLORS["bd"], label="MD")
    ax2.bar(np.arange(k) + 0.18, t_lss, 0.35, yerr=2 * np.nan_to_num(t_lss_se), color=COLORS["lss"], label="LSS")
    ax2.set(xticks=np.arange(k), xticklabels=[f"t{i + 1}" for i in range(k)], ylabel="ps",
            title=f"Implied timescales (lag {lag_time:g} ps, ± 2 SE)")
    ax2.legend(frameon=False)
    fig.tight_layout()
    paths.append(out_dir / "free_energy_psi1_timescales.png")
    save_figure(fig, paths[-1], dpi=120)
    plt.close(fig)

    # TICA surfaces (and F(TIC 1))
    fig, axes = plt.subplots(1, 3 if tic1 is not None else 2, figsize=(15 if tic1 is not None else 10, 4))
    im = _fes_panel(axes[0], ft_md, txe, tye, "MD in MD's TICs", vmax, "TIC 1", "TIC 2")
    _fes_panel(axes[1], ft_lss, txe, tye, "LSS in MD's TICs", vmax, "TIC 1", "TIC 2")
    fig.colorbar(im, ax=axes[:2])
    if tic1 is not None:
        edges_t1, f_t1_md, f_t1_lss, mask_t1, f_t1_se = tic1
        _profile_panel(axes[2], edges_t1, f_t1_md, f_t1_lss, mask_t1, "TIC 1", "F(TIC 1)", f_t1_se)
    paths.append(out_dir / "tica.png")
    save_figure(fig, paths[-1], dpi=120)
    plt.close(fig)

    # structures: Rg, novelty, latent trajectories
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    bins = np.linspace(min(rg_md.min(), rg_lss.min()), max(rg_md.max(), rg_lss.max()), 60)
    axes[0].hist(rg_md, bins, density=True, color=COLORS["bd"], alpha=0.6, label="MD")
    axes[0].hist(rg_lss, bins, density=True, histtype="step", color=COLORS["lss"], lw=1.5, label="LSS")
    axes[0].set(xlabel="radius of gyration (nm)", title="Radius of gyration")
    axes[0].legend(frameon=False)
    if nov_lss is not None:
        b = np.linspace(0, max(nov_lss.max(), nov_md.max()), 50)
        axes[1].hist(nov_md, b, density=True, color=COLORS["bd"], alpha=0.6, label="independent MD")
        axes[1].hist(nov_lss, b, density=True, histtype="step", color=COLORS["lss"], lw=1.5, label="LSS")
        axes[1].legend(frameon=False)
    axes[1].set(xlabel="RMSD to nearest training frame (nm)", title="Novelty")
    n_show = min(300, lss_latent.shape[1])
    for i in range(min(3, lss_latent.shape[0])):
        axes[2].plot(np.arange(n_show) * lag_time, lss_latent[i, :n_show, 0], lw=0.7)
    axes[2].set(xlabel="time (ps)", ylabel="ψ₁", title="LSS latent trajectories")
    fig.tight_layout()
    paths.append(out_dir / "structures.png")
    save_figure(fig, paths[-1], dpi=120)
    plt.close(fig)

    # a few decoded conformers in 3-D
    fig = plt.figure(figsize=(3 * conformers.n_frames, 3.2))
    bonds = [(a.index, b.index) for a, b in conformers.topology.bonds]
    colors = {"C": "0.3", "N": "tab:blue", "O": "tab:red", "S": "gold", "H": "0.85"}
    for i in range(conformers.n_frames):
        ax = fig.add_subplot(1, conformers.n_frames, i + 1, projection="3d")
        xyz = conformers.xyz[i] * 10
        for a, b in bonds:
            ax.plot(*xyz[[a, b]].T, color="0.5", lw=2)
        ax.scatter(*xyz.T, s=60, c=[colors.get(a.element.symbol, "k") for a in conformers.topology.atoms], depthshade=False)
        center, half = xyz.mean(0), 0.55 * np.ptp(xyz, axis=0).max()
        ax.set(xlim=(center[0] - half, center[0] + half), ylim=(center[1] - half, center[1] + half),
               zlim=(center[2] - half, center[2] + half))
        ax.set_box_aspect((1, 1, 1), zoom=1.5)
        ax.set_axis_off()
        ax.set_title(f"decoded {i + 1}", fontsize=9)
    paths.append(out_dir / "conformers.png")
    save_figure(fig, paths[-1], dpi=110)
    plt.close(fig)
    return paths


def report_figures(out_dir, validation, model) -> list[Path]:
    """Every figure of the molecular validation report, from a
    :func:`lss_jax.analysis.molecular.run_validation` result, into ``out_dir`` (created): ``uncertainty.png``
    (ensembles only), those of :func:`molecular_figures`, ``folding.png`` (Trp-cage), ``decoder.png`` and
    ``chapman_kolmogorov.png`` (when the test could be computed). Returns the paths.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures, paths = validation.figures, []
    if figures["ensemble"]:
        uncertainty_map(model, path=out_dir / "uncertainty.png")
        paths.append(out_dir / "uncertainty.png")
    paths += molecular_figures(out_dir, **figures["molecular"])
    if figures["folding"] is not None:
        paths.append(folding_figure(out_dir / "folding.png", figures["folding"]))
    paths.append(decoder_figure(out_dir / "decoder.png", **figures["decoder"]))
    if figures["chapman_kolmogorov"] is not None:
        plot_chapman_kolmogorov(**figures["chapman_kolmogorov"], unit="ps", path=out_dir / "chapman_kolmogorov.png")
        paths.append(out_dir / "chapman_kolmogorov.png")
    return paths


def decoder_figure(path, md_traj, round_trip, lss_traj, metrics: dict, *, kT: float = 1.0, seed: int = 0,
                   max_frames: int = 20_000):
    """Which network is at fault: MD, decode(encode(MD)) and the full LSS side by side.

    Top row: F(phi, psi) of the three (when the atoms define backbone torsions). Bottom row: the relative
    deviation of every bond length from its MD mean, the deviation of every bond angle from its MD mean
    (degrees), and the per-atom RMSF. ``metrics`` is the ``decoder`` block of :func:`lss_jax.analysis.molecular.run_validation`.
    """
    from lss_jax.analysis import structure
    from lss_jax.analysis.distributions import free_energy_2d
    from lss_jax.analysis.torsions import phi_psi

    rng = np.random.default_rng(seed)
    sub = lambda t: t if t.n_frames <= max_frames else t[np.sort(rng.choice(t.n_frames, max_frames, replace=False))]  # noqa: E731
    trajs = {"MD": sub(md_traj), "decode(encode(MD))": sub(round_trip), "LSS": sub(lss_traj)}
    colors = {"MD": COLORS["bd"], "decode(encode(MD))": "tab:green", "LSS": COLORS["lss"]}
    has_torsions = "free_energy_phi_psi" in metrics["round_trip"]
    fig, axes = plt.subplots(2 if has_torsions else 1, 3, figsize=(15, 8.6 if has_torsions else 4.2), squeeze=False,
                             layout="constrained")
    if has_torsions:
        surfaces = {name: free_energy_2d(*phi_psi(t).T, kT=kT) for name, t in trajs.items()}
        f_md = surfaces["MD"][0]
        vmax = np.nanmax(np.where(np.isfinite(f_md), f_md - np.nanmin(f_md[np.isfinite(f_md)]), np.nan))
        rmse = {"MD": None, "decode(encode(MD))": metrics["round_trip"]["free_energy_phi_psi"]["rmse_kT"],
                "LSS": metrics["lss"]["free_energy_phi_psi"]["rmse_kT"]}
        for ax, (name, (f, _, xe, ye)) in zip(axes[0], surfaces.items()):
            title = name if rmse[name] is None else f"{name}: RMSE {rmse[name]:.2f} kT"
            im = _fes_panel(ax, f, xe, ye, title, vmax, "φ", "ψ")
        fig.colorbar(im, ax=axes[0].tolist(), label="F / kT")
    bottom = axes[-1]
    pairs, l_md, triples, a_md = structure.bonded_geometry(trajs["MD"])
    mean_l, mean_a = l_md.mean(0), a_md.mean(0)
    dev = {name: structure._measure(t, pairs, triples) for name, t in trajs.items()}
    b_edges = np.linspace(-0.15, 0.15, 121)
    a_edges = np.linspace(-25, 25, 101)
    for name, (lengths, angles) in dev.items():
        style = dict(histtype="step", lw=1.5, color=colors[name], label=name, density=True)
        bottom[0].hist(np.clip((lengths / mean_l - 1).ravel(), b_edges[0], b_edges[-1]), b_edges, **style)
        bottom[1].hist(np.clip(np.degrees(angles - mean_a).ravel(), a_edges[0], a_edges[-1]), a_edges, **style)
    geo = metrics["round_trip"]["geometry"], metrics["lss"]["geometry"]
    bottom[0].set(xlabel="bond length / MD mean − 1", yscale="log",
                  title=f"bonds: MAD {100 * geo[0]['reference_bond_length_mad_relative']:.2f} % MD, "
                        f"{100 * geo[0]['bond_length_mad_relative']:.2f} % decoded, "
                        f"{100 * geo[1]['bond_length_mad_relative']:.2f} % LSS")
    bottom[1].set(xlabel="angle − MD mean (degrees)", yscale="log",
                  title=f"angles: MAD {geo[0]['reference_angle_mad_degrees']:.2f}° / {geo[0]['angle_mad_degrees']:.2f}° / "
                        f"{geo[1]['angle_mad_degrees']:.2f}°")
    bottom[0].legend(frameon=False, fontsize=8)
    atoms = np.arange(md_traj.n_atoms)
    width = 0.27
    rmsf = {"MD": metrics["round_trip"]["rmsf_nm"]["md"], "decode(encode(MD))": metrics["round_trip"]["rmsf_nm"]["generated"],
            "LSS": metrics["lss"]["rmsf_nm"]["generated"]}
    for k, (name, values) in enumerate(rmsf.items()):
        bottom[2].bar(atoms + (k - 1) * width, values, width, color=colors[name], label=name)
    bottom[2].set_xticks(atoms, [a.name for a in md_traj.topology.atoms], rotation=90, fontsize=7)
    bottom[2].set(ylabel="RMSF (nm)", title="per-atom fluctuation")
    fig.suptitle("Decoder diagnostics: the decoder alone (decode(encode(MD))) and the full LSS against MD")
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def implied_timescales_vs_lag(lags, timescales, *, frame_time: float = 1.0, unit: str = "ps", path=None, errors=None,
                              chosen=None):
    """Plot implied timescales ``[n_lags, k]`` against the lag (both in ``unit``); the grey area is t < lag.

    Converged (flat) curves indicate a lag long enough for Markovian dynamics. ``errors`` (``[n_lags, k]``, in
    ``unit``) draws error bars; ``chosen`` (a lag in frames) marks the lag chosen (``lss-jax train --lag auto``).
    Returns the figure, and writes it to ``path`` if given.
    """
    lag_times = np.asarray(lags, np.float64) * frame_time
    timescales = np.asarray(timescales, np.float64)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for i in range(timescales.shape[1]):
        if errors is None:
            ax.plot(lag_times, timescales[:, i], "o-", label=f"t{i + 1}")
        else:
            err = np.asarray(errors, np.float64)[:, i]
            ax.errorbar(lag_times, timescales[:, i], yerr=np.where(np.isfinite(err), err, np.nan), fmt="o-",
                        capsize=2, label=f"t{i + 1} ± SE")
    ax.fill_between(lag_times, 0, lag_times, color="0.85", label="t < lag")
    if chosen is not None:
        ax.axvline(chosen * frame_time, color="k", ls="--", lw=1, label=f"chosen lag ({chosen * frame_time:g} {unit})")
    ax.set(xlabel=f"lag ({unit})", ylabel=f"implied timescale ({unit})", yscale="log", title="Implied timescales vs lag")
    if errors is not None or chosen is not None:
        ax.set_xscale("log")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path, dpi=120)
    return fig


def plot_chapman_kolmogorov(result: dict, *, frame_time: float = 1.0, unit: str = "frames", labels=None, path=None):
    """Grid of CK panels (row I, column J): predicted ``P(tau)^k`` (line, band = 1 s.d.) vs estimated (points).

    Args:
        result: from :func:`lss_jax.analysis.chapman_kolmogorov.chapman_kolmogorov`.
        frame_time: time per frame, for the x axis.
        unit: time unit label.
        labels: names of the sets (default ``0..n_sets-1``).
        path: write the figure there if given (format from the suffix).

    Returns:
        a :class:`matplotlib.figure.Figure` on an Agg canvas (pyplot is not used).

    Example:
        >>> result = {"lags": np.array([1, 2]), "predicted": np.full((2, 2, 2), 0.5), "estimated": np.full((2, 2, 2), 0.5),
        ...           "predicted_err": np.zeros((2, 2, 2)), "estimated_err": np.full((2, 2, 2), 0.01)}
        >>> len(plot_chapman_kolmogorov(result).axes)
        4
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    for key in ("lags", "predicted", "estimated", "predicted_err", "estimated_err"):
        if key not in result:
            raise ValueError(f"result lacks {key!r}; pass the dict returned by chapman_kolmogorov.")
    t = np.concatenate([[0.0], np.asarray(result["lags"], float) * frame_time])
    n_sets = result["predicted"].shape[1]
    labels = [str(k) for k in range(n_sets)] if labels is None else [str(x) for x in labels]
    # an Agg canvas of its own: no pyplot state, and the caller's matplotlib backend is left alone
    fig = Figure(figsize=(2.4 * n_sets + 0.6, 2.0 * n_sets + 0.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_sets, n_sets, sharex=True, sharey=True, squeeze=False)
    for i in range(n_sets):
        for j in range(n_sets):
            ax = axes[i, j]
            start = float(i == j)
            p = np.concatenate([[start], result["predicted"][:, i, j]])
            pe = np.concatenate([[0.0], result["predicted_err"][:, i, j]])
            ax.plot(t, p, "-", color="tab:blue", label="predicted P(τ)^k")
            ax.fill_between(t, p - pe, p + pe, color="tab:blue", alpha=0.25, lw=0)
            ax.errorbar(t[1:], result["estimated"][:, i, j], yerr=result["estimated_err"][:, i, j], fmt="o",
                        ms=3, color="tab:orange", label="estimated P(kτ)")
            ax.set_title(f"{labels[i]} → {labels[j]}", fontsize=8)
            ax.set_ylim(-0.05, 1.05)
            if i == n_sets - 1:
                ax.set_xlabel(f"lag ({unit})")
    axes[0, 0].legend(frameon=False, fontsize=7)
    fig.suptitle("Chapman–Kolmogorov test" + ("" if result.get("passed", True) else " (failed)"), fontsize=10)
    fig.tight_layout()
    if path is not None:
        path = Path(path)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".") or "png")
    return fig


def uncertainty_map(model, *, path=None, n_grid: int = 40, seed: int = 0):
    """Epistemic uncertainty of the kinetics and training-data density over the leading latent coordinates.

    Left: ensemble disagreement (:meth:`lss_jax.LSS.uncertainty`, nats); right: log10 of the training-data
    density; training frames overlaid. Other latent coordinates are held at the training median. Needs a
    model trained with ``propagator.ensemble_size >= 2``. Returns the figure (written to ``path`` if given).
    """
    import jax

    rng = np.random.default_rng(seed)
    train = model.from_unit(model.start_points)
    m = train.shape[1]
    lo, hi = train.min(0), train.max(0)
    if m == 1:
        grid = np.linspace(lo[0], hi[0], 4 * n_grid)[:, None]
        unc, dens = model.uncertainty(jax.random.key(seed), grid), model.data_density(grid)
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(grid[:, 0], unc, label="epistemic uncertainty (nats)")
        ax2 = ax.twinx()
        ax2.semilogy(grid[:, 0], dens, color="C1", label="training density")
        ax.set(xlabel=r"$\psi_1$", ylabel="uncertainty (nats)")
        ax2.set_ylabel("training density")
    else:
        g1, g2 = np.meshgrid(np.linspace(lo[0], hi[0], n_grid), np.linspace(lo[1], hi[1], n_grid), indexing="ij")
        pts = np.repeat(np.median(train, 0)[None], n_grid * n_grid, axis=0)
        pts[:, 0], pts[:, 1] = g1.ravel(), g2.ravel()
        unc = model.uncertainty(jax.random.key(seed), pts).reshape(n_grid, n_grid)
        dens = model.data_density(pts).reshape(n_grid, n_grid)
        shown = train[rng.choice(len(train), min(len(train), 2000), replace=False)]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for ax, values, title, label in ((axes[0], unc, "ensemble disagreement", "nats"),
                                         (axes[1], np.log10(np.maximum(dens, 1e-12)), "training-data density", "log10")):
            mesh = ax.pcolormesh(g1, g2, values, shading="auto", cmap="viridis")
            ax.scatter(shown[:, 0], shown[:, 1], s=1, c="w", alpha=0.3)
            fig.colorbar(mesh, ax=ax, label=label)
            ax.set(xlabel=r"$\psi_1$", ylabel=r"$\psi_2$", title=title)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path, dpi=120)
        plt.close(fig)
    return fig


def adaptive_four_well_figure(path, runs: Sequence[dict], *, profiles_run: int = 0) -> Path:
    """RMSE vs MD steps for every arm (mean and min-max over ``runs``) and per-round free-energy profiles.

    ``runs`` are metrics from :func:`lss_jax.adaptive.four_well.run_adaptive_four_well` with the same configuration except the seed
    (extra arms are drawn too); the profiles of the adaptive arm
    are those of ``runs[profiles_run]``.
    """
    path = Path(path)
    target = runs[0]["target_rmse_kT"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    labels = {"plain": "plain continuation", "adaptive": "adaptive sampling", "random_seeds": "random seeds (ablation)",
              "beta_1": "β = 1 (ablation)"}
    colors = iter(["tab:green", "tab:red", "tab:purple", "tab:brown"])
    names = runs[0].get("arms", ["adaptive", "plain", "random_seeds"])
    for name in ["plain"] + [n for n in names if n != "plain"]:
        if name not in runs[0]:
            continue
        color = {"plain": "tab:blue", "adaptive": "tab:orange"}.get(name) or next(colors)
        steps = np.asarray(runs[0][name]["md_steps"])
        rmse = np.array([r[name]["rmse"] for r in runs])
        label = labels.get(name, name.replace("_", " "))
        ax1.plot(steps, rmse.mean(0), "o-", color=color, ms=3, label=f"{label} (mean of {len(runs)})")
        if len(runs) > 1:
            ax1.fill_between(steps, rmse.min(0), rmse.max(0), color=color, alpha=0.2, lw=0)
    ax1.axhline(target, color="gray", ls=":", lw=1)
    ax1.set(xscale="log", yscale="log", xlabel="BD steps (initial run included)", ylabel="free-energy RMSE / kT",
            title="LSS free energy vs MD budget")
    ax1.legend(frameon=False, fontsize=8)

    run = runs[profiles_run]
    ref = run["reference"]
    centers, f_exact = np.asarray(ref["bin_centers"]), np.asarray(ref["f_exact"])
    mask = np.asarray(ref["populated"])
    f_exact = f_exact - f_exact[mask].min()
    evals = run["adaptive"]["evaluations"]
    cmap = plt.get_cmap("viridis")

    def aligned(f):  # shift on the bins the LSS really sampled; floored bins stay as a plateau at the top
        f = np.asarray(f)
        sampled = mask & (f < f.max() - 1e-9)
        return f - np.mean(f[sampled] - f_exact[sampled]) if sampled.any() else f

    for i, ev in enumerate(evals):
        ax2.plot(centers[mask], aligned(ev["f_lss"])[mask], color=cmap(i / max(1, len(evals) - 1)), lw=1,
                 label=f"round {i}: {run['adaptive']['md_steps'][i]:,} steps" if i in (0, len(evals) - 1) else None)
    last_plain = run["plain"]["evaluations"][len(evals) - 1]
    ax2.plot(centers[mask], aligned(last_plain["f_lss"])[mask], color="tab:blue", ls="--", lw=1,
             label=f"plain, {run['plain']['md_steps'][len(evals) - 1]:,} steps")
    ax2.plot(centers[mask], f_exact[mask], color="black", lw=2, label="exact")
    ax2.set(xlabel="x", ylabel="F(x) / kT (unvisited bins at the floor)", ylim=(-0.5, 9),
            title=f"Adaptive arm per round (seed {run['settings']['config']['seed']})")
    ax2.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=130)
    plt.close(fig)
    return path


def folding_figure(path, folding: dict) -> Path:
    """Folding of a protein model, MD against LSS: folded fraction, transition rate and RMSD to the native
    structure in the folded state (``folding`` of the report, :func:`lss_jax.systems.trp_cage.report_metrics`)."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), layout="constrained")
    panels = [("folded_fraction", "folded fraction", None), ("transitions_per_us", "transitions per µs", None)]
    for ax, (key, label, _) in zip(axes, panels):
        f = folding[key]
        ax.bar([0, 1], [f["md"], f["lss"]], yerr=[2 * np.nan_to_num(f["md_se"]), 0], color=[COLORS["bd"], COLORS["lss"]])
        ax.set(xticks=[0, 1], xticklabels=["MD", "LSS"], ylabel=label,
               title=f"{label}\n(frames {folding['lss_frame_time_ps']:g} ps apart, MD ± 2 SE)")
    r = folding["rmsd_to_native_folded_nm"]
    axes[2].bar([0, 1], [r["md"][0], r["lss"][0]], yerr=[r["md"][1], r["lss"][1]], color=[COLORS["bd"], COLORS["lss"]])
    axes[2].set(xticks=[0, 1], xticklabels=["MD", "LSS"], ylabel="Cα RMSD (nm)",
                title="RMSD to the native structure\nin the folded state (± sd)")
    save_figure(fig, path, dpi=120)
    plt.close(fig)
    return path
