"""The registry of decoder kinds: what :mod:`lss_jax.decoder` needs to train, rebuild and sample each kind.

A kind is one module that ends with ``register(DecoderKind(...))`` (:mod:`lss_jax.decoder.flow_kind`,
:mod:`lss_jax.decoder.wgan`, :mod:`lss_jax.decoder.knn`, :mod:`lss_jax.decoder.chain`,
:mod:`lss_jax.decoder.meanflow`); ``lss_jax.decoder``
imports every one of them, so :data:`KINDS` is full once the package is imported. Its name must also be in
:data:`lss_jax.config.DECODERS` (and in :data:`lss_jax.config.DISTILLABLE` if it is ``distillable``): the
configuration sits below the decoder and cannot read this table, and ``tests/test_decoder.py`` keeps the two
in step.

Example:
    >>> import lss_jax.decoder
    >>> sorted(KINDS)
    ['chain', 'flow', 'knn', 'meanflow', 'wgan']
    >>> sorted(name for name, kind in KINDS.items() if kind.distillable)
    ['chain', 'flow']
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import optax

__all__ = ["DecoderKind", "KINDS", "register", "n_epochs", "flow_optimizer"]


class DecoderKind(NamedTuple):
    """One decoder kind: its training, its untrained template and its sampler.

    Attributes:
        name: the kind's name, ``DecoderConfig.kind`` (one of :data:`lss_jax.config.DECODERS`).
        fit: ``fit(key, train_data, val_data, cfg, *, progress, checkpoint, classifier) -> (network, critic or
            None, TrainHistory)``: train on standardized features and conditions ``(x [n, D], c [n, m])``;
            ``cfg`` is the resolved :class:`lss_jax.config.DecoderConfig`. ``classifier`` is ``None`` or the
            :class:`lss_jax.decoder.states.StateClassifier` of structural states, ``c`` then ending with the
            one-hot state (its ``n_states`` columns): a kind that takes states wraps its network in
            :class:`lss_jax.decoder.states.StateFlow`.
        template: ``template(cfg, d, cond_dim, n_states, rngs) -> (network, critic or None)``: the untrained
            networks for features of length ``d``, conditions of length ``cond_dim`` and ``n_states`` structural
            states (0: none), built from ``rngs`` (an ``nnx.Rngs``), to load saved weights into.
        sample: ``sample(network, z [B, noise_dim], cond [B, m], flow_steps, solver) -> features [B, D]``:
            jit-able, deterministic given the noise ``z``.
        distillable: whether the kind samples by integrating a flow, so that :mod:`lss_jax.decoder.distill`
            can distill it (:data:`lss_jax.config.DISTILLABLE`).
        states: whether :func:`lss_jax.decoder.fit_feature_model` splits structural states off before ``fit``
            (trains the classifier, appends the one-hot state to the condition) when it is given states.
    """

    name: str
    fit: Callable[..., tuple[Any, Any, Any]]
    template: Callable[..., tuple[Any, Any]]
    sample: Callable[..., Any]
    distillable: bool = False
    states: bool = True


KINDS: dict[str, DecoderKind] = {}


def register(kind: DecoderKind) -> DecoderKind:
    """Add ``kind`` to :data:`KINDS` under its name (a second registration of a name replaces the first) and
    return it."""
    KINDS[kind.name] = kind
    return kind


def n_epochs(config, steps_per_epoch: int) -> int:
    """Training epochs of a resolved ``config``: enough for ``config.iterations`` steps when given, else
    ``config.epochs`` capped at ``config.max_steps`` steps."""
    if config.iterations is not None:
        return max(1, -(-config.iterations // steps_per_epoch))
    return min(config.epochs, max(1, -(-config.max_steps // steps_per_epoch)))


def flow_optimizer(cfg, n: int):
    """``(batch_size, epochs, optimizer)`` of a flow-matching decoder (flow, chain) trained on ``n`` pairs: Adam
    at ``cfg.learning_rate``, cosine-decayed to 1 % over the run when ``cfg.lr_decay``."""
    batch_size = min(cfg.batch_size, n)
    per_epoch = n // batch_size
    epochs = n_epochs(cfg, per_epoch)
    schedule = (optax.cosine_decay_schedule(cfg.learning_rate, epochs * per_epoch, alpha=0.01) if cfg.lr_decay
                else cfg.learning_rate)
    return batch_size, epochs, optax.adam(schedule)
