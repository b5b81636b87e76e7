"""The ``"flow"`` decoder kind: conditional flow matching (:mod:`lss_jax.decoder.flow`) on the coordinate map's
features, with structural states a :class:`lss_jax.decoder.states.StateFlow` (registered in
:data:`lss_jax.decoder.kinds.KINDS`; a module of its own so that :mod:`lss_jax.decoder.flow` stays free of the
states, which import it).

Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from lss_jax.config import DecoderConfig
    >>> net, critic = template(DecoderConfig(hidden=(8,)).resolved(), 3, 1, 2, nnx.Rngs(0))
    >>> type(net).__name__, critic
    ('StateFlow', None)
    >>> sample(net, jnp.zeros((4, net.noise_dim)), jnp.zeros((4, 1)), 2, "euler").shape
    (4, 3)
"""

from __future__ import annotations

import jax
from flax import nnx

from lss_jax.decoder.flow import VelocityField, flow_matching_loss, integrate_flow
from lss_jax.decoder.kinds import DecoderKind, flow_optimizer, register
from lss_jax.decoder.states import StateClassifier, StateFlow

__all__ = ["fit", "template", "sample", "fit_field", "template_field"]


def fit_field(key: jax.Array, make_field, loss, train_data, val_data, cfg, *, progress, checkpoint, classifier,
              name: str, desc: str, keep: str = "best"):
    """A field ``make_field(d, m, hidden=..., rngs=...)`` trained on ``(x [n, D], c [n, m])`` by minibatches of
    ``loss(key, field, x, c)`` with the flow's optimizer and budget (:func:`lss_jax.decoder.kinds.flow_optimizer`), in a
    :class:`StateFlow` with ``classifier``: ``(network, None, TrainHistory)``. ``name`` heads the checkpoint's run id;
    ``keep``: :func:`lss_jax.engine.train.fit`'s (``"best"``: early stopping on the validation loss)."""
    from lss_jax.engine.train import fit as fit_model

    n, d = train_data[0].shape
    m = train_data[1].shape[1]
    batch_size, epochs, optimizer = flow_optimizer(cfg, n)
    k_init, k_fit = jax.random.split(key)
    field = make_field(d, m, hidden=cfg.hidden, rngs=nnx.Rngs(k_init))

    def loss_fn(k, model, batch):
        x, c = batch
        return loss(k, model, x, c)

    field, history = fit_model(
        k_fit, field, loss_fn, train_data, val_data, optimizer=optimizer, batch_size=batch_size,
        max_epochs=epochs, patience=cfg.patience, progress=progress, desc=desc, checkpoint=checkpoint,
        stochastic=True, keep=keep, run_id=f"{name} lr={cfg.learning_rate!r} decay={cfg.lr_decay} hidden={cfg.hidden}"
                                           + ("" if classifier is None else f" states={classifier.n_states}"))
    return (field if classifier is None else StateFlow(field, classifier)), None, history


def template_field(make_field, cfg, d: int, cond_dim: int, n_states: int, rngs: nnx.Rngs):
    """An untrained ``make_field`` (in a :class:`StateFlow` with ``n_states``), ``(network, None)``."""
    network = make_field(d, cond_dim + n_states, hidden=cfg.hidden, rngs=rngs)
    if n_states:
        network = StateFlow(network, StateClassifier(cond_dim, n_states, rngs=rngs))
    return network, None


def fit(key: jax.Array, train_data, val_data, cfg, *, progress, checkpoint, classifier):
    """A :class:`VelocityField` trained by flow matching on ``(x [n, D], c [n, m])`` (a :class:`StateFlow` with
    ``classifier``), ``(network, None, TrainHistory)``."""
    return fit_field(key, VelocityField, flow_matching_loss, train_data, val_data, cfg, progress=progress,
                     checkpoint=checkpoint, classifier=classifier, name="flow", desc="flow-matching decoder")


def template(cfg, d: int, cond_dim: int, n_states: int, rngs: nnx.Rngs):
    """An untrained velocity field (in a :class:`StateFlow` with ``n_states``), ``(network, None)``."""
    return template_field(VelocityField, cfg, d, cond_dim, n_states, rngs)


def sample(network, z: jax.Array, cond: jax.Array, flow_steps: int, solver: str = "heun") -> jax.Array:
    """The flow's ODE solved from the noise ``z`` (a :class:`StateFlow` draws its state from ``z`` too)."""
    if isinstance(network, StateFlow):
        return network.sample(z, cond, n_steps=flow_steps, solver=solver)
    return integrate_flow(network, z, cond, n_steps=flow_steps, solver=solver)


FLOW = register(DecoderKind("flow", fit, template, sample, distillable=True))
