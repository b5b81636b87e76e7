"""The mixture density network (MDN) propagator: Gaussian-mixture densities, NLL, sampling, rollout.

The propagator models ``p_tau(psi_{t+tau} | psi_t)`` as a mixture of ``C`` diagonal Gaussians whose
weights, means and scales are the outputs of an MLP of ``psi_t``. Latent coordinates live in the
unit box (see :mod:`lss_jax.propagator.scaling`); the means pass through a sigmoid and the scales through a
softplus with a floor, so the density can never collapse onto a point.

References:
    C. M. Bishop, "Mixture density networks", Aston University NCRG/94/004 (1994).
    H. Sidky, W. Chen, A. L. Ferguson, Chem. Sci. 11, 9459 (2020), Sec. 2.2.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lss_jax.config import PropagatorConfig
from lss_jax.propagator.scaling import BOUNDARIES, apply_boundary

__all__ = [
    # the mixture density and its sampler
    "MixtureParams", "gaussian_mixture_log_prob", "mdn_nll", "mixture_sample",
    # the network, one step and the rollout
    "MDN", "mdn_apply_fn", "propagate_step", "rollout", "fit_mdn",
    # numerical precision of the rollout
    "with_precision", "PRECISIONS",
]

_LOG_2PI = math.log(2.0 * math.pi)  # a Python float: exact in any precision


class MixtureParams(NamedTuple):
    """A batch of diagonal Gaussian mixtures.

    Attributes:
        logits: ``[..., C]`` unnormalized log mixture weights.
        means: ``[..., C, m]`` component means.
        scales: ``[..., C, m]`` component standard deviations (> 0).

    Example:
        >>> mixture = MixtureParams(jnp.zeros((3, 2)), jnp.zeros((3, 2, 1)), jnp.ones((3, 2, 1)))
        >>> mixture.means.shape
        (3, 2, 1)
    """

    logits: jax.Array
    means: jax.Array
    scales: jax.Array


def gaussian_mixture_log_prob(y: jax.Array, logits: jax.Array, means: jax.Array, scales: jax.Array) -> jax.Array:
    """Log density of ``y [..., m]`` under diagonal Gaussian mixtures.

    Args:
        y: ``[..., m]`` points.
        logits: ``[..., C]`` log weights (normalized here with ``log_softmax``).
        means: ``[..., C, m]``.
        scales: ``[..., C, m]`` standard deviations.

    Returns:
        ``[...]`` log densities, computed with ``logsumexp`` (stable for far-away points).

    Example:
        >>> lp = gaussian_mixture_log_prob(jnp.zeros(1), jnp.zeros(1), jnp.zeros((1, 1)), jnp.ones((1, 1)))
        >>> round(float(lp), 4)   # log N(0 | 0, 1)
        -0.9189
    """
    chex.assert_equal_shape([means, scales])
    chex.assert_axis_dimension(means, -1, y.shape[-1])
    z = (y[..., None, :] - means) / scales
    component = -0.5 * jnp.sum(z**2, axis=-1) - jnp.sum(jnp.log(scales), axis=-1) - 0.5 * y.shape[-1] * _LOG_2PI
    return jax.nn.logsumexp(jax.nn.log_softmax(logits, axis=-1) + component, axis=-1)


def mdn_nll(mixture: MixtureParams, y: jax.Array) -> jax.Array:
    """Unreduced negative log-likelihood ``[...]`` of targets ``y [..., m]``; average it yourself.

    Example:
        >>> mixture = MixtureParams(jnp.zeros((4, 1)), jnp.zeros((4, 1, 1)), jnp.ones((4, 1, 1)))
        >>> nll = mdn_nll(mixture, jnp.zeros((4, 1)))
        >>> nll.shape, round(float(nll[0]), 4)   # -log N(0 | 0, 1)
        ((4,), 0.9189)
    """
    return -gaussian_mixture_log_prob(y, *mixture)


def mixture_sample(key: jax.Array, mixture: MixtureParams) -> jax.Array:
    """Draw one sample ``[..., m]`` from each mixture in the batch.

    One draw of ``1 + m`` standard normals per mixture does everything: the first, mapped through the
    normal CDF, is a uniform ``u`` that picks the component by inverse CDF of the mixture weights (the first
    ``k`` whose cumulative weight exceeds ``u``); the other ``m`` are the Gaussian noise of that component.
    Gumbel-max (``jax.random.categorical``) needs ``C`` random numbers and two keys for the same choice; in a
    rollout that was ~60 % of every step (``benchmarks/perf/rollout.py``).

    Example:
        >>> mixture = MixtureParams(jnp.zeros((5, 2)), jnp.full((5, 2, 1), 0.5), jnp.full((5, 2, 1), 1e-3))
        >>> y = mixture_sample(jax.random.key(0), mixture)
        >>> y.shape, bool(jnp.all(jnp.abs(y - 0.5) < 0.01))
        ((5, 1), True)
    """
    logits, means, scales = mixture
    chex.assert_equal_shape([means, scales])
    chex.assert_equal_shape_prefix([logits, means], logits.ndim)
    n_components, m = means.shape[-2:]
    z = jax.random.normal(key, (*logits.shape[:-1], 1 + m), means.dtype)
    u = jax.scipy.special.ndtr(z[..., :1])  # [..., 1], uniform on (0, 1)
    cdf = jnp.cumsum(jax.nn.softmax(logits, axis=-1), axis=-1)
    component = jnp.minimum(jnp.sum(cdf < u, axis=-1), n_components - 1)  # the last cdf may round below 1
    idx = component[..., None, None]
    mean = jnp.take_along_axis(means, idx, axis=-2)[..., 0, :]
    scale = jnp.take_along_axis(scales, idx, axis=-2)[..., 0, :]
    return mean + scale * z[..., 1:]


class MDN(nnx.Module):
    """MLP that maps ``psi_t [..., m]`` (unit box) to a :class:`MixtureParams` over ``psi_{t+tau}``.

    Args:
        latent_dim: ``m``.
        n_components: ``C`` (paper: 8 for the four-well potential, 24 for Trp-cage).
        hidden: widths of the hidden layers (paper: ``(100, 100)``).
        activation: hidden activation (paper: ReLU).
        scale_floor: lower bound on every component scale (unit-box units).
        rngs: ``nnx.Rngs`` for the initialization.

    Example:
        >>> mdn = MDN(latent_dim=1, n_components=8, hidden=(100, 100), rngs=nnx.Rngs(0))
        >>> mixture = mdn(jnp.full((3, 1), 0.5))
        >>> mixture.logits.shape, mixture.means.shape, mixture.scales.shape
        ((3, 8), (3, 8, 1), (3, 8, 1))
        >>> bool(jnp.all(mixture.scales >= 1e-3))
        True
    """

    def __init__(
        self,
        latent_dim: int,
        n_components: int = 8,
        hidden: Sequence[int] = (100, 100),
        *,
        activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
        scale_floor: float = 1e-3,
        rngs: nnx.Rngs,
    ):
        if latent_dim < 1 or n_components < 1:
            raise ValueError(f"latent_dim and n_components must be >= 1, got {latent_dim}, {n_components}.")
        sizes = (latent_dim, *hidden)
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])
        self.head = nnx.Linear(sizes[-1], n_components * (1 + 2 * latent_dim), rngs=rngs)
        self.activation = activation
        self.latent_dim = latent_dim
        self.n_components = n_components
        self.scale_floor = scale_floor

    def __call__(self, x: jax.Array) -> MixtureParams:
        h = x
        for layer in self.layers:
            h = self.activation(layer(h))
        out = self.head(h)
        c, m = self.n_components, self.latent_dim
        logits = out[..., :c]
        means = jax.nn.sigmoid(out[..., c : c + c * m]).reshape(*out.shape[:-1], c, m)
        scales = jax.nn.softplus(out[..., c + c * m :]).reshape(*out.shape[:-1], c, m) + self.scale_floor
        return MixtureParams(logits, means, scales)


@functools.lru_cache(maxsize=64)
def mdn_apply_fn(graphdef) -> Callable[[nnx.State, jax.Array], MixtureParams]:
    """A pure ``mixture_fn(params, x)`` for a split MDN, cached per graphdef.

    The same function object is returned for the same graphdef, so passing it as the static
    ``mixture_fn`` of :func:`rollout` does not trigger recompilation.

    Example:
        >>> graphdef, params = nnx.split(MDN(1, rngs=nnx.Rngs(0)))
        >>> fn = mdn_apply_fn(graphdef)
        >>> fn(params, jnp.zeros((4, 1))).logits.shape
        (4, 8)
    """

    def mixture_fn(params, x):
        return nnx.merge(graphdef, params)(x)

    return mixture_fn


def propagate_step(
    keys: jax.Array,
    mixture_fn: Callable,
    params,
    x: jax.Array,
    *,
    boundary: str = "reflect",
) -> jax.Array:
    """Advance a batch ``x [B, m]`` by one lag with per-trajectory keys ``keys [B]``.

    Example:
        >>> graphdef, params = nnx.split(MDN(1, rngs=nnx.Rngs(0)))
        >>> keys = jax.random.split(jax.random.key(0), 3)
        >>> x = propagate_step(keys, mdn_apply_fn(graphdef), params, jnp.full((3, 1), 0.5))
        >>> x.shape, bool(jnp.all((x >= 0) & (x <= 1)))
        ((3, 1), True)
    """
    mixture = mixture_fn(params, x)
    sample = jax.vmap(mixture_sample)(keys, mixture)
    return apply_boundary(sample, boundary)


def rollout(
    key: jax.Array,
    mixture_fn: Callable,
    params,
    x0: jax.Array,
    *,
    n_steps: int,
    save_every: int = 1,
    boundary: str = "reflect",
    start_step: jax.Array | int = 0,
    trajectory_ids: jax.Array | None = None,
    precision: str = "float32",
    devices: Sequence[jax.Device] | None = None,
) -> jax.Array:
    """Advance ``B`` latent trajectories ``n_steps`` lags with one ``lax.scan``.

    Randomness is explicit and addressable: the key of trajectory ``b`` at step ``t`` is
    ``fold_in(fold_in(key, trajectory_ids[b]), start_step + t)``. Trajectory ``b`` is therefore the
    same whatever the batch it is run in, and a rollout split into chunks (passing the last frame
    and ``start_step``) is identical to one long rollout.

    Args:
        key: PRNG key.
        mixture_fn: static pure function ``(params, x [B, m]) -> MixtureParams`` (for an NNX
            :class:`MDN`, use :func:`mdn_apply_fn`; keep the same object between calls to avoid
            recompiling).
        params: pytree of network parameters.
        x0: ``[B, m]`` start points in the unit box.
        n_steps: number of lags to advance; a multiple of ``save_every``.
        save_every: keep every ``save_every``-th frame.
        boundary: ``"reflect"`` (default), ``"clip"`` or ``"none"``, see :mod:`lss_jax.propagator.scaling`.
        start_step: global index of the first step (for chunked generation).
        trajectory_ids: ``[B]`` integer ids used to derive per-trajectory keys (default ``arange(B)``).
        precision: matmul precision of the network, one of :data:`PRECISIONS` (see :func:`with_precision`).
        devices: shard the trajectory batch over these devices with ``jax.shard_map`` (default: one
            device). Trajectories are independent, so there is no communication, and each trajectory
            is the same as in a single-device run (the batch is padded to a multiple of the device count).

    Returns:
        ``[B, n_steps // save_every, m]`` frames after ``save_every, 2 save_every, ...`` lags (the
        start point is not repeated).

    Example:
        >>> graphdef, params = nnx.split(MDN(1, rngs=nnx.Rngs(0)))
        >>> traj = rollout(jax.random.key(1), mdn_apply_fn(graphdef), params, jnp.full((3, 1), 0.5), n_steps=10)
        >>> traj.shape
        (3, 10, 1)
    """
    if x0.ndim != 2:
        raise ValueError(f"x0 must be [n_trajectories, latent_dim], got shape {x0.shape}.")
    x0 = jnp.asarray(x0, dtype=jnp.asarray(x0).dtype)  # strong dtype: chunks continuing from a frame share a compilation
    if n_steps < 1 or save_every < 1 or n_steps % save_every:
        raise ValueError(
            f"n_steps ({n_steps}) must be a positive multiple of save_every ({save_every}); round n_steps up."
        )
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}.")
    ids = jnp.arange(x0.shape[0]) if trajectory_ids is None else jnp.asarray(trajectory_ids)
    if ids.shape != x0.shape[:1]:
        raise ValueError(f"trajectory_ids must have shape [{x0.shape[0]}], got {ids.shape}.")
    mixture_fn = with_precision(mixture_fn, precision)
    # All arguments are normalized to arrays and passed positionally, so keyword-vs-default calls
    # share one compilation.
    args = (key, params, x0, jnp.asarray(start_step, jnp.int32), ids.astype(jnp.int32))
    devices = tuple(devices) if devices is not None else ()
    if len(devices) <= 1:
        return _rollout(*args, mixture_fn, n_steps, save_every, boundary)
    n_dev, batch = len(devices), x0.shape[0]
    pad = -batch % n_dev
    if pad:  # padded rows get their own ids and are dropped: they cannot change the real trajectories
        args = (key, params, jnp.concatenate([x0, jnp.repeat(x0[-1:], pad, 0)]), args[3],
                jnp.concatenate([args[4], args[4][-1] + 1 + jnp.arange(pad, dtype=jnp.int32)]))
    fn = _sharded_rollout(jax.sharding.Mesh(np.array(devices), ("batch",)), mixture_fn, n_steps, save_every, boundary)
    return fn(*args)[:batch]


PRECISIONS = ("float32", "tf32", "bfloat16")


@functools.lru_cache(maxsize=None)
def with_precision(fn: Callable, precision: str = "float32") -> Callable:
    """Wrap a network function ``fn(params, *inputs)`` to run its matmuls at a lower precision.

    ``"float32"`` returns ``fn`` itself (JAX's default precision: exact float32 on CPU; on GPUs with
    tensor cores XLA may already use TF32 for float32 matmuls unless
    ``jax_default_matmul_precision="highest"`` is set). ``"tf32"`` runs ``fn`` under
    ``jax.default_matmul_precision("tensorfloat32")`` (only accelerators change; CPUs compute
    float32). ``"bfloat16"`` casts parameters and floating inputs to bfloat16 and the outputs back
    to float32, so sampling and boundaries stay in float32. The accuracy cost is measured in
    ``benchmarks/studies/precision.py``. The wrapper is cached, so repeated calls do not recompile.

    Example:
        >>> graphdef, params = nnx.split(MDN(1, rngs=nnx.Rngs(0)))
        >>> fn = with_precision(mdn_apply_fn(graphdef), "bfloat16")
        >>> fn is with_precision(mdn_apply_fn(graphdef), "bfloat16"), fn(params, jnp.zeros((2, 1))).means.dtype
        (True, dtype('float32'))
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    if precision == "float32":
        return fn
    if precision == "tf32":

        def tf32_fn(params, *inputs):
            with jax.default_matmul_precision("tensorfloat32"):
                return fn(params, *inputs)

        return tf32_fn

    def cast(tree, dtype):
        return jax.tree_util.tree_map(
            lambda a: a.astype(dtype) if jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating) else a, tree)

    def bf16_fn(params, *inputs):
        return cast(fn(cast(params, jnp.bfloat16), *cast(inputs, jnp.bfloat16)), jnp.float32)

    return bf16_fn


@functools.lru_cache(maxsize=None)
def _sharded_rollout(mesh, mixture_fn, n_steps, save_every, boundary):
    P = jax.sharding.PartitionSpec
    body = functools.partial(_rollout_body, mixture_fn=mixture_fn, n_steps=n_steps, save_every=save_every,
                             boundary=boundary)
    return jax.jit(jax.shard_map(body, mesh=mesh, in_specs=(P(), P(), P("batch"), P(), P("batch")),
                                 out_specs=P("batch")))


def _rollout_body(key, params, x0, start_step, ids, mixture_fn, n_steps, save_every, boundary):
    traj_keys = jax.vmap(jax.random.fold_in, (None, 0))(key, ids)
    steps = (start_step + jnp.arange(n_steps, dtype=jnp.int32)).reshape(n_steps // save_every, save_every)

    def one_step(x, t):
        keys = jax.vmap(jax.random.fold_in, (0, None))(traj_keys, t)
        return propagate_step(keys, mixture_fn, params, x, boundary=boundary), None

    def saved_block(x, ts):
        x, _ = jax.lax.scan(one_step, x, ts)
        return x, x

    _, frames = jax.lax.scan(saved_block, x0, steps)
    return jnp.swapaxes(frames, 0, 1)


_rollout = jax.jit(_rollout_body, static_argnums=(5, 6, 7, 8))


def _mdn_loss(model, batch):
    x, y = batch
    return jnp.mean(mdn_nll(model(x), y))


def fit_mdn(
    key: jax.Array,
    unit_trajs,
    lag: int,
    *,
    config: PropagatorConfig = PropagatorConfig(),
    val_fraction: float = 0.1,
    progress: bool = True,
    checkpoint=None,
):
    """Train an :class:`MDN` propagator on latent trajectories already scaled to the unit box.

    Adam with a cosine decay to 1% over ``config.epochs``; early stopping on the validation NLL
    (trailing ``val_fraction`` of every trajectory), best epoch kept. The stationary density of the
    generated dynamics is sensitive to small biases of the learned drift, which a constant learning
    rate leaves as noise (four-well: 0.23-0.29 kT free-energy RMSE with a constant rate, 0.16-0.20 kT
    with the decay).

    Args:
        key: PRNG key.
        unit_trajs: list of ``[n_frames, m]`` latent trajectories in ``[0, 1]``.
        lag: propagator lag in frames.
        config: the network (``n_components``, ``hidden``, ``scale_floor``) and its training (``learning_rate``,
            ``batch_size``, ``epochs``, ``patience``); ``boundary`` and ``ensemble_size`` are not read here.
        val_fraction: trailing fraction of every trajectory held out for validation.
        checkpoint: optional :class:`lss_jax.engine.checkpoint.Checkpointer` (see :func:`lss_jax.engine.train.fit`).

    Returns:
        ``(model, TrainHistory)``.

    Example:
        >>> u = np.random.default_rng(0).uniform(size=(200, 1)).astype(np.float32)
        >>> config = PropagatorConfig(n_components=2, hidden=(), batch_size=32, epochs=1)
        >>> model, history = fit_mdn(jax.random.key(0), [u], 1, config=config, progress=False)
        >>> model(jnp.full((1, 1), 0.5)).means.shape, history.epochs_run
        ((1, 2, 1), 1)
    """
    unit_trajs = _unit_list(unit_trajs)
    train_pairs, val_pairs = _mdn_pairs(unit_trajs, lag, val_fraction)
    k_init, k_fit = jax.random.split(key)
    model = MDN(
        unit_trajs[0].shape[1], config.n_components, config.hidden, scale_floor=config.scale_floor,
        rngs=nnx.Rngs(k_init),
    )
    return _fit_mdn_model(k_fit, model, _mdn_loss, train_pairs, val_pairs, config=config, progress=progress,
                          checkpoint=checkpoint, desc="MDN propagator", run_id=f"mdn lag={lag}")


def _unit_list(unit_trajs) -> list[np.ndarray]:
    return [np.asarray(t, np.float32) for t in ([unit_trajs] if isinstance(unit_trajs, np.ndarray) else unit_trajs)]


def _mdn_pairs(unit_trajs, lag, val_fraction):
    from lss_jax.data.pairs import lagged_pairs, split_trajectories

    train, val = split_trajectories(unit_trajs, val_fraction, lag=lag)
    return lagged_pairs(train, lag), lagged_pairs(val, lag)


def _fit_mdn_model(key, model, loss_fn, train, val, *, config: PropagatorConfig, progress, checkpoint, desc, run_id):
    """Adam with a cosine decay to 1% over ``config.epochs`` (shared by single MDNs and ensembles)."""
    from lss_jax.engine.train import fit

    learning_rate, max_epochs, patience = config.learning_rate, config.epochs, config.patience
    batch_size = min(config.batch_size, len(train[0]))
    n_updates = max_epochs * (len(train[0]) // batch_size)
    schedule = optax.cosine_decay_schedule(learning_rate, n_updates, alpha=0.01)
    return fit(
        key, model, loss_fn, train, val, optimizer=optax.adam(schedule), batch_size=batch_size,
        max_epochs=max_epochs, patience=patience, progress=progress, desc=desc, checkpoint=checkpoint,
        run_id=f"{run_id} adam cosine lr={learning_rate!r}",
    )
