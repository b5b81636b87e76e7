"""Validation of a molecular LSS against independent MD (the paper's Sec. 3.2 for our system).

:func:`run_validation` (its metrics alone: :func:`validate`) compares, with the same estimators on both sides:

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
  one that only the full LSS shows comes from the propagator;
* the decoder's conditional distributions (:func:`lss_jax.analysis.conditional.conditional_fidelity`): at
  held-out MD latent points, decoded Rg, pair distances and Q against the MD frames nearest in latent space,
  beside MD against MD;
* the field's kinetic metrics (:func:`lss_jax.analysis.compare.compare_kinetics`) and the model's kinetic
  self-consistency (:mod:`lss_jax.analysis.consistency`);
* a system's own observables, through the hook its caller chooses (``system_metrics``, e.g. the Trp-cage
  folding analysis, :func:`lss_jax.systems.report.report_metrics_for`).

This module computes numbers only: :func:`write_validation` writes ``metrics.json`` and ``decoded_models.pdb``,
and the figures are drawn by whoever wants them (:func:`lss_jax.analysis.plots.report_figures`, as
``lss-jax report`` does).
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import numpy as np

from lss_jax.analysis import consistency, structure
from lss_jax.analysis.compare import compare_kinetics
from lss_jax.analysis.conditional import conditional_fidelity
from lss_jax.analysis.distributions import (
    free_energy_2d,
    free_energy_rmse,
    free_energy_rmse_2d,
    histogram_free_energy,
    mean_standard_error,
)
from lss_jax.analysis.torsions import DEFAULT_TORSIONS, basin_populations, phi_psi
from lss_jax.encoder import implied_timescales, reversible_decomposition
from lss_jax.engine import io as _io

__all__ = ["Validation", "validate", "run_validation", "write_validation", "compare_structures", "comparison_summary",
           "decoder_round_trip", "support_diagnostics"]

# the novelty RMSDs compare generated frames with every training frame up to this many (all of the shipped data
# and a 100 ns run at 1 ps; 10-15 s for 1000 frames on one core), with a random sample of this many beyond
NOVELTY_REFERENCE_FRAMES = 100_000


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
        out["basin_populations"] = {"md": basin_populations(pp_ref), "generated": basin_populations(pp_gen)}
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


def comparison_summary(comparison: dict) -> dict:
    """The headline numbers of a :func:`compare_structures` result, flat, for a table or a results file.

    Returns:
        dict: ``f_phi_psi_rmse_kT`` and ``coverage`` (``None`` without backbone torsions), the generated
        frames' ``alpha_l``, ``alpha_r`` and ``alpha_l_basin`` populations (``None`` likewise), ``bond_mad_pct``
        and ``angle_mad_deg`` (relative bond-length MAD in percent, angle MAD in degrees), ``bonds_off_10pct_pct``
        and ``clash_frames_pct`` (percent of the generated frames), ``clash_frames`` and ``n_frames_checked``.

    Example:
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> heavy = lambda t: t.atom_slice(t.topology.select("not element H"))
        >>> md_a = heavy(load_alanine_dipeptide("train", stride=50))
        >>> md_b = heavy(load_alanine_dipeptide("independent", stride=50))
        >>> row = comparison_summary(compare_structures(md_a, md_b))
        >>> row["clash_frames"], row["n_frames_checked"], row["bonds_off_10pct_pct"]
        (0, 500, 0.0)
    """
    fe = comparison.get("free_energy_phi_psi", {})
    basins = comparison["basin_populations"]["generated"] if "basin_populations" in comparison else {}
    geometry = comparison["geometry"]
    clashes = comparison["clashes"]["generated"]
    return {
        "f_phi_psi_rmse_kT": fe.get("rmse_kT"), "coverage": fe.get("coverage"),
        "alpha_l": basins.get("alpha_l"), "alpha_r": basins.get("alpha_r"), "alpha_l_basin": basins.get("alpha_l_basin"),
        "bond_mad_pct": 100 * geometry["bond_length_mad_relative"], "angle_mad_deg": geometry["angle_mad_degrees"],
        "bonds_off_10pct_pct": 100 * comparison["bonds_off_10pct_fraction"]["generated"],
        "clash_frames_pct": 100 * clashes["fraction_frames_with_clash"],
        "clash_frames": clashes["frames_with_clash"],
        "n_frames_checked": clashes["n_frames"],
    }


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


class Validation(NamedTuple):
    """The result of :func:`run_validation`: the metrics and what the report's figures and files are drawn from.

    Attributes:
        metrics: the JSON-ready metrics dictionary (what :func:`validate` returns, ``metrics.json``).
        figures: the arrays and trajectories behind the figures of the report, for
            :func:`lss_jax.analysis.plots.report_figures`: ``molecular`` (the keyword arguments of
            :func:`lss_jax.analysis.plots.molecular_figures`), ``decoder`` (MD, decode(encode(MD)), LSS and the
            unrounded ``decoder`` metrics), ``chapman_kolmogorov`` (the raw CK result and the MD frame time, or
            ``None``), ``folding`` (the unrounded system metrics, or ``None``) and ``ensemble`` (whether the model
            has an ensemble of propagators).
        decoded_models: 20 decoded frames (fewer if there are fewer), the report's ``decoded_models.pdb``.
    """

    metrics: dict
    figures: dict
    decoded_models: Any


class _Inputs(NamedTuple):
    """What every part of the validation reads: the model, MD (whole and in the decoded atoms), LSS."""

    model: Any
    md_trajs: list
    md_heavy: list
    md_all: Any
    psi_md: list
    lss_traj: Any
    lss_latent: np.ndarray
    kT: float
    n_blocks: int
    seed: int

    @property
    def lag(self) -> int:
        return self.model.config.lag

    @property
    def lag_time(self) -> float:
        return self.model.lag_time

    @property
    def latent_dim(self) -> int:
        return self.lss_latent.shape[2]


def validate(model, md_trajs, lss_traj, lss_latent: np.ndarray, *, train_trajs=None, n_blocks: int = 5,
             kT: float = 1.0, max_rmsd_frames: int = 1000, seed: int = 0,
             system_metrics: Callable[..., dict] | None = None, native_contacts_fn: Callable | None = None) -> dict:
    """Compare generated trajectories with independent MD: the metrics of :func:`run_validation` (same arguments).

    The report's figures and files need :func:`run_validation`, :func:`write_validation` and
    :func:`lss_jax.analysis.plots.report_figures`.

    Example:
        Not run as doctests (they need the model that ``lss-jax demo`` writes; ``tests/test_molecular.py``
        validates a trained model):

        >>> import jax, mdtraj as md
        >>> from lss_jax import LSS
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> model = LSS.load("runs/demo/model")  # doctest: +SKIP
        >>> latent = model.generate(jax.random.key(0), 50, 200, latent_only=True)  # doctest: +SKIP
        >>> xyz = model.decode(jax.random.key(1), latent).reshape(-1, len(model.atom_indices), 3)  # doctest: +SKIP
        >>> lss_traj = md.Trajectory(xyz, model.decoded_topology)  # doctest: +SKIP
        >>> metrics = validate(model, load_alanine_dipeptide("independent"), lss_traj, latent)  # doctest: +SKIP
        >>> sorted(metrics)[:3]  # doctest: +SKIP
        ['free_energy_phi_psi', 'free_energy_psi1', 'implied_timescales_ps']
    """
    return run_validation(model, md_trajs, lss_traj, lss_latent, train_trajs=train_trajs, n_blocks=n_blocks, kT=kT,
                          max_rmsd_frames=max_rmsd_frames, seed=seed, system_metrics=system_metrics,
                          native_contacts_fn=native_contacts_fn).metrics


def run_validation(
    model,
    md_trajs,
    lss_traj,
    lss_latent: np.ndarray,
    *,
    train_trajs=None,
    n_blocks: int = 5,
    kT: float = 1.0,
    max_rmsd_frames: int = 1000,
    seed: int = 0,
    system_metrics: Callable[..., dict] | None = None,
    native_contacts_fn: Callable | None = None,
) -> Validation:
    """Compare generated trajectories with independent MD; keep what the report's figures are drawn from.

    Args:
        model: a fitted :class:`lss_jax.LSS`.
        md_trajs: independent MD (``mdtraj.Trajectory`` or list; the training topology).
        lss_traj: decoded LSS frames (``mdtraj.Trajectory`` of the decoded atoms), trajectory-major.
        lss_latent: ``[B, n_frames, m]`` latent trajectories the frames were decoded from.
        train_trajs: training MD, for the novelty check (optional).
        n_blocks: blocks for block-averaged errors.
        kT: energy unit of the reported free energies.
        max_rmsd_frames: generated frames subsampled for the novelty RMSDs.
        seed: seed of all frame subsampling.
        system_metrics: a system's own observables, chosen by the caller (e.g.
            :func:`lss_jax.systems.trp_cage.report_metrics`; :func:`lss_jax.systems.report.report_metrics_for` picks the one
            of a topology): ``system_metrics(md_xyz, lss_xyz, *, md_frame_time, lss_frame_time, n_blocks) -> dict``
            with the MD's decoded atoms (a list of ``[n_frames, n_atoms, 3]``) and the LSS frames
            ``[B, n_frames, n_atoms, 3]``; its items are added to the metrics (``folding`` for Trp-cage).
            F(phi, psi) and the basin populations are computed when the decoded atoms define backbone torsions.
        native_contacts_fn: Q of frames of the decoded atoms, ``[n, n_atoms, 3] -> [n]``, for a system with native
            contacts (:func:`lss_jax.systems.report.native_contacts_for` picks it); the decoder's conditional
            fidelity (``decoder.conditional``) then covers Q too.

    Returns:
        :class:`Validation`: the metrics, the figure data for :func:`lss_jax.analysis.plots.report_figures`,
        and the frames of ``decoded_models.pdb`` (:func:`write_validation` writes both files).

    Example:
        Not run as a doctest (it needs a fitted model; ``tests/test_molecular.py`` runs the report):

        >>> validation = run_validation(model, md_traj, lss_traj, latent)  # doctest: +SKIP
        >>> from lss_jax.analysis import plots  # doctest: +SKIP
        >>> plots.report_figures("report", validation, model)  # doctest: +SKIP
    """
    inp = _validation_inputs(model, md_trajs, lss_traj, lss_latent, kT=kT, n_blocks=n_blocks, seed=seed)
    metrics: dict = {"n_md_frames": int(inp.md_all.n_frames), "n_lss_frames": int(lss_traj.n_frames),
                     "n_lss_trajectories": int(inp.lss_latent.shape[0]), "lag_time_ps": inp.lag_time, "kT": kT}
    metrics["free_energy_psi1"], psi1 = _free_energy_psi1(inp)
    phi_psi_block, phi_psi_figure, pp_md = _free_energy_phi_psi(inp)
    if phi_psi_block is not None:
        metrics["free_energy_phi_psi"] = phi_psi_block
    metrics["implied_timescales_ps"], timescales = _latent_timescales(inp)
    metrics["consistency"], ck, md_frame_time = _consistency(inp, timescales)
    floor = model.info.get("encoder", {}).get("linear_floor")
    if floor is not None:  # the encoder against TICA, as trained (lss_jax.encoder.linear_floor)
        metrics["encoder"] = {"linear_floor": floor}
        if floor.get("below"):
            metrics["consistency"]["warnings"].append(_floor_warning(floor))
    kin = _kinetic_metrics(inp, md_frame_time, metrics["consistency"]["warnings"])
    if kin is not None:
        metrics["kinetics"] = kin
    metrics["structure"], structures, train_all, (conformers, models) = _structures(inp, train_trajs,
                                                                                    max_rmsd_frames)
    if "novelty" in structures:
        metrics["novelty_nearest_training_rmsd_nm"] = structures.pop("novelty")
    metrics["tica"], tica_figure = _tica(inp)
    metrics["decoder"], round_trip = _decoder(inp, train_all, native_contacts_fn)
    own = {} if system_metrics is None else system_metrics(
        [t.xyz for t in inp.md_heavy], lss_traj.xyz.reshape(*inp.lss_latent.shape[:2], -1, 3),
        md_frame_time=float(inp.md_trajs[0].timestep), lss_frame_time=inp.lag_time, n_blocks=n_blocks)
    metrics.update(own)
    members = model.ensemble_members() if hasattr(model, "ensemble_members") else []
    if members:
        metrics["ensemble"] = _ensemble(inp, members, psi1, phi_psi_figure, pp_md, timescales)
    figures = {
        "molecular": dict(
            psi1_edges=psi1["edges"], f_md=psi1["f_md"], f_md_se=psi1["f_md_se"], f_lss=psi1["f_lss"],
            mask1=psi1["mask"], **phi_psi_figure, t_md=timescales["md"], t_md_se=timescales["md_se"],
            t_lss=timescales["lss"], t_lss_se=np.array(metrics["implied_timescales_ps"]["lss_se"]), **tica_figure,
            **structures, lss_latent=inp.lss_latent, lag_time=inp.lag_time, conformers=lss_traj[conformers], kT=kT),
        "decoder": dict(md_traj=inp.md_all, round_trip=round_trip, lss_traj=lss_traj, metrics=metrics["decoder"],
                        kT=kT, seed=seed),
        "chapman_kolmogorov": None if ck is None else dict(result=ck, frame_time=md_frame_time),
        "folding": own.get("folding"),
        "ensemble": bool(members),
    }
    return Validation(_io.jsonable(metrics), figures, lss_traj[models])


def write_validation(out_dir, validation: Validation) -> None:
    """Write ``decoded_models.pdb`` (one MODEL record per frame, for any molecular viewer) and ``metrics.json``
    of a :func:`run_validation` result into ``out_dir`` (created), atomically; the figures are
    :func:`lss_jax.analysis.plots.report_figures`'.

    Example:
        Not run as a doctest (it needs a fitted model; ``tests/test_molecular.py`` runs the report):

        >>> write_validation("report", run_validation(model, md_traj, lss_traj, latent))  # doctest: +SKIP
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with _io.atomic_path(out_dir / "decoded_models.pdb") as tmp:
        validation.decoded_models.save_pdb(str(tmp))
    _io.write_json(out_dir / "metrics.json", _io.jsonable(validation.metrics))


def _validation_inputs(model, md_trajs, lss_traj, lss_latent, *, kT, n_blocks, seed) -> _Inputs:
    import mdtraj as md

    md_trajs = [md_trajs] if isinstance(md_trajs, md.Trajectory) else list(md_trajs)
    lss_latent = np.asarray(lss_latent)
    if lss_latent.ndim != 3 or lss_latent.shape[0] * lss_latent.shape[1] != lss_traj.n_frames:
        raise ValueError(
            f"lss_latent must be [n_trajectories, n_frames, latent_dim] matching the {lss_traj.n_frames} decoded "
            f"frames, got {lss_latent.shape}."
        )
    psi_md = model.encode(md_trajs)
    md_heavy = [t.atom_slice(model.atom_indices) for t in md_trajs]
    md_all = md.join(md_heavy) if len(md_heavy) > 1 else md_heavy[0]
    return _Inputs(model, md_trajs, md_heavy, md_all, psi_md, lss_traj, lss_latent, kT, n_blocks, seed)


def _free_energy_psi1(inp: _Inputs) -> tuple[dict, dict]:
    """F(psi_1) of MD (with block errors) and LSS on 50 bins over the MD's range."""
    kT = inp.kT
    psi1_md = np.concatenate([p[:, 0] for p in inp.psi_md])
    edges = np.linspace(psi1_md.min(), psi1_md.max(), 51)
    f_md, p_md = histogram_free_energy(psi1_md, edges, kT=kT)
    f_lss, _ = histogram_free_energy(inp.lss_latent[..., 0], edges, kT=kT)
    blocks_f = [histogram_free_energy(np.concatenate([b[:, 0] for b in blk]), edges, kT=kT)[0]
                for blk in _blocks(inp.psi_md, inp.n_blocks)]
    mask = p_md >= 1e-3 * p_md.max()
    profiles = {"edges": edges, "f_md": f_md, "f_md_se": _block_se(blocks_f), "f_lss": f_lss, "mask": mask}
    return {"rmse_kT": free_energy_rmse(f_lss, f_md, mask), "n_bins": int(mask.sum())}, profiles


def _free_energy_phi_psi(inp: _Inputs) -> tuple[dict | None, dict, np.ndarray | None]:
    """F(phi, psi) of MD and LSS with the MD's half-vs-half floor and block errors, when the decoded atoms
    have backbone torsions (else ``None``); the surfaces for the figure; the MD's (phi, psi)."""
    kT = inp.kT
    try:
        pp_md = np.concatenate([phi_psi(t) for t in inp.md_heavy])
    except ValueError:
        return None, dict(f2_md=None, f2_lss=None, p2_md=None, xe=None, ye=None), None
    pp_lss = phi_psi(inp.lss_traj)
    f2_md, p2_md, xe, ye = free_energy_2d(pp_md[:, 0], pp_md[:, 1], kT=kT)
    f2_lss, _, _, _ = free_energy_2d(pp_lss[:, 0], pp_lss[:, 1], kT=kT)
    rmse2, n2 = free_energy_rmse_2d(f2_lss, p2_md, f2_md)
    half = len(pp_md) // 2
    fa, _, _, _ = free_energy_2d(pp_md[:half, 0], pp_md[:half, 1], kT=kT)
    fb, pb, _, _ = free_energy_2d(pp_md[half:, 0], pp_md[half:, 1], kT=kT)
    rmse_half, _ = free_energy_rmse_2d(fa, pb, fb)
    blocks_2d = [free_energy_2d(b[:, 0], b[:, 1], kT=kT)[0] for b in np.array_split(pp_md, inp.n_blocks)]
    block = {
        "rmse_kT": rmse2, "n_bins": int(n2), "md_half_vs_half_rmse_kT": rmse_half,
        "md_block_se_median_kT": float(np.nanmedian(_block_se(blocks_2d)[p2_md >= 1e-3 * p2_md.max()])),
        "basin_populations": {"md": basin_populations(pp_md), "lss": basin_populations(pp_lss)},
    }
    return block, dict(f2_md=f2_md, f2_lss=f2_lss, p2_md=p2_md, xe=xe, ye=ye), pp_md


def _latent_timescales(inp: _Inputs) -> tuple[dict, dict]:
    """Implied timescales of the latent coordinates, MD (at the lag) and LSS (one step), with block errors."""
    m, lag, lag_time = inp.latent_dim, inp.lag, inp.lag_time
    t_md = _timescales(inp.psi_md, lag, lag_time, m)
    lat_list = list(inp.lss_latent)
    t_lss = _timescales(lat_list, 1, lag_time, m)
    t_md_blocks = np.array([_timescales(b, lag, lag_time, m) for b in _blocks(inp.psi_md, inp.n_blocks)])
    t_lss_blocks = np.array([_timescales(b, 1, lag_time, m) for b in _blocks(lat_list, inp.n_blocks)])
    t_md_se = _block_se(t_md_blocks)
    block = {
        "md": t_md.tolist(), "md_se": t_md_se.tolist(), "lss": t_lss.tolist(),
        "lss_se": _block_se(t_lss_blocks).tolist(),
        "t1_within_md_error": bool(abs(t_lss[0] - t_md[0]) <= 2 * t_md_se[0]),
        "t1_relative_error": float(abs(t_lss[0] - t_md[0]) / t_md[0]),
    }
    return block, {"md": t_md, "md_se": t_md_se, "lss": t_lss, "lss_se": block["lss_se"]}


def _guarded(name: str, fn, report_warnings: list[str]):
    """Kinetic estimators need enough frames per state; on too little data the report says so and goes on."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # lag and connectivity notes are kept in the results
            return fn()
    except (ValueError, np.linalg.LinAlgError, FloatingPointError) as err:
        report_warnings.append(f"{name} could not be computed ({type(err).__name__}: {' '.join(str(err).split())}); "
                               "it needs more MD or generated frames")
        return None


def _consistency(inp: _Inputs, timescales: dict) -> tuple[dict, dict | None, float]:
    """Kinetic self-consistency (:mod:`lss_jax.analysis.consistency`): the CK test of the propagator on the MD's
    latent states, wall reflections, timescales; the raw CK result; the MD frame time."""
    model, m, lag, lag_time = inp.model, inp.latent_dim, inp.lag, inp.lag_time
    t_md, t_md_se, t_lss = timescales["md"], timescales["md_se"], timescales["lss"]
    md_frame_time = float(inp.md_trajs[0].timestep) if inp.md_trajs[0].n_frames > 1 else lag_time / lag
    report_warnings: list[str] = []
    ck = _guarded("the Chapman-Kolmogorov test", lambda: consistency.latent_chapman_kolmogorov(
        inp.psi_md, inp.lss_latent, lag, seed=inp.seed), report_warnings)
    tol = 2 * np.hypot(t_md_se, np.nan_to_num(timescales["lss_se"]))
    report_warnings += [f"t{i + 1} of the LSS ({t_lss[i]:.4g} ps) differs from MD ({t_md[i]:.4g} ps) by more than twice "
                        f"their combined standard error ({tol[i]:.2g} ps)" for i in range(m) if abs(t_lss[i] - t_md[i]) > tol[i]]
    reflected = consistency.reflection_fraction(model, model.to_unit(inp.lss_latent)[:, :-1])
    if reflected > consistency.WALL_WARNING_FRACTION:
        report_warnings.append(f"{100 * reflected:.1f} % of the propagator's steps are reflected at the unit-box walls")
    if ck is not None and not ck["passed"]:
        report_warnings.append(f"the propagator fails the Chapman-Kolmogorov test on the MD's latent states (largest "
                               f"deviation {ck['max_deviation_sigma']:.1f} standard errors)")
    block = {
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
    return block, ck, md_frame_time


def _kinetic_metrics(inp: _Inputs, md_frame_time: float, report_warnings: list[str]) -> dict | None:
    """The field's kinetic metrics (:func:`lss_jax.analysis.compare.compare_kinetics`) of the decoded frames, or
    ``None`` (and a line in ``report_warnings``) on too little data."""
    n_traj, n_per = inp.lss_latent.shape[:2]
    lss_parts = [inp.lss_traj[b * n_per : (b + 1) * n_per] for b in range(n_traj)]
    return _guarded("the kinetic metrics (JSD, metastable MSM, autocorrelations)", lambda: compare_kinetics(
        inp.md_heavy, lss_parts, md_frame_time=md_frame_time, lss_frame_time=inp.lag_time,
        msm_lag_time=inp.lag_time, torsions=(*DEFAULT_TORSIONS, "ca"), seed=inp.seed), report_warnings)


def _structures(inp: _Inputs, train_trajs, max_rmsd_frames: int) -> tuple[dict, dict, Any, tuple]:
    """Radius of gyration, bonded geometry, clashes and binned RMSD of the LSS against MD, and the novelty
    (RMSD to the nearest training frame) when ``train_trajs`` is given, under the key ``novelty`` of the figure
    data. Returns the metrics block, the figure data, the joined training frames (or ``None``) and the frames
    drawn for the conformer figure and ``decoded_models.pdb``, from the same seeded generator as the rest."""
    import mdtraj as md

    lss_traj, md_all, seed, m = inp.lss_traj, inp.md_all, inp.seed, inp.latent_dim
    rng = np.random.default_rng(seed)
    sub = np.sort(rng.choice(lss_traj.n_frames, size=min(lss_traj.n_frames, 20_000), replace=False))
    conformers = rng.choice(lss_traj.n_frames, min(6, lss_traj.n_frames), replace=False)
    models = np.sort(rng.choice(lss_traj.n_frames, min(20, lss_traj.n_frames), replace=False))
    lss_sub = lss_traj[sub]
    rg_md, rg_lss = structure.radius_of_gyration(md_all), structure.radius_of_gyration(lss_sub)
    geometry = structure.geometry_deviation(md_all, lss_sub)
    clashes_lss = structure.count_clashes(lss_sub, reference=md_all[0])
    clashes_md = structure.count_clashes(md_all[:: max(1, md_all.n_frames // 20_000)])
    binned = structure.binned_rmsd(md_all, np.concatenate(inp.psi_md), lss_traj, inp.lss_latent.reshape(-1, m),
                                   n_bins=8, seed=seed)
    block = {
        "radius_of_gyration_nm": {"md": [float(rg_md.mean()), float(rg_md.std())],
                                  "lss": [float(rg_lss.mean()), float(rg_lss.std())]},
        "geometry": geometry,
        "clashes": {"lss": clashes_lss, "md": clashes_md},
        "binned_rmsd_nm": {"centers": binned["centers"].tolist(), "lss_md": binned["lss_md_rmsd"].tolist(),
                           "md_md": binned["md_md_rmsd"].tolist()},
    }
    figure = {"rg_md": rg_md, "rg_lss": rg_lss, "nov_lss": None, "nov_md": None}
    train_all = None
    if train_trajs is not None:
        train = [t.atom_slice(inp.model.atom_indices)
                 for t in ([train_trajs] if isinstance(train_trajs, md.Trajectory) else train_trajs)]
        train_all = md.join(train) if len(train) > 1 else train[0]
        # against every training frame up to NOVELTY_REFERENCE_FRAMES (a sample would count a copy of a frame left
        # out as new); beyond that a sample of that size, and metrics.json says which
        n_ref = min(train_all.n_frames, NOVELTY_REFERENCE_FRAMES)
        nov_lss = structure.nearest_frame_rmsd(lss_traj, train_all, max_generated=max_rmsd_frames,
                                               max_reference=n_ref, seed=seed)
        nov_md = structure.nearest_frame_rmsd(md_all, train_all, max_generated=max_rmsd_frames, max_reference=n_ref,
                                              seed=seed)
        figure.update(nov_lss=nov_lss, nov_md=nov_md, novelty={
            "lss": _quantiles(nov_lss), "independent_md": _quantiles(nov_md),
            "lss_fraction_below_0.01nm": float(np.mean(nov_lss < 0.01)),
            "reference_frames": n_ref, "training_frames": int(train_all.n_frames),
        })
    return block, figure, train_all, (conformers, models)


def _tica(inp: _Inputs) -> tuple[dict, dict]:
    """TICA of all pairwise distances of the decoded atoms, fitted on MD at the lag: F(TIC 1, TIC 2) of MD and
    LSS and F(TIC 1) with the MD's half-vs-half floor and block errors."""
    import mdtraj as md

    kT, lag, md_all = inp.kT, inp.lag, inp.md_all
    pairs = np.array(list(itertools.combinations(range(md_all.n_atoms), 2)))
    d_md = [md.compute_distances(t, pairs) for t in inp.md_heavy]
    tica = reversible_decomposition(d_md, lag)
    proj = lambda d: (d - tica.mean[None, :]) @ tica.vectors[:, :2]  # noqa: E731
    tic_md = np.concatenate([proj(d) for d in d_md])
    d_lss = md.compute_distances(inp.lss_traj, pairs)
    tic_lss = proj(d_lss)
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
    f_t1_se = _block_se([histogram_free_energy(np.concatenate(b), tic1_edges, kT=kT)[0]
                         for b in _blocks(tic1_md_parts, inp.n_blocks)])
    block = {"rmse_kT": rmse_t, "n_bins": int(n_t),
             "md_timescales_ps": implied_timescales(tica.eigenvalues[:3], inp.lag_time).tolist(),
             # the same estimator on the decoded structures (frames one lag apart): how much of the slow process
             # the decoded frames carry, beside the latent timescales
             "lss_timescales_ps": implied_timescales(reversible_decomposition(
                 list(d_lss.reshape(inp.lss_latent.shape[0], inp.lss_latent.shape[1], -1)), 1).eigenvalues[:3],
                 inp.lag_time).tolist() if inp.lss_latent.shape[1] > 1 else None,
             "free_energy_tic1": {"rmse_kT": free_energy_rmse(f_t1_lss, f_t1_md, mask_t1),
                                  "md_half_vs_half_rmse_kT": free_energy_rmse(f_h1, f_h0, mask_t1),
                                  "md_block_se_median_kT": float(np.nanmedian(f_t1_se[mask_t1])),
                                  "n_bins": int(mask_t1.sum())}}
    figure = dict(ft_md=ft_md, ft_lss=ft_lss, txe=txe, tye=tye, tic1=(tic1_edges, f_t1_md, f_t1_lss, mask_t1, f_t1_se))
    return block, figure


def _decoder(inp: _Inputs, train_all, native_contacts_fn=None) -> tuple[dict, Any]:
    """The decoder alone: decode(encode(MD)) against MD, beside the full LSS, and its conditional distributions at
    held-out latent points (and the round trip's frames)."""
    model, kT, seed = inp.model, inp.kT, inp.seed
    md_frame_time = float(inp.md_trajs[0].timestep) if inp.md_trajs[0].n_frames > 1 else inp.lag_time / inp.lag
    # MD frames closer in time than one lag are close through the dynamics, not only through psi: not neighbours
    window = max(1, round(inp.lag_time / md_frame_time))
    round_trip, draws = decoder_round_trip(jax.random.key(seed), model, inp.md_trajs, return_draws=True)
    block = {
        "round_trip": compare_structures(inp.md_all, round_trip, kT=kT, seed=seed, floor=train_all),
        "lss": compare_structures(inp.md_all, inp.lss_traj, kT=kT, seed=seed),
        "kind": model.config.decoder.kind, "coordinates": model.config.decoder.coordinates,
        "support": support_diagnostics(model, inp.md_all.xyz, draws),
    }
    needed = 2 * _CONDITIONAL_NEIGHBOURS + 2 * window + 1  # a point's neighbours, however many the window leaves out
    if inp.md_all.n_frames < needed:
        block["conditional"] = {"note": f"not computed: it needs at least {needed} MD frames, "
                                        f"{inp.md_all.n_frames} given"}
    else:
        block["conditional"] = conditional_fidelity(
            jax.random.fold_in(jax.random.key(seed), _CONDITIONAL_STREAM), model, inp.md_trajs, latent=inp.psi_md,
            k=_CONDITIONAL_NEIGHBOURS, window=window, q_fn=native_contacts_fn, seed=seed)
    return block, round_trip


_CONDITIONAL_STREAM = 1_000_003  # its decoder noise apart from the round trip's (fold_in(key(seed), trajectory))
_CONDITIONAL_NEIGHBOURS = 32


def _ensemble(inp: _Inputs, members, psi1: dict, phi_psi_figure: dict, pp_md, timescales: dict) -> dict:
    """The same analysis for every propagator of the ensemble (same start points and length): its spread."""
    model, kT, lag_time, m = inp.model, inp.kT, inp.lag_time, inp.latent_dim
    f2_md, p2_md = phi_psi_figure["f2_md"], phi_psi_figure["p2_md"]
    per = {"t1_ps": [], "free_energy_phi_psi_rmse_kT": [], "free_energy_psi1_rmse_kT": [], "populations": []}
    for k, prop in enumerate(members):
        traj_k, lat_k = model.generate(jax.random.fold_in(jax.random.key(inp.seed), 1000 + k), inp.lss_latent.shape[0],
                                       inp.lss_latent.shape[1], return_latent=True, propagator=prop, progress=False)
        per["t1_ps"].append(float(_timescales(list(lat_k), 1, lag_time, m)[0]))
        f_k = histogram_free_energy(lat_k[..., 0], psi1["edges"], kT=kT)[0]
        per["free_energy_psi1_rmse_kT"].append(free_energy_rmse(f_k, psi1["f_md"], psi1["mask"]))
        if pp_md is not None:
            pp_k = phi_psi(traj_k)
            f2_k, _, _, _ = free_energy_2d(pp_k[:, 0], pp_k[:, 1], kT=kT)
            per["free_energy_phi_psi_rmse_kT"].append(free_energy_rmse_2d(f2_k, p2_md, f2_md)[0])
            per["populations"].append(basin_populations(pp_k))
    spread = lambda v: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1))}  # noqa: E731
    return {
        "n_members": len(members),
        "per_member": per,
        "t1_ps": spread(per["t1_ps"]),
        "free_energy_psi1_rmse_kT": spread(per["free_energy_psi1_rmse_kT"]),
        "free_energy_phi_psi_rmse_kT": spread(per["free_energy_phi_psi_rmse_kT"]) if pp_md is not None else None,
        "populations": ({b: spread([p[b] for p in per["populations"]]) for b in per["populations"][0]}
                        if pp_md is not None else {}),
        "md_block_se": {"t1_ps": float(timescales["md_se"][0])},
    }


def _floor_warning(floor: dict) -> str:
    """The warning of an encoder recorded below the linear floor (``info["encoder"]["linear_floor"]``).

    Example:
        >>> _floor_warning({"below": True, "tica_train_eigenvalues": [0.8]})[:40]
        'the encoder loses a slow process that li'
        >>> _floor_warning({"below": True})[:39]   # a record made before the rule judged per process
        "the encoder's VAMP-2 is below TICA's by"
    """
    if "tica_train_eigenvalues" in floor:
        return ("the encoder loses a slow process that linear TICA on the same features finds (encoder.linear_floor "
                "= true trains it from TICA)")
    return ("the encoder's VAMP-2 is below TICA's by the rule of models saved before 2026-12-06, which TICA's "
            "in-sample bias trips with many features; retrain to judge it per process (encoder.linear_floor)")


def _quantiles(x) -> dict:
    q = np.quantile(x, [0.05, 0.5, 0.95])
    return {"min": float(np.min(x)), "q05": float(q[0]), "median": float(q[1]), "q95": float(q[2])}


def _block_se(values) -> np.ndarray:
    """Standard error over blocks (axis 0), ignoring non-finite entries (:func:`lss_jax.analysis.distributions.mean_standard_error`)."""
    return mean_standard_error(values)[1]
