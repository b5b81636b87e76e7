"""WGAN-GP losses: analytic values for a linear critic; the conditional networks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lss_jax import ConditionalCritic, ConditionalGenerator, gradient_penalty, wgan_critic_loss, wgan_generator_loss

W = jnp.array([0.3, -1.2, 2.0])
V = jnp.array([0.7, -0.5])


def linear_critic(x, c):
    return x @ W + c @ V + 0.25


@pytest.mark.parametrize("penalize_condition", [False, True])
def test_linear_critic_penalty_and_losses_are_analytic(key, penalize_condition):
    k1, k2, k3 = jax.random.split(key, 3)
    x_real = jax.random.normal(k1, (64, 3))
    x_fake = jax.random.normal(k2, (64, 3)) + 1.0
    cond = jax.random.normal(k3, (64, 2))
    # grad_x D = w everywhere (or (w, v) jointly), so the penalty is (||w|| - 1)^2 at every interpolate
    norm = float(jnp.sqrt(jnp.sum(W**2) + (jnp.sum(V**2) if penalize_condition else 0.0)))
    penalty = (norm - 1.0) ** 2
    per_sample = gradient_penalty(linear_critic, x_real, cond, penalize_condition=penalize_condition)
    np.testing.assert_allclose(np.asarray(per_sample), penalty, rtol=1e-5)
    loss, info = wgan_critic_loss(
        linear_critic, key, x_real, x_fake, cond, gp_weight=10.0, penalize_condition=penalize_condition
    )
    wasserstein = float(jnp.mean(x_real @ W) - jnp.mean(x_fake @ W))  # c and the bias cancel
    np.testing.assert_allclose(float(info.wasserstein), wasserstein, rtol=1e-5)
    np.testing.assert_allclose(float(info.penalty), penalty, rtol=1e-5)
    np.testing.assert_allclose(float(loss), -wasserstein + 10.0 * penalty, rtol=1e-5)
    gen = wgan_generator_loss(linear_critic, x_fake, cond)
    np.testing.assert_allclose(float(gen), -float(jnp.mean(linear_critic(x_fake, cond))), rtol=1e-6)


def test_penalty_is_evaluated_at_interpolates_with_their_condition(key):
    # Critic D(x, c) = (x . c)^2 / 2 has grad_x = (x . c) c; its norm depends on both the interpolate
    # and its own condition, so a wrong pairing or wrong interpolate would change the value.
    critic = lambda x, c: 0.5 * jnp.sum(x * c, axis=-1) ** 2  # noqa: E731
    k1, k2, k3 = jax.random.split(jax.random.key(3), 3)
    x_real, x_fake, cond = (jax.random.normal(k, (16, 2)) for k in (k1, k2, k3))
    _, info = wgan_critic_loss(critic, key, x_real, x_fake, cond)
    e = jax.random.uniform(key, (16, 1))
    x_hat = np.asarray(e * x_real + (1 - e) * x_fake)
    c = np.asarray(cond)
    norms = np.abs(np.sum(x_hat * c, axis=1)) * np.linalg.norm(c, axis=1)
    np.testing.assert_allclose(float(info.penalty), np.mean((norms - 1) ** 2), rtol=1e-4)


def test_shape_mismatch_raises(key):
    with pytest.raises(ValueError, match="batch"):
        wgan_critic_loss(linear_critic, key, jnp.ones((4, 3)), jnp.ones((5, 3)), jnp.ones((4, 2)))


def test_conditional_networks_shapes_and_gradients(key):
    gen = ConditionalGenerator(66, 3, rngs=nnx.Rngs(0))
    critic = ConditionalCritic(66, 3, rngs=nnx.Rngs(1))
    z = jax.random.normal(key, (8, gen.noise_dim))
    c = jax.random.uniform(key, (8, 3))
    x = gen(z, c)
    assert x.shape == (8, 66) and critic(x, c).shape == (8,)
    loss, _ = wgan_critic_loss(critic, key, jnp.zeros_like(x), jax.lax.stop_gradient(x), c)
    assert bool(jnp.isfinite(loss))
