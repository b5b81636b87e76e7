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
import optax
from flax import nnx

from lss_jax.decoder.kinds import DecoderKind, register

__all__ = [
    "CriticInfo",
    "gradient_penalty",
    "wgan_critic_loss",
    "wgan_generator_loss",
    "ConditionalGenerator",
    "ConditionalCritic",
    "WGAN",
    "wgan_train_step",
    "fit_wgan",
    "WGAN_KIND",
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
    key: jax.Array,
    critic_fn: CriticFn,
    x_real: jax.Array,
    x_fake: jax.Array,
    cond: jax.Array,
    *,
    gp_weight: float = 10.0,
    penalize_condition: bool = False,
) -> tuple[jax.Array, CriticInfo]:
    """Critic loss ``E[D(fake, c)] - E[D(real, c)] + gp_weight * E[(||grad D(x_hat, c)|| - 1)^2]``.

    Args:
        key: PRNG key for the interpolation weights ``e ~ U(0, 1)``, one per sample.
        critic_fn: batched critic ``(x [B, d], c [B, m]) -> [B]``.
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
        >>> loss, info = wgan_critic_loss(jax.random.key(0), critic, jnp.ones((4, 2)), jnp.zeros((4, 2)),
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


CONDITIONING = ("input", "every_layer")


class _MLP(nnx.Module):
    """An MLP; with ``extra > 0`` the condition ``c`` (``extra`` wide) joins the input of every layer after the first."""

    def __init__(self, sizes: Sequence[int], activation, *, extra: int = 0, rngs: nnx.Rngs):
        widths = [a + (extra if i else 0) for i, a in enumerate(sizes[:-1])]
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths, sizes[1:])])
        self.activation = activation
        self.extra = extra

    def __call__(self, h, c=None):
        for i, layer in enumerate(self.layers):
            if i and self.extra:
                h = jnp.concatenate([h, c], axis=-1)
            h = layer(h)
            if i < len(self.layers) - 1:
                h = self.activation(h)
        return h


def _check_conditioning(condition: str) -> int:
    if condition not in CONDITIONING:
        raise ValueError(f"condition must be one of {CONDITIONING}, got {condition!r}.")
    return condition == "every_layer"


class ConditionalGenerator(nnx.Module):
    """``G(z, c) -> x``: noise ``z [..., noise_dim]`` and condition ``c [..., m]`` to ``x [..., d]``.

    Paper architecture: three hidden layers of 200 swish units, ``noise_dim = 50``, ``c`` concatenated with ``z``
    (``condition="input"``); ``condition="every_layer"`` also feeds ``c`` to every later layer.

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
        condition: str = "input",
        rngs: nnx.Rngs,
    ):
        self.noise_dim = noise_dim
        extra = cond_dim * _check_conditioning(condition)
        self.net = _MLP((noise_dim + cond_dim, *hidden, output_dim), activation, extra=extra, rngs=rngs)

    def __call__(self, z: jax.Array, c: jax.Array) -> jax.Array:
        return self.net(jnp.concatenate([z, c], axis=-1), c)


class ConditionalCritic(nnx.Module):
    """``D(x, c) -> [...]`` scalar score; no normalization layers (WGAN-GP needs per-sample gradients).

    Example:
        >>> critic = ConditionalCritic(input_dim=6, cond_dim=2, hidden=(16,), rngs=nnx.Rngs(0))
        >>> critic(jnp.zeros((5, 6)), jnp.zeros((5, 2))).shape
        (5,)
    """

    def __init__(
        self, input_dim: int, cond_dim: int, *, hidden: Sequence[int] = (200, 200, 200), activation=jax.nn.swish,
        condition: str = "input", rngs,
    ):
        extra = cond_dim * _check_conditioning(condition)
        self.net = _MLP((input_dim + cond_dim, *hidden, 1), activation, extra=extra, rngs=rngs)

    def __call__(self, x: jax.Array, c: jax.Array) -> jax.Array:
        return self.net(jnp.concatenate([x, c], axis=-1), c)[..., 0]


class WGAN(nnx.Module):
    """The generator and its critic, trained together by :func:`fit_wgan`.

    Example:
        >>> gan = WGAN(6, 2, noise_dim=4, hidden=(16,), rngs=nnx.Rngs(0))
        >>> gan.generator(jnp.zeros((3, 4)), jnp.zeros((3, 2))).shape, gan.critic(jnp.zeros((3, 6)), jnp.zeros((3, 2))).shape
        ((3, 6), (3,))
    """

    def __init__(self, output_dim: int, cond_dim: int, *, noise_dim: int = 50, hidden: Sequence[int] = (200, 200, 200),
                 critic_hidden: Sequence[int] | None = None, condition: str = "input", rngs: nnx.Rngs):
        self.generator = ConditionalGenerator(output_dim, cond_dim, noise_dim=noise_dim, hidden=hidden,
                                              condition=condition, rngs=rngs)
        self.critic = ConditionalCritic(output_dim, cond_dim, hidden=hidden if critic_hidden is None else critic_hidden,
                                        condition=condition, rngs=rngs)


class _PairOptimizer(NamedTuple):
    """Separate optimizer states for the generator and the critic (``init`` for :func:`lss_jax.engine.train.fit`)."""

    generator: optax.GradientTransformation
    critic: optax.GradientTransformation

    def init(self, params):
        return self.generator.init(params["generator"]), self.critic.init(params["critic"])


def wgan_train_step(optimizer: _PairOptimizer, *, n_critic: int, gp_weight: float):
    """One WGAN-GP iteration as a :func:`lss_jax.engine.train.fit` ``step_fn``: ``n_critic`` critic updates, each on
    its own real minibatch with fresh fakes and a gradient penalty on interpolates that keep their condition,
    then one generator update. The fit batch ``(x [(n_critic + 1) B, d], c [(n_critic + 1) B, m])`` holds the
    ``n_critic + 1`` minibatches (the last one's conditions drive the generator update). The returned loss is
    the last critic loss, ``-W + gp_weight * penalty``.
    """

    def step(key, graphdef, params, rest, opt_state, batch):
        gan = nnx.merge(graphdef, params, rest)
        g_def, g_params = nnx.split(gan.generator)
        c_def, c_params = nnx.split(gan.critic)
        g_state, c_state = opt_state
        x, c = batch
        b = x.shape[0] // (n_critic + 1)
        xs = x[: b * (n_critic + 1)].reshape(n_critic + 1, b, x.shape[-1])
        cs = c[: b * (n_critic + 1)].reshape(n_critic + 1, b, c.shape[-1])
        noise_dim = gan.generator.noise_dim
        k_critic, k_gen = jax.random.split(key)

        def critic_update(carry, inputs):
            c_params, c_state = carry
            x_real, cond, k = inputs
            k_z, k_gp = jax.random.split(k)
            z = jax.random.normal(k_z, (b, noise_dim), x.dtype)
            x_fake = jax.lax.stop_gradient(nnx.merge(g_def, g_params)(z, cond))

            def loss(p):
                return wgan_critic_loss(k_gp, nnx.merge(c_def, p), x_real, x_fake, cond, gp_weight=gp_weight)

            (value, _), grads = jax.value_and_grad(loss, has_aux=True)(c_params)
            updates, c_state = optimizer.critic.update(grads, c_state, c_params)
            return (optax.apply_updates(c_params, updates), c_state), value

        (c_params, c_state), values = jax.lax.scan(
            critic_update, (c_params, c_state), (xs[:n_critic], cs[:n_critic], jax.random.split(k_critic, n_critic)))
        z = jax.random.normal(k_gen, (b, noise_dim), x.dtype)

        def g_loss(p):
            return wgan_generator_loss(nnx.merge(c_def, c_params), nnx.merge(g_def, p)(z, cs[-1]), cs[-1])

        grads = jax.grad(g_loss)(g_params)
        updates, g_state = optimizer.generator.update(grads, g_state, g_params)
        g_params = optax.apply_updates(g_params, updates)
        nnx.update(gan.generator, g_params)
        nnx.update(gan.critic, c_params)
        _, params, rest = nnx.split(gan, nnx.Param, ...)
        return params, rest, (g_state, c_state), values[-1]

    return step


def _validation_distance(key, gan: WGAN, batch):
    """Minus the critic's Wasserstein estimate between held-out frames and generated ones for the same conditions."""
    x, c = batch
    z = jax.random.normal(key, (x.shape[0], gan.generator.noise_dim), x.dtype)
    return -(jnp.mean(gan.critic(x, c)) - jnp.mean(gan.critic(gan.generator(z, c), c)))


def fit_wgan(
    key: jax.Array,
    train_data,
    val_data,
    *,
    noise_dim: int = 50,
    hidden: Sequence[int] = (200, 200, 200),
    critic_hidden: Sequence[int] | None = None,
    condition: str = "input",
    gp_weight: float = 10.0,
    n_critic: int = 5,
    batch_size: int = 128,
    n_iterations: int | None = 5000,
    n_epochs: int | None = None,
    learning_rate: float = 1e-4,
    betas: tuple[float, float] = (0.5, 0.9),
    lr_decay: bool = False,
    progress: bool = True,
    checkpoint=None,
    divergence_threshold: float = 1e4,
):
    """Train a conditional WGAN-GP ``G(z, c) -> x`` on ``(x [n, d], c [n, m])`` pairs with :func:`lss_jax.engine.train.fit`.

    One iteration (:func:`wgan_train_step`) is ``n_critic`` critic updates and one generator update (Adam with
    ``betas``, Gulrajani et al.). An epoch is a pass over the shuffled training frames in
    ``(n_critic + 1) * batch_size`` chunks; epochs run until ``n_iterations`` generator updates are done (or for
    ``n_epochs`` epochs, if given), and the final networks are kept (the validation loss, minus the critic's Wasserstein estimate on held-out
    frames, is recorded but does not rank generators: each epoch has another critic).

    Args:
        key: PRNG key.
        train_data, val_data: ``(x, c)`` float32 arrays.
        lr_decay: decay both learning rates linearly to zero over the run (Gulrajani et al.'s schedule; the
            LSS paper, and this default, keep them constant, which did better on alanine dipeptide).
        checkpoint: optional :class:`lss_jax.engine.checkpoint.Checkpointer`, saved per epoch (see :func:`lss_jax.engine.train.fit`).
        divergence_threshold: an epoch whose mean critic loss exceeds this in absolute value counts as
            diverged (with standardized features it stays O(1-10) in healthy training).

    Returns:
        ``(WGAN, TrainHistory)``.

    Raises:
        FloatingPointError: if training diverges; the message names the epoch and the last checkpoint kept.

    Example:
        >>> x = jax.random.normal(jax.random.key(0), (256, 6))
        >>> c = jax.random.uniform(jax.random.key(1), (256, 1))
        >>> gan, history = fit_wgan(jax.random.key(2), (x[:200], c[:200]), (x[200:], c[200:]), noise_dim=4,
        ...                         hidden=(16,), n_critic=1, batch_size=32, n_iterations=6, progress=False)
        >>> history.epochs_run, gan.generator(jnp.zeros((3, 4)), jnp.zeros((3, 1))).shape
        (2, (3, 6))
    """
    from lss_jax.engine.train import fit

    n_train = len(train_data[0])
    d, m = train_data[0].shape[1], train_data[1].shape[1]
    batch_size = max(1, min(batch_size, n_train // (n_critic + 1)))
    per_epoch = n_train // ((n_critic + 1) * batch_size)
    if per_epoch < 1:
        raise ValueError(f"{n_train} training frames are too few for {n_critic + 1} minibatches; give more frames.")
    epochs = n_epochs if n_epochs is not None else max(1, -(-n_iterations // per_epoch))
    k_init, k_fit = jax.random.split(key)
    gan = WGAN(d, m, noise_dim=noise_dim, hidden=hidden, critic_hidden=critic_hidden, condition=condition,
               rngs=nnx.Rngs(k_init))
    total = epochs * per_epoch  # generator updates; the critic makes n_critic times as many

    def adam(updates_per_iteration):
        if callable(learning_rate) or not lr_decay:  # a schedule of the caller's, or the paper's constant rate
            lr = learning_rate
        else:
            lr = optax.linear_schedule(learning_rate, 0.0, total * updates_per_iteration)
        return optax.adam(lr, b1=betas[0], b2=betas[1])

    optimizer = _PairOptimizer(adam(1), adam(n_critic))
    return fit(
        k_fit, gan, _validation_distance, train_data, val_data, optimizer=optimizer,
        batch_size=(n_critic + 1) * batch_size, max_epochs=epochs, patience=epochs, progress=progress,
        desc="cWGAN-GP decoder", checkpoint=checkpoint, stochastic=True, keep="last",
        step_fn=wgan_train_step(optimizer, n_critic=n_critic, gp_weight=gp_weight), max_abs_loss=divergence_threshold,
        run_id=f"cwgan-gp lr={learning_rate!r} decay={lr_decay} betas={betas} gp={gp_weight} n_critic={n_critic} "
               f"noise={noise_dim} condition={condition}",
    )


# --------------------------------------------------------------------------------------------------
# the "wgan" decoder kind (lss_jax.decoder.kinds)
# --------------------------------------------------------------------------------------------------


def _fit_kind(key: jax.Array, train_data, val_data, cfg, *, progress, checkpoint, classifier):
    """:func:`fit_wgan` with the resolved config's settings, ``(generator, critic, TrainHistory)`` (``classifier``
    is not used: the conditions, with any one-hot state appended, are the generator's)."""
    gan, history = fit_wgan(
        key, train_data, val_data, noise_dim=cfg.noise_dim, hidden=cfg.hidden, critic_hidden=cfg.critic_hidden,
        condition=cfg.condition, gp_weight=cfg.gp_weight, n_critic=cfg.n_critic, batch_size=cfg.batch_size,
        n_iterations=cfg.iterations, n_epochs=cfg.epochs if cfg.iterations is None else None,
        learning_rate=cfg.learning_rate, lr_decay=cfg.lr_decay, progress=progress, checkpoint=checkpoint,
    )
    return gan.generator, gan.critic, history


def _template(cfg, d: int, cond_dim: int, n_states: int, rngs: nnx.Rngs):
    """An untrained ``(generator, critic)`` (``n_states`` is not used)."""
    gan = WGAN(d, cond_dim, noise_dim=cfg.noise_dim, hidden=cfg.hidden, critic_hidden=cfg.critic_hidden,
               condition=cfg.condition, rngs=rngs)
    return gan.generator, gan.critic


def _sample(network, z: jax.Array, cond: jax.Array, flow_steps: int, solver: str = "heun") -> jax.Array:
    """The generator ``G(z, c)`` (no steps, no solver)."""
    return network(z, cond)


WGAN_KIND = register(DecoderKind("wgan", _fit_kind, _template, _sample))
