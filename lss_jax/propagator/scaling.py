"""Min-max scaling of latent coordinates to the unit box, and what happens at its walls.

The propagator works on latent coordinates scaled to ``[0, 1]`` per dimension (its mixture means
pass through a sigmoid, as in the paper). Gaussian kernels have tails, so a sampled step can leave
the box. We **reflect** it back (``u -> -u`` below 0, ``u -> 2 - u`` above 1, repeated as a
triangle wave for far excursions) rather than clip:

* clipping piles the escaped tail mass onto the walls as point masses, which shows up as spikes in
  the generated free energy and feeds the network inputs it never saw in training (exactly 0 or 1
  while the data's extremes are rare); reflection keeps a continuous density;
* the box is the range of the training data, where the stationary density is already tiny, so a
  reflecting wall is the natural boundary condition of a confined diffusion (the same wall the
  Smoluchowski reference uses).

``boundary="clip"`` and ``"none"`` remain available for comparison.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["MinMaxScaler", "minmax_fit", "minmax_transform", "minmax_inverse", "apply_boundary", "BOUNDARIES"]

BOUNDARIES = ("reflect", "clip", "none")


class MinMaxScaler(NamedTuple):
    """Per-dimension ``low``/``high`` of the training data, each ``[m]``.

    Example:
        >>> MinMaxScaler(low=jnp.zeros(2), high=jnp.ones(2)).high.shape
        (2,)
    """

    low: jax.Array
    high: jax.Array


def minmax_fit(x, *, margin: float = 0.0) -> MinMaxScaler:
    """Fit a scaler to ``x [n, m]`` (or ``[n]``, treated as ``m = 1``).

    Args:
        x: training data.
        margin: widen the box by this fraction of the range on both sides (0 keeps the data's
            extremes at exactly 0 and 1).

    Example:
        >>> scaler = minmax_fit(np.array([[0.0, 10.0], [2.0, 20.0]]))
        >>> scaler.low.tolist(), scaler.high.tolist()
        ([0.0, 10.0], [2.0, 20.0])
        >>> minmax_fit(np.array([0.0, 2.0]), margin=0.5).low.tolist()   # 1-D data, widened box
        [-1.0]
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"minmax_fit needs data of shape [n_frames >= 2, m], got {x.shape}.")
    if not np.all(np.isfinite(x)):
        raise ValueError("minmax_fit got NaN or Inf values; remove or repair those frames first.")
    low, high = x.min(axis=0), x.max(axis=0)
    span = high - low
    if np.any(span <= 0):
        raise ValueError(
            f"latent dimension(s) {np.flatnonzero(span <= 0).tolist()} are constant; they carry no "
            "dynamics, drop them before scaling."
        )
    low, high = low - margin * span, high + margin * span
    return MinMaxScaler(jnp.asarray(low, jnp.float32), jnp.asarray(high, jnp.float32))


def _bounds(scaler: MinMaxScaler, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    shape = (1,) * (jnp.ndim(x) - 1) + (-1,)
    return jnp.reshape(scaler.low, shape), jnp.reshape(scaler.high, shape)


def minmax_transform(scaler: MinMaxScaler, x: jax.Array) -> jax.Array:
    """Map ``x [..., m]`` into the unit box.

    Example:
        >>> scaler = MinMaxScaler(jnp.array([0.0, 10.0]), jnp.array([2.0, 20.0]))
        >>> minmax_transform(scaler, jnp.array([[1.0, 15.0], [2.0, 10.0]])).tolist()
        [[0.5, 0.5], [1.0, 0.0]]
    """
    low, high = _bounds(scaler, x)
    return (x - low) / (high - low)


def minmax_inverse(scaler: MinMaxScaler, u: jax.Array) -> jax.Array:
    """Map unit-box coordinates ``u [..., m]`` back to latent units.

    Example:
        >>> scaler = MinMaxScaler(jnp.array([0.0, 10.0]), jnp.array([2.0, 20.0]))
        >>> minmax_inverse(scaler, jnp.array([[0.5, 0.5]])).tolist()
        [[1.0, 15.0]]
    """
    low, high = _bounds(scaler, u)
    return low + u * (high - low)


def apply_boundary(u: jax.Array, boundary: str = "reflect") -> jax.Array:
    """Bring ``u`` back into ``[0, 1]``: ``"reflect"`` (triangle wave), ``"clip"`` or ``"none"``.

    Example:
        >>> u = jnp.array([-0.25, 0.5, 1.25])
        >>> apply_boundary(u).tolist()
        [0.25, 0.5, 0.75]
        >>> apply_boundary(u, "clip").tolist()
        [0.0, 0.5, 1.0]
    """
    if boundary == "reflect":
        return 1.0 - jnp.abs(jnp.mod(u, 2.0) - 1.0)
    if boundary == "clip":
        return jnp.clip(u, 0.0, 1.0)
    if boundary == "none":
        return u
    raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}.")
