"""Validation of a molecular LSS against independent MD (the paper's Sec. 3.2 for our system).

``validate`` compares, with the same estimators on both sides:

* free energies F(psi_1) and F(phi, psi): 5-fold block-averaged standard errors of the MD profiles,
  RMSE (kT) after removing the best additive constant, over bins populated in both (F(phi, psi):
  MD probability >= 1e-3 of its maximum), and an MD-vs-MD baseline (first vs second half);
* implied timescales t_1..t_m of the latent coordinates (reversible estimator at lag tau; LSS frames
  are tau apart), block-averaged errors;
* structures: radius of gyration, bond lengths and angles against MD (relative MAD), steric clashes,
  RMSD between MD and LSS structures in matching latent bins, and novelty: the RMSD of each
  generated frame to its nearest training frame, next to the same for independent MD frames;
* TICA of heavy-atom distances fitted on MD at lag tau: free-energy surfaces of MD and LSS in the
  two leading TICs;
* the decoder alone (:func:`decoder_round_trip`): decode(encode(MD)), the MD frames' own latent points
  decoded, against the MD frames, beside the full LSS: F(phi, psi), basin populations, bond-length and
  angle distributions, clashes and per-atom RMSF. An error that the round trip shows is the decoder's;
  one that only the full LSS shows comes from the propagator.
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import jax
import numpy as np

from lss_jax import _io
from lss_jax.analysis import structure
from lss_jax.analysis.distributions import (
    free_energy_2d,
    free_energy_rmse,
    free_energy_rmse_2d,
    histogram_free_energy,
    mean_standard_error,
)
from lss_jax.analysis.torsions import DEFAULT_TORSIONS, phi_psi
from lss_jax.encoder import implied_timescales, reversible_decomposition

__all__ = ["validate", "compare_structures", "decoder_round_trip", "support_diagnostics"]


def compare_structures(reference, generated, *, kT: float = 1.0, max_frames: int = 20_000, seed: int = 0,
                       floor=None) -> dict:
    """Structural fidelity of generated frames against reference (MD) frames of the same atoms.

    Args:
        reference: ``mdtraj.Trajectory`` of MD frames (its topology supplies the bonds).
        generated: frames with the same atoms (e.g. decoded).
        kT: energy unit.
        max_frames: generated frames subsampled (without replacement) for the distance-based checks.
        seed: subsampling seed.
        floor: optional second MD sample of the same atoms: its F(phi, psi) RMSE against ``reference`` on
            the same bins is reported as ``md_vs_md_rmse_kT`` (the noise floor).

    Returns:
        dict: ``free_energy_phi_psi`` (RMSE over the bins with reference probability >= 1e-3 of its maximum,
        ``coverage``: the fraction of those bins the generated frames visit; absent without backbone
        torsions), ``basin_populations``, ``geometry`` (:func:`lss_jax.analysis.structure.geometry_deviation`),
        ``bonds_off_10pct_fraction`` (frames with any bond more than 10 % from its MD mean, for both),
        ``clashes``, ``radius_of_gyration_nm`` and ``rmsf_nm`` (per atom, about the mean structure after
        superposition on the reference's first frame), each with the reference's own value beside it.

    Example:
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> md_a = load_alanine_dipeptide("train", stride=20)
        >>> md_b = load_alanine_dipeptide("independent", stride=20)
        >>> heavy = lambda t: t.atom_slice(t.topology.select("not element H"))
        >>> out = compare_structures(heavy(md_a), heavy(md_b))
        >>> out["bonds_off_10pct_fraction"]["generated"], out["clashes"]["generated"]["frames_with_clash"]
        (0.0, 0)
    """
    rng = np.random.default_rng(seed)
    gen = generated if generated.n_frames <= max_frames else generated[np.sort(rng.choice(generated.n_frames, max_frames,
                                                                                            replace=False))]
    out: dict = {"n_reference_frames": int(reference.n_frames), "n_generated_frames": int(generated.n_frames)}
    try:
        pp_ref, pp_gen = phi_psi(reference), phi_psi(generated)
    except ValueError:
        pp_ref = pp_gen = None
    if pp_ref is not None:
        f_ref, p_ref, _, _ = free_energy_2d(pp_ref[:, 0], pp_ref[:, 1], kT=kT)
        f_gen, p_gen, _, _ = free_energy_2d(pp_gen[:, 0], pp_gen[:, 1], kT=kT)
        rmse, n_bins = free_energy_rmse_2d(f_gen, p_ref, f_ref)
        populated = p_ref >= 1e-3 * p_ref.max()
        fe = {"rmse_kT": rmse, "n_bins": int(n_bins), "coverage": float(np.mean(p_gen[populated] > 0))}
        if floor is not None:
            pp_floor = phi_psi(floor)
            f_floor, p_floor, _, _ = free_energy_2d(pp_floor[:, 0], pp_floor[:, 1], kT=kT)
            fe["md_vs_md_rmse_kT"] = free_energy_rmse_2d(f_floor, p_ref, f_ref)[0]
            fe["md_vs_md_coverage"] = float(np.mean(p_floor[populated] > 0))
        out["free_energy_phi_psi"] = fe
        out["basin_populations"] = {"md": _basins(pp_ref), "generated": _basins(pp_gen)}
    ref_sub = reference[:: max(1, reference.n_frames // max_frames)]
    out["geometry"] = structure.geometry_deviation(reference, gen)
    pairs, l_ref, _, _ = structure.bonded_geometry(reference)
    means = l_ref.mean(0)
    off = lambda t: float(np.mean(np.any(np.abs(_distances(t, pairs) / means - 1) > 0.1, axis=1)))  # noqa: E731
    out["bonds_off_10pct_fraction"] = {"md": off(ref_sub), "generated": off(gen)}
    out["clashes"] = {"md": structure.count_clashes(ref_sub), "generated": structure.count_clashes(gen, reference=reference[0])}
    rg_ref, rg_gen = structure.radius_of_gyration(reference), structure.radius_of_gyration(gen)
    out["radius_of_gyration_nm"] = {"md": [float(rg_ref.mean()), float(rg_ref.std())],
                                    "generated": [float(rg_gen.mean()), float(rg_gen.std())]}
    out["rmsf_nm"] = {"md": _rmsf(ref_sub, reference[0]).tolist(), "generated": _rmsf(gen, reference[0]).tolist()}
    return out


def _distances(traj, pairs):
    import mdtraj as md

    return np.asarray(md.compute_distances(traj, pairs), np.float64)


def _rmsf(traj, reference) -> np.ndarray:
    import mdtraj as md

    aligned = md.Trajectory(np.array(traj.xyz, copy=True), traj.topology).superpose(reference)
    return np.sqrt(np.mean(np.sum((aligned.xyz - aligned.xyz.mean(0)) ** 2, axis=-1), axis=0)).astype(np.float64)


def decoder_round_trip(key, model, md_trajs, *, return_draws: bool = False):
    """decode(encode(MD)): the MD frames' own latent points through the decoder, as an ``mdtraj.Trajectory``
    of the decoded atoms (one decoded frame per MD frame, in order).

    Its difference from the MD frames is the decoder's error alone: the latent points are exactly those
    of the MD, so the propagator plays no part. ``return_draws=True`` also returns which draw of the
    support constraint every frame kept (:meth:`lss_jax.LSSModel.decode_unit`).
    """
    import mdtraj as md

    md_trajs = [md_trajs] if isinstance(md_trajs, md.Trajectory) else list(md_trajs)
    psi = model.encode(md_trajs)
    out = [model.decode_unit(jax.random.fold_in(key, i), model.to_unit(p), return_draws=True) for i, p in enumerate(psi)]
    traj = md.Trajectory(np.concatenate([x for x, _ in out]), model.decoded_topology)
    return (traj, np.concatenate([d for _, d in out])) if return_draws else traj


def support_diagnostics(model, md_xyz, draws) -> dict:
    """How often the decoder's first draw of a round-trip frame left the training data's support, how often
    every redraw did, and how often MD frames of the comparison run are outside it (the constraint's false
    alarms); :mod:`lss_jax.decoder.support`."""
    import jax.numpy as jnp

    from lss_jax.decoder import support_ratio

    support, redraws = model.decoder.support, model.decoder.redraws
    if support is None:
        return {"redraws": 0, "note": "this model has no support constraint (saved before lss_jax had one)"}
    ratio = np.concatenate([np.asarray(support_ratio(support, jnp.asarray(x))) for x in np.array_split(
        np.asarray(md_xyz, np.float32), max(1, len(md_xyz) // 4096))])
    return {"redraws": int(redraws), "n_pairs": int(support.pairs.shape[0]),
            "first_draw_outside_fraction": float(np.mean(draws > 0)),
            "outside_after_redraws_fraction": float(np.mean(draws > redraws)),
            "md_outside_fraction": float(np.mean(ratio < 1.0))}


def _blocks(arrays: list[np.ndarray], n_blocks: int) -> list[list[np.ndarray]]:
    """Split a set of trajectories into ``n_blocks`` groups: whole trajectories if there are enough,
    contiguous time blocks of every trajectory otherwise."""
    if len(arrays) >= n_blocks:
        groups = np.array_split(np.arange(len(arrays)), n_blocks)
        return [[arrays[i] for i in g] for g in groups]
    return [[np.array_split(arr, n_blocks)[b] for arr in arrays] for b in range(n_blocks)]


def _timescales(latent_list, lag, lag_time, k):
    ev = reversible_decomposition(latent_list, lag).eigenvalues[:k]
    return implied_timescales(ev, lag_time)


def validate(
    model,
    md_trajs,
    lss_traj,
    lss_latent: np.ndarray,
    *,
    train_trajs=None,
    out_dir: str | Path | None = None,
    n_blocks: int = 5,
    kT: float = 1.0,
    max_rmsd_frames: int = 1000,
    seed: int = 0,
    system: str | None = "auto",
) -> dict:
    """Compare generated trajectories with independent MD.

    Args:
        model: a fitted :class:`lss_jax.LSS`.
        md_trajs: independent MD (``mdtraj.Trajectory`` or list; the training topology).
        lss_traj: decoded LSS frames (``mdtraj.Trajectory`` of the decoded atoms), trajectory-major.
        lss_latent: ``[B, n_frames, m]`` latent trajectories the frames were decoded from.
        train_trajs: training MD, for the novelty check (optional).
        out_dir: write ``metrics.json`` and figures there if given.
        n_blocks: blocks for block-averaged errors.
        kT: energy unit of the reported free energies.
        max_rmsd_frames: generated frames subsampled for the novelty RMSDs.
        seed: seed of all frame subsampling.
        system: ``"trp-cage"`` adds the folding analysis of the Trp-cage Cα model
            (:func:`lss_jax.systems.trp_cage.folding_metrics`: folded fraction, transition rates, RMSD to the native
            structure, Cα virtual bonds and close contacts) as ``folding``; ``"auto"`` (default) recognizes its
            topology; ``None``: none. F(phi, psi) and the basin populations are computed when the decoded atoms
            define backbone torsions.

    Returns:
        The metrics dictionary.

    Example:
        Needs a fitted model (here the one ``lss-jax demo --out runs/demo`` writes), so it is not run here:

        >>> import jax, mdtraj as md
        >>> from lss_jax import LSS
        >>> from lss_jax.datasets import load_alanine_dipeptide

        Not run as doctests (they need the model that ``lss-jax demo`` writes; ``tests/test_molecular.py``
        validates a trained model):

        >>> model = LSS.load("runs/demo/model")  # doctest: +SKIP
        >>> latent = model.generate(jax.random.key(0), 50, 200, latent_only=True)  # doctest: +SKIP
        >>> xyz = model.decode(jax.random.key(1), latent).reshape(-1, len(model.atom_indices), 3)  # doctest: +SKIP
        >>> lss_traj = md.Trajectory(xyz, model.decoded_topology)  # doctest: +SKIP
        >>> metrics = validate(model, load_alanine_dipeptide("independent"), lss_traj, latent)  # doctest: +SKIP
        >>> sorted(metrics)[:3]  # doctest: +SKIP
        ['free_energy_phi_psi', 'free_energy_psi1', 'implied_timescales_ps']
    """
    import mdtraj as md

    md_trajs = [md_trajs] if isinstance(md_trajs, md.Trajectory) else list(md_trajs)
    lss_latent = np.asarray(lss_latent)
    if lss_latent.ndim != 3 or lss_latent.shape[0] * lss_latent.shape[1] != lss_traj.n_frames:
        raise ValueError(
            f"lss_latent must be [n_trajectories, n_frames, latent_dim] matching the {lss_traj.n_frames} decoded "
            f"frames, got {lss_latent.shape}."
        )
    m = lss_latent.shape[2]
    lag, lag_time = model.config.lag, model.lag_time
    psi_md = model.encode(md_trajs)
    md_heavy = [t.atom_slice(model.atom_indices) for t in md_trajs]
    md_all = md.join(md_heavy) if len(md_heavy) > 1 else md_heavy[0]
    metrics: dict = {"n_md_frames": int(md_all.n_frames), "n_lss_frames": int(lss_traj.n_frames),
                     "n_lss_trajectories": int(lss_latent.shape[0]), "lag_time_ps": lag_time, "kT": kT}

    # ---- F(psi_1)
    psi1_md = np.concatenate([p[:, 0] for p in psi_md])
    edges = np.linspace(psi1_md.min(), psi1_md.max(), 51)
    f_md, p_md = histogram_free_energy(psi1_md, edges, kT=kT)
    f_lss, _ = histogram_free_energy(lss_latent[..., 0], edges, kT=kT)
    blocks_f = [histogram_free_energy(np.concatenate([b[:, 0] for b in blk]), edges, kT=kT)[0] for blk in _blocks(psi_md, n_blocks)]
    f_md_se = _block_se(blocks_f)
    mask1 = p_md >= 1e-3 * p_md.max()
    metrics["free_energy_psi1"] = {"rmse_kT": free_energy_rmse(f_lss, f_md, mask1), "n_bins": int(mask1.sum())}

    # ---- F(phi, psi), when the decoded atoms have backbone torsions
    try:
        pp_md = np.concatenate([phi_psi(t) for t in md_heavy])
    except ValueError:
        pp_md = None
    f2_md = f2_lss = p2_md = xe = ye = None
    if pp_md is not None:
        pp_lss = phi_psi(lss_traj)
        f2_md, p2_md, xe, ye = free_energy_2d(pp_md[:, 0], pp_md[:, 1], kT=kT)
        f2_lss, _, _, _ = free_energy_2d(pp_lss[:, 0], pp_lss[:, 1], kT=kT)
        rmse2, n2 = free_energy_rmse_2d(f2_lss, p2_md, f2_md)
        half = len(pp_md) // 2
        fa, _, _, _ = free_energy_2d(pp_md[:half, 0], pp_md[:half, 1], kT=kT)
        fb, pb, _, _ = free_energy_2d(pp_md[half:, 0], pp_md[half:, 1], kT=kT)
        rmse_half, _ = free_energy_rmse_2d(fa, pb, fb)
        blocks_2d = [free_energy_2d(b[:, 0], b[:, 1], kT=kT)[0] for b in np.array_split(pp_md, n_blocks)]
        metrics["free_energy_phi_psi"] = {
            "rmse_kT": rmse2, "n_bins": int(n2), "md_half_vs_half_rmse_kT": rmse_half,
            "md_block_se_median_kT": float(np.nanmedian(_block_se(blocks_2d)[p2_md >= 1e-3 * p2_md.max()])),
            "basin_populations": {"md": _basins(pp_md), "lss": _basins(pp_lss)},
        }

    # ---- implied timescales of the latent coordinates
    t_md = _timescales(psi_md, lag, lag_time, m)
    lat_list = list(lss_latent)
    t_lss = _timescales(lat_list, 1, lag_time, m)
    t_md_blocks = np.array([_timescales(b, lag, lag_time, m) for b in _blocks(psi_md, n_blocks)])
    t_lss_blocks = np.array([_timescales(b, 1, lag_time, m) for b in _blocks(lat_list, n_blocks)])
    t_md_se = _block_se(t_md_blocks)
    metrics["implied_timescales_ps"] = {
        "md": t_md.tolist(), "md_se": t_md_se.tolist(), "lss": t_lss.tolist(),
        "lss_se": _block_se(t_lss_blocks).tolist(),
        "t1_within_md_error": bool(abs(t_lss[0] - t_md[0]) <= 2 * t_md_se[0]),
        "t1_relative_error": float(abs(t_lss[0] - t_md[0]) / t_md[0]),
    }

    # ---- kinetic self-consistency (lss_jax.analysis.consistency) and the field's kinetic metrics (compare)
    from lss_jax.analysis import consistency
    from lss_jax.analysis.compare import compare_kinetics

    md_frame_time = float(md_trajs[0].timestep) if md_trajs[0].n_frames > 1 else lag_time / lag
    report_warnings = []

    def guarded(name, fn):
        """Kinetic estimators need enough frames per state; on too little data the report says so and goes on."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # lag and connectivity notes are kept in the results
                return fn()
        except (ValueError, np.linalg.LinAlgError, FloatingPointError) as err:
            report_warnings.append(f"{name} could not be computed ({type(err).__name__}: {' '.join(str(err).split())}); "
                                   "it needs more MD or generated frames")
            return None

    ck = guarded("the Chapman-Kolmogorov test", lambda: consistency.latent_chapman_kolmogorov(psi_md, lss_latent, lag,
                                                                                              seed=seed))
    tol = 2 * np.hypot(t_md_se, np.nan_to_num(metrics["implied_timescales_ps"]["lss_se"]))
    report_warnings += [f"t{i + 1} of the LSS ({t_lss[i]:.4g} ps) differs from MD ({t_md[i]:.4g} ps) by more than twice "
                       f"their combined standard error ({tol[i]:.2g} ps)" for i in range(m) if abs(t_lss[i] - t_md[i]) > tol[i]]
    reflected = consistency.reflection_fraction(model, model.to_unit(lss_latent)[:, :-1])
    if reflected > consistency.WALL_WARNING_FRACTION:
        report_warnings.append(f"{100 * reflected:.1f} % of the propagator's steps are reflected at the unit-box walls")
    if ck is not None and not ck["passed"]:
        report_warnings.append(f"the propagator fails the Chapman-Kolmogorov test on the MD's latent states (largest "
                               f"deviation {ck['max_deviation_sigma']:.1f} standard errors)")
    metrics["consistency"] = {
        "timescales_ps": {"md": t_md.tolist(), "md_se": t_md_se.tolist(), "lss": t_lss.tolist(),
                          "srv_training": list(model.info.get("srv_timescales_ps", [])[:m]),
                          "after_training": model.info.get("consistency")},
        "reflection_fraction": reflected,
        "ck": None if ck is None else {
            "lags_ps": (np.asarray(ck["lags"]) * md_frame_time).tolist(), "predicted": ck["predicted"],
            "estimated": ck["estimated"], "difference_err": ck["difference_err"],
            "max_deviation_sigma": ck["max_deviation_sigma"], "passed": ck["passed"],
            "n_unvisited_microstates": ck["n_unvisited"]},
        "warnings": report_warnings,
    }
    n_traj, n_per = lss_latent.shape[:2]
    lss_parts = [lss_traj[b * n_per : (b + 1) * n_per] for b in range(n_traj)]
    kin = guarded("the kinetic metrics (JSD, metastable MSM, autocorrelations)", lambda: compare_kinetics(
        md_heavy, lss_parts, md_frame_time=md_frame_time, lss_frame_time=lag_time, msm_lag_time=lag_time,
        torsions=(*DEFAULT_TORSIONS, "ca"), seed=seed))
    if kin is not None:
        metrics["kinetics"] = kin

    # ---- structures
    rng = np.random.default_rng(seed)
    sub = np.sort(rng.choice(lss_traj.n_frames, size=min(lss_traj.n_frames, 20_000), replace=False))
    lss_sub = lss_traj[sub]
    rg_md, rg_lss = structure.radius_of_gyration(md_all), structure.radius_of_gyration(lss_sub)
    geometry = structure.geometry_deviation(md_all, lss_sub)
    clashes_lss = structure.count_clashes(lss_sub, reference=md_all[0])
    clashes_md = structure.count_clashes(md_all[:: max(1, md_all.n_frames // 20_000)])
    lat_flat = lss_latent.reshape(-1, m)
    binned = structure.binned_rmsd(md_all, np.concatenate(psi_md), lss_traj, lat_flat, n_bins=8, seed=seed)
    metrics["structure"] = {
        "radius_of_gyration_nm": {"md": [float(rg_md.mean()), float(rg_md.std())],
                                  "lss": [float(rg_lss.mean()), float(rg_lss.std())]},
        "geometry": geometry,
        "clashes": {"lss": clashes_lss, "md": clashes_md},
        "binned_rmsd_nm": {"centers": binned["centers"].tolist(), "lss_md": binned["lss_md_rmsd"].tolist(),
                           "md_md": binned["md_md_rmsd"].tolist()},
    }
    if train_trajs is not None:
        train = [t.atom_slice(model.atom_indices) for t in ([train_trajs] if isinstance(train_trajs, md.Trajectory) else train_trajs)]
        train_all = md.join(train) if len(train) > 1 else train[0]
        nov_lss = structure.nearest_frame_rmsd(lss_traj, train_all, max_generated=max_rmsd_frames, max_reference=5000, seed=seed)
        nov_md = structure.nearest_frame_rmsd(md_all, train_all, max_generated=max_rmsd_frames, max_reference=5000, seed=seed)
        metrics["novelty_nearest_training_rmsd_nm"] = {
            "lss": _quantiles(nov_lss), "independent_md": _quantiles(nov_md),
            "lss_fraction_below_0.01nm": float(np.mean(nov_lss < 0.01)),
        }
    else:
        nov_lss = nov_md = None
        train_all = None

    # ---- TICA on heavy-atom distances, fitted on MD
    pairs = np.array(list(itertools.combinations(range(md_all.n_atoms), 2)))
    d_md = [md.compute_distances(t, pairs) for t in md_heavy]
    tica = reversible_decomposition(d_md, lag)
    proj = lambda d: (d - tica.mean[None, :]) @ tica.vectors[:, :2]  # noqa: E731
    tic_md = np.concatenate([proj(d) for d in d_md])
    tic_lss = proj(md.compute_distances(lss_traj, pairs))
    rng_t = ((tic_md[:, 0].min(), tic_md[:, 0].max()), (tic_md[:, 1].min(), tic_md[:, 1].max()))
    ft_md, pt_md, txe, tye = free_energy_2d(tic_md[:, 0], tic_md[:, 1], bins=40, range=rng_t, kT=kT)
    ft_lss, _, _, _ = free_energy_2d(tic_lss[:, 0], tic_lss[:, 1], bins=40, range=rng_t, kT=kT)
    rmse_t, n_t = free_energy_rmse_2d(ft_lss, pt_md, ft_md)
    # F(TIC 1): the 1-D profile on the MD's slowest linear coordinate, with the MD's own noise floor
    tic1_edges = np.linspace(tic_md[:, 0].min(), tic_md[:, 0].max(), 51)
    f_t1_md, p_t1_md = histogram_free_energy(tic_md[:, 0], tic1_edges, kT=kT)
    mask_t1 = p_t1_md >= 1e-3 * p_t1_md.max()
    f_t1_lss, _ = histogram_free_energy(tic_lss[:, 0], tic1_edges, kT=kT)
    tic1_md_parts = [proj(d)[:, 0] for d in d_md]
    halves = [np.concatenate(h) for h in zip(*[np.array_split(t, 2) for t in tic1_md_parts])]
    f_h0, _ = histogram_free_energy(halves[0], tic1_edges, kT=kT)
    f_h1, _ = histogram_free_energy(halves[1], tic1_edges, kT=kT)
    f_t1_se = _block_se([histogram_free_energy(np.concatenate(b), tic1_edges, kT=kT)[0] for b in _blocks(tic1_md_parts, n_blocks)])
    metrics["tica"] = {"rmse_kT": rmse_t, "n_bins": int(n_t),
                       "md_timescales_ps": implied_timescales(tica.eigenvalues[:3], lag_time).tolist(),
                       "free_energy_tic1": {"rmse_kT": free_energy_rmse(f_t1_lss, f_t1_md, mask_t1),
                                            "md_half_vs_half_rmse_kT": free_energy_rmse(f_h1, f_h0, mask_t1),
                                            "md_block_se_median_kT": float(np.nanmedian(f_t1_se[mask_t1])),
                                            "n_bins": int(mask_t1.sum())}}

    # ---- the decoder alone: decode(encode(MD)) against MD, beside the full LSS
    round_trip, draws = decoder_round_trip(jax.random.key(seed), model, md_trajs, return_draws=True)
    metrics["decoder"] = {
        "round_trip": compare_structures(md_all, round_trip, kT=kT, seed=seed, floor=train_all if train_trajs is not None else None),
        "lss": compare_structures(md_all, lss_traj, kT=kT, seed=seed),
        "kind": model.config.decoder, "coordinates": model.config.decoder_coordinates,
        "support": support_diagnostics(model, md_all.xyz, draws),
    }

    # ---- a system's own observables
    if system == "auto":
        from lss_jax.systems import trp_cage

        system = "trp-cage" if trp_cage.is_trp_cage(md_all.topology) else None
    if system == "trp-cage":
        from lss_jax.systems.trp_cage import folding_metrics

        metrics["folding"] = folding_metrics(
            [t.xyz for t in md_heavy], lss_traj.xyz.reshape(*lss_latent.shape[:2], -1, 3),
            md_frame_time=float(md_trajs[0].timestep), lss_frame_time=lag_time, n_blocks=n_blocks)
    elif system is not None:
        raise ValueError(f"unknown system {system!r}; choose 'auto', 'trp-cage' or None.")

    # ---- ensemble spread: the same analysis for every propagator of the ensemble (same start points and length)
    members = model.ensemble_members() if hasattr(model, "ensemble_members") else []
    if members:

        per = {"t1_ps": [], "free_energy_phi_psi_rmse_kT": [], "free_energy_psi1_rmse_kT": [], "populations": []}
        for k, prop in enumerate(members):
            traj_k, lat_k = model.generate(jax.random.fold_in(jax.random.key(seed), 1000 + k), lss_latent.shape[0],
                                           lss_latent.shape[1], return_latent=True, propagator=prop, progress=False)
            per["t1_ps"].append(float(_timescales(list(lat_k), 1, lag_time, m)[0]))
            per["free_energy_psi1_rmse_kT"].append(free_energy_rmse(histogram_free_energy(lat_k[..., 0], edges, kT=kT)[0], f_md, mask1))
            if pp_md is not None:
                pp_k = phi_psi(traj_k)
                f2_k, _, _, _ = free_energy_2d(pp_k[:, 0], pp_k[:, 1], kT=kT)
                per["free_energy_phi_psi_rmse_kT"].append(free_energy_rmse_2d(f2_k, p2_md, f2_md)[0])
                per["populations"].append(_basins(pp_k))
        spread = lambda v: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1))}  # noqa: E731
        metrics["ensemble"] = {
            "n_members": len(members),
            "per_member": per,
            "t1_ps": spread(per["t1_ps"]),
            "free_energy_psi1_rmse_kT": spread(per["free_energy_psi1_rmse_kT"]),
            "free_energy_phi_psi_rmse_kT": spread(per["free_energy_phi_psi_rmse_kT"]) if pp_md is not None else None,
            "populations": ({b: spread([p[b] for p in per["populations"]]) for b in per["populations"][0]}
                            if pp_md is not None else {}),
            "md_block_se": {"t1_ps": float(t_md_se[0])},
        }

    if out_dir is not None:
        from lss_jax.analysis import plots

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        if members:
            plots.uncertainty_map(model, path=out_dir / "uncertainty.png")
        plots.molecular_figures(
            out_dir, psi1_edges=edges, f_md=f_md, f_md_se=f_md_se, f_lss=f_lss, mask1=mask1, f2_md=f2_md, f2_lss=f2_lss,
            p2_md=p2_md, xe=xe, ye=ye, t_md=t_md, t_md_se=t_md_se, t_lss=t_lss,
            t_lss_se=np.array(metrics["implied_timescales_ps"]["lss_se"]), ft_md=ft_md, ft_lss=ft_lss, txe=txe,
            tye=tye, rg_md=rg_md, rg_lss=rg_lss, nov_lss=nov_lss, nov_md=nov_md, lss_latent=lss_latent,
            lag_time=lag_time, conformers=lss_traj[rng.choice(lss_traj.n_frames, 6, replace=False)], kT=kT,
            tic1=(tic1_edges, f_t1_md, f_t1_lss, mask_t1, f_t1_se),
        )
        if "folding" in metrics:
            plots.folding_figure(out_dir / "folding.png", metrics["folding"])
        plots.decoder_figure(out_dir / "decoder.png", md_all, round_trip, lss_traj, metrics["decoder"], kT=kT, seed=seed)
        if ck is not None:
            plots.plot_chapman_kolmogorov(ck, frame_time=md_frame_time, unit="ps",
                                          path=out_dir / "chapman_kolmogorov.png")
        models = lss_traj[np.sort(rng.choice(lss_traj.n_frames, min(20, lss_traj.n_frames), replace=False))]
        with _io.atomic_path(out_dir / "decoded_models.pdb") as tmp:
            models.save_pdb(str(tmp))  # one MODEL record per frame, for any molecular viewer
        _io.write_json(out_dir / "metrics.json", _io.jsonable(metrics))
    return _io.jsonable(metrics)


def _basins(pp: np.ndarray) -> dict:
    phi, psi = pp[:, 0], pp[:, 1]
    alpha_l = phi > 0
    alpha_r = (~alpha_l) & (psi > -2.0) & (psi < 0.9)
    beta = (~alpha_l) & ~alpha_r
    # alpha_l (phi > 0) also counts the beta frames just across phi = +-180 deg; alpha_l_basin (0 < phi < 120 deg)
    # is the left-handed basin itself
    alpha_l_basin = alpha_l & (phi < np.radians(120.0))
    return {"beta_ppii": float(beta.mean()), "alpha_r": float(alpha_r.mean()), "alpha_l": float(alpha_l.mean()),
            "alpha_l_basin": float(alpha_l_basin.mean())}


def _quantiles(x) -> dict:
    q = np.quantile(x, [0.05, 0.5, 0.95])
    return {"min": float(np.min(x)), "q05": float(q[0]), "median": float(q[1]), "q95": float(q[2])}


def _block_se(values) -> np.ndarray:
    """Standard error over blocks (axis 0), ignoring non-finite entries (:func:`lss_jax.analysis.distributions.mean_standard_error`)."""
    return mean_standard_error(values)[1]
