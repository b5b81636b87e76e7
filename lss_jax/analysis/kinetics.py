"""Distributional and kinetic validation metrics for generated trajectories (float64 NumPy/SciPy + deeptime).

The metrics that MDGen / Timewarp / ITO-style papers report, computed with the same estimators on the
reference MD and on generated (LSS) trajectories, each next to an **MD-half vs MD-half noise floor**:

* Jensen-Shannon distances of torsion marginals, of (phi, psi) pairs and of the leading TICA coordinates
  (:func:`js_distance`, :func:`jsd_1d`, :func:`jsd_2d`, :func:`jsd_reference_range`, :func:`torsion_jsds`);
* metastable-state kinetics: k-means on MD TICs, a reversible MSM, PCCA+ into metastable sets, applied
  unchanged to other data (:func:`metastable_msm`, :func:`metastable_kinetics`): populations, stationary
  distribution, coarse transition matrix, equilibrium flux and mean first-passage times with bootstrap
  errors (:func:`mfpt_to_set`, :func:`mfpt_between_sets`);
* torsion autocorrelation functions and decorrelation times (:func:`autocorrelation`,
  :func:`integrated_autocorrelation_time`, :func:`e_folding_time`, :func:`torsion_autocorrelation`);
* the Chapman-Kolmogorov test on metastable sets (:func:`chapman_kolmogorov`,
  :func:`plot_chapman_kolmogorov`);
* all of it side by side (:func:`compare_kinetics`), as a JSON-ready nested dict.

Conventions:

* **JSD** is the Jensen-Shannon *distance* (the square root of the divergence, as
  :func:`scipy.spatial.distance.jensenshannon`) with **base-2 logarithms**, so it lies in ``[0, 1]``:
  0 for identical histograms, 1 for disjoint supports. Finite samples bias it upwards (roughly
  ``sqrt(bins / n)``), which is what the MD-vs-MD floor measures.
* **Torsion autocorrelation** uses the circular form: the unit vector ``u = (cos theta, sin theta)`` minus its
  mean, ``C(t) = <du(s) . du(s + t)> / <|du|^2>`` (``C(0) = 1``), so 2 pi jumps never matter.
* **Decorrelation times**: the integrated time ``tau_int = dt (1/2 + sum_{t=1..M} C(t))`` (the trapezoid
  rule for ``int_0^inf C``; ``tau`` for ``C = exp(-t / tau)``, ``tau >> dt``) with Sokal's automatic window
  (smallest ``M >= 5 tau_int(M)``), and the 1/e time (first crossing of ``C = 1/e``, linearly interpolated).
* **Flux** is the *gross* equilibrium flux ``F_IJ = pi_I P_IJ(tau) / tau`` between metastable sets (per unit
  time, diagonal 0); the *net* flux ``max(F_IJ - F_JI, 0)`` is returned beside it (zero for the reversible
  estimator, nonzero only with ``reversible=False``).
* **MFPT** from set A to set B: the expected first hitting time of B of the MSM started in A with the
  stationary distribution restricted to A (deeptime's ``MarkovStateModel.mfpt`` convention), from the
  linear system ``m_i = tau + sum_j T_ij m_j`` (``i`` not in B), ``m_B = 0``.
* Disconnected MSM states: every MSM is estimated on the **largest strongly connected set** of its count
  matrix (:func:`lss_jax.analysis.msm.reversible_transition_matrix`); results report ``n_active`` and
  ``active_fraction`` and a warning names the dropped clusters.

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
    Lin, J. "Divergence measures based on the Shannon entropy", IEEE Trans. Inf. Theory 37, 145 (1991) (JSD).
    Endres, D. M. & Schindelin, J. E. "A new metric for probability distributions", IEEE Trans. Inf.
    Theory 49, 1858 (2003) (sqrt(JSD) is a metric).
    Perez-Hernandez, G. et al. "Identification of slow molecular order parameters for Markov model
    construction", J. Chem. Phys. 139, 015102 (2013) (TICA).
    Roeblitz, S. & Weber, M. "Fuzzy spectral clustering by PCCA+", Adv. Data Anal. Classif. 7, 147 (2013).
    Prinz, J.-H. et al. "Markov models of molecular kinetics: generation and validation", J. Chem. Phys.
    134, 174105 (2011) (reversible MSMs, Chapman-Kolmogorov test).
    Sokal, A. "Monte Carlo methods in statistical mechanics", in Functional Integration (1997)
    (integrated autocorrelation time, automatic windowing).
    Jing, B. et al. "Generative modeling of molecular dynamics trajectories" (MDGen), NeurIPS 2024;
    Klein, L. et al. "Timewarp", NeurIPS 2023; Schreiner, M. et al. "Implicit transfer operator learning"
    (ITO), NeurIPS 2023 (the evaluation protocols these metrics follow).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np
import scipy.spatial
from deeptime.clustering import KMeans
from deeptime.decomposition import TICA
from deeptime.markov import pcca

from lss_jax._io import jsonable as to_jsonable
from lss_jax.analysis.msm import (
    count_matrix,
    implied_timescales_from_matrix,
    reversible_transition_matrix,
    stationary_distribution,
)

__all__ = [
    "DEFAULT_TORSIONS",
    "MetastableModel",
    "js_distance",
    "jsd_1d",
    "jsd_2d",
    "jsd_reference_range",
    "torsion_angles",
    "fit_tica",
    "torsion_jsds",
    "metastable_msm",
    "assign_microstates",
    "assign_metastable",
    "pcca_memberships",
    "coarse_transition_matrix",
    "mfpt_to_set",
    "mfpt_between_sets",
    "metastable_kinetics",
    "autocorrelation",
    "integrated_autocorrelation_time",
    "e_folding_time",
    "torsion_autocorrelation",
    "chapman_kolmogorov",
    "plot_chapman_kolmogorov",
    "compare_kinetics",
    "to_jsonable",
]

#: Torsion kinds that :func:`torsion_angles` computes by default (mdtraj ``compute_<kind>``; omega is opt-in).
DEFAULT_TORSIONS: tuple[str, ...] = ("phi", "psi", "chi1", "chi2", "chi3", "chi4")
_TORSION_KINDS = ("phi", "psi", "omega", "chi1", "chi2", "chi3", "chi4", "ca")
_PERIODIC_RANGE = (-np.pi, np.pi)
_MAX_BOOTSTRAP_UNITS = 100


# --------------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------------


def _check_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _check_positive(value, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}.") from None
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}.")
    return value


def _as_series_list(data, name: str, *, ndim: int | None = None) -> list[np.ndarray]:
    """One array or a list of arrays (trajectories), each float64 with time on axis 0."""
    if isinstance(data, np.ndarray) or np.isscalar(data):
        items = [data]
    elif isinstance(data, (list, tuple)) and len(data) and all(np.ndim(x) == 0 for x in data):
        items = [np.asarray(data)]  # a plain list of numbers is one series
    elif isinstance(data, (list, tuple)):
        if len(data) == 0:
            raise ValueError(f"{name} is an empty list; pass at least one trajectory.")
        items = list(data)
    else:
        items = [data]
    out = []
    for k, x in enumerate(items):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1 and ndim == 2:
            x = x[:, None]
        if x.ndim == 0 or (ndim is not None and x.ndim != ndim):
            raise ValueError(f"{name}[{k}] must have {ndim or 'at least 1'} dimensions (time first), got shape {x.shape}.")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name}[{k}] contains nan or inf; remove or fix those frames first.")
        out.append(x)
    widths = {x.shape[1:] for x in out}
    if len(widths) != 1:
        raise ValueError(f"the trajectories of {name} have different feature shapes {sorted(widths)}.")
    return out


def _as_dtraj_list(dtrajs, name: str = "dtrajs") -> list[np.ndarray]:
    if isinstance(dtrajs, np.ndarray) and dtrajs.ndim == 1:
        dtrajs = [dtrajs]
    elif isinstance(dtrajs, np.ndarray) and dtrajs.ndim == 2:
        dtrajs = list(dtrajs)
    if not isinstance(dtrajs, (list, tuple)) or len(dtrajs) == 0:
        raise ValueError(f"{name} must be an integer array [n_frames] or a non-empty list of them.")
    out = []
    for k, d in enumerate(dtrajs):
        d = np.asarray(d)
        if d.ndim != 1 or not np.issubdtype(d.dtype, np.integer):
            raise ValueError(f"{name}[{k}] must be a 1-D integer array of state indices, got {d.dtype} {d.shape}.")
        if d.size and d.min() < 0:
            raise ValueError(f"{name}[{k}] contains negative state indices.")
        out.append(d.astype(np.int64))
    return out


def _ratio(numerator: float, denominator: float, name: str) -> int:
    """``numerator / denominator`` as a positive integer (lag times that must be whole numbers of frames)."""
    r = numerator / denominator
    k = int(round(r))
    if k < 1 or abs(r - k) > 1e-6 * max(1.0, r):
        raise ValueError(f"{name} = {numerator} / {denominator} must be a positive whole number of frames, got {r}.")
    return k


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
    bins = _check_int(bins, "bins")
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
    bins = _check_int(bins, "bins")
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
    bins = _check_int(bins, "bins")
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


# --------------------------------------------------------------------------------------------------
# torsions and TICA
# --------------------------------------------------------------------------------------------------


def _as_traj_list(trajs, name: str) -> list:
    import mdtraj as md

    items = list(trajs) if isinstance(trajs, (list, tuple)) else [trajs]
    if not items:
        raise ValueError(f"{name} is an empty list; pass at least one mdtraj.Trajectory.")
    for k, t in enumerate(items):
        if not isinstance(t, md.Trajectory):
            raise ValueError(
                f"{name}[{k}] must be an mdtraj.Trajectory, got {type(t).__name__}; load it with mdtraj.load(...)."
            )
        if t.n_frames < 1:
            raise ValueError(f"{name}[{k}] has no frames.")
    return items


def torsion_angles(traj, torsions: Sequence[str] = DEFAULT_TORSIONS) -> tuple[list[str], np.ndarray]:
    """Backbone and side-chain torsions of every frame, named ``"<kind>:<residue>"`` (e.g. ``"phi:ALA2"``).

    The residue of a torsion is that of its second atom (phi: N_i, psi: CA_i, chi: CA_i; omega: C_i).

    Args:
        traj: :class:`mdtraj.Trajectory` with ``n_frames`` frames.
        torsions: kinds among ``phi, psi, omega, chi1..chi4`` and ``ca`` (C-alpha pseudo-torsions of four
            consecutive residues, :mod:`lss_jax.data.featurize`); kinds the topology lacks are skipped.

    Returns:
        ``(names [n_torsions], angles [n_frames, n_torsions])``, radians in ``[-pi, pi]``; ``n_torsions`` may
        be 0 (e.g. a C-alpha model).

    Example:
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> names, angles = torsion_angles(load_alanine_dipeptide("train", stride=500))
        >>> names, angles.shape
        (['phi:ALA2', 'psi:ALA2'], (50, 2))
    """
    from lss_jax.data.featurize import _torsions

    (traj,) = _as_traj_list(traj, "traj")
    names: list[str] = []
    columns = []
    for kind in torsions:
        if kind not in _TORSION_KINDS:
            raise ValueError(f"unknown torsion kind {kind!r}; choose among {_TORSION_KINDS}.")
        indices, angles = _torsions(traj, kind)
        for k, quad in enumerate(np.asarray(indices).reshape(-1, 4)):
            name = f"{kind}:{traj.topology.atom(int(quad[1])).residue}"
            while name in names:  # e.g. two chains with the same residue numbering
                name += "'"
            names.append(name)
            columns.append(np.asarray(angles[:, k], dtype=np.float64))
    angles = np.stack(columns, axis=1) if columns else np.zeros((traj.n_frames, 0))
    return names, angles


def _angles_of(trajs, torsions, name: str) -> tuple[list[str], list[np.ndarray]]:
    trajs = _as_traj_list(trajs, name)
    names0, out = None, []
    for t in trajs:
        names, angles = torsion_angles(t, torsions)
        if names0 is not None and names != names0:
            raise ValueError(f"the trajectories of {name} do not share one topology (torsions {names} vs {names0}).")
        names0 = names
        out.append(angles)
    return names0, out


def _torsion_features(angles: list[np.ndarray]) -> list[np.ndarray]:
    return [np.concatenate([np.sin(a), np.cos(a)], axis=1) for a in angles]


def fit_tica(features, lag: int, *, dim: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Fit TICA (deeptime, kinetic-map scaling) on reference features; returns the linear projection.

    Args:
        features: ``[n_frames, n_features]`` or a list of such arrays (one per trajectory).
        lag: TICA lag in frames.
        dim: number of TICs kept (<= ``n_features``).

    Returns:
        ``(mean [n_features], coefficients [n_features, dim])``: project any data with
        ``(x - mean) @ coefficients``; TIC 0 is the slowest.

    References:
        Perez-Hernandez et al., J. Chem. Phys. 139, 015102 (2013); Noe & Clementi, JCTC 11, 5002 (2015)
        (kinetic map).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> mean, coefficients = fit_tica(rng.normal(size=(1000, 3)), lag=1)
        >>> mean.shape, coefficients.shape
        ((3,), (3, 2))
    """
    lag = _check_int(lag, "lag")
    dim = _check_int(dim, "dim")
    features = _as_series_list(features, "features", ndim=2)
    if features[0].shape[1] < dim:
        raise ValueError(f"TICA with dim={dim} needs at least {dim} features, got {features[0].shape[1]}.")
    usable = [f for f in features if f.shape[0] > lag]
    if not usable:
        raise ValueError(f"every trajectory is shorter than the TICA lag ({lag} frames); lower the lag.")
    model = TICA(lagtime=lag, dim=dim).fit(usable).fetch_model()
    coefficients = np.asarray(model.instantaneous_coefficients, np.float64)[:, :dim]
    return np.asarray(model.mean_0, np.float64), coefficients


def _project(data: list[np.ndarray], projection) -> list[np.ndarray]:
    mean, coefficients = projection
    return [(x - mean) @ coefficients for x in data]


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
        torsions: torsion kinds (see :func:`torsion_angles`).
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
    tica_lag = _check_int(tica_lag, "tica_lag")
    if (md_traj is None) != (gen_traj is None):
        raise ValueError("pass both md_traj and gen_traj, or neither (features only).")
    if (md_features is None) != (gen_features is None):
        raise ValueError("pass both md_features and gen_features, or neither (torsion sin/cos are used).")
    if md_traj is None and md_features is None:
        raise ValueError("nothing to compare: pass trajectories, features, or both.")
    names, md_angles, gen_angles = [], [np.zeros((0, 0))], [np.zeros((0, 0))]
    if md_traj is not None:
        names, md_angles = _angles_of(md_traj, torsions, "md_traj")
        gen_names, gen_angles = _angles_of(gen_traj, torsions, "gen_traj")
        if gen_names != names:
            raise ValueError(f"md_traj and gen_traj have different torsions ({names} vs {gen_names}); same atoms needed.")
    if md_features is None:
        if not names:
            raise ValueError("the trajectories define no torsions; pass md_features/gen_features for TICA.")
        md_features, gen_features = _torsion_features(md_angles), _torsion_features(gen_angles)
    md_features = _as_series_list(md_features, "md_features", ndim=2)
    gen_features = _as_series_list(gen_features, "gen_features", ndim=2)
    if md_features[0].shape[1] != gen_features[0].shape[1]:
        raise ValueError(
            f"md_features have {md_features[0].shape[1]} columns but gen_features {gen_features[0].shape[1]}."
        )
    projection = fit_tica(md_features, tica_lag, dim=2)
    md_tics = np.concatenate(_project(md_features, projection))
    gen_tics = np.concatenate(_project(gen_features, projection))
    return _jsd_block(
        np.concatenate(md_angles), np.concatenate(gen_angles), names, md_tics, gen_tics,
        bins=_check_int(bins, "bins"), bins_2d=_check_int(bins_2d, "bins_2d"),
        tica_bins=_check_int(tica_bins, "tica_bins"), tica_ranges=_reference_ranges(md_tics),
    )


# --------------------------------------------------------------------------------------------------
# Markov state models: MFPT, coarse graining, PCCA+
# --------------------------------------------------------------------------------------------------


def _check_transition_matrix(T) -> np.ndarray:
    T = np.asarray(T, dtype=np.float64)
    if T.ndim != 2 or T.shape[0] != T.shape[1] or T.shape[0] == 0:
        raise ValueError(f"transition_matrix must be square [n, n], got shape {T.shape}.")
    if not np.all(np.isfinite(T)) or T.min() < -1e-12 or not np.allclose(T.sum(axis=1), 1.0, atol=1e-8):
        raise ValueError("transition_matrix must be finite, non-negative and row-stochastic (rows summing to 1).")
    return T


def _check_states(states, n: int, name: str) -> np.ndarray:
    states = np.unique(np.atleast_1d(np.asarray(states)))
    if states.size == 0 or not np.issubdtype(states.dtype, np.integer) or states.min() < 0 or states.max() >= n:
        raise ValueError(f"{name} must be a non-empty set of state indices in [0, {n}), got {states.tolist()}.")
    return states


def mfpt_to_set(transition_matrix, target, *, lag_time: float = 1.0) -> np.ndarray:
    """Mean first-passage time of every state to the set ``target`` (float64 linear solve).

    Solves ``m_i = lag_time + sum_j T_ij m_j`` for ``i`` outside ``target`` with ``m_target = 0``,
    i.e. ``(I - T)_NN m_N = lag_time``. States that cannot reach the target get ``inf``.

    Args:
        transition_matrix: ``[n, n]`` row-stochastic matrix at lag ``lag_time``.
        target: state indices of the target set.
        lag_time: time of one step.

    Returns:
        ``[n]`` first-passage times (0 on the target).

    References:
        Kemeny & Snell, Finite Markov Chains (1960), Thm. 4.4.4.

    Example:
        >>> T = np.array([[0.5, 0.5, 0.0], [0.25, 0.5, 0.25], [0.0, 0.5, 0.5]])
        >>> mfpt_to_set(T, [2]).tolist()
        [8.0, 6.0, 0.0]
    """
    T = _check_transition_matrix(transition_matrix)
    lag_time = _check_positive(lag_time, "lag_time")
    n = T.shape[0]
    target = _check_states(target, n, "target")
    rest = np.setdiff1d(np.arange(n), target)
    out = np.zeros(n)
    if rest.size == 0:
        return out
    a = np.eye(rest.size) - T[np.ix_(rest, rest)]
    # states that cannot reach the target make (I - T)_NN singular: give them inf, solve for the others
    reach = _reaches(T, target)
    ok = reach[rest]
    out[rest[~ok]] = np.inf
    if ok.any():
        out[rest[ok]] = np.linalg.solve(a[np.ix_(ok, ok)], np.full(int(ok.sum()), lag_time))
    return out


def _reaches(T: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Which states reach ``target`` with positive probability (graph search on the reversed edges)."""
    reach = np.zeros(T.shape[0], bool)
    reach[target] = True
    frontier = target
    adjacency_in = T > 0
    while frontier.size:
        new = np.flatnonzero(adjacency_in[:, frontier].any(axis=1) & ~reach)
        reach[new] = True
        frontier = new
    return reach


def mfpt_between_sets(transition_matrix, origin, target, *, stationary=None, lag_time: float = 1.0) -> float:
    """Mean first-passage time from set ``origin`` to set ``target``, started in ``origin`` at equilibrium.

    ``MFPT(A -> B) = sum_{i in A} pi_i m_i / sum_{i in A} pi_i`` with ``m`` from :func:`mfpt_to_set` (the
    convention of deeptime's ``MarkovStateModel.mfpt``). States in both sets contribute 0.

    Args:
        transition_matrix: ``[n, n]`` row-stochastic matrix at lag ``lag_time``.
        origin: state indices of A.
        target: state indices of B.
        stationary: ``[n]`` stationary distribution (default: computed from the matrix).
        lag_time: time of one step.

    Returns:
        the MFPT in units of ``lag_time``.

    References:
        Kemeny & Snell (1960); Prinz et al., J. Chem. Phys. 134, 174105 (2011).

    Example:
        >>> T = np.array([[0.5, 0.5, 0.0], [0.25, 0.5, 0.25], [0.0, 0.5, 0.5]])
        >>> round(mfpt_between_sets(T, [0, 1], [2]), 4)   # pi = (1/4, 1/2, 1/4): (8/4 + 6/2) / (3/4)
        6.6667
    """
    T = _check_transition_matrix(transition_matrix)
    n = T.shape[0]
    origin = _check_states(origin, n, "origin")
    pi = stationary_distribution(T) if stationary is None else np.asarray(stationary, np.float64)
    if pi.shape != (n,):
        raise ValueError(f"stationary must have shape [{n}], got {pi.shape}.")
    m = mfpt_to_set(T, target, lag_time=lag_time)
    w = pi[origin]
    if not w.sum() > 0:
        raise ValueError("the origin set has zero stationary probability.")
    return float(np.sum(w * m[origin]) / w.sum())


def coarse_transition_matrix(transition_matrix, stationary, set_of_state, n_sets: int) -> tuple[np.ndarray, np.ndarray]:
    """Equilibrium transition probabilities between sets of a crisp partition.

    ``P_IJ = sum_{i in I} pi_i sum_{j in J} T_ij / pi_I``: the probability to be in ``J`` one lag after
    being in ``I`` at equilibrium (the PCCA+ coarse graining with crisp memberships; non-negative, rows sum
    to 1). Rows of empty sets are ``nan``.

    Args:
        transition_matrix: ``[n, n]``.
        stationary: ``[n]``.
        set_of_state: ``[n]`` integer set label of every state in ``[0, n_sets)``.
        n_sets: number of sets.

    Returns:
        ``(P [n_sets, n_sets], pi_sets [n_sets])``.

    Example:
        >>> T = np.array([[0.9, 0.1, 0.0], [0.1, 0.8, 0.1], [0.0, 0.1, 0.9]])
        >>> P, pi = coarse_transition_matrix(T, np.full(3, 1 / 3), [0, 0, 1], 2)
        >>> P.round(3).tolist(), pi.round(3).tolist()
        ([[0.95, 0.05], [0.1, 0.9]], [0.667, 0.333])
    """
    T = np.asarray(transition_matrix, np.float64)
    pi = np.asarray(stationary, np.float64)
    labels = np.asarray(set_of_state, np.int64)
    M = np.zeros((labels.size, n_sets))
    M[np.arange(labels.size), labels] = 1.0
    pi_sets = M.T @ pi
    flow = M.T @ (pi[:, None] * T) @ M
    with np.errstate(invalid="ignore", divide="ignore"):
        P = np.where(pi_sets[:, None] > 0, flow / pi_sets[:, None], np.nan)
    return P, pi_sets


def pcca_memberships(transition_matrix, n_metastable: int, *, stationary=None) -> tuple[np.ndarray, np.ndarray]:
    """PCCA+ fuzzy memberships and crisp assignments (deeptime), sets ordered by decreasing stationary weight.

    Args:
        transition_matrix: ``[n, n]`` reversible, connected transition matrix.
        n_metastable: number of metastable sets (``2 <= n_metastable <= n``).
        stationary: ``[n]`` stationary distribution (default: computed).

    Returns:
        ``(memberships [n, n_metastable], assignments [n])`` with ``assignments = argmax memberships``.

    References:
        Roeblitz & Weber, Adv. Data Anal. Classif. 7, 147 (2013).

    Example:
        >>> T = np.array([[0.9, 0.1, 0, 0], [0.1, 0.89, 0.01, 0], [0, 0.01, 0.89, 0.1], [0, 0, 0.1, 0.9]])
        >>> pcca_memberships(T, 2)[1].tolist()
        [0, 0, 1, 1]
    """
    T = _check_transition_matrix(transition_matrix)
    n_metastable = _check_int(n_metastable, "n_metastable", minimum=2)
    if n_metastable > T.shape[0]:
        raise ValueError(f"n_metastable={n_metastable} exceeds the {T.shape[0]} states of the MSM; use fewer sets.")
    pi = stationary_distribution(T) if stationary is None else np.asarray(stationary, np.float64)
    memberships = np.asarray(pcca(T, n_metastable, stationary_distribution=pi).memberships, np.float64)
    weight = pi @ memberships
    # decreasing weight, ties broken by the first state in the set, so the labels are reproducible
    first = np.argmax(memberships, axis=0)
    order = np.lexsort((first, -np.round(weight, 12)))
    memberships = memberships[:, order]
    return memberships, np.argmax(memberships, axis=1)


# --------------------------------------------------------------------------------------------------
# metastable-state kinetics
# --------------------------------------------------------------------------------------------------


class MetastableModel(NamedTuple):
    """Clustering, MSM and PCCA+ fitted on reference data; applied unchanged to other data.

    Example:
        >>> x = np.repeat([0.0, 5.0] * 20, 50)[:, None] + np.random.default_rng(0).normal(0, 0.1, (2000, 1))
        >>> model = metastable_msm(x, lag=1, n_clusters=4)
        >>> model.n_clusters, model.n_metastable, model.memberships.shape
        (4, 2, (4, 2))

    Attributes:
        projection_mean: ``[n_features]`` TICA mean, or ``None`` (data clustered as given).
        projection: ``[n_features, tica_dim]`` TICA coefficients, or ``None``.
        centers: ``[n_clusters, d]`` k-means centres (in projected coordinates).
        lag: MSM lag in reference frames.
        active_set: ``[n_active]`` clusters in the largest strongly connected set of the reference counts.
        transition_matrix: ``[n_active, n_active]`` reversible MSM.
        stationary_distribution: ``[n_active]``.
        memberships: ``[n_active, n_metastable]`` PCCA+ memberships.
        cluster_sets: ``[n_clusters]`` crisp metastable set of every cluster; clusters outside the active set
            take the set of the nearest active centre.
        timescales: ``[n_metastable - 1]`` slowest implied timescales of the MSM, in frames; sets are only
            metastable at this lag if these exceed ``lag`` (:func:`metastable_msm` warns otherwise).
    """

    projection_mean: np.ndarray | None
    projection: np.ndarray | None
    centers: np.ndarray
    lag: int
    active_set: np.ndarray
    transition_matrix: np.ndarray
    stationary_distribution: np.ndarray
    memberships: np.ndarray
    cluster_sets: np.ndarray
    timescales: np.ndarray

    @property
    def n_metastable(self) -> int:
        return int(self.memberships.shape[1])

    @property
    def n_clusters(self) -> int:
        return int(self.centers.shape[0])


def _model_inputs(model: MetastableModel, data, name: str) -> list[np.ndarray]:
    if not isinstance(model, MetastableModel):
        raise ValueError(f"model must be a MetastableModel from metastable_msm, got {type(model).__name__}.")
    data = _as_series_list(data, name, ndim=2)
    if model.projection is not None:
        if data[0].shape[1] != model.projection.shape[0]:
            raise ValueError(f"{name} has {data[0].shape[1]} features; the model was fitted on {model.projection.shape[0]}.")
        data = _project(data, (model.projection_mean, model.projection))
    elif data[0].shape[1] != model.centers.shape[1]:
        raise ValueError(f"{name} has {data[0].shape[1]} columns; the model's clusters live in {model.centers.shape[1]}.")
    return data


def assign_microstates(model: MetastableModel, data) -> list[np.ndarray]:
    """Nearest k-means centre of every frame (after the model's TICA projection, if any).

    Args:
        model: from :func:`metastable_msm`.
        data: ``[n_frames, n_features]`` or a list of them.

    Returns:
        list of ``[n_frames]`` int64 cluster indices, one per trajectory.

    Example:
        >>> x = np.repeat([0.0, 5.0] * 20, 50)[:, None] + np.random.default_rng(0).normal(0, 0.1, (2000, 1))
        >>> model = metastable_msm(x, lag=1, n_clusters=4)
        >>> [d.shape for d in assign_microstates(model, [x[:10], x[10:]])]
        [(10,), (1990,)]
    """
    tree = scipy.spatial.cKDTree(model.centers)
    return [tree.query(x)[1].astype(np.int64) for x in _model_inputs(model, data, "data")]


def assign_metastable(model: MetastableModel, data) -> list[np.ndarray]:
    """Crisp metastable set of every frame: the set of its cluster (:attr:`MetastableModel.cluster_sets`).

    Returns:
        list of ``[n_frames]`` int64 set labels in ``[0, n_metastable)``, one per trajectory.

    Example:
        >>> x = np.repeat([0.0, 5.0] * 20, 50)[:, None] + np.random.default_rng(0).normal(0, 0.1, (2000, 1))
        >>> labels = assign_metastable(metastable_msm(x, lag=1, n_clusters=4), np.array([[0.0], [5.0], [0.1]]))[0]
        >>> bool(labels[0] == labels[2] != labels[1])
        True
    """
    return [model.cluster_sets[d] for d in assign_microstates(model, data)]


def metastable_msm(
    md_features_or_tics,
    lag: int,
    *,
    n_clusters: int = 100,
    n_metastable: int = 2,
    seed: int = 0,
    tica_lag: int | None = None,
    tica_dim: int = 2,
    max_iter: int = 500,
) -> MetastableModel:
    """k-means + reversible MSM + PCCA+ on reference (MD) data: the state definition shared by all data sets.

    Steps: optional TICA (``tica_lag`` given: fitted here and stored, so other data is projected the same
    way); k-means (deeptime, k-means++ with ``fixed_seed=seed``, single-threaded so it is reproducible) on
    all frames; counts at ``lag``; the reversible MSM on the largest strongly connected set
    (:func:`lss_jax.analysis.msm.reversible_transition_matrix`; dropped clusters are reported in a warning and
    mapped to the set of the nearest active centre); PCCA+ (:func:`pcca_memberships`).

    Args:
        md_features_or_tics: ``[n_frames, d]`` or a list of them (one per trajectory): TICs to cluster, or
            features if ``tica_lag`` is given.
        lag: MSM lag in frames.
        n_clusters: k-means clusters.
        n_metastable: PCCA+ sets (>= 2).
        seed: k-means seed.
        tica_lag: TICA lag in frames, or ``None`` to cluster the input as is.
        tica_dim: TICs kept when ``tica_lag`` is given.
        max_iter: k-means iterations.

    Returns:
        :class:`MetastableModel`.

    References:
        Prinz et al., J. Chem. Phys. 134, 174105 (2011); Roeblitz & Weber (2013); Arthur & Vassilvitskii,
        "k-means++" (2007).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = np.repeat(rng.integers(0, 2, 40), 50)[:, None] * 5.0 + rng.normal(0, 0.3, (2000, 1))
        >>> model = metastable_msm(x, lag=1, n_clusters=6, n_metastable=2)
        >>> sorted(set(model.cluster_sets[np.argsort(model.centers[:, 0])].tolist()))
        [0, 1]
    """
    lag = _check_int(lag, "lag")
    n_clusters = _check_int(n_clusters, "n_clusters")
    n_metastable = _check_int(n_metastable, "n_metastable", minimum=2)
    seed = _check_int(seed, "seed", minimum=0)
    data = _as_series_list(md_features_or_tics, "md_features_or_tics", ndim=2)
    mean = coefficients = None
    if tica_lag is not None:
        mean, coefficients = fit_tica(data, tica_lag, dim=tica_dim)
        data = _project(data, (mean, coefficients))
    pooled = np.concatenate(data)
    if pooled.shape[0] < n_clusters:
        raise ValueError(f"{pooled.shape[0]} frames cannot form {n_clusters} clusters; use fewer clusters.")
    kmeans = KMeans(n_clusters, max_iter=max_iter, init_strategy="kmeans++", fixed_seed=seed, n_jobs=1)
    centers = np.asarray(kmeans.fit(pooled).fetch_model().cluster_centers, np.float64)
    tree = scipy.spatial.cKDTree(centers)
    dtrajs = [tree.query(x)[1].astype(np.int64) for x in data]
    counts = count_matrix(dtrajs, n_clusters, lag)
    if counts.sum() == 0:
        raise ValueError(f"every trajectory is at most {lag} frames long; lower the lag.")
    T, pi, active = reversible_transition_matrix(counts)
    if active.size < n_clusters:
        warnings.warn(
            f"metastable_msm: the MSM uses the largest connected set, {active.size} of {n_clusters} clusters; "
            f"clusters {np.setdiff1d(np.arange(n_clusters), active).tolist()} take the set of the nearest active centre.",
            stacklevel=2,
        )
    if n_metastable > active.size:
        raise ValueError(f"n_metastable={n_metastable} exceeds the {active.size} connected clusters; use fewer sets.")
    timescales = implied_timescales_from_matrix(T, pi, float(lag), n_metastable - 1)
    if not np.all(timescales > lag):
        warnings.warn(
            f"metastable_msm: implied timescales {np.round(timescales, 2).tolist()} frames do not all exceed the lag "
            f"({lag} frames): at this lag the MSM resolves fewer than {n_metastable} metastable sets; PCCA+ may split "
            "off sparsely sampled clusters. Use a shorter lag or fewer sets.",
            stacklevel=2,
        )
    memberships, assignments = pcca_memberships(T, n_metastable, stationary=pi)
    empty = np.setdiff1d(np.arange(n_metastable), assignments)
    if empty.size:
        warnings.warn(
            f"metastable_msm: PCCA+ set(s) {empty.tolist()} own no cluster outright (their memberships never win); "
            f"the data resolve fewer than n_metastable={n_metastable} metastable sets, so use fewer.",
            stacklevel=2,
        )
    cluster_sets = np.empty(n_clusters, np.int64)
    cluster_sets[active] = assignments
    inactive = np.setdiff1d(np.arange(n_clusters), active)
    if inactive.size:
        nearest = scipy.spatial.cKDTree(centers[active]).query(centers[inactive])[1]
        cluster_sets[inactive] = assignments[nearest]
    return MetastableModel(mean, coefficients, centers, lag, active, T, pi, memberships, cluster_sets, timescales)


def _bootstrap_units(dtrajs: list[np.ndarray], n_blocks: int, min_length: int) -> list[list[np.ndarray]]:
    """Trajectories as bootstrap units; fewer than ``n_blocks`` of them are cut into contiguous blocks (none
    shorter than ``min_length`` frames, so few lagged pairs are lost at the cuts), and more than
    ``_MAX_BOOTSTRAP_UNITS`` are grouped round-robin (a group keeps its trajectories separate)."""
    if len(dtrajs) >= n_blocks:
        units = [[d] for d in dtrajs]
    else:
        per = math.ceil(n_blocks / len(dtrajs))
        units = [[b] for d in dtrajs for b in np.array_split(d, max(1, min(per, d.size // max(min_length, 1))))]
    if len(units) > _MAX_BOOTSTRAP_UNITS:
        groups = [[] for _ in range(_MAX_BOOTSTRAP_UNITS)]
        for k, u in enumerate(units):
            groups[k % _MAX_BOOTSTRAP_UNITS].extend(u)
        units = groups
    return units


def _estimate_msm(counts: np.ndarray, reversible: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    T, pi, active = reversible_transition_matrix(counts)
    if not reversible:
        c = counts[np.ix_(active, active)]
        T = c / c.sum(axis=1, keepdims=True)
        pi = stationary_distribution(T)
    return T, pi, active


def _metastable_estimate(counts, set_frames, cluster_sets, n_sets, lag_time, reversible) -> dict[str, np.ndarray]:
    nan_m = np.full((n_sets, n_sets), np.nan)
    out = {"populations": set_frames / max(set_frames.sum(), 1.0)}
    try:
        T, pi, active = _estimate_msm(counts, reversible)
    except (ValueError, np.linalg.LinAlgError):
        out.update(stationary_distribution=np.full(n_sets, np.nan), transition_matrix=nan_m, gross_flux=nan_m,
                   net_flux=nan_m, mfpt=nan_m, n_active=0, active_fraction=0.0)
        return out
    labels = cluster_sets[active]
    P, pi_sets = coarse_transition_matrix(T, pi, labels, n_sets)
    gross = pi_sets[:, None] * P / lag_time
    np.fill_diagonal(gross, 0.0)
    mfpt = np.full((n_sets, n_sets), np.nan)
    for j in range(n_sets):
        target = np.flatnonzero(labels == j)
        if target.size == 0:
            continue
        m = mfpt_to_set(T, target, lag_time=lag_time)
        for i in range(n_sets):
            origin = labels == i
            if origin.any():
                mfpt[i, j] = np.sum(pi[origin] * m[origin]) / np.sum(pi[origin])
    out.update(
        stationary_distribution=pi_sets,
        transition_matrix=P,
        gross_flux=gross,
        net_flux=np.maximum(gross - gross.T, 0.0),
        mfpt=mfpt,
        n_active=int(active.size),
        active_fraction=float(counts[np.ix_(active, active)].sum() / max(counts.sum(), 1.0)),
    )
    return out


def metastable_kinetics(
    model: MetastableModel,
    data,
    *,
    lag: int,
    frame_time: float = 1.0,
    reversible: bool = True,
    n_bootstrap: int = 100,
    n_blocks: int = 20,
    seed: int = 0,
) -> dict:
    """Populations, stationary distribution, coarse transition matrix, flux and MFPTs of the model's metastable sets.

    ``data`` (MD or generated trajectories) is assigned to the model's clusters and sets
    (:func:`assign_microstates`); a microstate MSM is estimated from *this* data at ``lag``
    (reversible or not; largest connected set); set quantities follow from it: ``stationary_distribution``
    (MSM weight of each set), ``transition_matrix`` (:func:`coarse_transition_matrix`), ``gross_flux``
    ``pi_I P_IJ / lag_time`` and ``net_flux``, and ``mfpt`` (row I, column J: from I to J,
    :func:`mfpt_between_sets` on the microstate MSM). ``populations`` are plain frame fractions per set.

    Errors are bootstrap standard deviations: trajectories are resampled with replacement; with fewer than
    ``n_blocks`` trajectories each is cut into contiguous blocks first (a single long MD trajectory becomes
    ``n_blocks`` blocks, none shorter than ``10 * lag`` frames), and more than 100 units are grouped
    round-robin into 100. Blocks should be much longer than the slowest relaxation time for honest errors.

    Args:
        model: from :func:`metastable_msm`.
        data: ``[n_frames, d]`` or a list of them, in the model's input space.
        lag: MSM lag in frames of ``data``.
        frame_time: time between frames of ``data`` (sets the unit of ``mfpt`` and flux).
        reversible: detailed-balance estimator (True) or row-normalized counts on the connected set.
        n_bootstrap: bootstrap replicates (0: no errors).
        n_blocks: minimum number of bootstrap units.
        seed: bootstrap seed.

    Returns:
        dict of float64 arrays ``populations [m]``, ``stationary_distribution [m]``, ``transition_matrix [m, m]``,
        ``gross_flux [m, m]``, ``net_flux [m, m]``, ``mfpt [m, m]``, each with a ``<key>_err`` twin (nan
        where undefined), and ``n_active``, ``active_fraction`` (fraction of transition counts inside the
        MSM's connected set), ``lag``, ``lag_time``, ``n_units``.

    References:
        Prinz et al., J. Chem. Phys. 134, 174105 (2011); Efron & Tibshirani, An Introduction to the Bootstrap (1993).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = np.repeat(rng.integers(0, 2, 200), 50)[:, None] * 5.0 + rng.normal(0, 0.3, (10_000, 1))
        >>> model = metastable_msm(x, lag=1, n_clusters=6)
        >>> kin = metastable_kinetics(model, x, lag=1, frame_time=2.0, n_bootstrap=20)
        >>> kin["populations"].shape, kin["mfpt"].shape, bool(np.all(kin["populations_err"] > 0))
        ((2,), (2, 2), True)
    """
    lag = _check_int(lag, "lag")
    frame_time = _check_positive(frame_time, "frame_time")
    n_bootstrap = _check_int(n_bootstrap, "n_bootstrap", minimum=0)
    n_blocks = _check_int(n_blocks, "n_blocks")
    seed = _check_int(seed, "seed", minimum=0)
    dtrajs = assign_microstates(model, data)
    n, m = model.n_clusters, model.n_metastable
    units = _bootstrap_units(dtrajs, n_blocks, min_length=10 * lag)
    unit_counts = np.stack([count_matrix(u, n, lag) for u in units])
    unit_sets = np.stack([np.bincount(model.cluster_sets[np.concatenate(u)], minlength=m) for u in units]).astype(float)
    lag_time = lag * frame_time
    estimate = _metastable_estimate(unit_counts.sum(0), unit_sets.sum(0), model.cluster_sets, m, lag_time, reversible)
    if estimate["n_active"] and estimate["n_active"] < len(np.unique(np.concatenate(dtrajs))):
        warnings.warn(
            f"metastable_kinetics: the MSM of this data uses its largest connected set ({estimate['n_active']} "
            f"clusters, {estimate['active_fraction']:.4f} of the transition counts).",
            stacklevel=2,
        )
    keys = ("populations", "stationary_distribution", "transition_matrix", "gross_flux", "net_flux", "mfpt")
    rng = np.random.default_rng(seed)
    samples: dict[str, list] = {k: [] for k in keys}
    for _ in range(n_bootstrap):
        w = np.bincount(rng.integers(0, len(units), len(units)), minlength=len(units)).astype(float)
        rep = _metastable_estimate(np.tensordot(w, unit_counts, 1), w @ unit_sets, model.cluster_sets, m, lag_time,
                                   reversible)
        for k in keys:
            samples[k].append(rep[k])
    out = dict(estimate)
    for k in keys:
        if n_bootstrap >= 2:
            s = np.stack(samples[k])
            ok = np.isfinite(s)
            n_ok = ok.sum(0)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(ok, s, 0.0).sum(0) / np.maximum(n_ok, 1)
                var = np.where(ok, (s - mean) ** 2, 0.0).sum(0) / np.maximum(n_ok - 1, 1)
            out[f"{k}_err"] = np.where(n_ok >= 2, np.sqrt(var), np.nan)
        else:
            out[f"{k}_err"] = np.full_like(np.asarray(estimate[k], float), np.nan)
    out.update(lag=lag, lag_time=lag_time, n_units=len(units))
    return out


# --------------------------------------------------------------------------------------------------
# autocorrelation
# --------------------------------------------------------------------------------------------------


def _lagged_products(x: np.ndarray, max_lag: int) -> np.ndarray:
    """``sum_s x(s) x(s + t)`` for t = 0..max_lag (summed over columns' last axis), via FFT. ``x``: [n, c, k]."""
    n = x.shape[0]
    size = 1 << int(np.ceil(np.log2(2 * n)))
    f = np.fft.rfft(x, size, axis=0)
    prod = np.fft.irfft(f * np.conj(f), size, axis=0)[: max_lag + 1]
    return prod.sum(axis=-1)


def autocorrelation(x, max_lag: int, *, circular: bool = False) -> np.ndarray:
    """Normalized autocorrelation function, pooled over trajectories.

    ``C(t) = sum_traj sum_s dx(s) . dx(s + t) / N(t)`` divided by the same at ``t = 0``, with ``dx = x - mean``
    (the mean over all frames of all trajectories) and ``N(t)`` the number of pairs at lag ``t``. With
    ``circular=True`` every column is an angle and ``x`` is its unit vector ``(cos, sin)``.

    Args:
        x: ``[n_frames]`` or ``[n_frames, n_series]`` or a list of them (trajectories).
        max_lag: largest lag in frames (must be shorter than the longest trajectory).
        circular: treat columns as angles (radians).

    Returns:
        ``[max_lag + 1, n_series]`` with ``C(0) = 1`` (``nan`` for constant series or lags without pairs).

    References:
        Sokal (1997); Box, Jenkins & Reinsel, Time Series Analysis (2008), Sec. 2.1.

    Example:
        >>> t = np.arange(4000)
        >>> acf = autocorrelation(np.cos(2 * np.pi * t / 100), max_lag=50)   # period 100 frames
        >>> acf[[0, 50], 0].round(2).tolist()
        [1.0, -1.0]
    """
    max_lag = _check_int(max_lag, "max_lag", minimum=0)
    series = _as_series_list(x, "x", ndim=2)
    if max(s.shape[0] for s in series) <= max_lag:
        raise ValueError(f"max_lag={max_lag} must be shorter than the longest trajectory "
                         f"({max(s.shape[0] for s in series)} frames).")
    if circular:
        series = [np.stack([np.cos(s), np.sin(s)], axis=-1) for s in series]  # [n, c, 2]
    else:
        series = [s[..., None] for s in series]  # [n, c, 1]
    mean = np.concatenate(series).mean(axis=0)
    numerator = np.zeros((max_lag + 1, series[0].shape[1]))
    pairs = np.zeros(max_lag + 1)
    for s in series:
        k = min(max_lag, s.shape[0] - 1)
        numerator[: k + 1] += _lagged_products(s - mean, k)
        pairs[: k + 1] += s.shape[0] - np.arange(k + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = numerator / pairs[:, None]
        return cov / cov[0]


def integrated_autocorrelation_time(acf, *, dt: float = 1.0, window_factor: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Integrated autocorrelation time with Sokal's automatic window.

    ``tau_int(M) = dt (1/2 + sum_{t=1..M} C(t))``; ``M`` is the smallest lag with ``M >= window_factor *
    tau_int(M) / dt``. For ``C(t) = rho^t`` this is ``dt (1 + rho) / (2 (1 - rho))`` (``~ tau`` for
    ``rho = exp(-dt / tau)``).

    Args:
        acf: ``[n_lags]`` or ``[n_lags, n_series]`` normalized ACF (``acf[0] = 1``), lags ``0, dt, 2 dt, ...``.
        dt: time between lags.
        window_factor: Sokal's ``c`` (5 for nearly exponential decays).

    Returns:
        ``(tau_int [n_series], converged [n_series])``; where no window fits in the ACF the sum over all
        lags is returned with ``converged = False`` (a lower bound: compute more lags).

    References:
        Sokal, "Monte Carlo methods in statistical mechanics" (1997), Sec. 3; Madras & Sokal, J. Stat. Phys.
        50, 109 (1988).

    Example:
        >>> rho = 0.9
        >>> tau, ok = integrated_autocorrelation_time(rho ** np.arange(200))
        >>> round(float(tau[0]), 2), bool(ok[0])   # (1 + rho) / (2 (1 - rho)) = 9.5, less the tail beyond M = 48
        (9.44, True)
    """
    dt = _check_positive(dt, "dt")
    acf = np.asarray(acf, np.float64)
    if acf.ndim == 1:
        acf = acf[:, None]
    if acf.ndim != 2 or acf.shape[0] < 2:
        raise ValueError(f"acf must have shape [n_lags >= 2] or [n_lags, n_series], got {acf.shape}.")
    tau = 0.5 + np.cumsum(np.nan_to_num(acf[1:]), axis=0)  # tau[M - 1] = tau_int(M) / dt
    lags = np.arange(1, acf.shape[0])[:, None]
    fits = lags >= window_factor * tau
    converged = fits.any(axis=0)
    window = np.where(converged, np.argmax(fits, axis=0), acf.shape[0] - 2)
    return dt * tau[window, np.arange(acf.shape[1])], converged


def e_folding_time(acf, *, dt: float = 1.0) -> np.ndarray:
    """First time the ACF drops below ``1/e`` (linear interpolation between lags).

    Args:
        acf: ``[n_lags]`` or ``[n_lags, n_series]`` normalized ACF.
        dt: time between lags.

    Returns:
        ``[n_series]`` times; ``nan`` where the ACF stays above ``1/e`` over all lags.

    Example:
        >>> e_folding_time(np.exp(-np.arange(100) / 7.0)).round(6).tolist()
        [7.0]
    """
    dt = _check_positive(dt, "dt")
    acf = np.asarray(acf, np.float64)
    if acf.ndim == 1:
        acf = acf[:, None]
    level = np.exp(-1.0)
    out = np.full(acf.shape[1], np.nan)
    for c in range(acf.shape[1]):
        below = np.flatnonzero(acf[:, c] < level)
        if below.size and below[0] > 0:
            k = below[0]
            a, b = acf[k - 1, c], acf[k, c]
            out[c] = dt * (k - 1 + (a - level) / (a - b))
    return out


def torsion_autocorrelation(
    trajs, *, max_lag: int, frame_time: float = 1.0, torsions: Sequence[str] = DEFAULT_TORSIONS, stride: int = 1
) -> dict:
    """Circular ACF and decorrelation times of every torsion, pooled over trajectories.

    Args:
        trajs: :class:`mdtraj.Trajectory` or a list of them (several trajectories, e.g. generated ones).
        max_lag: largest lag in units of ``stride`` frames.
        frame_time: time between frames.
        torsions: torsion kinds (see :func:`torsion_angles`).
        stride: report the ACF at lags ``0, stride, 2 stride, ...`` frames (all frame pairs are used), e.g. to
            put MD on the coarser time grid of generated frames.

    Returns:
        dict with ``names [n]``, ``lag_times [max_lag + 1]``, ``acf [max_lag + 1, n]``, ``integrated_time [n]``,
        ``converged [n]`` (:func:`integrated_autocorrelation_time`) and ``e_folding_time [n]``.

    References:
        Sokal (1997).

    Example:
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> result = torsion_autocorrelation(load_alanine_dipeptide("train", stride=50), max_lag=5, frame_time=100.0)
        >>> result["names"], result["acf"].shape
        (['phi:ALA2', 'psi:ALA2'], (6, 2))
    """
    max_lag = _check_int(max_lag, "max_lag")
    stride = _check_int(stride, "stride")
    frame_time = _check_positive(frame_time, "frame_time")
    names, angles = _angles_of(trajs, torsions, "trajs")
    if not names:
        raise ValueError("the trajectories define no torsions of the requested kinds.")
    return _acf_summary(names, angles, max_lag, stride, frame_time)


def _acf_summary(names, angles, max_lag, stride, frame_time) -> dict:
    acf = autocorrelation(angles, max_lag * stride, circular=True)[::stride]
    dt = stride * frame_time
    tau, converged = integrated_autocorrelation_time(acf, dt=dt)
    return {
        "names": list(names),
        "lag_times": dt * np.arange(max_lag + 1),
        "acf": acf,
        "integrated_time": tau,
        "converged": converged,
        "e_folding_time": e_folding_time(acf, dt=dt),
    }


# --------------------------------------------------------------------------------------------------
# Chapman-Kolmogorov test
# --------------------------------------------------------------------------------------------------


def _set_labels(sets, n_states: int) -> tuple[np.ndarray, int]:
    """Set label of every state (-1: in no set) from a label array ``[n_states]`` or a list of index arrays."""
    if isinstance(sets, np.ndarray) and sets.ndim == 1 and np.issubdtype(sets.dtype, np.integer):
        labels = sets.astype(np.int64)
        if labels.size != n_states or (labels.size and labels.min() < -1):
            raise ValueError(f"set labels must be one integer >= -1 per state ({n_states} states), got {labels.tolist()}.")
    else:
        labels = np.full(n_states, -1, np.int64)
        for k, members in enumerate(list(sets)):
            members = _check_states(members, n_states, f"sets[{k}]")
            if np.any(labels[members] >= 0):
                raise ValueError("the sets overlap; pass disjoint sets of states.")
            labels[members] = k
    n_sets = int(labels.max()) + 1 if labels.size else 0
    if n_sets < 1 or any(not np.any(labels == k) for k in range(n_sets)):
        raise ValueError("every set must contain at least one state (labels 0..n_sets-1, -1 for none).")
    return labels, n_sets


def _set_propagation(T: np.ndarray, pi: np.ndarray, labels: np.ndarray, n_sets: int, powers: Sequence[int]) -> np.ndarray:
    """``[len(powers), n_sets, n_sets]``: probability to be in J after ``k`` steps from pi restricted to I."""
    M = np.zeros((labels.size, n_sets))
    ok = labels >= 0
    M[np.flatnonzero(ok), labels[ok]] = 1.0
    start = M * pi[:, None]  # [n, n_sets]
    mass = start.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        start = np.where(mass > 0, start / mass, np.nan).T  # [n_sets, n]
    out = []
    current, done = start, 0
    for k in powers:
        for _ in range(k - done):
            current = current @ T
        done = k
        out.append(current @ M)
    return np.stack(out)


def _ck_estimate(count_stack, lag_multiples, labels_full, n_sets, reversible, fixed_T):
    """Predicted and estimated ``[K, n_sets, n_sets]`` from count matrices at lags k tau (stack [K, n, n])."""
    K = len(lag_multiples)
    nan = np.full((n_sets, n_sets), np.nan)
    if fixed_T is not None:
        predicted = _set_propagation(fixed_T, stationary_distribution(fixed_T), labels_full, n_sets, lag_multiples)
    else:
        try:
            T, pi, active = _estimate_msm(count_stack[0], reversible)
            predicted = _set_propagation(T, pi, labels_full[active], n_sets, lag_multiples)
        except (ValueError, np.linalg.LinAlgError):
            predicted = np.stack([nan] * K)
    estimated = []
    for i in range(K):
        try:
            T, pi, active = _estimate_msm(count_stack[i], reversible)
            estimated.append(_set_propagation(T, pi, labels_full[active], n_sets, [1])[0])
        except (ValueError, np.linalg.LinAlgError):
            estimated.append(nan)
    return predicted, np.stack(estimated)


def chapman_kolmogorov(
    dtrajs,
    lag: int,
    sets,
    *,
    n_states: int | None = None,
    k_max: int = 5,
    transition_matrix=None,
    reversible: bool = True,
    n_bootstrap: int = 100,
    n_blocks: int = 20,
    n_sigma: float = 4.0,
    seed: int = 0,
) -> dict:
    """Chapman-Kolmogorov test of a Markov model at lag tau on a set partition: ``P(tau)^k`` vs ``P(k tau)``.

    For every set ``I`` the model is started from its stationary distribution restricted to ``I``;
    ``predicted[k-1, I, J]`` is the probability to be in ``J`` after ``k`` steps of the lag-tau MSM,
    ``estimated[k-1, I, J]`` the same for one step of an MSM estimated directly at lag ``k tau``
    (each on its own largest connected set). A Markovian model agrees within errors for every ``k``.

    Errors are bootstrap standard deviations over trajectories (blocks of at least ``10 k_max lag`` frames
    for fewer than ``n_blocks`` trajectories, see :func:`metastable_kinetics`); ``difference_err`` bootstraps ``predicted - estimated``
    itself (the two are correlated, being estimated from the same data), and the test passes when
    ``|predicted - estimated| <= n_sigma * difference_err`` for all ``k >= 2`` (``k >= 1`` with a precomputed
    ``transition_matrix``) and all set pairs. ``n_sigma`` is a per-entry threshold: with ``K`` lags and ``n``
    sets there are about ``K (n - 1) n`` comparisons, and a bootstrap over ``U`` units gives roughly
    t-distributed ratios with ``U - 1`` degrees of freedom, so raise ``n_sigma`` (or the number of units) to
    keep the family-wise false-alarm rate low; ``max_deviation_sigma`` is returned for that reason.

    Args:
        dtrajs: integer microstate trajectory ``[n_frames]`` or a list of them.
        lag: tau in frames.
        sets: set label of every microstate ``[n_states]`` (-1: in no set), or a list of disjoint index arrays.
        n_states: number of microstates (default: ``max(dtrajs) + 1``, or the size of ``transition_matrix``).
        k_max: largest multiple ``K`` of the lag.
        transition_matrix: ``[n_states, n_states]`` precomputed lag-tau matrix to test instead of the MSM
            estimated from ``dtrajs`` (its ``predicted_err`` is then 0).
        reversible: detailed-balance estimator (True) or row-normalized counts.
        n_bootstrap: bootstrap replicates (>= 2).
        n_blocks: minimum number of bootstrap units.
        n_sigma: tolerance of ``passed`` in bootstrap standard deviations.
        seed: bootstrap seed.

    Returns:
        dict with ``lags [K]`` (frames, ``k tau``), ``predicted``, ``estimated``, ``predicted_err``,
        ``estimated_err``, ``difference_err`` (all ``[K, n_sets, n_sets]``), ``max_deviation_sigma`` (largest
        ``|predicted - estimated| / difference_err`` over the tested ``k``) and ``passed`` (bool).

    References:
        Prinz et al., J. Chem. Phys. 134, 174105 (2011), Sec. IV.C.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> T = np.array([[0.9, 0.1], [0.2, 0.8]])
        >>> dtraj = [0]
        >>> for _ in range(20000):
        ...     dtraj.append(int(rng.random() < T[dtraj[-1], 1]))
        >>> result = chapman_kolmogorov(np.array(dtraj), lag=1, sets=np.array([0, 1]), k_max=3)
        >>> result["predicted"].shape, result["passed"]
        ((3, 2, 2), True)
    """
    lag = _check_int(lag, "lag")
    k_max = _check_int(k_max, "k_max")
    n_bootstrap = _check_int(n_bootstrap, "n_bootstrap", minimum=2)
    n_blocks = _check_int(n_blocks, "n_blocks")
    seed = _check_int(seed, "seed", minimum=0)
    dtrajs = _as_dtraj_list(dtrajs)
    fixed_T = None if transition_matrix is None else _check_transition_matrix(transition_matrix)
    seen = max(int(d.max()) + 1 for d in dtrajs if d.size) if any(d.size for d in dtrajs) else 0
    if n_states is None:
        n_states = fixed_T.shape[0] if fixed_T is not None else seen
    n_states = _check_int(n_states, "n_states")
    if seen > n_states or (fixed_T is not None and fixed_T.shape[0] != n_states):
        raise ValueError(f"dtrajs use {seen} states but n_states={n_states} (transition_matrix: "
                         f"{None if fixed_T is None else fixed_T.shape[0]}); they must agree.")
    labels, n_sets = _set_labels(sets, n_states)
    multiples = list(range(1, k_max + 1))
    units = _bootstrap_units(dtrajs, n_blocks, min_length=10 * k_max * lag)
    unit_counts = np.stack([[count_matrix(u, n_states, k * lag) for k in multiples] for u in units])  # [U, K, n, n]
    if unit_counts[:, -1].sum() == 0:
        raise ValueError(f"no trajectory is longer than k_max * lag = {k_max * lag} frames; lower k_max or lag.")
    predicted, estimated = _ck_estimate(unit_counts.sum(0), multiples, labels, n_sets, reversible, fixed_T)
    rng = np.random.default_rng(seed)
    reps_p, reps_e = [], []
    for _ in range(n_bootstrap):
        w = np.bincount(rng.integers(0, len(units), len(units)), minlength=len(units)).astype(float)
        p, e = _ck_estimate(np.tensordot(w, unit_counts, 1), multiples, labels, n_sets, reversible, fixed_T)
        reps_p.append(p)
        reps_e.append(e)
    reps_p, reps_e = np.stack(reps_p), np.stack(reps_e)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan entries (sets never visited) stay nan
        # a fixed matrix has no sampling error (the bootstrap would only add float round-off)
        predicted_err = np.zeros_like(predicted) if fixed_T is not None else np.nanstd(reps_p, axis=0, ddof=1)
        estimated_err = np.nanstd(reps_e, axis=0, ddof=1)
        difference_err = np.nanstd(reps_p - reps_e, axis=0, ddof=1)
        first = 0 if fixed_T is not None else 1  # k = 1 agrees by construction when both come from the data
        deviation = np.abs(predicted - estimated)[first:]
        z = np.where(deviation == 0, 0.0, deviation / np.maximum(difference_err[first:], 1e-300))
        max_sigma = float(np.nanmax(z)) if z.size and np.isfinite(z).any() else 0.0
    return {
        "lags": np.array([k * lag for k in multiples]),
        "predicted": predicted,
        "estimated": estimated,
        "predicted_err": predicted_err,
        "estimated_err": estimated_err,
        "difference_err": difference_err,
        "max_deviation_sigma": max_sigma,
        "passed": bool(max_sigma <= n_sigma),
    }


def plot_chapman_kolmogorov(result: dict, *, frame_time: float = 1.0, unit: str = "frames", labels=None, path=None):
    """Grid of CK panels (row I, column J): predicted ``P(tau)^k`` (line, band = 1 s.d.) vs estimated (points).

    Args:
        result: from :func:`chapman_kolmogorov`.
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
        from lss_jax._io import atomic_path

        path = Path(path)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".") or "png")
    return fig


# --------------------------------------------------------------------------------------------------
# side by side
# --------------------------------------------------------------------------------------------------


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
    """Every metric of this module for generated (LSS) vs MD, beside the MD-half vs MD-half noise floor.

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
        torsions: torsion kinds (see :func:`torsion_angles`).
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
    md_frame_time = _check_positive(md_frame_time, "md_frame_time")
    lss_frame_time = _check_positive(lss_frame_time, "lss_frame_time")
    msm_lag_time = _check_positive(msm_lag_time, "msm_lag_time")
    tica_lag_time = msm_lag_time if tica_lag_time is None else _check_positive(tica_lag_time, "tica_lag_time")
    dt = max(md_frame_time, lss_frame_time)
    acf_max_time = 50 * dt if acf_max_time is None else _check_positive(acf_max_time, "acf_max_time")
    msm_lag_md = _ratio(msm_lag_time, md_frame_time, "msm_lag_time / md_frame_time")
    msm_lag_lss = _ratio(msm_lag_time, lss_frame_time, "msm_lag_time / lss_frame_time")
    tica_lag_md = _ratio(tica_lag_time, md_frame_time, "tica_lag_time / md_frame_time")
    stride_md = _ratio(dt, md_frame_time, "the common ACF grid / md_frame_time")
    stride_lss = _ratio(dt, lss_frame_time, "the common ACF grid / lss_frame_time")
    acf_lags = max(1, int(math.floor(acf_max_time / dt + 1e-9)))

    # ---- inputs
    if (md_trajs is None) != (lss_trajs is None):
        raise ValueError("pass both md_trajs and lss_trajs, or neither (features only).")
    names: list[str] = []
    md_angles = lss_angles = None
    if md_trajs is not None:
        names, md_angles = _angles_of(md_trajs, torsions, "md_trajs")
        lss_names, lss_angles = _angles_of(lss_trajs, torsions, "lss_trajs")
        if lss_names != names:
            raise ValueError(f"md_trajs and lss_trajs have different torsions ({names} vs {lss_names}).")
    if (md_features is None) != (lss_features is None):
        raise ValueError("pass both md_features and lss_features, or neither (torsion sin/cos are used).")
    if md_features is None:
        if not names:
            raise ValueError("no torsions and no features: pass md_features and lss_features.")
        md_features, lss_features = _torsion_features(md_angles), _torsion_features(lss_angles)
    md_features = _as_series_list(md_features, "md_features", ndim=2)
    lss_features = _as_series_list(lss_features, "lss_features", ndim=2)
    if md_angles is not None and [a.shape[0] for a in md_angles] != [f.shape[0] for f in md_features]:
        raise ValueError("md_features must have one row per MD frame, trajectory by trajectory.")
    if md_features[0].shape[1] != lss_features[0].shape[1]:
        raise ValueError("md_features and lss_features must have the same columns.")

    # ---- TICA and the metastable model, fitted on all MD frames
    projection = fit_tica(md_features, tica_lag_md, dim=2)
    md_tics = _project(md_features, projection)
    lss_tics = _project(lss_features, projection)
    h1_tics, h2_tics = _halves(md_tics)
    tica_ranges = _reference_ranges(np.concatenate(md_tics))
    with warnings.catch_warnings(record=True) as caught_model:
        warnings.simplefilter("always")
        model = metastable_msm(md_tics, msm_lag_md, n_clusters=n_clusters, n_metastable=n_metastable, seed=seed)
    for w in caught_model:  # pass them on to the caller, and keep them in the metrics
        warnings.warn(str(w.message), stacklevel=2)

    # ---- JSDs
    jsd_kw = dict(bins=_check_int(bins, "bins"), bins_2d=_check_int(bins_2d, "bins_2d"),
                  tica_bins=_check_int(tica_bins, "tica_bins"), tica_ranges=tica_ranges)
    empty = np.zeros((0, 0))
    md_a = np.concatenate(md_angles) if md_angles is not None else empty
    lss_a = np.concatenate(lss_angles) if lss_angles is not None else empty
    h1_a, h2_a = (_halves(md_angles) if md_angles is not None else ([empty], [empty]))
    j_lss = _jsd_block(md_a, lss_a, names, np.concatenate(md_tics), np.concatenate(lss_tics), **jsd_kw)
    j_md = _jsd_block(np.concatenate(h1_a), np.concatenate(h2_a), names, np.concatenate(h1_tics),
                      np.concatenate(h2_tics), **jsd_kw)
    pair = lambda a, b: {"lss_vs_md": a, "md_vs_md": b}  # noqa: E731
    jsd = {
        "torsions": {n: pair(j_lss["torsions"][n], j_md["torsions"][n]) for n in names},
        "phi_psi": pair(j_lss["phi_psi"], j_md["phi_psi"]),
        "phi_psi_residues": {r: pair(j_lss["phi_psi_residues"][r], j_md["phi_psi_residues"][r])
                             for r in j_lss["phi_psi_residues"]},
        "tica_0": pair(j_lss["tica_0"], j_md["tica_0"]),
        "tica_01": pair(j_lss["tica_01"], j_md["tica_01"]),
    }

    # ---- metastable kinetics
    notes = [str(w.message) for w in caught_model]

    def kinetics(label, tics, lag, frame_time):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = metastable_kinetics(model, tics, lag=lag, frame_time=frame_time, n_bootstrap=n_bootstrap,
                                      n_blocks=n_blocks, seed=seed)
        notes.extend(f"{label}: {w.message}" for w in caught)
        return out

    k_md = kinetics("md", md_tics, msm_lag_md, md_frame_time)
    k_lss = kinetics("lss", lss_tics, msm_lag_lss, lss_frame_time)
    k_h1 = kinetics("md_half_1", h1_tics, msm_lag_md, md_frame_time)
    k_h2 = kinetics("md_half_2", h2_tics, msm_lag_md, md_frame_time)

    def msm_entry(key, distance):
        return {
            "lss_vs_md": distance(k_lss[key], k_md[key]),
            "md_vs_md": distance(k_h1[key], k_h2[key]),
            "md": k_md[key], "lss": k_lss[key], "md_half_1": k_h1[key], "md_half_2": k_h2[key],
            "md_err": k_md[f"{key}_err"], "lss_err": k_lss[f"{key}_err"],
        }

    msm = {
        "populations": msm_entry("populations", _tv),
        "stationary": msm_entry("stationary_distribution", _tv),
        "transition_matrix": msm_entry("transition_matrix", _max_abs),
        "flux": msm_entry("gross_flux", _mean_abs_log_ratio),
        "mfpt": msm_entry("mfpt", _mean_abs_log_ratio),
        "info": {
            "n_clusters": model.n_clusters, "n_metastable": model.n_metastable,
            "lag_frames_md": msm_lag_md, "lag_frames_lss": msm_lag_lss, "n_active_model": int(model.active_set.size),
            "timescales_md": model.timescales * md_frame_time,
            "n_active_md": k_md["n_active"], "n_active_lss": k_lss["n_active"],
            "active_fraction_lss": k_lss["active_fraction"], "notes": notes,
        },
    }

    # ---- autocorrelation on the common time grid
    acf: dict[str, Any] = {}
    if names:
        h1_angles, h2_angles = h1_a, h2_a
        s_md = _acf_summary(names, md_angles, acf_lags, stride_md, md_frame_time)
        s_lss = _acf_summary(names, lss_angles, acf_lags, stride_lss, lss_frame_time)
        s_h1 = _acf_summary(names, h1_angles, acf_lags, stride_md, md_frame_time)
        s_h2 = _acf_summary(names, h2_angles, acf_lags, stride_md, md_frame_time)
        for k, name in enumerate(names):
            t = [s["integrated_time"][k] for s in (s_md, s_lss, s_h1, s_h2)]
            e = [s["e_folding_time"][k] for s in (s_md, s_lss, s_h1, s_h2)]
            acf[name] = {
                "lss_vs_md": float(abs(np.log(t[1] / t[0]))), "md_vs_md": float(abs(np.log(t[3] / t[2]))),
                "md": t[0], "lss": t[1], "md_half_1": t[2], "md_half_2": t[3],
                "md_e_folding": e[0], "lss_e_folding": e[1], "md_half_1_e_folding": e[2], "md_half_2_e_folding": e[3],
                "converged": bool(s_md["converged"][k] and s_lss["converged"][k]),
            }

    settings = {
        "md_frame_time": md_frame_time, "lss_frame_time": lss_frame_time, "msm_lag_time": msm_lag_time,
        "tica_lag_time": tica_lag_time, "acf_grid": dt, "acf_max_time": acf_lags * dt, "bins": bins,
        "bins_2d": bins_2d, "tica_bins": tica_bins, "n_bootstrap": n_bootstrap, "n_blocks": n_blocks, "seed": seed,
        "n_md_frames": int(sum(f.shape[0] for f in md_features)), "n_lss_frames": int(sum(f.shape[0] for f in lss_features)),
        "jsd_log_base": 2,
    }
    return to_jsonable({"jsd": jsd, "msm": msm, "autocorrelation": acf, "settings": settings})
