"""Kinetic self-consistency of a fitted LSS: does the propagator reproduce the kinetics its encoder measured?

Three checks, cheap enough to run after every training (``lss-jax train`` prints them) and in ``report``:

* **Timescales**: the implied timescales of the latent propagator, from rollouts (the reversible estimator on
  the generated latent trajectories at one step), against the SRV's on held-out frames (its eigenproblem on the
  validation split, not on the frames it was trained on) and, in ``report``, against independent MD.
* **Walls**: the expected fraction of propagator steps whose sample left the unit box and was reflected,
  computed exactly from the mixture's normal CDFs along the rollouts (no sampling noise). Steps against the
  walls mean the dynamics press on the range of the training data.
* **Chapman-Kolmogorov** (``report``): k-means microstates and PCCA+ sets on the MD's latent coordinates; the
  LSS's one-step transition matrix between the microstates, raised to the power k, against MD estimated
  directly at k lags (:func:`lss_jax.analysis.chapman_kolmogorov.chapman_kolmogorov`).

One-line warnings (:func:`consistency_warnings`, as :class:`UserWarning` and in the summary): the latent dimension
rests on a near-degenerate pair of SRV timescales; propagator and held-out SRV timescales disagree by more
than twice their combined standard error; rollouts spend more than 5 % of their steps reflected at a wall.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "propagator_timescales",
    "reflection_fraction",
    "srv_heldout_timescales",
    "latent_chapman_kolmogorov",
    "consistency_warnings",
    "summarize",
]

WALL_WARNING_FRACTION = 0.05
DEGENERATE_RATIO = 1.15


def _timescales_with_error(series: list[np.ndarray], lag: int, lag_time: float, k: int, n_groups: int):
    from lss_jax.encoder import implied_timescales, reversible_decomposition

    ts = implied_timescales(reversible_decomposition(series, lag).eigenvalues[:k], lag_time)
    if len(series) >= n_groups:
        groups = [list(g) for g in np.array_split(np.arange(len(series)), n_groups)]
        parts = [[series[i] for i in g] for g in groups]
    else:  # one or few long series: contiguous blocks of each, every block at least twice the lag long
        n_blocks = min(n_groups, min(len(s) for s in series) // (2 * lag))
        if n_blocks < 2:  # too short to split: no error estimate
            return ts, np.full(len(ts), np.nan)
        parts = [[s[i * len(s) // n_blocks:(i + 1) * len(s) // n_blocks] for s in series] for i in range(n_blocks)]
    per = np.array([implied_timescales(reversible_decomposition(p, lag).eigenvalues[:k], lag_time) for p in parts])
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a timescale that is nan in every part stays nan
        se = np.nanstd(per, axis=0, ddof=1) / np.sqrt(np.sum(np.isfinite(per), axis=0))
    return ts, se


def propagator_timescales(key: jax.Array, model, *, n_traj: int = 256, n_steps: int = 2000, n_groups: int = 5):
    """Implied timescales ``[m]`` of the latent propagator (time units of the model), their standard errors over
    ``n_groups`` groups of trajectories, and the unit-box rollouts ``[n_traj, n_steps, m]`` they come from.

    The rollouts start from random training frames; the reversible estimator runs at one step (one lag).
    """
    from flax import nnx

    from lss_jax.propagator import mdn_apply_fn, rollout

    k_start, k_roll = jax.random.split(key)
    start = np.asarray(model.start_points)[np.asarray(jax.random.randint(k_start, (n_traj,), 0, len(model.start_points)))]
    graphdef, params = nnx.split(model.propagator)
    unit = np.asarray(rollout(k_roll, mdn_apply_fn(graphdef), params, jnp.asarray(start, jnp.float32), n_steps=n_steps,
                              boundary=model.config.propagator.boundary))
    ts, se = _timescales_with_error(list(unit), 1, model.lag_time, model.latent_dim, n_groups)
    return ts, se, unit


def reflection_fraction(model, unit_states, *, max_states: int = 50_000) -> float:
    """Expected fraction of propagator steps from ``unit_states [..., m]`` whose sample leaves the unit box.

    For a diagonal Gaussian mixture the probability to stay inside is ``sum_k w_k prod_d [Phi((1 - mu)/s) -
    Phi(-mu/s)]``; one minus its mean over the states (at most ``max_states``, evenly spaced) is the fraction.

    Example:
        A model whose every kernel sits at the centre with scale 0.5 leaves the box with probability
        ``1 - (Phi(1) - Phi(-1))`` per dimension:

        >>> from types import SimpleNamespace
        >>> from lss_jax.propagator import MixtureParams
        >>> net = lambda x: MixtureParams(jnp.zeros((len(x), 2)), jnp.full((len(x), 2, 1), 0.5),
        ...                               jnp.full((len(x), 2, 1), 0.5))
        >>> round(reflection_fraction(SimpleNamespace(propagator=net), np.full((10, 1), 0.3)), 4)
        0.3173
    """
    from jax.scipy.special import ndtr

    u = np.asarray(unit_states, np.float32).reshape(-1, np.shape(unit_states)[-1])
    u = u[np.linspace(0, len(u) - 1, min(len(u), max_states)).astype(int)]
    mix = model.propagator(jnp.asarray(u))
    inside = ndtr((1.0 - mix.means) / mix.scales) - ndtr(-mix.means / mix.scales)  # [N, C, m]
    stay = jnp.sum(jax.nn.softmax(mix.logits, axis=-1) * jnp.prod(inside, axis=-1), axis=-1)
    return float(1.0 - jnp.mean(stay))


def srv_heldout_timescales(model, features_list, *, reference_features=None, n_blocks: int = 5):
    """Implied timescales ``[m]`` of the SRV's latent coordinates on held-out standardized features (a list of
    ``[n_frames, n_features]``), by the reversible estimator at the model's lag (the encoder's kinetics on data
    it was not trained on), and their standard error.

    The error of an estimate from a short held-out set is dominated by which stretch of dynamics it happens to
    hold, which blocks *within* it underestimate. With ``reference_features`` (the training features) the error is
    the spread of the same estimate over contiguous stretches of the reference data as long as the held-out set:
    the sampling distribution of an estimate from that much data. Without them (or with fewer than three such
    stretches), the standard error over ``n_blocks`` blocks of the held-out data.
    """
    from lss_jax.encoder import implied_timescales, reversible_decomposition, srv_transform

    lag, m = model.config.lag, model.latent_dim
    to_psi = lambda fs: [srv_transform(model.encoder, model.projection, f, m) for f in fs if len(f) > 2 * lag]  # noqa: E731
    psi = to_psi(features_list)
    if not psi:
        raise ValueError("no held-out trajectory is longer than twice the lag.")
    ts, se = _timescales_with_error(psi, lag, model.lag_time, m, n_blocks)
    if reference_features is not None:
        length = sum(len(p) for p in psi)
        stretches = [r[i : i + length] for r in to_psi(reference_features) for i in range(0, len(r) - length + 1, length)]
        if len(stretches) >= 3:
            per = np.array([implied_timescales(reversible_decomposition([s], lag).eigenvalues[:m], model.lag_time)
                            for s in stretches])
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                se = np.nanstd(per, axis=0, ddof=1)
    return ts, se


def latent_chapman_kolmogorov(md_latent, lss_latent, lag: int, *, n_clusters: int = 50, n_sets: int = 2,
                              k_max: int = 5, seed: int = 0) -> dict:
    """Chapman-Kolmogorov test of the LSS propagator on the MD's latent states.

    k-means microstates and PCCA+ sets are fitted on the MD latent trajectories (``md_latent``: a list of
    ``[n_frames, m]``, frames one MD frame apart) at ``lag`` frames; the LSS trajectories (``lss_latent``
    ``[B, n_frames, m]``, frames one lag apart) give the one-step transition matrix between the same microstates
    (row-normalized counts; unvisited microstates stay in place); ``P_LSS^k`` is tested against MD estimated at
    ``k lag`` (:func:`lss_jax.analysis.chapman_kolmogorov.chapman_kolmogorov` with ``transition_matrix``).

    Returns:
        The CK result (``lags`` in MD frames, ``predicted``, ``estimated``, errors, ``passed``,
        ``max_deviation_sigma``) plus ``n_unvisited`` (microstates the LSS never entered) and ``sets`` (set of
        every microstate).
    """
    from lss_jax.analysis.chapman_kolmogorov import chapman_kolmogorov
    from lss_jax.analysis.metastable import assign_microstates, metastable_msm
    from lss_jax.analysis.msm import count_matrix

    md_latent = [np.asarray(x, np.float64) for x in md_latent]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # connectivity notes are reported in the result
        states = metastable_msm(md_latent, lag, n_clusters=n_clusters, n_metastable=n_sets, seed=seed)
    md_dtrajs = assign_microstates(states, md_latent)
    lss_dtrajs = assign_microstates(states, [np.asarray(x, np.float64) for x in lss_latent])
    counts = count_matrix(lss_dtrajs, n_clusters, 1)
    visited = counts.sum(1) > 0
    t_lss = np.where(visited[:, None], counts / np.maximum(counts.sum(1, keepdims=True), 1.0), np.eye(n_clusters))
    result = chapman_kolmogorov(md_dtrajs, lag, states.cluster_sets, n_states=n_clusters, k_max=k_max,
                                transition_matrix=t_lss, seed=seed)
    result["n_unvisited"] = int((~visited).sum())
    result["sets"] = states.cluster_sets
    return result


def consistency_warnings(summary: dict, srv_timescales_all=None) -> list[str]:
    """The one-line warnings of a :func:`summarize` result (see the module docstring)."""
    out = []
    m = len(summary["propagator_timescales"])
    if srv_timescales_all is not None and len(srv_timescales_all) > m:
        t_m, t_next = srv_timescales_all[m - 1], srv_timescales_all[m]
        if np.isfinite(t_next) and t_m / t_next < DEGENERATE_RATIO:
            out.append(f"latent dimension {m} rests on a near-degenerate pair of SRV timescales (t{m} = {t_m:.4g}, "
                       f"t{m + 1} = {t_next:.4g}): process {m + 1} may matter as much as process {m}; consider "
                       f"latent_dim = {m + 1}")
    t_p, se_p = np.asarray(summary["propagator_timescales"]), np.asarray(summary["propagator_timescales_se"])
    t_s, se_s = np.asarray(summary["srv_heldout_timescales"]), np.asarray(summary["srv_heldout_timescales_se"])
    tol = 2 * np.hypot(np.nan_to_num(se_p), np.nan_to_num(se_s))
    bad = [i for i in range(m) if np.isfinite(t_p[i]) and np.isfinite(t_s[i]) and abs(t_p[i] - t_s[i]) > tol[i]]
    if bad:
        i = bad[0]
        out.append(f"propagator and SRV timescales disagree beyond their errors: t{i + 1} = {t_p[i]:.4g} (propagator) vs "
                   f"{t_s[i]:.4g} (SRV on held-out frames), 2 SE = {tol[i]:.2g}")
    if summary["reflection_fraction"] > WALL_WARNING_FRACTION:
        out.append(f"rollouts press against the unit-box walls: {100 * summary['reflection_fraction']:.1f} % of steps are "
                   "reflected (the dynamics leave the range of the training data)")
    return out


def summarize(key: jax.Array, model, heldout_features, *, training_features=None, n_traj: int = 256,
              n_steps: int = 2000) -> dict:
    """Timescales (propagator from rollouts vs SRV on held-out features), wall reflections and warnings.

    Args:
        key: PRNG key of the rollouts.
        model: a fitted :class:`lss_jax.LSSModel`.
        heldout_features: standardized encoder features of frames the encoder was not trained on (list).
        training_features: the training features, for the error of the held-out estimate
            (:func:`srv_heldout_timescales`).
        n_traj, n_steps: rollouts for the propagator's timescales.

    Returns:
        ``propagator_timescales``, ``propagator_timescales_se``, ``srv_heldout_timescales``,
        ``srv_heldout_timescales_se`` (model time units), ``reflection_fraction``, ``warnings`` (list of str).
    """
    t_p, se_p, unit = propagator_timescales(key, model, n_traj=n_traj, n_steps=n_steps)
    t_s, se_s = srv_heldout_timescales(model, heldout_features, reference_features=training_features)
    summary = {"propagator_timescales": t_p.tolist(), "propagator_timescales_se": se_p.tolist(),
               "srv_heldout_timescales": t_s.tolist(), "srv_heldout_timescales_se": se_s.tolist(),
               "reflection_fraction": reflection_fraction(model, unit[:, :-1])}
    summary["warnings"] = consistency_warnings(summary, model.info.get("srv_timescales_ps"))
    return summary
