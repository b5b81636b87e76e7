"""Ensembles of MDN propagators: epistemic uncertainty of the learned kinetics.

``K`` propagators with independent initializations, each trained on its own block-bootstrap resample
of the lagged pairs, in **one** training run: the members' parameters are stacked on a leading axis
(``nnx.vmap`` at construction, ``jax.vmap`` in the forward pass) and the loss is the sum of the
members' weighted losses. Members share no parameter and Adam is elementwise, so each member follows
exactly the updates it would get alone (on the same minibatch order); one jitted epoch trains all.

Uncertainty per latent point ``x``:

* **Epistemic** (:func:`epistemic_uncertainty`): the disagreement of the members' transition
  densities, ``mean_k KL(p_k(. | x) || pbar(. | x))`` with ``pbar`` the ensemble mean density. This is
  the mutual information between the next state and the member index (the "BALD" score): zero when
  all members agree, large where the data did not pin the kinetics down.
* **Data density** (:func:`data_density`): a Gaussian kernel density of the training points.

References:
    B. Lakshminarayanan, A. Pritzel, C. Blundell, "Simple and scalable predictive uncertainty
    estimation using deep ensembles", NeurIPS 2017.
    N. Houlsby et al., "Bayesian active learning for classification and preference learning",
    arXiv:1112.5745 (2011) (mutual information as the acquisition score).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lss_jax.config import PropagatorConfig
from lss_jax.data.pairs import split_trajectories
from lss_jax.propagator import (
    MDN,
    MixtureParams,
    _fit_mdn_model,
    _mdn_pairs,
    _unit_list,
    gaussian_mixture_log_prob,
    mdn_nll,
    mixture_sample,
)

__all__ = [
    "MDNEnsemble",
    "fit_mdn_ensemble",
    "bootstrap_weights",
    "member",
    "epistemic_uncertainty",
    "data_density",
]


class MDNEnsemble(nnx.Module):
    """``K`` :class:`~lss_jax.propagator.MDN` s with stacked parameters; ``__call__`` maps ``[B, m]`` to
    a :class:`~lss_jax.propagator.MixtureParams` with a leading member axis ``[K, B, ...]``.

    Example:
        >>> ens = MDNEnsemble(4, latent_dim=1, n_components=3, hidden=(8,), rngs=nnx.Rngs(0))
        >>> ens(jnp.zeros((5, 1))).means.shape, ens.n_members
        ((4, 5, 3, 1), 4)
    """

    def __init__(self, n_members: int, latent_dim: int, n_components: int = 8, hidden: Sequence[int] = (100, 100), *,
                 scale_floor: float = 1e-3, rngs: nnx.Rngs):
        if n_members < 1:
            raise ValueError(f"n_members must be >= 1, got {n_members}.")

        @nnx.split_rngs(splits=n_members)
        @nnx.vmap(in_axes=(0,), out_axes=0)
        def create(rngs):
            return MDN(latent_dim, n_components, hidden, scale_floor=scale_floor, rngs=rngs)

        self.members = create(rngs)
        self.n_members = n_members

    def __call__(self, x: jax.Array) -> MixtureParams:
        graphdef, params = nnx.split(self.members)
        return jax.vmap(lambda p: nnx.merge(graphdef, p)(x))(params)


def member(ensemble: MDNEnsemble, k: int) -> MDN:
    """Member ``k`` as a standalone :class:`~lss_jax.propagator.MDN` (e.g. for :func:`lss_jax.rollout`).

    Example:
        >>> ens = MDNEnsemble(3, latent_dim=1, n_components=2, hidden=(), rngs=nnx.Rngs(0))
        >>> x = jnp.full((2, 1), 0.5)
        >>> bool(jnp.allclose(member(ens, 1)(x).means, ens(x).means[1]))
        True
    """
    graphdef, params = nnx.split(ensemble.members)
    if not 0 <= k < ensemble.n_members:
        raise ValueError(f"member index must be in [0, {ensemble.n_members}), got {k}.")
    return nnx.merge(graphdef, jax.tree_util.tree_map(lambda a: a[k], params))


def bootstrap_weights(key: jax.Array, n_pairs_per_traj: Sequence[int], n_members: int, *, n_blocks: int = 100) -> np.ndarray:
    """Block-bootstrap weights ``[n_pairs, n_members]``: each member resamples ``n_blocks`` blocks of
    consecutive lagged pairs (blocks never straddle trajectories) with replacement; a pair's weight is
    how often its block was drawn. Blocks keep the time correlation of the pairs inside them, so the
    spread of the members reflects the effective, not the nominal, number of samples.

    Example:
        >>> w = bootstrap_weights(jax.random.key(0), [60, 40], 3, n_blocks=10)
        >>> w.shape, float(w.sum(0).mean())
        ((100, 3), 100.0)
    """
    sizes = [int(n) for n in n_pairs_per_traj]
    total = sum(sizes)
    if total < 1:
        raise ValueError("no lagged pairs to resample.")
    block_len = max(1, total // max(1, n_blocks))
    block_of = np.concatenate([offset_blocks + np.arange(n) // block_len
                               for n, offset_blocks in zip(sizes, np.cumsum([0] + [-(-n // block_len) for n in sizes])[:-1])])
    n_total_blocks = int(block_of.max()) + 1
    draws = jax.random.randint(key, (n_members, n_total_blocks), 0, n_total_blocks)  # blocks drawn with replacement
    counts = np.asarray(jax.vmap(lambda d: jnp.bincount(d, length=n_total_blocks))(draws))  # [K, blocks]
    return counts[:, block_of].T.astype(np.float32)


def _ensemble_loss(model, batch):
    x, y, w = batch
    nll = jax.vmap(mdn_nll, in_axes=(0, None))(model(x), y)  # [K, B]
    # each member's weighted mean over its bootstrap weights (a batch with no weight counts zero)
    return jnp.sum(jnp.sum(nll * w.T, axis=1) / jnp.maximum(jnp.sum(w.T, axis=1), 1e-6))


def fit_mdn_ensemble(
    key: jax.Array,
    unit_trajs,
    lag: int,
    *,
    config: PropagatorConfig = PropagatorConfig(),
    n_members: int = 5,
    bootstrap: bool = True,
    n_blocks: int = 100,
    val_fraction: float = 0.1,
    progress: bool = True,
    checkpoint=None,
):
    """Train ``n_members`` MDN propagators in one vmapped run (see the module docstring).

    Same networks and protocol as :func:`lss_jax.propagator.fit_mdn` with the same ``config`` (cosine-decayed Adam,
    early stopping on the summed validation NLL of the members, which is evaluated on the common held-out pairs).
    :func:`lss_jax.fit_lss` passes ``n_members=config.ensemble_size`` (``LSSConfig.propagator.ensemble_size``).

    Returns:
        ``(MDNEnsemble, TrainHistory)``.

    Example:
        >>> u = np.random.default_rng(0).uniform(size=(400, 1)).astype(np.float32)
        >>> config = PropagatorConfig(n_components=2, hidden=(8,), batch_size=64, epochs=2)
        >>> ens, history = fit_mdn_ensemble(jax.random.key(0), [u], 1, config=config, n_members=3, progress=False)
        >>> ens.n_members, history.epochs_run
        (3, 2)
    """
    unit_trajs = _unit_list(unit_trajs)
    (x, y), val = _mdn_pairs(unit_trajs, lag, val_fraction)
    k_init, k_boot, k_fit = jax.random.split(key, 3)
    if bootstrap:
        train_trajs, _ = split_trajectories(unit_trajs, val_fraction, lag=lag)  # as _mdn_pairs
        sizes = [max(0, len(t) - lag) for t in train_trajs]
        weights = bootstrap_weights(k_boot, sizes, n_members, n_blocks=n_blocks)
    else:
        weights = np.ones((len(x), n_members), np.float32)
    model = MDNEnsemble(n_members, unit_trajs[0].shape[1], config.n_components, config.hidden,
                        scale_floor=config.scale_floor, rngs=nnx.Rngs(k_init))
    val = (*val, np.ones((len(val[0]), n_members), np.float32))
    return _fit_mdn_model(k_fit, model, _ensemble_loss, (x, y, weights), val, config=config, progress=progress,
                          checkpoint=checkpoint, desc=f"MDN ensemble x{n_members}",
                          run_id=f"mdn-ensemble lag={lag} K={n_members} bootstrap={bootstrap} blocks={n_blocks}")


def epistemic_uncertainty(key: jax.Array, ensemble: MDNEnsemble, x, *, n_samples: int = 256) -> np.ndarray:
    """Disagreement of the members' transition densities at points ``x [N, m]`` (nats, ``[N]``).

    ``U(x) = mean_k KL(p_k || pbar)``, estimated with ``n_samples`` draws from every member
    (``pbar = mean_k p_k``). ``0 <= U(x) <= log K``.

    Example:
        >>> ens = MDNEnsemble(4, latent_dim=1, n_components=2, hidden=(8,), rngs=nnx.Rngs(0))
        >>> u = epistemic_uncertainty(jax.random.key(1), ens, jnp.linspace(0, 1, 5)[:, None])
        >>> u.shape, bool(np.all(u >= -1e-6) & np.all(u <= np.log(4) + 1e-6))
        ((5,), True)
    """
    x = jnp.asarray(x, jnp.float32)
    mix = ensemble(x)  # [K, N, ...]
    n_members, n = mix.logits.shape[:2]
    keys = jax.random.split(key, n_members * n * n_samples).reshape(n_members, n, n_samples)
    # y[k, i, s] ~ p_k(. | x_i)
    y = jax.vmap(jax.vmap(lambda ks, lg, mu, sc: jax.vmap(
        lambda kk: mixture_sample(kk, MixtureParams(lg, mu, sc)))(ks)))(keys, *mix)  # [K, N, S, m]

    # log p_j(y[k, i, s]) for every member j
    def logp(lg, mu, sc, yy):  # one member j, one point i, samples yy [K, S, m] -> [K, S]
        flat = yy.reshape(-1, yy.shape[-1])
        return jax.vmap(gaussian_mixture_log_prob, in_axes=(0, None, None, None))(flat, lg, mu, sc).reshape(yy.shape[:-1])

    log_p = jax.vmap(lambda lg, mu, sc: jax.vmap(logp, in_axes=(0, 0, 0, 1), out_axes=0)(lg, mu, sc, y))(*mix)
    # log_p: [J, N, K, S]
    own = jnp.stack([log_p[k, :, k] for k in range(n_members)])  # log p_k of its own samples, [K, N, S]
    log_mean = jax.scipy.special.logsumexp(log_p, axis=0) - jnp.log(n_members)  # [N, K, S]
    kl = jnp.mean(own - jnp.transpose(log_mean, (1, 0, 2)), axis=-1)  # [K, N]
    return np.asarray(jnp.clip(jnp.mean(kl, axis=0), 0.0, None))


def data_density(points, x, *, bandwidth: float | None = None) -> np.ndarray:
    """Gaussian kernel density of ``points [n, m]`` evaluated at ``x [N, m]`` (Scott's bandwidth by default).

    Example:
        >>> d = data_density(np.random.default_rng(0).normal(size=(2000, 1)), np.array([[0.0], [3.0]]))
        >>> bool(d[0] > 10 * d[1])
        True
    """
    from scipy.stats import gaussian_kde

    points = np.asarray(points, np.float64)
    x = np.atleast_2d(np.asarray(x, np.float64))
    if len(points) > 20_000:  # a KDE of a subsample is as good for a map and keeps this O(N * 20000)
        points = points[np.linspace(0, len(points) - 1, 20_000).astype(int)]
    kde = gaussian_kde(points.T, bw_method=bandwidth)
    return kde(x.T)
