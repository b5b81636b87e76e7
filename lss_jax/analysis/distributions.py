"""Distances between distributions and free energies of histograms (float64 NumPy, host side).

The estimators applied identically to reference data (MD/BD) and to generated (LSS) trajectories, so any
difference between the two comes from the dynamics, not from the analysis:

* Jensen-Shannon distances of histograms (:func:`js_distance`), of 1-D and 2-D samples (:func:`jsd_1d`,
  :func:`jsd_2d`, periodic for angles), on the reference's range (:func:`jsd_reference_range`, for TICs), and of
  every torsion, (phi, psi) pair and leading TIC of two molecular ensembles (:func:`torsion_jsds`);
* free energies ``F = -kT ln p`` of 1-D and 2-D histograms (:func:`histogram_free_energy`,
  :func:`free_energy_2d`) and their RMSE after the best additive constant (:func:`free_energy_rmse`,
  :func:`free_energy_rmse_2d`, :func:`penalized_free_energy_rmse`), probabilities moved between bins
  (:func:`rebin`), and block-averaged errors of any statistic (:func:`block_average`,
  :func:`mean_standard_error`).

Conventions:

* **JSD** is the Jensen-Shannon *distance* (the square root of the divergence, as
  :func:`scipy.spatial.distance.jensenshannon`) with **base-2 logarithms**, so it lies in ``[0, 1]``:
  0 for identical histograms, 1 for disjoint supports. Finite samples bias it upwards (roughly
  ``sqrt(bins / n)``), which is what an MD-vs-MD floor measures (:func:`lss_jax.analysis.compare.compare_kinetics`).
* **Free energies** are ``inf`` in empty bins; RMSEs use the bins finite in both profiles (and a mask).

References:
    Lin, J. "Divergence measures based on the Shannon entropy", IEEE Trans. Inf. Theory 37, 145 (1991) (JSD).
    Endres, D. M. & Schindelin, J. E. "A new metric for probability distributions", IEEE Trans. Inf.
    Theory 49, 1858 (2003) (sqrt(JSD) is a metric).
    Flyvbjerg, H. & Petersen, H. G. "Error estimates on averages of correlated data", J. Chem. Phys. 91,
    461 (1989) (block averages).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from lss_jax.analysis._common import as_series_list, check_int
from lss_jax.analysis.tica import fit_tica, project
from lss_jax.analysis.torsions import DEFAULT_TORSIONS, _angles_of, _torsion_features

__all__ = [
    "js_distance",
    "jsd_1d",
    "jsd_2d",
    "jsd_reference_range",
    "torsion_jsds",
    "histogram_free_energy",
    "free_energy_rmse",
    "free_energy_2d",
    "free_energy_rmse_2d",
    "penalized_free_energy_rmse",
    "rebin",
    "block_average",
    "mean_standard_error",
]

_PERIODIC_RANGE = (-np.pi, np.pi)


# --------------------------------------------------------------------------------------------------
# Jensen-Shannon distances
# --------------------------------------------------------------------------------------------------


def js_distance(p, q) -> float:
    """Jensen-Shannon distance (base 2) between two histograms (any shape, normalized here).

    ``JSD(p, q) = sqrt(0.5 KL(p || m) + 0.5 KL(q || m))`` with ``m = (p + q) / 2`` and base-2 logarithms;
    empty bins contribute ``0 log 0 = 0``. Equals :func:`scipy.spatial.distance.jensenshannon` with
    ``base=2`` on the flattened histograms.

    Args:
        p: ``[...]`` non-negative counts or probabilities.
        q: ``[...]`` same shape.

    Returns:
        distance in ``[0, 1]``: 0 for equal histograms, 1 for disjoint supports.

    References:
        Lin, IEEE Trans. Inf. Theory 37, 145 (1991); Endres & Schindelin, IEEE Trans. Inf. Theory 49, 1858 (2003).

    Example:
        >>> js_distance([1, 1, 0, 0], [0, 0, 2, 5])   # disjoint supports
        1.0
        >>> round(js_distance([0.5, 0.5], [0.9, 0.1]), 4)
        0.3831
    """
    p = np.asarray(p, dtype=np.float64).ravel()
    q = np.asarray(q, dtype=np.float64).ravel()
    if p.shape != q.shape:
        raise ValueError(f"p and q must be histograms on the same bins, got {p.size} and {q.size} bins.")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))) or p.min(initial=0) < 0 or q.min(initial=0) < 0:
        raise ValueError("p and q must be finite and non-negative.")
    if not (p.sum() > 0 and q.sum() > 0):
        raise ValueError("p and q must each have positive total mass; a sample fell entirely outside the range?")
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a):
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return float(np.sqrt(np.clip(0.5 * kl(p) + 0.5 * kl(q), 0.0, 1.0)))


def _histogram(x: np.ndarray, bins: Sequence[int], ranges: Sequence[tuple[float, float]], periodic: bool) -> np.ndarray:
    """Counts of ``x [n, d]``: periodic coordinates wrapped into ``[lo, hi)``, others clipped into the edge bins."""
    x = np.array(x, dtype=np.float64, copy=True)
    for k, (lo, hi) in enumerate(ranges):
        if periodic:
            x[:, k] = lo + np.mod(x[:, k] - lo, hi - lo)
        else:
            x[:, k] = np.clip(x[:, k], lo, hi)
    counts, _ = np.histogramdd(x, bins=list(bins), range=list(ranges))
    return counts


def _check_samples(x, name: str, d: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if d == 1 and (x.ndim == 1 or (x.ndim == 2 and x.shape[1] == 1)):
        x = x.reshape(-1, 1)
    elif x.ndim != 2 or x.shape[1] != d:
        raise ValueError(f"{name} must have shape [n, {d}], got {x.shape}.")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty; pass at least one sample.")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains nan or inf.")
    return x


def _check_range(rng, d: int) -> list[tuple[float, float]]:
    rng = np.asarray(rng, dtype=np.float64)
    if d == 1 and rng.shape == (2,):
        rng = rng[None]
    if rng.shape != (d, 2) or not np.all(np.isfinite(rng)) or np.any(rng[:, 1] <= rng[:, 0]):
        raise ValueError(f"range must be {'(lo, hi)' if d == 1 else '((lo, hi), (lo, hi))'} with lo < hi, got {rng.tolist()}.")
    return [(float(lo), float(hi)) for lo, hi in rng]


def jsd_1d(a, b, *, bins: int = 100, range=_PERIODIC_RANGE, periodic: bool = True) -> float:  # noqa: A002
    """Jensen-Shannon distance (base 2) between the histograms of two 1-D samples, e.g. torsion marginals.

    Args:
        a: ``[n_a]`` samples (e.g. one torsion from MD, radians).
        b: ``[n_b]`` samples (e.g. the same torsion from generated frames).
        bins: number of equal bins on ``range``.
        range: ``(lo, hi)``; by default one period of an angle.
        periodic: wrap values into ``[lo, hi)`` modulo ``hi - lo`` (angles in any branch land in the right
            bin); if False, values outside the range are clipped into the edge bins (no sample is dropped).

    Returns:
        distance in ``[0, 1]`` (see :func:`js_distance`).

    References:
        Lin, IEEE Trans. Inf. Theory 37, 145 (1991).

    Example:
        >>> x = np.linspace(-3, 3, 1000)
        >>> jsd_1d(x, x), jsd_1d(x, x + 2 * np.pi)   # the same angles in another branch
        (0.0, 0.0)
    """
    bins = check_int(bins, "bins")
    ranges = _check_range(range, 1)
    a, b = _check_samples(a, "a", 1), _check_samples(b, "b", 1)
    return js_distance(_histogram(a, [bins], ranges, periodic), _histogram(b, [bins], ranges, periodic))


def jsd_2d(a, b, *, bins: int = 50, range=(_PERIODIC_RANGE, _PERIODIC_RANGE), periodic: bool = True) -> float:  # noqa: A002
    """Jensen-Shannon distance (base 2) between the 2-D histograms of two samples, e.g. (phi, psi) pairs.

    Args:
        a: ``[n_a, 2]`` samples.
        b: ``[n_b, 2]`` samples.
        bins: bins per axis.
        range: ``((lo0, hi0), (lo1, hi1))``; by default the torus ``[-pi, pi)^2``.
        periodic: wrap both coordinates (angles); if False, clip into the edge bins.

    Returns:
        distance in ``[0, 1]``.

    References:
        Lin, IEEE Trans. Inf. Theory 37, 145 (1991).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.uniform(-np.pi, 0, size=(500, 2))
        >>> jsd_2d(x, x), jsd_2d(x, x + np.pi)   # identical; shifted onto the other half of the torus
        (0.0, 1.0)
    """
    bins = check_int(bins, "bins")
    ranges = _check_range(range, 2)
    a, b = _check_samples(a, "a", 2), _check_samples(b, "b", 2)
    return js_distance(_histogram(a, [bins, bins], ranges, periodic), _histogram(b, [bins, bins], ranges, periodic))


def jsd_reference_range(reference, other, *, bins: int = 50) -> float:
    """Jensen-Shannon distance on bins spanning the reference's range (for TICA or other unbounded coordinates).

    The bins cover ``[min, max]`` of ``reference`` in every coordinate; samples of ``other`` outside are
    clipped into the edge bins, so probability that a generator puts beyond the reference counts against it.

    Args:
        reference: ``[n_ref]`` or ``[n_ref, d]`` (``d`` = 1 or 2) reference (MD) samples, e.g. TIC 0 or TICs 0-1.
        other: ``[n]`` or ``[n, d]`` samples to compare.
        bins: bins per coordinate.

    Returns:
        distance in ``[0, 1]``.

    Example:
        >>> x = np.linspace(0.0, 1.0, 101)
        >>> jsd_reference_range(x, x), jsd_reference_range(x, x + 5.0)   # all of other piles into the last bin
        (0.0, 0.9...)
    """
    bins = check_int(bins, "bins")
    reference = np.asarray(reference, dtype=np.float64)
    d = 1 if reference.ndim == 1 else (reference.shape[1] if reference.ndim == 2 else -1)
    if d not in (1, 2):
        raise ValueError(f"reference must have shape [n] or [n, d] with d = 1 or 2, got {reference.shape}.")
    reference = _check_samples(reference, "reference", d)
    other = _check_samples(other, "other", d)
    ranges = _reference_ranges(reference)
    return js_distance(_histogram(reference, [bins] * d, ranges, False), _histogram(other, [bins] * d, ranges, False))


def _reference_ranges(reference: np.ndarray) -> list[tuple[float, float]]:
    lo, hi = reference.min(axis=0), reference.max(axis=0)
    # a constant coordinate still gets a valid (if trivial) bin
    return [(float(a), float(b) if b > a else float(a) + 1.0) for a, b in zip(lo, hi)]


def _jsd_block(md_angles, gen_angles, names, md_tics, gen_tics, *, bins, bins_2d, tica_bins, tica_ranges) -> dict:
    """All JSDs between two pooled samples (angles ``[n, n_torsions]``, TICs ``[n, >= 2]`` or None)."""
    out: dict[str, Any] = {"torsions": {}, "phi_psi_residues": {}}
    for k, name in enumerate(names):
        out["torsions"][name] = jsd_1d(md_angles[:, k], gen_angles[:, k], bins=bins)
    column = {name: k for k, name in enumerate(names)}
    for name in names:
        kind, residue = name.split(":", 1)
        if kind == "phi" and f"psi:{residue}" in column:
            cols = [column[name], column[f"psi:{residue}"]]
            out["phi_psi_residues"][residue] = jsd_2d(md_angles[:, cols], gen_angles[:, cols], bins=bins_2d)
    pairs = list(out["phi_psi_residues"].values())
    out["phi_psi"] = float(np.mean(pairs)) if pairs else float("nan")
    if md_tics is not None:
        for key, cols in (("tica_0", [0]), ("tica_01", [0, 1])):
            counts = [_histogram(t[:, cols], [tica_bins] * len(cols), [tica_ranges[c] for c in cols], False)
                      for t in (md_tics, gen_tics)]
            out[key] = js_distance(*counts)
    return out


def torsion_jsds(
    md_traj,
    gen_traj,
    *,
    md_features=None,
    gen_features=None,
    tica_lag: int = 1,
    torsions: Sequence[str] = DEFAULT_TORSIONS,
    bins: int = 100,
    bins_2d: int = 50,
    tica_bins: int = 50,
) -> dict:
    """Jensen-Shannon distances of every torsion, the (phi, psi) pairs and the two leading TICs, MD vs generated.

    Frames of all trajectories are pooled on each side. TICA (kinetic map, lag ``tica_lag``) is fitted on
    the MD features only and applied to both; its bins span the MD range (:func:`jsd_reference_range`).

    Args:
        md_traj: reference :class:`mdtraj.Trajectory` or a list of them; ``None`` to skip the torsions (then
            ``md_features`` is required).
        gen_traj: generated trajectory or list, same atoms; ``None`` together with ``md_traj``.
        md_features: ``[n_frames, n_features]`` per MD trajectory (array or list) for TICA, e.g. C-alpha
            distances of a coarse model; default: sin/cos of the torsions.
        gen_features: the same features of the generated trajectories (required with ``md_features``).
        tica_lag: TICA lag in MD frames.
        torsions: torsion kinds (see :func:`lss_jax.analysis.torsions.torsion_angles`).
        bins: bins of the 1-D torsion histograms on ``[-pi, pi)``.
        bins_2d: bins per axis of the (phi, psi) histograms.
        tica_bins: bins per axis of the TIC histograms.

    Returns:
        dict with ``torsions`` (``{"phi:ALA2": jsd, ...}``), ``phi_psi_residues`` (``{"ALA2": jsd}``),
        ``phi_psi`` (their mean; ``nan`` without phi/psi), ``tica_0`` and ``tica_01`` (floats).

    References:
        Lin (1991) for the JSD; Perez-Hernandez et al. (2013) for TICA; Jing et al. (MDGen, 2024) for the protocol.

    Example:
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> md_traj = load_alanine_dipeptide("train", stride=50)
        >>> result = torsion_jsds(md_traj, md_traj)
        >>> result["torsions"], result["phi_psi"], result["tica_0"]
        ({'phi:ALA2': 0.0, 'psi:ALA2': 0.0}, 0.0, 0.0)
    """
    tica_lag = check_int(tica_lag, "tica_lag")
    names, md_angles, gen_angles, md_features, gen_features = _paired_inputs(
        md_traj, gen_traj, md_features, gen_features, torsions, names=("md_traj", "gen_traj", "md_features", "gen_features"))
    if md_angles is None:
        md_angles, gen_angles = [np.zeros((0, 0))], [np.zeros((0, 0))]
    projection = fit_tica(md_features, tica_lag, dim=2)
    md_tics = np.concatenate(project(md_features, projection))
    gen_tics = np.concatenate(project(gen_features, projection))
    return _jsd_block(
        np.concatenate(md_angles), np.concatenate(gen_angles), names, md_tics, gen_tics,
        bins=check_int(bins, "bins"), bins_2d=check_int(bins_2d, "bins_2d"),
        tica_bins=check_int(tica_bins, "tica_bins"), tica_ranges=_reference_ranges(md_tics),
    )


def _paired_inputs(md, other, md_features, other_features, torsions, *, names: tuple[str, str, str, str]):
    """Two sets of trajectories and/or features checked to pair up: ``(torsion names, md angles, other angles,
    md features, other features)``, angles ``None`` without trajectories, features the torsions' sin/cos unless
    given. ``names`` are the four arguments' names, for the errors."""
    md_name, other_name, md_f, other_f = names
    if (md is None) != (other is None):
        raise ValueError(f"pass both {md_name} and {other_name}, or neither (features only).")
    if (md_features is None) != (other_features is None):
        raise ValueError(f"pass both {md_f} and {other_f}, or neither (torsion sin/cos are used).")
    torsion_names, md_angles, other_angles = [], None, None
    if md is not None:
        torsion_names, md_angles = _angles_of(md, torsions, md_name)
        other_names, other_angles = _angles_of(other, torsions, other_name)
        if other_names != torsion_names:
            raise ValueError(f"{md_name} and {other_name} have different torsions ({torsion_names} vs {other_names}); "
                             "same atoms needed.")
    if md_features is None:
        if md is None:
            raise ValueError("nothing to compare: pass trajectories, features, or both.")
        if not torsion_names:
            raise ValueError(f"the trajectories define no torsions; pass {md_f} and {other_f}.")
        md_features, other_features = _torsion_features(md_angles), _torsion_features(other_angles)
    md_features = as_series_list(md_features, md_f, ndim=2)
    other_features = as_series_list(other_features, other_f, ndim=2)
    if md_features[0].shape[1] != other_features[0].shape[1]:
        raise ValueError(f"{md_f} have {md_features[0].shape[1]} columns but {other_f} {other_features[0].shape[1]}.")
    return torsion_names, md_angles, other_angles, md_features, other_features


# --------------------------------------------------------------------------------------------------
# free energies
# --------------------------------------------------------------------------------------------------


def histogram_free_energy(samples, edges, *, kT: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Free energy ``F = -kT ln p`` of the histogram of ``samples`` on ``edges``.

    Args:
        samples: any shape, flattened (1-D data).
        edges: ``[n_bins + 1]`` bin edges.
        kT: thermal energy.

    Returns:
        ``(F [n_bins], p [n_bins])``: probabilities per bin (summing to the fraction of samples inside
        the edges) and free energies, ``inf`` in empty bins.

    Example:
        >>> f, p = histogram_free_energy([0.1, 0.2, 0.7, 1.5], edges=[0.0, 0.5, 1.0])
        >>> p.tolist(), f.round(3).tolist()   # 1.5 lies outside the edges
        ([0.5, 0.25], [0.693, 1.386])
    """
    samples = np.asarray(samples, dtype=np.float64).ravel()
    counts, _ = np.histogram(samples, edges)
    p = counts / max(samples.size, 1)
    with np.errstate(divide="ignore"):
        return -kT * np.log(p), p


def free_energy_rmse(f_model, f_reference, mask=None) -> float:
    """RMSE between two free-energy profiles after removing the best additive constant.

    Args:
        f_model, f_reference: ``[n_bins]`` profiles (same bins, same energy unit).
        mask: ``[n_bins]`` bins to compare (default: where both are finite).

    Returns:
        ``sqrt(mean((d - mean d)^2))`` with ``d = f_model - f_reference`` over the mask; the shift by
        ``mean d`` is the constant that minimizes the RMSE.

    Example:
        >>> free_energy_rmse([1.0, 2.0, np.inf], [0.0, 1.0, 3.0])   # constant shift, empty bin ignored
        0.0
        >>> free_energy_rmse([0.0, 1.0], [0.0, 0.0])
        0.5
    """
    f_model, f_reference = np.asarray(f_model, np.float64), np.asarray(f_reference, np.float64)
    finite = np.isfinite(f_model) & np.isfinite(f_reference)
    mask = finite if mask is None else (np.asarray(mask, bool) & finite)
    if not mask.any():
        raise ValueError("no bin is populated in both profiles; widen the bins or generate more data.")
    d = f_model[mask] - f_reference[mask]
    return float(np.sqrt(np.mean((d - d.mean()) ** 2)))


def free_energy_2d(
    x,
    y,
    *,
    bins: int = 36,
    range=((-np.pi, np.pi), (-np.pi, np.pi)),  # noqa: A002 - mirrors numpy.histogram2d
    kT: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """2-D histogram free energy ``F = -kT ln p`` (e.g. on the Ramachandran plane).

    Args:
        x: ``[n]`` first coordinate (e.g. phi, radians).
        y: ``[n]`` second coordinate (e.g. psi, radians).
        bins: bins per axis (>= 1).
        range: ``((xmin, xmax), (ymin, ymax))``.
        kT: thermal energy (> 0), the unit of ``F``.

    Returns:
        ``(F [bins, bins], p [bins, bins], xedges [bins + 1], yedges [bins + 1])``; ``p`` is the fraction of
        all samples per bin (sums to the fraction inside ``range``), ``F`` is ``inf`` in empty bins.
        ``F[i, j]`` belongs to ``x`` bin ``i`` and ``y`` bin ``j``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> f, p, xedges, yedges = free_energy_2d(rng.uniform(-3, 3, 1000), rng.uniform(-3, 3, 1000), bins=4)
        >>> f.shape, xedges.shape, round(float(p.sum()), 6)
        ((4, 4), (5,), 1.0)
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same number of samples, got {x.size} and {y.size}.")
    if x.size == 0:
        raise ValueError("x and y are empty; pass at least one sample.")
    bins = check_int(bins, "bins")
    if not np.isfinite(kT) or kT <= 0:
        raise ValueError(f"kT must be a positive finite number, got {kT!r}.")
    counts, xedges, yedges = np.histogram2d(x, y, bins=bins, range=range)
    p = counts / x.size
    with np.errstate(divide="ignore"):
        f = -kT * np.log(p)
    return f, p, xedges, yedges


def free_energy_rmse_2d(f_a, p_ref, f_ref, *, min_prob_fraction: float = 1e-3) -> tuple[float, int]:
    """RMSE between two free-energy surfaces over the well-sampled reference bins.

    Bins are used where ``p_ref >= min_prob_fraction * max(p_ref)`` and both ``f_a`` and ``f_ref`` are
    finite; the best additive constant (the mean difference) is removed before the RMSE.

    Args:
        f_a: ``[...]`` free energies to test (e.g. from an LSS trajectory).
        p_ref: ``[...]`` reference bin probabilities.
        f_ref: ``[...]`` reference free energies (same bins and energy unit as ``f_a``).
        min_prob_fraction: relative probability cutoff in ``[0, 1]``.

    Returns:
        ``(rmse, n_bins_used)``.

    Raises:
        ValueError: if no bin passes the mask or the shapes differ.

    Example:
        >>> f_ref = np.array([[0.0, 1.0], [2.0, np.inf]])
        >>> rmse, n_used = free_energy_rmse_2d(f_ref + 0.5, np.exp(-f_ref), f_ref)   # a constant shift only
        >>> round(rmse, 6), n_used
        (0.0, 3)
    """
    f_a = np.asarray(f_a, dtype=np.float64)
    p_ref = np.asarray(p_ref, dtype=np.float64)
    f_ref = np.asarray(f_ref, dtype=np.float64)
    if not (f_a.shape == p_ref.shape == f_ref.shape):
        raise ValueError(
            f"f_a, p_ref and f_ref must share one bin grid, got shapes {f_a.shape}, {p_ref.shape}, {f_ref.shape}."
        )
    if not 0 <= min_prob_fraction <= 1:
        raise ValueError(f"min_prob_fraction must lie in [0, 1], got {min_prob_fraction!r}.")
    if p_ref.size == 0 or not np.nanmax(p_ref) > 0:
        raise ValueError("p_ref has no populated bin; compute it from a non-empty reference sample.")
    mask = (p_ref >= min_prob_fraction * np.nanmax(p_ref)) & np.isfinite(f_a) & np.isfinite(f_ref)
    n_used = int(np.count_nonzero(mask))
    if n_used == 0:
        raise ValueError(
            "no bin is well sampled in the reference and populated in f_a; lower min_prob_fraction, use "
            "coarser bins or generate more data."
        )
    return free_energy_rmse(f_a, f_ref, mask), n_used


def penalized_free_energy_rmse(samples, edges, f_exact, mask, *, floor_fraction: float = 1e-3, kT: float = 1.0) -> float:
    """Free-energy RMSE (kT) of ``samples`` against ``f_exact`` over ``mask``, with missing bins penalized.

    Bin probabilities below ``floor_fraction`` times the largest one (empty bins included) are raised to
    that floor before ``F = -kT ln p``; then :func:`free_energy_rmse` (best additive
    shift) over ``mask``. A region the samples never reach thus costs about ``kT ln(1 / floor_fraction)``
    per bin instead of being skipped.

    Args:
        samples: positions, any shape.
        edges: ``[n_bins + 1]`` bin edges.
        f_exact: ``[n_bins]`` reference free energy.
        mask: ``[n_bins]`` bins to compare.

    Example:
        >>> edges = np.linspace(0, 4, 5)
        >>> f_exact = np.zeros(4)   # flat
        >>> penalized_free_energy_rmse(np.array([0.5, 1.5, 2.5, 3.5]), edges, f_exact, np.ones(4, bool))
        0.0
        >>> round(penalized_free_energy_rmse(np.array([0.5, 1.5]), edges, f_exact, np.ones(4, bool)), 3)
        3.454
    """
    _, p = histogram_free_energy(samples, edges, kT=kT)
    if p.max() <= 0:
        raise ValueError("no sample falls inside the edges.")
    return _penalized_rmse(p, f_exact, mask, floor_fraction, kT)


def _floored_free_energy(p, floor_fraction, kT):
    return -kT * np.log(np.maximum(p, floor_fraction * p.max()))


def _penalized_rmse(p, f_exact, mask, floor_fraction, kT):
    return free_energy_rmse(_floored_free_energy(p, floor_fraction, kT), f_exact, mask)


def rebin(edges_from, p_from, edges_to) -> np.ndarray:
    """Move probabilities ``p_from`` of cells ``edges_from`` onto bins ``edges_to`` (uniform within a cell).

    Mass outside ``edges_to`` is dropped, so the result sums to the mass inside.

    Example:
        >>> rebin([0.0, 1.0, 2.0], [0.5, 0.5], [0.5, 1.0, 1.5]).tolist()
        [0.25, 0.25]
    """
    cdf = np.concatenate([[0.0], np.cumsum(np.asarray(p_from, np.float64))])
    return np.diff(np.interp(np.asarray(edges_to, np.float64), np.asarray(edges_from, np.float64), cdf))


def block_average(values_fn: Callable[[Any], Any], data, n_blocks: int = 5) -> tuple[Any, Any]:
    """Block-averaged estimate and standard error of a statistic of a time series.

    ``data`` is split along its first axis (time) into ``n_blocks`` contiguous blocks of (nearly) equal
    length (:func:`numpy.array_split` sizes; the first ``len % n_blocks`` blocks are one frame longer),
    ``values_fn`` is applied to each block, and the results are combined elementwise. Non-finite results
    (``nan``, ``inf``, e.g. the free energy of a bin empty in one block) are treated as missing: the mean
    and standard error use only the blocks where that element is finite.

    Args:
        values_fn: maps one block to a scalar or an array of a fixed shape ``[...]``.
        data: array-like or :class:`mdtraj.Trajectory` with ``n_frames >= n_blocks`` along its first axis.
        n_blocks: number of blocks (>= 2).

    Returns:
        ``(mean [...], standard_error [...])`` with ``standard_error = std(ddof=1) / sqrt(n_valid)``, where
        ``n_valid`` is the number of blocks with a finite value (``n_blocks`` when all are finite); ``nan``
        where fewer than 1 (mean) or 2 (error) blocks are valid. Floats for scalar statistics.

    Example:
        >>> mean, se = block_average(np.mean, np.arange(10.0), n_blocks=5)   # block means 0.5, 2.5, ..., 8.5
        >>> mean, round(se, 4)
        (4.5, 1.4142)
    """
    if not callable(values_fn):
        raise ValueError(f"values_fn must be callable (block -> statistic), got {type(values_fn).__name__}.")
    import mdtraj as md

    n_blocks = check_int(n_blocks, "n_blocks", minimum=2)
    if not isinstance(data, md.Trajectory):
        data = np.asarray(data)
        if data.ndim == 0:
            raise ValueError("data must have a time axis (first axis); got a scalar.")
    n = len(data)
    if n < n_blocks:
        raise ValueError(f"data has {n} frames, fewer than n_blocks={n_blocks}; use fewer blocks or more data.")
    bounds = np.cumsum([0] + [len(s) for s in np.array_split(np.arange(n), n_blocks)])
    values = [np.asarray(values_fn(data[bounds[k] : bounds[k + 1]]), dtype=np.float64) for k in range(n_blocks)]
    shapes = {v.shape for v in values}
    if len(shapes) != 1:
        raise ValueError(f"values_fn returned different shapes for different blocks: {sorted(shapes)}.")
    mean, se = mean_standard_error(np.stack(values))
    if mean.ndim == 0:
        return float(mean), float(se)
    return mean, se


def mean_standard_error(values) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over axis 0 (blocks), ignoring non-finite entries.

    Args:
        values: ``[n_blocks, ...]`` one statistic per block (e.g. a free-energy profile, ``inf`` in empty bins).

    Returns:
        ``(mean [...], standard_error [...])`` with ``standard_error = std(ddof=1) / sqrt(n_valid)`` over the
        ``n_valid`` blocks where an element is finite; ``nan`` where fewer than 1 (mean) or 2 (error) are.

    Example:
        >>> mean, se = mean_standard_error([[1.0, np.inf], [3.0, 2.0]])
        >>> mean.tolist(), se.tolist()
        ([2.0, 2.0], [1.0, nan])
    """
    values = np.asarray(values, dtype=np.float64)
    values = np.where(np.isfinite(values), values, np.nan)
    n_valid = np.sum(np.isfinite(values), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.nansum(values, axis=0)
        mean = np.where(n_valid > 0, total / np.maximum(n_valid, 1), np.nan)
        sq = np.nansum((values - mean) ** 2, axis=0)
        std = np.sqrt(sq / np.maximum(n_valid - 1, 1))
        se = np.where(n_valid > 1, std / np.sqrt(np.maximum(n_valid, 1)), np.nan)
    return mean, se
