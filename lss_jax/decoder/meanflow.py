"""The ``"meanflow"`` decoder kind: a flow trained to be few-step from the start (MeanFlow, Geng et al. 2025).

A flow-matching decoder learns the instantaneous velocity ``v(x, t, c)`` and samples by integrating it in many
small steps, because its paths curve. A mean flow learns the *average* velocity over an interval instead,

    u(x_t, t, s, c) = (1 / (s - t)) * integral_t^s v(x_tau, tau, c) d tau,     0 <= t <= s <= 1,

so that ``x_s = x_t + (s - t) u(x_t, t, s, c)`` exactly, for any step: one evaluation ``x_1 = z + u(z, 0, 1, c)``
is a sample. Differentiating ``(s - t) u = integral_t^s v`` in ``t`` along the path gives the identity the network
is trained on, ``u = v + (s - t) (v . grad_x u + d_t u)``, whose right side is the line's velocity ``v = x_1 - x_0``
(as in conditional flow matching) plus a total derivative that one forward-mode product (``jax.jvp``) computes;
the right side is the (stopped-gradient) regression target. At ``s = t`` it is the flow-matching loss itself.
Unlike a distilled student (:mod:`lss_jax.decoder.distill`), nothing regresses a teacher's map: the few-step
sampler is trained on the data's own conditional law.

The sampler is ``flow_steps`` steps ``x <- x + h u(x, t, t + h, c)`` (``flow_solver`` plays no part); structural
states, the coordinate map, the support constraint and redraws are the flow decoder's (:mod:`lss_jax.decoder.flow_kind`).

References:
    Z. Geng, M. Deng, X. Bai, J. Z. Kolter, K. He, "Mean flows for one-step generative modeling", NeurIPS 2025
    (arXiv:2505.13447).
    K. Frans, D. Hafner, S. Levine, P. Abbeel, "One step diffusion via shortcut models", ICLR 2025 (a field
    conditioned on its step size, trained by self-consistency).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from lss_jax.decoder.flow_kind import fit_field, template_field
from lss_jax.decoder.kinds import DecoderKind, register
from lss_jax.decoder.states import StateFlow

__all__ = ["MeanVelocityField", "mean_flow_loss", "fit", "template", "sample"]

# the share of a minibatch trained at an interval s > t (the rest at s = t: flow matching; Geng et al. use 0.25, on
# the conditional Gaussian of tests/test_decoder_fidelity.py 0.75 gave the one-step law's variance -36 % against
# -48 % at 0.25 after 12 000 steps, -9 % after 60 000), and the adaptive weight 1 / (|error|^2 + eps)^p of a frame's
# squared error: off (p = 0), because p > 0 makes the regression on noisy targets an M-estimate other than their mean
# (p = 1, Geng et al.'s choice, is reweighted least squares of sum log |error|^2: mode-seeking)
INTERVAL_SHARE = 0.75
WEIGHT_POWER = 0.0
WEIGHT_EPS = 1e-3


def _fourier(t: jax.Array, n: int, dtype) -> jax.Array:
    freqs = jnp.pi * 2.0 ** jnp.arange(n, dtype=dtype)
    angle = t[..., None].astype(dtype) * freqs.reshape((1,) * t.ndim + (-1,))
    return jnp.concatenate([jnp.sin(angle), jnp.cos(angle)], axis=-1)


class MeanVelocityField(nnx.Module):
    """``u(x [..., D], t [...], s [...], c [..., m]) -> [..., D]``: an MLP of the state, the condition and Fourier
    features of ``t`` and of the interval ``s - t``; :meth:`sample` steps ``x <- x + (s - t) u``.

    Two frequencies (``sin/cos(pi t)``, ``sin/cos(2 pi t)``) where the flow's field has six: the loss feeds the field's
    own time derivative back into its target, and with ``d/dt sin(32 pi t)`` in it the loss on the conditional Gaussian
    of ``tests/test_decoder_fidelity.py`` rose to 912 and stayed above 11 over 3000 steps (two frequencies: 0.36).

    Example:
        >>> field = MeanVelocityField(4, 2, hidden=(16,), rngs=nnx.Rngs(0))
        >>> field(jnp.zeros((3, 4)), jnp.zeros(3), jnp.ones(3), jnp.zeros((3, 2))).shape
        (3, 4)
        >>> field.sample(jnp.zeros((3, 4)), jnp.zeros((3, 2)), n_steps=2).shape
        (3, 4)
    """

    def __init__(self, dim: int, cond_dim: int, *, hidden: Sequence[int] = (256, 256, 256), n_frequencies: int = 2,
                 activation=jax.nn.swish, rngs: nnx.Rngs):
        self.dim = dim
        self.n_frequencies = n_frequencies
        sizes = (dim + cond_dim + 4 * n_frequencies, *hidden, dim)
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])
        self.activation = activation

    @property
    def noise_dim(self) -> int:
        """Length of a frame's prior sample (= the feature dimension)."""
        return self.dim

    def __call__(self, x: jax.Array, t: jax.Array, s: jax.Array, c: jax.Array) -> jax.Array:
        h = jnp.concatenate([x, c.astype(x.dtype), _fourier(t, self.n_frequencies, x.dtype),
                             _fourier(s - t, self.n_frequencies, x.dtype)], axis=-1)
        for layer in self.layers[:-1]:
            h = self.activation(layer(h))
        return self.layers[-1](h)

    def sample(self, x0: jax.Array, cond: jax.Array, *, n_steps: int, solver: str = "euler") -> jax.Array:
        """``x0 [B, D]`` carried to ``t = 1`` in ``n_steps`` equal average-velocity steps (``solver`` is ignored:
        a mean flow's step is exact where the field is)."""
        del solver
        h = 1.0 / n_steps
        ones = jnp.ones(x0.shape[:-1], x0.dtype)

        def step(x, i):
            t = i * h * ones
            return x + h * self(x, t, t + h, cond), None

        x, _ = jax.lax.scan(step, x0, jnp.arange(n_steps, dtype=x0.dtype))
        return x


def mean_flow_loss(key: jax.Array, field, x1: jax.Array, cond: jax.Array, *, interval_share: float = INTERVAL_SHARE,
                   power: float = WEIGHT_POWER, eps: float = WEIGHT_EPS) -> jax.Array:
    """The MeanFlow loss of a batch: ``mean_b w_b |u(x_t, t, s, c) - sg(v + (s - t) du/dt)|^2``, ``v = x_1 - x_0``,
    ``x_t = (1 - t) x_0 + t x_1``, ``du/dt = v . grad_x u + d_t u`` by ``jax.jvp``, with the adaptive weight
    ``w = sg(1 / (|error|^2 + eps)^power)`` (``power = 0``: plain squared error per feature).

    ``t`` and ``s`` are a sorted pair of uniforms for a share ``interval_share`` of the frames, else ``s = t``.

    Example:
        >>> x1 = jnp.ones((8, 2))
        >>> exact = lambda x, t, s, c: (x1[: len(x)] - x) / (1 - t[:, None])   # the point mass's average velocity
        >>> float(mean_flow_loss(jax.random.key(0), exact, x1, jnp.zeros((8, 1)), power=0.0)) < 1e-10
        True
    """
    k_a, k_b, k_pick, k_0 = jax.random.split(key, 4)
    n = x1.shape[0]
    a, b = jax.random.uniform(k_a, (n,), x1.dtype), jax.random.uniform(k_b, (n,), x1.dtype)
    interval = jax.random.uniform(k_pick, (n,)) < interval_share
    t = jnp.where(interval, jnp.minimum(a, b), a)
    s = jnp.where(interval, jnp.maximum(a, b), a)
    x0 = jax.random.normal(k_0, x1.shape, x1.dtype)
    xt = (1.0 - t[:, None]) * x0 + t[:, None] * x1
    v = x1 - x0
    u, du_dt = jax.jvp(lambda x, tt: field(x, tt, s, cond), (xt, t), (v, jnp.ones_like(t)))
    target = jax.lax.stop_gradient(v + (s - t)[:, None] * du_dt)
    error = jnp.sum((u - target) ** 2, axis=-1)
    if power == 0.0:
        return jnp.mean(error) / x1.shape[-1]
    return jnp.mean(jax.lax.stop_gradient(1.0 / (error + eps) ** power) * error)


def fit(key: jax.Array, train_data, val_data, cfg, *, progress, checkpoint, classifier):
    """A :class:`MeanVelocityField` trained by :func:`mean_flow_loss` on ``(x [n, D], c [n, m])`` (a :class:`StateFlow`
    with ``classifier``), ``(network, None, TrainHistory)``: the flow's optimizer, the last step's field kept (the
    loss's target moves with the field, so its validation value does not rank fields)."""
    return fit_field(key, MeanVelocityField, mean_flow_loss, train_data, val_data, cfg, progress=progress,
                     checkpoint=checkpoint, classifier=classifier, name="meanflow", desc="mean-flow decoder", keep="last")


def template(cfg, d: int, cond_dim: int, n_states: int, rngs: nnx.Rngs):
    """An untrained mean-velocity field (in a :class:`StateFlow` with ``n_states``), ``(network, None)``."""
    return template_field(MeanVelocityField, cfg, d, cond_dim, n_states, rngs)


def sample(network, z: jax.Array, cond: jax.Array, flow_steps: int, solver: str = "euler") -> jax.Array:
    """``flow_steps`` average-velocity steps from the noise ``z`` (a :class:`StateFlow` draws its state from ``z``)."""
    if isinstance(network, StateFlow):
        return network.sample(z, cond, n_steps=flow_steps, solver=solver)
    return network.sample(z, cond, n_steps=flow_steps)


MEANFLOW = register(DecoderKind("meanflow", fit, template, sample))
