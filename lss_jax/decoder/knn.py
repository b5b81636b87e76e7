"""A retrieval decoder: a training frame among the ``k`` whose latent points are nearest to ``c``.

``p(x | c)`` is estimated by the training frames of the ``k`` nearest latent points, one picked uniformly by the
frame's noise. It generates no new structure: every decoded frame is a training frame (its bonds, angles and
contacts are MD's own), and what it gets right or wrong is decided by the latent space and the propagator
alone. That makes it two things: an option when physically exact structures matter more than novel ones
(the kinetics still come from the propagator), and the yardstick of a generative decoder, which should match
it on structure statistics and beat it only by interpolating between training frames.

Cost: a brute-force search over the stored frames (at most ``DecoderConfig.max_frames``, a random subset of a
larger training set), in blocks of rows, inside the same jitted, addressed, exportable decode as the other
decoders.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.scipy.stats import norm

from lss_jax.decoder.kinds import DecoderKind, register

__all__ = ["NeighbourDecoder", "fit_neighbours", "stored_rows", "KNN"]

_ROWS = 128  # rows per distance block: [rows, n_frames] distances at a time


class _Stored(nnx.Variable):
    """Stored frames: state of the module (saved, passed into jitted code), never trained."""


class NeighbourDecoder(nnx.Module):
    """``(z [B, 1], c [B, m]) -> features [B, D]``: the features of one of the ``k`` stored frames nearest to
    ``c`` (Euclidean, unit-box latent coordinates), chosen by ``Phi(z)``.

    Example:
        >>> latents = jnp.array([[0.0], [0.1], [0.9], [1.0]])
        >>> features = jnp.array([[0.0], [1.0], [2.0], [3.0]])
        >>> dec = NeighbourDecoder(latents, features, k=2)
        >>> dec(jnp.array([[-1.0], [1.0]]), jnp.array([[0.93], [0.02]])).tolist()
        [[2.0], [1.0]]
    """

    noise_dim = 1

    def __init__(self, latents, features, k: int = 20):
        latents, features = jnp.asarray(latents, jnp.float32), jnp.asarray(features, jnp.float32)
        if latents.ndim != 2 or features.ndim != 2 or latents.shape[0] != features.shape[0]:
            raise ValueError(f"latents [N, m] and features [N, D] must hold the same frames, got {latents.shape} "
                             f"and {features.shape}.")
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"neighbours must be a positive integer, got {k!r}.")
        self.k = min(k, latents.shape[0])
        self.latents = _Stored(latents)
        self.features = _Stored(features)

    def __call__(self, z: jax.Array, c: jax.Array) -> jax.Array:
        return self.features[...][self.pick(z, c)]

    def pick(self, z: jax.Array, c: jax.Array) -> jax.Array:
        """Indices ``[B]`` of the stored frames picked for noise ``z [B, >= 1]`` (its first entry) and conditions
        ``c [B, m]``: the ``floor(Phi(z) k)``-th nearest of the ``k`` nearest stored latent points."""
        latents = self.latents[...]
        k = min(self.k, latents.shape[0])  # (static) fewer frames may be stored than the k a template was built with
        c = c.astype(jnp.float32)
        sq = jnp.sum(latents**2, axis=-1)
        pick = jnp.clip(jnp.floor(norm.cdf(z[:, 0].astype(jnp.float32)) * k), 0, k - 1).astype(jnp.int32)

        def block(args):
            cb, pb = args
            d = sq[None, :] - 2.0 * cb @ latents.T  # |c - l|^2 up to the row constant |c|^2
            _, nearest = jax.lax.top_k(-d, k)  # ascending distance
            return jnp.take_along_axis(nearest, pb[:, None], axis=1)[:, 0]

        rows = c.shape[0]
        if rows > _ROWS and rows % _ROWS == 0:
            return jax.lax.map(block, (c.reshape(-1, _ROWS, c.shape[1]), pick.reshape(-1, _ROWS))).reshape(rows)
        return block((c, pick))


def stored_rows(key: jax.Array, n: int, max_frames: int) -> np.ndarray:
    """The rows of ``n`` frames a retrieval stores: all, or a sorted random subset of ``max_frames`` from ``key``."""
    if n <= max_frames:
        return np.arange(n)
    return np.sort(np.asarray(jax.random.choice(key, n, (max_frames,), replace=False)))


def fit_neighbours(key: jax.Array, train_data, val_data, *, k: int, max_frames: int) -> NeighbourDecoder:
    """Store the frames of ``train_data`` and ``val_data`` (``(x [n, D], c [n, m])``), at most ``max_frames`` of
    them (a random subset from ``key``)."""
    x = np.concatenate([np.asarray(train_data[0]), np.asarray(val_data[0])])
    c = np.concatenate([np.asarray(train_data[1]), np.asarray(val_data[1])])
    keep = stored_rows(key, len(x), max_frames)
    return NeighbourDecoder(c[keep], x[keep], k)


# --------------------------------------------------------------------------------------------------
# the "knn" decoder kind (lss_jax.decoder.kinds)
# --------------------------------------------------------------------------------------------------


def _fit_kind(key: jax.Array, train_data, val_data, cfg, *, progress, checkpoint, classifier):
    """:func:`fit_neighbours` with the config's ``neighbours`` and ``max_frames``, ``(network, None,
    TrainHistory)``: no epochs, a NaN validation loss (nothing is trained; ``progress``, ``checkpoint`` and
    ``classifier`` are not used)."""
    import time

    from lss_jax.engine.train import TrainHistory

    start = time.perf_counter()
    network = fit_neighbours(key, train_data, val_data, k=cfg.neighbours, max_frames=cfg.max_frames)
    return network, None, TrainHistory([], [float("nan")], best_epoch=0, epochs_run=0,
                                       seconds=time.perf_counter() - start, stopped_early=False)


def _template(cfg, d: int, cond_dim: int, n_states: int, rngs: nnx.Rngs):
    """One placeholder frame (the stored frames' number comes with the saved arrays), ``(network, None)``."""
    return NeighbourDecoder(jnp.zeros((1, cond_dim)), jnp.zeros((1, d)), cfg.neighbours), None


def _sample(network, z: jax.Array, cond: jax.Array, flow_steps: int, solver: str = "heun") -> jax.Array:
    """A stored frame among the ``k`` nearest, picked by ``z`` (no steps, no solver)."""
    return network(z, cond)


KNN = register(DecoderKind("knn", _fit_kind, _template, _sample, states=False))
