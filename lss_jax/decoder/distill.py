"""Few-step decoding: a flow-matching decoder distilled into one that needs one or two network evaluations.

A trained flow samples by integrating its ODE (10 Heun steps, 20 evaluations of the network per frame), and
decoding is what generation spends its time on. The ODE is a deterministic map ``T(z, c)`` from a prior sample
to a frame; its paths curve, so a step count as small as one cannot follow them (one Euler step from ``z``
lands on the conditional mean). Distillation by straight paths (a *reflow*, Liu et al. 2023) trains a
student copy of the field on the teacher's own couplings ``(z, T(z, c))``, regressing the straight line's
velocity ``T(z, c) - z`` at the points ``x_t = (1 - t) z + t T(z, c)`` of that line, for ``t`` on the grid
``{0, 1/k, ..., (k-1)/k}`` of the ``k`` Euler steps it will be sampled with. Where the student is exact, ``k``
Euler steps from ``z`` reproduce ``T(z, c)``: the same frame for the same noise, in ``k`` evaluations. With
``k = 1`` this is the regression of ``T`` itself (knowledge distillation, Luhman & Luhman 2021).

The couplings are drawn with the decoder's addressed noise machinery's law (standard normal ``z``; for a
:class:`lss_jax.decoder.states.StateFlow` the state drawn from the classifier by the last entry of ``z``, so the
student learns every state's paths in the classifier's proportions), at the latent points of the training frames.
The classifier, the coordinate map, the support constraint and (chain) the repair are the teacher's, unchanged; for the
chain decoder with contact-map states (:class:`lss_jax.decoder.contacts.ContactFlow`) the student is the field given
the same drawn bits, and the contact model, its bits and the projection onto them are the teacher's.

References:
    X. Liu, C. Gong, Q. Liu, "Flow straight and fast: learning to generate and transfer data with rectified
    flow", ICLR 2023.
    E. Luhman, T. Luhman, "Knowledge distillation in iterative generative models for improved sampling speed",
    arXiv:2101.02388 (2021).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lss_jax.config import DISTILLABLE
from lss_jax.decoder.chain import ChainField, integrate_chain
from lss_jax.decoder.contacts import ContactFlow
from lss_jax.decoder.flow import VelocityField
from lss_jax.decoder.states import StateFlow

__all__ = ["DISTILLABLE", "straight_path_loss", "distill_field", "teacher_couplings"]


def straight_path_loss(key: jax.Array, field, x0: jax.Array, x1: jax.Array, cond: jax.Array, *, n_steps: int) -> jax.Array:
    """Mean ``|v(x_t, t, c) - (x_1 - x_0)|^2 / D`` at ``x_t = (1 - t) x_0 + t x_1``, ``t`` drawn per pair from
    the Euler grid ``{0, 1/n_steps, ...}``.

    Example:
        >>> x0, x1 = jnp.zeros((4, 2)), jnp.ones((4, 2))
        >>> exact = lambda x, t, c: jnp.ones_like(x)                   # the straight line's velocity
        >>> float(straight_path_loss(jax.random.key(0), exact, x0, x1, jnp.zeros((4, 1)), n_steps=2))
        0.0
    """
    t = jax.random.randint(key, (x0.shape[0],), 0, n_steps).astype(x0.dtype) / n_steps
    xt = (1.0 - t[:, None]) * x0 + t[:, None] * x1
    return jnp.mean((field(xt, t, cond) - (x1 - x0)) ** 2)


def _split_field(network):
    """``(field, to_flow)``: the velocity field a decoder network integrates, and how to put a student back."""
    if isinstance(network, StateFlow):
        return network.field, lambda student: StateFlow(student, network.classifier)
    if isinstance(network, ContactFlow):  # the contact model, the map's pairs and the projection are the teacher's
        return network.field, lambda student: ContactFlow(student, network.model, network.pairs[...],
                                                          network.cutoffs[...], margin=network.margin)
    if isinstance(network, (VelocityField, ChainField)):
        return network, lambda student: student
    raise ValueError(f"only flow-matching decoders ({', '.join(DISTILLABLE)}) can be distilled, got a "
                     f"{type(network).__name__}.")


def teacher_couplings(key: jax.Array, network, cond, *, n_steps: int, solver: str = "heun",
                      block: int = 4096) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The teacher's couplings at conditions ``cond [N, m]``, one prior draw each: ``(x0 [N, D], x1 [N, D],
    field condition [N, m'])`` with ``x1`` the teacher's ODE solution from ``x0`` (before a chain's repair).

    Example:
        >>> field = VelocityField(2, 1, hidden=(8,), rngs=nnx.Rngs(0))
        >>> x0, x1, c = teacher_couplings(jax.random.key(0), field, np.zeros((5, 1), np.float32), n_steps=2)
        >>> x0.shape, x1.shape, c.shape
        ((5, 2), (5, 2), (5, 1))
    """
    _split_field(network)  # a flow-matching network, or a clear error
    graphdef, state = nnx.split(network)

    @jax.jit
    def run(state, z, c):
        net = nnx.merge(graphdef, state)
        if isinstance(net, (StateFlow, ContactFlow)):  # the state (a contact map's bits) from the noise's last
            # entries, the field's prior sample from the rest
            z, c = net.field_condition(z, c)
            net = net.field
        x0 = net.prior_sample(z * net.temperature, c) if isinstance(net, ChainField) else z
        return x0, integrate_chain(net, x0, c, n_steps=n_steps, solver=solver), c

    cond = np.asarray(cond, np.float32)
    z = np.asarray(jax.random.normal(key, (len(cond), network.noise_dim)), np.float32)
    out = []
    for start in range(0, len(cond), block):  # fixed block shape: one compilation
        sel = slice(start, start + block)
        n = len(cond[sel])
        pad = lambda a: np.pad(a, [(0, block - n), (0, 0)])  # noqa: E731
        out.append([np.asarray(a)[:n] for a in run(state, pad(z[sel]), pad(cond[sel]))])
    return tuple(np.concatenate(parts) for parts in zip(*out))


def distill_field(key: jax.Array, network, train_cond, val_cond, *, n_steps: int = 1, teacher_steps: int = 10,
                  teacher_solver: str = "heun", draws: int | None = None, iterations: int = 20_000,
                  batch_size: int = 256, learning_rate: float = 3e-4, patience: int = 10, progress: bool = True,
                  checkpoint=None):
    """Distil a flow-matching decoder network into a student sampled with ``n_steps`` Euler steps.

    Args:
        key: PRNG key (couplings and training).
        network: a trained :class:`~lss_jax.decoder.flow.VelocityField`, :class:`~lss_jax.decoder.states.StateFlow`
            or :class:`~lss_jax.decoder.chain.ChainField` (the teacher; not modified).
        train_cond, val_cond: latent points (unit box) of the training and validation frames, where the couplings
            are drawn (``draws`` prior samples at each; default: enough for 2 x 10^5 training couplings, at least 1).
        n_steps: Euler steps the student is sampled with (1: one network evaluation per frame).
        teacher_steps, teacher_solver: how the teacher's ODE is solved for its couplings.
        iterations: optimizer steps (at most; early stopping on the validation couplings' loss).
        batch_size, learning_rate, patience: training settings (Adam with a cosine decay to 1 %); the student
            starts from the teacher's weights.
        progress: show a progress bar.
        checkpoint: optional :class:`lss_jax.engine.checkpoint.Checkpointer`.

    Returns:
        ``(student network of the teacher's type, TrainHistory)``.

    Example:
        >>> field = VelocityField(2, 1, hidden=(16,), rngs=nnx.Rngs(0))
        >>> c = np.random.default_rng(0).uniform(size=(64, 1)).astype(np.float32)
        >>> student, history = distill_field(jax.random.key(1), field, c[:48], c[48:], iterations=20, batch_size=16,
        ...                                  progress=False)
        >>> type(student).__name__, history.epochs_run > 0
        ('VelocityField', True)
    """
    from lss_jax.engine.train import fit

    if n_steps < 1:
        raise ValueError(f"distill_steps must be a positive number of Euler steps, got {n_steps!r}.")
    field, to_flow = _split_field(network)
    train_cond, val_cond = np.asarray(train_cond, np.float32), np.asarray(val_cond, np.float32)
    draws = draws or max(1, -(-200_000 // max(len(train_cond), 1)))
    k_train, k_val, k_fit = jax.random.split(key, 3)
    train = teacher_couplings(k_train, network, np.repeat(train_cond, draws, axis=0), n_steps=teacher_steps,
                              solver=teacher_solver)
    val = teacher_couplings(k_val, network, val_cond, n_steps=teacher_steps, solver=teacher_solver)
    batch_size = min(batch_size, len(train[0]))
    per_epoch = len(train[0]) // batch_size
    epochs = max(1, -(-iterations // per_epoch))
    schedule = optax.cosine_decay_schedule(learning_rate, epochs * per_epoch, alpha=0.01)
    student, history = fit(
        k_fit, field, lambda k, model, batch: straight_path_loss(k, model, *batch, n_steps=n_steps),
        train, val, optimizer=optax.adam(schedule), batch_size=batch_size, max_epochs=epochs, patience=patience,
        progress=progress, desc=f"distil decoder ({n_steps} step{'s' if n_steps > 1 else ''})", checkpoint=checkpoint,
        stochastic=True, run_id=f"distill n_steps={n_steps} teacher={teacher_solver}{teacher_steps} draws={draws}")
    return to_flow(student), history
