"""All the field's kinetic and distributional metrics side by side: generated (LSS) against MD, beside the
MD-half vs MD-half noise floor (float64 NumPy/SciPy + deeptime, host side).

The metrics that MDGen / Timewarp / ITO-style papers report, computed with the same estimators on the
reference MD and on generated trajectories (:func:`compare_kinetics`, the ``kinetics`` block of ``metrics.json``):
Jensen-Shannon distances of torsions, (phi, psi) and TICs (:mod:`lss_jax.analysis.distributions`),
metastable-state kinetics (:mod:`lss_jax.analysis.metastable`: populations, stationary distribution, coarse
transition matrix, flux, mean first-passage times) and torsion decorrelation times
(:mod:`lss_jax.analysis.autocorrelation`), as a JSON-ready nested dict.

Keys of :func:`compare_kinetics` (``metrics.json``; dotted paths into the nested dict). Every metric entry holds
``lss_vs_md`` (generated vs the full MD) and ``md_vs_md`` (first vs second time half of every MD trajectory:
the noise floor; it compares half-size samples, so it is a conservative, somewhat high floor), both floats
where smaller is better, plus the raw values behind them. ``nan`` is written as ``None``.

=========================================  ============================================================================
key                                        ``lss_vs_md`` / ``md_vs_md`` (raw values beside them)
=========================================  ============================================================================
``jsd.torsions.<kind>:<residue>``          JSD of one torsion marginal, e.g. ``jsd.torsions.phi:ALA2`` (periodic bins)
``jsd.phi_psi``                            mean over residues of the JSD of the (phi, psi) histogram
``jsd.phi_psi_residues.<residue>``         JSD of (phi, psi) of one residue
``jsd.tica_0``                             JSD of TIC 0 (MD-fitted TICA; bins span the MD range, outliers in edge bins)
``jsd.tica_01``                            JSD of (TIC 0, TIC 1)
``msm.populations``                        total-variation distance of metastable populations (frame counts);
                                           ``md``, ``lss``, ``md_half_1``, ``md_half_2``, ``md_err``, ``lss_err``
``msm.stationary``                         total-variation distance of the MSM stationary distribution over sets
``msm.transition_matrix``                  max abs difference of the coarse transition matrices P_IJ(tau)
``msm.flux``                               mean ``|ln(F_lss / F_md)|`` over off-diagonal gross fluxes (1/time)
``msm.mfpt``                               mean ``|ln(MFPT_lss / MFPT_md)|`` over off-diagonal pairs (time units)
``msm.info``                               ``n_clusters``, ``n_metastable``, lags in frames, ``timescales_md`` (MSM
                                           implied timescales, time units), ``n_active`` per data set, ``notes``
                                           (connectivity and lag warnings, strings)
``autocorrelation.<kind>:<residue>``       ``|ln(tau_lss / tau_md)|`` of the integrated time on the common grid;
                                           ``md``, ``lss``, ``md_half_1``, ``md_half_2`` (times), ``*_e_folding``
``settings``                               lag times, frame times, bins, seeds used
=========================================  ============================================================================

References:
    Jing, B. et al. "Generative modeling of molecular dynamics trajectories" (MDGen), NeurIPS 2024;
    Klein, L. et al. "Timewarp", NeurIPS 2023; Schreiner, M. et al. "Implicit transfer operator learning"
    (ITO), NeurIPS 2023 (the evaluation protocols these metrics follow).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple, Sequence

import numpy as np

from lss_jax.analysis._common import check_int, check_positive, frames_ratio
from lss_jax.analysis.autocorrelation import _acf_summary
from lss_jax.analysis.distributions import _jsd_block, _paired_inputs, _reference_ranges
from lss_jax.analysis.metastable import MetastableModel, metastable_kinetics, metastable_msm
from lss_jax.analysis.tica import fit_tica, project
from lss_jax.analysis.torsions import DEFAULT_TORSIONS
from lss_jax.engine.io import jsonable

__all__ = ["compare_kinetics"]


def compare_kinetics(
    md_trajs,
    lss_trajs,
    *,
    md_frame_time: float,
    lss_frame_time: float,
    msm_lag_time: float,
    tica_lag_time: float | None = None,
    acf_max_time: float | None = None,
    md_features=None,
    lss_features=None,
    torsions: Sequence[str] = DEFAULT_TORSIONS,
    n_clusters: int = 100,
    n_metastable: int = 2,
    bins: int = 100,
    bins_2d: int = 50,
    tica_bins: int = 50,
    n_bootstrap: int = 100,
    n_blocks: int = 20,
    seed: int = 0,
) -> dict:
    """Every kinetic metric for generated (LSS) vs MD, beside the MD-half vs MD-half noise floor.

    The MD halves are the first and second time halves of every MD trajectory. TICA (lag
    ``tica_lag_time``, on ``md_features`` or the torsions' sin/cos) and the metastable model (k-means on
    the MD TICs, reversible MSM at ``msm_lag_time``, PCCA+) are fitted once on all MD frames and applied
    unchanged to the LSS frames and both halves. Autocorrelations are compared on the coarser of the two
    frame grids (the finer data's ACF is read at every ``stride``-th lag, using all frame pairs), so
    integrated times have the same discretization on both sides. See the module docstring for the keys.

    Args:
        md_trajs: :class:`mdtraj.Trajectory` or a list of them (reference MD); ``None`` with features only.
        lss_trajs: generated trajectories with the same atoms (a list for many independent ones).
        md_frame_time: time between MD frames (e.g. ps).
        lss_frame_time: time between generated frames (the LSS lag), same unit.
        msm_lag_time: MSM lag; a whole number of frames of both data sets.
        tica_lag_time: TICA lag (default ``msm_lag_time``); a whole number of MD frames.
        acf_max_time: largest ACF lag (default ``50 * max(md_frame_time, lss_frame_time)``).
        md_features: TICA features per MD trajectory (default: torsion sin/cos), e.g. C-alpha distances.
        lss_features: the same features of the generated trajectories.
        torsions: torsion kinds (see :func:`lss_jax.analysis.torsions.torsion_angles`).
        n_clusters: k-means clusters.
        n_metastable: PCCA+ sets.
        bins: bins of the 1-D torsion histograms.
        bins_2d: bins per axis of (phi, psi).
        tica_bins: bins per axis of the TICs.
        n_bootstrap: bootstrap replicates of the MSM errors.
        n_blocks: minimum bootstrap units per data set.
        seed: k-means and bootstrap seed.

    Returns:
        nested dict of JSON-serializable values (see the module docstring for the keys).

    References:
        Jing et al., MDGen (2024); Klein et al., Timewarp (2023); Schreiner et al., ITO (2023).

    Example:
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> md_traj = load_alanine_dipeptide("train", stride=2)   # 4 ps frames
        >>> metrics = compare_kinetics(md_traj, md_traj[::2], md_frame_time=4.0, lss_frame_time=8.0,
        ...                            msm_lag_time=8.0, n_clusters=20, n_bootstrap=10)
        >>> sorted(metrics), sorted(metrics["jsd"]["tica_0"])
        (['autocorrelation', 'jsd', 'msm', 'settings'], ['lss_vs_md', 'md_vs_md'])
    """
    md_frame_time = check_positive(md_frame_time, "md_frame_time")
    lss_frame_time = check_positive(lss_frame_time, "lss_frame_time")
    msm_lag_time = check_positive(msm_lag_time, "msm_lag_time")
    tica_lag_time = msm_lag_time if tica_lag_time is None else check_positive(tica_lag_time, "tica_lag_time")
    dt = max(md_frame_time, lss_frame_time)
    acf_max_time = 50 * dt if acf_max_time is None else check_positive(acf_max_time, "acf_max_time")
    msm_lag_md = frames_ratio(msm_lag_time, md_frame_time, "msm_lag_time / md_frame_time")
    msm_lag_lss = frames_ratio(msm_lag_time, lss_frame_time, "msm_lag_time / lss_frame_time")
    tica_lag_md = frames_ratio(tica_lag_time, md_frame_time, "tica_lag_time / md_frame_time")
    stride_md = frames_ratio(dt, md_frame_time, "the common ACF grid / md_frame_time")
    stride_lss = frames_ratio(dt, lss_frame_time, "the common ACF grid / lss_frame_time")
    acf_lags = max(1, int(math.floor(acf_max_time / dt + 1e-9)))
    data = _compared_data(md_trajs, lss_trajs, md_features, lss_features, torsions)

    # TICA and the metastable model, fitted on all MD frames
    projection = fit_tica(data.md_features, tica_lag_md, dim=2)
    md_tics = project(data.md_features, projection)
    lss_tics = project(data.lss_features, projection)
    h1_tics, h2_tics = _halves(md_tics)
    with warnings.catch_warnings(record=True) as caught_model:
        warnings.simplefilter("always")
        model = metastable_msm(md_tics, msm_lag_md, n_clusters=n_clusters, n_metastable=n_metastable, seed=seed)
    for w in caught_model:  # pass them on to the caller, and keep them in the metrics
        warnings.warn(str(w.message), stacklevel=2)

    jsd_kw = dict(bins=check_int(bins, "bins"), bins_2d=check_int(bins_2d, "bins_2d"),
                  tica_bins=check_int(tica_bins, "tica_bins"), tica_ranges=_reference_ranges(np.concatenate(md_tics)))
    jsd, h1_angles, h2_angles = _jsd_entries(data, md_tics, lss_tics, h1_tics, h2_tics, jsd_kw)
    tics = {"md": md_tics, "lss": lss_tics, "md_half_1": h1_tics, "md_half_2": h2_tics}
    lags = {"md": (msm_lag_md, md_frame_time), "lss": (msm_lag_lss, lss_frame_time)}
    msm = _msm_entries(model, tics, lags, [str(w.message) for w in caught_model], n_bootstrap=n_bootstrap,
                       n_blocks=n_blocks, seed=seed)
    acf: dict[str, Any] = {}
    if data.names:
        angles = {"md": data.md_angles, "lss": data.lss_angles, "md_half_1": h1_angles, "md_half_2": h2_angles}
        grids = {"md": (stride_md, md_frame_time), "lss": (stride_lss, lss_frame_time)}
        acf = _acf_entries(data.names, angles, grids, acf_lags)

    settings = {
        "md_frame_time": md_frame_time, "lss_frame_time": lss_frame_time, "msm_lag_time": msm_lag_time,
        "tica_lag_time": tica_lag_time, "acf_grid": dt, "acf_max_time": acf_lags * dt, "bins": bins,
        "bins_2d": bins_2d, "tica_bins": tica_bins, "n_bootstrap": n_bootstrap, "n_blocks": n_blocks, "seed": seed,
        "n_md_frames": int(sum(f.shape[0] for f in data.md_features)),
        "n_lss_frames": int(sum(f.shape[0] for f in data.lss_features)),
        "jsd_log_base": 2,
    }
    return jsonable({"jsd": jsd, "msm": msm, "autocorrelation": acf, "settings": settings})


class _Compared(NamedTuple):
    """The inputs of :func:`compare_kinetics`, checked: torsion names and angles (``None`` without
    trajectories) and the TICA features of every trajectory."""

    names: list[str]
    md_angles: list[np.ndarray] | None
    lss_angles: list[np.ndarray] | None
    md_features: list[np.ndarray]
    lss_features: list[np.ndarray]


def _compared_data(md_trajs, lss_trajs, md_features, lss_features, torsions) -> _Compared:
    names, md_angles, lss_angles, md_features, lss_features = _paired_inputs(
        md_trajs, lss_trajs, md_features, lss_features, torsions, names=("md_trajs", "lss_trajs", "md_features", "lss_features"))
    if md_angles is not None and [a.shape[0] for a in md_angles] != [f.shape[0] for f in md_features]:
        raise ValueError("md_features must have one row per MD frame, trajectory by trajectory.")
    return _Compared(names, md_angles, lss_angles, md_features, lss_features)


def _pair(lss_vs_md, md_vs_md) -> dict:
    return {"lss_vs_md": lss_vs_md, "md_vs_md": md_vs_md}


def _jsd_entries(data: _Compared, md_tics, lss_tics, h1_tics, h2_tics, jsd_kw) -> tuple[dict, list, list]:
    """The ``jsd`` block, and the MD halves of the torsion angles (``[empty]`` without torsions)."""
    empty = np.zeros((0, 0))
    md_a = np.concatenate(data.md_angles) if data.md_angles is not None else empty
    lss_a = np.concatenate(data.lss_angles) if data.lss_angles is not None else empty
    h1_a, h2_a = (_halves(data.md_angles) if data.md_angles is not None else ([empty], [empty]))
    j_lss = _jsd_block(md_a, lss_a, data.names, np.concatenate(md_tics), np.concatenate(lss_tics), **jsd_kw)
    j_md = _jsd_block(np.concatenate(h1_a), np.concatenate(h2_a), data.names, np.concatenate(h1_tics),
                      np.concatenate(h2_tics), **jsd_kw)
    jsd = {
        "torsions": {n: _pair(j_lss["torsions"][n], j_md["torsions"][n]) for n in data.names},
        "phi_psi": _pair(j_lss["phi_psi"], j_md["phi_psi"]),
        "phi_psi_residues": {r: _pair(j_lss["phi_psi_residues"][r], j_md["phi_psi_residues"][r])
                             for r in j_lss["phi_psi_residues"]},
        "tica_0": _pair(j_lss["tica_0"], j_md["tica_0"]),
        "tica_01": _pair(j_lss["tica_01"], j_md["tica_01"]),
    }
    return jsd, h1_a, h2_a


def _msm_entries(model: MetastableModel, tics: dict, lags: dict, notes: list[str], *, n_bootstrap, n_blocks,
                 seed) -> dict:
    """The ``msm`` block: :func:`lss_jax.analysis.metastable.metastable_kinetics` of the ``md``, ``lss`` and MD-half
    TICs (``lags[label] = (lag in frames, frame time)``; the halves use the MD's), compared pairwise. The
    warnings of every estimate are appended to ``notes``, labelled."""

    def kinetics(label):
        lag, frame_time = lags["lss" if label == "lss" else "md"]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = metastable_kinetics(model, tics[label], lag=lag, frame_time=frame_time, n_bootstrap=n_bootstrap,
                                      n_blocks=n_blocks, seed=seed)
        notes.extend(f"{label}: {w.message}" for w in caught)
        return out

    k_md, k_lss, k_h1, k_h2 = (kinetics(label) for label in ("md", "lss", "md_half_1", "md_half_2"))

    def entry(key, distance):
        return {
            "lss_vs_md": distance(k_lss[key], k_md[key]),
            "md_vs_md": distance(k_h1[key], k_h2[key]),
            "md": k_md[key], "lss": k_lss[key], "md_half_1": k_h1[key], "md_half_2": k_h2[key],
            "md_err": k_md[f"{key}_err"], "lss_err": k_lss[f"{key}_err"],
        }

    return {
        "populations": entry("populations", _tv),
        "stationary": entry("stationary_distribution", _tv),
        "transition_matrix": entry("transition_matrix", _max_abs),
        "flux": entry("gross_flux", _mean_abs_log_ratio),
        "mfpt": entry("mfpt", _mean_abs_log_ratio),
        "info": {
            "n_clusters": model.n_clusters, "n_metastable": model.n_metastable,
            "lag_frames_md": lags["md"][0], "lag_frames_lss": lags["lss"][0],
            "n_active_model": int(model.active_set.size), "timescales_md": model.timescales * lags["md"][1],
            "n_active_md": k_md["n_active"], "n_active_lss": k_lss["n_active"],
            "active_fraction_lss": k_lss["active_fraction"], "notes": notes,
        },
    }


def _acf_entries(names: list[str], angles: dict, grids: dict, acf_lags: int) -> dict:
    """The ``autocorrelation`` block: integrated and 1/e times of every torsion on the common time grid
    (``grids[label] = (stride, frame time)``; the MD halves use the MD's)."""
    s_md, s_lss, s_h1, s_h2 = (
        _acf_summary(names, angles[label], acf_lags, *grids["lss" if label == "lss" else "md"])
        for label in ("md", "lss", "md_half_1", "md_half_2")
    )
    acf = {}
    for k, name in enumerate(names):
        t = [s["integrated_time"][k] for s in (s_md, s_lss, s_h1, s_h2)]
        e = [s["e_folding_time"][k] for s in (s_md, s_lss, s_h1, s_h2)]
        acf[name] = {
            "lss_vs_md": float(abs(np.log(t[1] / t[0]))), "md_vs_md": float(abs(np.log(t[3] / t[2]))),
            "md": t[0], "lss": t[1], "md_half_1": t[2], "md_half_2": t[3],
            "md_e_folding": e[0], "lss_e_folding": e[1], "md_half_1_e_folding": e[2], "md_half_2_e_folding": e[3],
            "converged": bool(s_md["converged"][k] and s_lss["converged"][k]),
        }
    return acf


def _halves(arrays: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    short = [a.shape[0] for a in arrays if a.shape[0] < 4]
    if short:
        raise ValueError("every MD trajectory needs at least 4 frames to be split into halves for the noise floor.")
    return [a[: a.shape[0] // 2] for a in arrays], [a[a.shape[0] // 2 :] for a in arrays]


def _tv(p, q) -> float:
    return float(0.5 * np.nansum(np.abs(np.asarray(p) - np.asarray(q))))


def _mean_abs_log_ratio(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    off = ~np.eye(a.shape[0], dtype=bool)
    ok = off & np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    return float(np.mean(np.abs(np.log(a[ok] / b[ok])))) if ok.any() else float("nan")


def _max_abs(a, b) -> float:
    d = np.abs(np.asarray(a, float) - np.asarray(b, float))
    return float(np.nanmax(d)) if np.isfinite(d).any() else float("nan")
