"""Conditional flow matching: a decoder without an adversarial game.

A velocity field ``v(x, t, c)`` is trained to move samples of a standard normal ``x_0`` to data ``x_1``
along straight lines, ``x_t = (1 - t) x_0 + t x_1``, by regressing the line's velocity ``x_1 - x_0``
(the conditional flow-matching loss). Its minimizer is the marginal velocity field whose ODE
``dx/dt = v(x, t, c)`` carries ``N(0, I)`` at ``t = 0`` into ``p(x | c)`` at ``t = 1``; sampling is a fixed
number of steps of that ODE (Heun's by default; :data:`SOLVERS`). The loss is a plain regression, so training is stable, it has a
validation loss for early stopping, and every mode of ``p(x | c)`` contributes to it in proportion to
its weight (no mode dropping by construction, unlike a GAN's generator, which is rewarded only for
fooling the critic).

References:
    Y. Lipman et al., "Flow matching for generative modeling", ICLR 2023.
    X. Liu, C. Gong, Q. Liu, "Flow straight and fast: learning to generate and transfer data with
    rectified flow", ICLR 2023.
    A. Tong et al., "Improving and generalizing flow-based generative models with minibatch optimal
    transport", TMLR 2024 (conditional flow matching).
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["SOLVERS", "VelocityField", "flow_matching_loss", "integrate_flow", "sample_flow"]

# network evaluations per step of each fixed-step ODE solver
SOLVERS = {"heun": 2, "midpoint": 2, "euler": 1, "rk4": 4}

VelocityFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


class VelocityField(nnx.Module):
    """``v(x [..., D], t [...], c [..., m]) -> [..., D]``: an MLP of the state, the condition and Fourier
    features ``sin/cos(pi 2^k t)``, ``k < n_frequencies``, of the time.

    Example:
        >>> field = VelocityField(4, 2, hidden=(16,), rngs=nnx.Rngs(0))
        >>> field(jnp.zeros((3, 4)), jnp.full(3, 0.5), jnp.zeros((3, 2))).shape
        (3, 4)
    """

    def __init__(
        self,
        dim: int,
        cond_dim: int,
        *,
        hidden: Sequence[int] = (256, 256, 256),
        n_frequencies: int = 6,
        activation=jax.nn.swish,
        rngs: nnx.Rngs,
    ):
        self.dim = dim
        self.n_frequencies = n_frequencies
        sizes = (dim + cond_dim + 2 * n_frequencies, *hidden, dim)
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])
        self.activation = activation

    @property
    def noise_dim(self) -> int:
        """Length of a frame's prior sample (= the feature dimension)."""
        return self.dim

    def __call__(self, x: jax.Array, t: jax.Array, c: jax.Array) -> jax.Array:
        freqs = jnp.pi * 2.0 ** jnp.arange(self.n_frequencies, dtype=x.dtype)
        angle = t[..., None].astype(x.dtype) * freqs.reshape((1,) * t.ndim + (-1,))
        h = jnp.concatenate([x, c.astype(x.dtype), jnp.sin(angle), jnp.cos(angle)], axis=-1)
        for layer in self.layers[:-1]:
            h = self.activation(layer(h))
        return self.layers[-1](h)


def flow_matching_loss(key: jax.Array, velocity_fn: VelocityFn, x1: jax.Array, cond: jax.Array) -> jax.Array:
    """Conditional flow-matching loss ``E_{t, x_0} |v(x_t, t, c) - (x_1 - x_0)|^2 / D`` of a batch (scalar).

    ``t ~ U(0, 1)`` and ``x_0 ~ N(0, I)`` are drawn per sample from ``key``.

    Args:
        key: PRNG key.
        velocity_fn: batched ``(x [B, D], t [B], c [B, m]) -> [B, D]``.
        x1: ``[B, D]`` data.
        cond: ``[B, m]`` their conditions.

    Example:
        >>> x1 = jnp.ones((8, 2))
        >>> exact = lambda x, t, c: (x1[: len(x)] - x) / (1 - t[:, None])   # the true field for a point mass
        >>> float(flow_matching_loss(jax.random.key(0), exact, x1, jnp.zeros((8, 1)))) < 1e-10
        True
    """
    k_t, k_0 = jax.random.split(key)
    t = jax.random.uniform(k_t, (x1.shape[0],), x1.dtype)
    x0 = jax.random.normal(k_0, x1.shape, x1.dtype)
    xt = (1.0 - t[:, None]) * x0 + t[:, None] * x1
    return jnp.mean((velocity_fn(xt, t, cond) - (x1 - x0)) ** 2)


def integrate_flow(velocity_fn: VelocityFn, x0: jax.Array, cond: jax.Array, *, n_steps: int,
                   solver: str = "heun", self_condition: bool = False, start: float = 0.0) -> jax.Array:
    """Solve ``dx/dt = v(x, t, c)`` from ``t = start`` (default 0) to 1 with ``n_steps`` equal steps of ``solver``.

    Args:
        velocity_fn: batched velocity field.
        x0: ``[B, D]`` starting points (prior samples).
        cond: ``[B, m]``.
        n_steps: fixed step count (static).
        solver: ``"heun"`` (second order, 2 evaluations a step), ``"midpoint"`` (second order, 2), ``"rk4"``
            (the classical fourth-order Runge-Kutta, 4) or ``"euler"`` (first order, 1: the sampler of a distilled
            flow, whose paths are straight, :mod:`lss_jax.decoder.distill`); :data:`SOLVERS`.
        self_condition: the field is called ``v(x, t, c, x1)`` with ``x1`` the endpoint ``x + (1 - t) v`` that its
            previous evaluation predicted (zeros at the first; self-conditioning, :mod:`lss_jax.decoder.chain`).
        start: the time ``x0`` is at (static; a path started part of the way, :class:`lss_jax.decoder.chain.TemplateStart`).

    Example:
        >>> v = lambda x, t, c: -x                                      # dx/dt = -x: x(1) = x(0) / e
        >>> x1 = integrate_flow(v, jnp.ones((2, 1)), jnp.zeros((2, 1)), n_steps=50)
        >>> bool(jnp.allclose(x1, jnp.exp(-1.0), atol=1e-4))
        True
        >>> half = integrate_flow(v, jnp.ones((2, 1)), jnp.zeros((2, 1)), n_steps=50, start=0.5)   # from t = 0.5
        >>> bool(jnp.allclose(half, jnp.exp(-0.5), atol=1e-4))
        True
        >>> rk4 = integrate_flow(v, jnp.ones((1, 1)), jnp.zeros((1, 1)), n_steps=2, solver="rk4")  # 8 evaluations
        >>> heun = integrate_flow(v, jnp.ones((1, 1)), jnp.zeros((1, 1)), n_steps=4)                  # 8 evaluations
        >>> [round(abs(float(x[0, 0]) - 0.3678794), 4) for x in (rk4, heun)]     # error of each against exp(-1)
        [0.0003, 0.0046]
        >>> line = lambda x, t, c: jnp.ones_like(x)                    # a straight path: one Euler step is exact
        >>> integrate_flow(line, jnp.zeros((1, 1)), jnp.zeros((1, 1)), n_steps=1, solver="euler").tolist()
        [[1.0]]
    """
    if solver not in SOLVERS:
        raise ValueError(f"flow_solver must be one of {', '.join(map(repr, SOLVERS))}, got {solver!r}.")
    h = (1.0 - start) / n_steps
    ones = jnp.ones(x0.shape[:-1], x0.dtype)

    def evaluate(x, s, estimate):  # the velocity at time s, and the endpoint estimate the next evaluation is given
        if not self_condition:
            return velocity_fn(x, s * ones, cond), estimate
        v = velocity_fn(x, s * ones, cond, estimate)
        return v, x + (1.0 - s) * v

    def step(carry, i):
        x, estimate = carry
        s = start + i * h
        k1, estimate = evaluate(x, s, estimate)
        if solver == "euler":
            return (x + h * k1, estimate), None
        if solver == "midpoint":
            k2, estimate = evaluate(x + 0.5 * h * k1, s + 0.5 * h, estimate)
            return (x + h * k2, estimate), None
        if solver == "rk4":
            k2, estimate = evaluate(x + 0.5 * h * k1, s + 0.5 * h, estimate)
            k3, estimate = evaluate(x + 0.5 * h * k2, s + 0.5 * h, estimate)
            k4, estimate = evaluate(x + h * k3, s + h, estimate)
            return (x + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4), estimate), None
        k2, estimate = evaluate(x + h * k1, s + h, estimate)
        return (x + 0.5 * h * (k1 + k2), estimate), None

    (x, _), _ = jax.lax.scan(step, (x0, jnp.zeros_like(x0)), jnp.arange(n_steps, dtype=x0.dtype))
    return x


def sample_flow(key: jax.Array, velocity_fn: VelocityFn, cond: jax.Array, dim: int, *, n_steps: int,
                solver: str = "heun") -> jax.Array:
    """``[B, dim]`` samples of ``p(x | c)`` for the conditions ``cond [B, m]``.

    Example:
        >>> v = lambda x, t, c: jnp.zeros_like(x)                       # the identity flow: samples = prior
        >>> sample_flow(jax.random.key(0), v, jnp.zeros((5, 1)), 3, n_steps=4).shape
        (5, 3)
    """
    x0 = jax.random.normal(key, (cond.shape[0], dim))
    return integrate_flow(velocity_fn, x0, cond, n_steps=n_steps, solver=solver)
