"""Conditional Wasserstein GAN with gradient penalty (cWGAN-GP): losses and networks.

The decoder generates molecular coordinates ``x`` conditioned on a latent point ``c = psi``. The
critic ``D(x, c)`` estimates the Wasserstein-1 distance between real and generated conditional
distributions; its 1-Lipschitz constraint in ``x`` is enforced softly with the gradient penalty
``lambda * E[(||grad_x D(x_hat, c)||_2 - 1)^2]`` on random interpolates
``x_hat = e x_real + (1 - e) x_fake`` that keep their conditioning variable ``c``.

The critic function passed to the losses is batched, ``critic_fn(x [B, d], c [B, m]) -> [B]``, and
must treat samples independently (no batch norm), as WGAN-GP requires; per-sample input gradients
are then the gradient of the batch sum.

References:
    I. Gulrajani et al., "Improved training of Wasserstein GANs", NeurIPS 2017.
    M. Mirza and S. Osindero, "Conditional generative adversarial nets", arXiv:1411.1784 (2014).
    H. Sidky, W. Chen, A. L. Ferguson, Chem. Sci. 11, 9459 (2020), Sec. 2.3.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = [
    "CriticInfo",
    "gradient_penalty",
    "wgan_critic_loss",
    "wgan_generator_loss",
    "ConditionalGenerator",
    "ConditionalCritic",
]

CriticFn = Callable[[jax.Array, jax.Array], jax.Array]


class CriticInfo(NamedTuple):
    """Diagnostics of one critic loss evaluation (scalars)."""

    wasserstein: jax.Array  # E[D(real)] - E[D(fake)], the critic's distance estimate
    penalty: jax.Array  # mean (||grad|| - 1)^2, before the weight


def gradient_penalty(
    critic_fn: CriticFn, x: jax.Array, cond: jax.Array, *, penalize_condition: bool = False
) -> jax.Array:
    """Per-sample ``(||grad D(x, c)||_2 - 1)^2``, ``[B]``.

    Args:
        critic_fn: batched critic ``(x [B, d], c [B, m]) -> [B]``.
        x: ``[B, d]`` points (usually interpolates).
        cond: ``[B, m]`` their conditioning variables.
        penalize_condition: take the gradient with respect to ``(x, c)`` jointly instead of ``x``
            alone. The default constrains the critic to be 1-Lipschitz in ``x`` for every condition,
            which is what the conditional Wasserstein distance needs.
    """
    if penalize_condition:
        gx, gc = jax.grad(lambda a, b: jnp.sum(critic_fn(a, b)), argnums=(0, 1))(x, cond)
        sq = jnp.sum(gx**2, axis=-1) + jnp.sum(gc**2, axis=-1)
    else:
        gx = jax.grad(lambda a: jnp.sum(critic_fn(a, cond)))(x)
        sq = jnp.sum(gx**2, axis=-1)
    # sqrt has an infinite derivative at 0: keep the penalty differentiable for dead critics.
    norm = jnp.sqrt(sq + 1e-12)
    return (norm - 1.0) ** 2


def wgan_critic_loss(
    critic_fn: CriticFn,
    key: jax.Array,
    x_real: jax.Array,
    x_fake: jax.Array,
    cond: jax.Array,
    *,
    gp_weight: float = 10.0,
    penalize_condition: bool = False,
) -> tuple[jax.Array, CriticInfo]:
    """Critic loss ``E[D(fake, c)] - E[D(real, c)] + gp_weight * E[(||grad D(x_hat, c)|| - 1)^2]``.

    Args:
        critic_fn: batched critic ``(x [B, d], c [B, m]) -> [B]``.
        key: PRNG key for the interpolation weights ``e ~ U(0, 1)``, one per sample.
        x_real: ``[B, d]`` data samples.
        x_fake: ``[B, d]`` generator samples for the same conditions (stop their gradient if the
            generator is not being trained in this step).
        cond: ``[B, m]`` conditioning variables shared by the real and fake samples.
        gp_weight: lambda (paper and Gulrajani et al.: 10).
        penalize_condition: see :func:`gradient_penalty`.

    Returns:
        ``(loss, CriticInfo)``.
    """
    if x_real.shape != x_fake.shape or x_real.shape[0] != cond.shape[0]:
        raise ValueError(
            f"x_real {x_real.shape}, x_fake {x_fake.shape} and cond {cond.shape} must share the batch "
            "dimension and x_real/x_fake their shape."
        )
    e = jax.random.uniform(key, (x_real.shape[0], 1), x_real.dtype)
    x_hat = e * x_real + (1.0 - e) * x_fake
    penalty = jnp.mean(gradient_penalty(critic_fn, x_hat, cond, penalize_condition=penalize_condition))
    wasserstein = jnp.mean(critic_fn(x_real, cond)) - jnp.mean(critic_fn(x_fake, cond))
    return -wasserstein + gp_weight * penalty, CriticInfo(wasserstein, penalty)


def wgan_generator_loss(critic_fn: CriticFn, x_fake: jax.Array, cond: jax.Array) -> jax.Array:
    """Generator loss ``-E[D(G(z, c), c)]`` (scalar)."""
    return -jnp.mean(critic_fn(x_fake, cond))


class _MLP(nnx.Module):
    def __init__(self, sizes: Sequence[int], activation, *, rngs: nnx.Rngs):
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])
        self.activation = activation

    def __call__(self, h):
        for layer in self.layers[:-1]:
            h = self.activation(layer(h))
        return self.layers[-1](h)


class ConditionalGenerator(nnx.Module):
    """``G(z, c) -> x``: noise ``z [..., noise_dim]`` and condition ``c [..., m]`` to ``x [..., d]``.

    Paper architecture: three hidden layers of 200 swish units, ``noise_dim = 50``.
    """

    def __init__(
        self,
        output_dim: int,
        cond_dim: int,
        *,
        noise_dim: int = 50,
        hidden: Sequence[int] = (200, 200, 200),
        activation=jax.nn.swish,
        rngs: nnx.Rngs,
    ):
        self.noise_dim = noise_dim
        self.net = _MLP((noise_dim + cond_dim, *hidden, output_dim), activation, rngs=rngs)

    def __call__(self, z: jax.Array, c: jax.Array) -> jax.Array:
        return self.net(jnp.concatenate([z, c], axis=-1))


class ConditionalCritic(nnx.Module):
    """``D(x, c) -> [...]`` scalar score; no normalization layers (WGAN-GP needs per-sample gradients)."""

    def __init__(
        self, input_dim: int, cond_dim: int, *, hidden: Sequence[int] = (200, 200, 200), activation=jax.nn.swish, rngs
    ):
        self.net = _MLP((input_dim + cond_dim, *hidden, 1), activation, rngs=rngs)

    def __call__(self, x: jax.Array, c: jax.Array) -> jax.Array:
        return self.net(jnp.concatenate([x, c], axis=-1))[..., 0]
