"""Autocorrelation functions and decorrelation times, pooled over trajectories (float64 NumPy, host side).

Conventions:

* **Torsion autocorrelation** uses the circular form: the unit vector ``u = (cos theta, sin theta)`` minus its
  mean, ``C(t) = <du(s) . du(s + t)> / <|du|^2>`` (``C(0) = 1``), so 2 pi jumps never matter.
* **Decorrelation times**: the integrated time ``tau_int = dt (1/2 + sum_{t=1..M} C(t))`` (the trapezoid
  rule for ``int_0^inf C``; ``tau`` for ``C = exp(-t / tau)``, ``tau >> dt``) with Sokal's automatic window
  (smallest ``M >= 5 tau_int(M)``), and the 1/e time (first crossing of ``C = 1/e``, linearly interpolated).

References:
    Sokal, A. "Monte Carlo methods in statistical mechanics", in Functional Integration (1997)
    (integrated autocorrelation time, automatic windowing).
    Box, G. E. P., Jenkins, G. M. & Reinsel, G. C. Time Series Analysis (2008), Sec. 2.1.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lss_jax.analysis._common import as_series_list, check_int, check_positive
from lss_jax.analysis.torsions import DEFAULT_TORSIONS, _angles_of

__all__ = ["autocorrelation", "integrated_autocorrelation_time", "e_folding_time", "torsion_autocorrelation"]


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
    max_lag = check_int(max_lag, "max_lag", minimum=0)
    series = as_series_list(x, "x", ndim=2)
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
    dt = check_positive(dt, "dt")
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
    dt = check_positive(dt, "dt")
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
        torsions: torsion kinds (see :func:`lss_jax.analysis.torsions.torsion_angles`).
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
    max_lag = check_int(max_lag, "max_lag")
    stride = check_int(stride, "stride")
    frame_time = check_positive(frame_time, "frame_time")
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
