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
import numpy as np
from flax import nnx

__all__ = [
    "CriticInfo",
    "gradient_penalty",
    "wgan_critic_loss",
    "wgan_generator_loss",
    "ConditionalGenerator",
    "ConditionalCritic",
    "DecoderHistory",
    "fit_decoder",
]

CriticFn = Callable[[jax.Array, jax.Array], jax.Array]


class CriticInfo(NamedTuple):
    """Diagnostics of one critic loss evaluation (scalars).

    Example:
        >>> float(CriticInfo(wasserstein=jnp.array(0.5), penalty=jnp.array(0.0)).wasserstein)
        0.5
    """

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

    Example:
        >>> critic = lambda x, c: 0.6 * x[:, 0] + 0.8 * x[:, 1] + c[:, 0]   # |grad_x| = 1, |grad_c| = 1
        >>> x, c = jnp.ones((3, 2)), jnp.zeros((3, 1))
        >>> gradient_penalty(critic, x, c).round(6).tolist()
        [0.0, 0.0, 0.0]
        >>> round(float(gradient_penalty(critic, x, c, penalize_condition=True)[0]), 4)   # (sqrt(2) - 1)^2
        0.1716
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

    Example:
        >>> critic = lambda x, c: 0.6 * x[:, 0] + 0.8 * x[:, 1]   # 1-Lipschitz: no penalty
        >>> loss, info = wgan_critic_loss(critic, jax.random.key(0), jnp.ones((4, 2)), jnp.zeros((4, 2)),
        ...                               jnp.zeros((4, 1)))
        >>> round(float(info.wasserstein), 4), round(float(loss), 4)
        (1.4, -1.4)
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
    """Generator loss ``-E[D(G(z, c), c)]`` (scalar).

    Example:
        >>> critic = lambda x, c: 0.6 * x[:, 0] + 0.8 * x[:, 1]
        >>> round(float(wgan_generator_loss(critic, jnp.ones((4, 2)), jnp.zeros((4, 1)))), 4)
        -1.4
    """
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

    Example:
        >>> gen = ConditionalGenerator(output_dim=6, cond_dim=2, noise_dim=4, hidden=(16,), rngs=nnx.Rngs(0))
        >>> gen(jnp.zeros((5, 4)), jnp.zeros((5, 2))).shape
        (5, 6)
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
    """``D(x, c) -> [...]`` scalar score; no normalization layers (WGAN-GP needs per-sample gradients).

    Example:
        >>> critic = ConditionalCritic(input_dim=6, cond_dim=2, hidden=(16,), rngs=nnx.Rngs(0))
        >>> critic(jnp.zeros((5, 6)), jnp.zeros((5, 2))).shape
        (5,)
    """

    def __init__(
        self, input_dim: int, cond_dim: int, *, hidden: Sequence[int] = (200, 200, 200), activation=jax.nn.swish, rngs
    ):
        self.net = _MLP((input_dim + cond_dim, *hidden, 1), activation, rngs=rngs)

    def __call__(self, x: jax.Array, c: jax.Array) -> jax.Array:
        return self.net(jnp.concatenate([x, c], axis=-1))[..., 0]


class DecoderHistory(NamedTuple):
    """Per-logging-interval record of :func:`fit_decoder` (means over the interval).

    Example:
        >>> DecoderHistory([250], [0.1], [0.01], [-0.2], seconds=1.0).iterations
        [250]
    """

    iterations: list
    wasserstein: list
    penalty: list
    generator_loss: list
    seconds: float


def fit_decoder(
    coords,
    cond,
    *,
    key: jax.Array,
    noise_dim: int = 50,
    hidden: Sequence[int] = (200, 200, 200),
    gp_weight: float = 10.0,
    n_critic: int = 5,
    batch_size: int = 128,
    n_iterations: int = 5000,
    learning_rate: float = 1e-4,
    betas: tuple[float, float] = (0.5, 0.9),
    log_every: int = 250,
    progress: bool = True,
    checkpoint=None,
    divergence_threshold: float = 1e4,
):
    """Train a conditional WGAN-GP ``G(z, c) -> x`` on paired samples.

    One iteration = ``n_critic`` critic updates (fresh real batch, fresh fakes, gradient penalty on
    interpolates that keep their condition) followed by one generator update; iterations run in
    jitted ``lax.scan`` blocks of ``log_every``. Adam with ``betas`` as in Gulrajani et al.

    Args:
        coords: ``[n, d]`` training targets (e.g. standardized aligned coordinates).
        cond: ``[n, m]`` conditioning variables (e.g. unit-box latent coordinates).
        key: PRNG key.
        n_iterations: generator updates.
        checkpoint: optional :class:`lss_jax.checkpoint.Checkpointer`; the networks and optimizer
            states are saved every ``checkpoint.every`` blocks of ``log_every`` iterations and resumed
            (block ``b`` uses the key ``fold_in(key, b)``, so a resumed run is bitwise an uninterrupted one).
        divergence_threshold: a block whose mean |Wasserstein estimate| or gradient penalty exceeds
            this counts as diverged (with standardized coordinates both stay O(1-10) in healthy training).

    Returns:
        ``(generator, critic, DecoderHistory)``.

    Raises:
        FloatingPointError: if a loss becomes NaN/Inf or explodes (diverging GAN); the message says
            when, and the last checkpoint written before it (if any) is kept.

    Example:
        >>> coords = jax.random.normal(jax.random.key(0), (64, 6))
        >>> cond = jax.random.uniform(jax.random.key(1), (64, 1))
        >>> generator, critic, history = fit_decoder(coords, cond, key=jax.random.key(2), noise_dim=4, hidden=(),
        ...                                          n_critic=1, batch_size=16, n_iterations=2, log_every=1,
        ...                                          progress=False)
        >>> history.iterations
        [1, 2]
        >>> generator(jnp.zeros((3, 4)), jnp.zeros((3, 1))).shape
        (3, 6)
    """
    import time

    import optax

    from lss_jax._progress import progress_bar

    coords = jnp.asarray(coords, jnp.float32)
    cond = jnp.asarray(cond, jnp.float32)
    if coords.ndim != 2 or cond.ndim != 2 or coords.shape[0] != cond.shape[0]:
        raise ValueError(f"coords [n, d] and cond [n, m] must share n, got {coords.shape} and {cond.shape}.")
    n, d = coords.shape
    m = cond.shape[1]
    batch_size = min(batch_size, n)
    log_every = max(1, min(log_every, n_iterations))
    k_g, k_c, key = jax.random.split(key, 3)
    seed = lambda k: int(jax.random.randint(k, (), 0, 2**31 - 1))  # noqa: E731
    generator = ConditionalGenerator(d, m, noise_dim=noise_dim, hidden=hidden, rngs=nnx.Rngs(seed(k_g)))
    critic = ConditionalCritic(d, m, hidden=hidden, rngs=nnx.Rngs(seed(k_c)))
    g_def, g_params = nnx.split(generator)
    c_def, c_params = nnx.split(critic)
    g_opt = optax.adam(learning_rate, b1=betas[0], b2=betas[1])
    c_opt = optax.adam(learning_rate, b1=betas[0], b2=betas[1])
    g_state, c_state = g_opt.init(g_params), c_opt.init(c_params)

    def sample_batch(k):
        k_idx, k_z = jax.random.split(k)
        idx = jax.random.randint(k_idx, (batch_size,), 0, n)
        z = jax.random.normal(k_z, (batch_size, noise_dim))
        return coords[idx], cond[idx], z

    def critic_step(carry, k):
        c_params, c_state, g_params = carry
        k_b, k_gp = jax.random.split(k)
        x_real, c, z = sample_batch(k_b)
        x_fake = jax.lax.stop_gradient(nnx.merge(g_def, g_params)(z, c))

        def loss(p):
            return wgan_critic_loss(nnx.merge(c_def, p), k_gp, x_real, x_fake, c, gp_weight=gp_weight)

        (value, info), grads = jax.value_and_grad(loss, has_aux=True)(c_params)
        updates, c_state = c_opt.update(grads, c_state, c_params)
        return (optax.apply_updates(c_params, updates), c_state, g_params), (value, info)

    def iteration(carry, k):
        g_params, g_state, c_params, c_state = carry
        k_c, k_g = jax.random.split(k)
        (c_params, c_state, _), (_, info) = jax.lax.scan(
            critic_step, (c_params, c_state, g_params), jax.random.split(k_c, n_critic)
        )
        _, c, z = sample_batch(k_g)

        def g_loss(p):
            return wgan_generator_loss(nnx.merge(c_def, c_params), nnx.merge(g_def, p)(z, c), c)

        value, grads = jax.value_and_grad(g_loss)(g_params)
        updates, g_state = g_opt.update(grads, g_state, g_params)
        g_params = optax.apply_updates(g_params, updates)
        metrics = (info.wasserstein[-1], info.penalty[-1], value)
        return (g_params, g_state, c_params, c_state), metrics

    @jax.jit
    def block(carry, k):
        return jax.lax.scan(iteration, carry, jax.random.split(k, log_every))

    carry = (g_params, g_state, c_params, c_state)
    hist = DecoderHistory([], [], [], [], 0.0)
    start = time.perf_counter()
    n_blocks = max(1, -(-n_iterations // log_every))
    first_block, run_id = 0, ""
    if checkpoint is not None:
        from lss_jax.checkpoint import fingerprint

        run_id = fingerprint("cwgan-gp", learning_rate, betas, gp_weight, n_critic, batch_size, n_iterations, log_every,
                             coords, cond, carry, jax.random.key_data(key))
        loaded = checkpoint.load(carry, fingerprint=run_id)
        if loaded is not None:
            carry, meta = loaded
            hist = DecoderHistory(*(meta["extra"][f] for f in DecoderHistory._fields[:4]), 0.0)
            first_block = meta["step"] + 1
    last_saved = None
    with progress_bar(total=n_blocks * log_every, initial=first_block * log_every, desc="cWGAN-GP decoder", unit="it",
                      disable=not progress) as bar:
        for b in range(first_block, n_blocks):
            carry, (w, gp, gl) = block(carry, jax.random.fold_in(key, b))
            w, gp, gl = float(jnp.mean(w)), float(jnp.mean(gp)), float(jnp.mean(gl))
            if not all(np.isfinite(v) for v in (w, gp, gl)) or max(abs(w), gp) > divergence_threshold:
                kept = (f"; the last good checkpoint (iteration {last_saved}) is kept in {checkpoint.directory}"
                        if checkpoint is not None and last_saved else "")
                raise FloatingPointError(
                    f"decoder training diverged at iteration ~{(b + 1) * log_every} (Wasserstein {w:.3g}, penalty "
                    f"{gp:.3g}){kept}; lower the learning rate or raise the gradient-penalty weight and retrain."
                )
            hist.iterations.append((b + 1) * log_every)
            hist.wasserstein.append(w)
            hist.penalty.append(gp)
            hist.generator_loss.append(gl)
            bar.update(log_every)
            bar.set_postfix(W=f"{w:.3g}", gp=f"{gp:.2g}")
            if checkpoint is not None and (checkpoint.due(b) or b == n_blocks - 1):
                checkpoint.save(carry, step=b, fingerprint=run_id, done=b == n_blocks - 1,
                                extra={f: getattr(hist, f) for f in DecoderHistory._fields[:4]})
                last_saved = (b + 1) * log_every
    g_params, _, c_params, _ = carry
    hist = hist._replace(seconds=time.perf_counter() - start)
    return nnx.merge(g_def, g_params), nnx.merge(c_def, c_params), hist
