"""A generic jitted minibatch training loop with early stopping, used for all three networks.

One epoch is a single jitted ``lax.scan`` over shuffled minibatches, so Python overhead is paid once
per epoch, and the same shapes never recompile. Networks cross the ``jit`` boundary as
``(graphdef, params, rest)`` via ``nnx.split`` (``rest`` holds non-parameter state such as batch
statistics).

The same loop trains losses that draw random numbers (``stochastic=True``: flow matching draws times
and noise) and training steps that are not one gradient step of one loss (``step_fn``: a GAN's critic
and generator updates), with the same checkpoints, resume, progress bar and divergence handling.
"""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lss_jax.engine.progress import progress_bar

__all__ = ["TrainHistory", "fit"]


class TrainHistory(NamedTuple):
    """Per-epoch record of a :func:`fit` run.

    Example:
        >>> TrainHistory([1.0], [0.9], best_epoch=0, epochs_run=1, seconds=0.1, stopped_early=False).val_loss
        [0.9]
    """

    train_loss: list
    val_loss: list
    best_epoch: int
    epochs_run: int
    seconds: float
    stopped_early: bool


def _n_items(data) -> int:
    leaves = jax.tree_util.tree_leaves(data)
    if not leaves:
        raise ValueError("training data is empty.")
    n = leaves[0].shape[0]
    if any(leaf.shape[0] != n for leaf in leaves):
        raise ValueError("all arrays in a data pytree must share their first (sample) dimension.")
    return n


def _check_loop_settings(n_train: int, batch_size: int, max_epochs: int, patience: int, keep: str) -> None:
    """The loop settings of :func:`fit`, or a ``ValueError`` that says which is wrong."""
    if batch_size < 1 or n_train < batch_size:
        raise ValueError(
            f"batch_size ({batch_size}) must be between 1 and the number of training samples ({n_train}); "
            "lower the batch size or provide more data."
        )
    if max_epochs < 1 or patience < 1:
        raise ValueError(f"max_epochs and patience must be >= 1, got {max_epochs} and {patience}.")
    if keep not in ("best", "last"):
        raise ValueError(f"keep must be 'best' or 'last', got {keep!r}.")


def _compiled_loop(model, loss_fn, optimizer, step_fn, *, stochastic: bool, n_train: int, n_val: int, batch_size: int,
                   val_key):
    """What :func:`fit` runs: ``(eval_graphdef, params, rest, opt_state, run_epoch, evaluate)``.

    ``run_epoch(params, rest, opt_state, data, key)`` is one jitted shuffled epoch (a ``lax.scan`` over its
    minibatches) returning the new state and the mean training loss; ``evaluate(params, rest, data)`` the jitted
    validation loss in eval mode, in chunks of at most 8192 items, with the same keys every epoch.
    """
    keyed = stochastic or step_fn is not None
    model.train()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    model.eval()
    eval_graphdef, _, _ = nnx.split(model, nnx.Param, ...)
    model.train()
    opt_state = optimizer.init(params)
    n_batches = n_train // batch_size

    def call_loss(m, batch, k):
        return loss_fn(k, m, batch) if stochastic else loss_fn(m, batch)

    def batch_loss(params, rest, batch, k):
        m = nnx.merge(graphdef, params, rest, copy=True)  # fresh Variables: batch stats may be updated under grad
        loss = call_loss(m, batch, k)
        return loss, nnx.state(m, nnx.Not(nnx.Param))

    def gradient_step(params, rest, opt_state, batch, k):
        (loss, rest), grads = jax.value_and_grad(batch_loss, has_aux=True)(params, rest, batch, k)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), rest, opt_state, loss

    if step_fn is not None:
        def train_step(params, rest, opt_state, batch, k):
            return step_fn(k, graphdef, params, rest, opt_state, batch)
    else:
        train_step = gradient_step

    @jax.jit
    def run_epoch(params, rest, opt_state, data, key):
        if keyed:
            key, k_steps = jax.random.split(key)
            step_keys = jax.random.split(k_steps, n_batches)
        else:
            step_keys = jnp.zeros(n_batches)  # unused
        perm = jax.random.permutation(key, n_train)[: n_batches * batch_size].reshape(n_batches, batch_size)

        def step(carry, xs):
            params, rest, opt_state = carry
            idx, k = xs
            batch = jax.tree_util.tree_map(lambda a: a[idx], data)
            params, rest, opt_state, loss = train_step(params, rest, opt_state, batch, k)
            return (params, rest, opt_state), loss

        (params, rest, opt_state), losses = jax.lax.scan(step, (params, rest, opt_state), (perm, step_keys))
        return params, rest, opt_state, jnp.mean(losses)

    eval_chunk = min(n_val, 8192)
    n_full = n_val // eval_chunk

    @jax.jit
    def evaluate(params, rest, data):
        m_eval = lambda batch, k: call_loss(nnx.merge(eval_graphdef, params, rest), batch, k)  # noqa: E731
        head = jax.tree_util.tree_map(lambda a: a[: n_full * eval_chunk].reshape(n_full, eval_chunk, *a.shape[1:]), data)
        keys = jax.random.split(val_key, n_full + 1)
        total = jnp.sum(jax.lax.map(lambda xs: m_eval(*xs), (head, keys[:n_full]))) * eval_chunk
        if n_val > n_full * eval_chunk:
            tail = jax.tree_util.tree_map(lambda a: a[n_full * eval_chunk :], data)
            total = total + m_eval(tail, keys[n_full]) * (n_val - n_full * eval_chunk)
        return total / n_val

    return eval_graphdef, params, rest, opt_state, run_epoch, evaluate


def fit(
    key: jax.Array,
    model: nnx.Module,
    loss_fn: Callable[[nnx.Module, Any], jax.Array],
    train_data,
    val_data,
    *,
    optimizer: optax.GradientTransformation | None = None,
    batch_size: int = 1024,
    max_epochs: int = 100,
    patience: int = 5,
    min_delta: float = 0.0,
    progress: bool = True,
    desc: str = "train",
    checkpoint=None,
    run_id: str = "",
    stochastic: bool = False,
    step_fn: Callable | None = None,
    keep: str = "best",
    max_abs_loss: float = float("inf"),
    keep_initial: bool = False,
) -> tuple[nnx.Module, TrainHistory]:
    """Train ``model`` by minimizing ``loss_fn`` with early stopping on the validation loss.

    One function despite its length: the jitted epoch loop, resuming from a checkpoint and early stopping share
    one loop state (parameters, optimizer state, key, best epoch, patience count, history) that a checkpoint saves
    and restores as a whole; the parts that stand alone are helpers already (compilation, argument checks).

    Args:
        key: PRNG key for the shuffling (and the losses' keys with ``stochastic``).
        model: NNX module (not modified; a trained copy is returned).
        loss_fn: ``(model, batch) -> scalar`` mean loss of a minibatch; ``batch`` has the structure
            of ``train_data`` with a leading dimension ``batch_size``.
        train_data: pytree of arrays sharing the first dimension ``n_train``.
        val_data: same structure, ``n_val`` samples (evaluated in eval mode).
        optimizer: optax transformation (default ``optax.adam(1e-3)``).
        batch_size: minibatch size; the last incomplete batch of each shuffled epoch is dropped.
        max_epochs: upper bound on epochs.
        patience: stop after this many epochs without a validation improvement larger than
            ``min_delta``; the parameters of the best epoch are returned.
        progress: show a tqdm bar.
        desc: label of the bar.
        checkpoint: a :class:`lss_jax.engine.checkpoint.Checkpointer`: the loop state (parameters, optimizer
            state, key, best epoch, history) is saved every ``checkpoint.every`` epochs and at the end,
            and an existing checkpoint of the same run is resumed. Epoch ``e`` depends only on the state
            after epoch ``e - 1``, so a resumed run ends with bitwise the same parameters on the same
            machine as an uninterrupted one.
        run_id: settings that ``loss_fn``/``optimizer`` close over (e.g. the learning rate), mixed into
            the checkpoint's fingerprint together with the data, initial parameters, key and loop settings.
        stochastic: ``loss_fn`` also takes a PRNG key, first: ``(key, model, batch) -> scalar``.
            Training steps get fresh keys; every validation uses the same keys, so that validation
            losses of different epochs compare like with like.
        step_fn: a custom training step ``(key, graphdef, params, rest, opt_state, batch) -> (params, rest,
            opt_state, loss)`` instead of one ``optimizer`` step on the gradient of ``loss_fn``
            (``optimizer`` then only needs ``init(params)``; ``loss_fn`` still gives the validation loss).
        keep: ``"best"``: early stopping, the parameters of the best validation epoch are returned;
            ``"last"``: ``max_epochs`` epochs, the final parameters (for adversarial training, whose
            validation loss does not rank generators); ``patience`` is then ignored.
        max_abs_loss: a training loss whose absolute value exceeds this counts as diverged.
        keep_initial: with ``keep="best"``, the initial parameters are a candidate too (validated before the first
            epoch; ``best_epoch = -1`` when no epoch beats them): training can only improve on a good start.

    Returns:
        ``(trained_model, TrainHistory)``.

    Example:
        >>> x = np.linspace(-1, 1, 64, dtype=np.float32)[:, None]
        >>> loss_fn = lambda model, batch: jnp.mean((model(batch[0]) - batch[1]) ** 2)
        >>> model, history = fit(jax.random.key(0), nnx.Linear(1, 1, rngs=nnx.Rngs(0)), loss_fn, (x, 2 * x),
        ...                      (x, 2 * x), optimizer=optax.adam(0.1), batch_size=16, max_epochs=3, progress=False)
        >>> history.epochs_run, history.val_loss[-1] < history.val_loss[0]
        (3, True)
    """
    n_train, n_val = _n_items(train_data), _n_items(val_data)
    _check_loop_settings(n_train, batch_size, max_epochs, patience, keep)
    optimizer = optax.adam(1e-3) if optimizer is None else optimizer
    val_key = jax.random.fold_in(key, 0x7FFFFFFF)  # fixed over epochs and resumes
    eval_graphdef, params, rest, opt_state, run_epoch, evaluate = _compiled_loop(
        model, loss_fn, optimizer, step_fn, stochastic=stochastic, n_train=n_train, n_val=n_val,
        batch_size=batch_size, val_key=val_key)

    train_data = jax.tree_util.tree_map(jnp.asarray, train_data)
    val_data = jax.tree_util.tree_map(jnp.asarray, val_data)
    train_hist, val_hist = [], []
    best = (float(evaluate(params, rest, val_data)) if keep_initial else np.inf, params, rest, -1)
    waited, stopped, first_epoch, done = 0, False, 0, False
    if checkpoint is not None:
        from lss_jax.engine.checkpoint import fingerprint

        run_id = fingerprint(run_id, desc, batch_size, max_epochs, patience, min_delta, stochastic, keep,
                             step_fn is not None, train_data, val_data, params, rest, jax.random.key_data(key),
                             *(["keep_initial"] if keep_initial else []))
        state = {"params": params, "rest": rest, "opt_state": opt_state, "key": key, "best": (params, rest)}
        loaded = checkpoint.load(state, fingerprint=run_id)
        if loaded is not None:
            state, meta = loaded
            params, rest, opt_state, key = state["params"], state["rest"], state["opt_state"], state["key"]
            ex = meta["extra"]
            train_hist, val_hist, waited, stopped = ex["train_loss"], ex["val_loss"], ex["waited"], ex["stopped"]
            best = (ex["best_val"], *state["best"], ex["best_epoch"])
            first_epoch, done = meta["step"] + 1, meta["done"]

    def save_checkpoint(epoch, final):
        checkpoint.save(
            {"params": params, "rest": rest, "opt_state": opt_state, "key": key, "best": best[1:3]}, step=epoch,
            fingerprint=run_id, done=final,
            extra={"train_loss": train_hist, "val_loss": val_hist, "waited": waited, "stopped": stopped,
                   "best_val": best[0], "best_epoch": best[3]},
        )

    saved_epoch = first_epoch - 1 if first_epoch > 0 else None  # the checkpoint a resumed run started from

    start = time.perf_counter()
    with progress_bar(total=max_epochs, initial=first_epoch, desc=desc, unit="epoch",
                      disable=not progress or done) as bar:
        for epoch in range(first_epoch, max_epochs if not done else first_epoch):
            key, sub = jax.random.split(key)
            params, rest, opt_state, train_loss = run_epoch(params, rest, opt_state, train_data, sub)
            val_loss = float(evaluate(params, rest, val_data))
            train_loss = float(train_loss)
            if not (np.isfinite(train_loss) and np.isfinite(val_loss)) or abs(train_loss) > max_abs_loss:
                kept = (f"; the last good checkpoint (epoch {saved_epoch}) is kept in {checkpoint.directory}"
                        if checkpoint is not None and saved_epoch is not None else "")
                raise FloatingPointError(
                    f"{desc}: training diverged at epoch {epoch} (loss {train_loss:.4g} train, {val_loss:.4g} "
                    f"validation){kept}; lower the learning rate or check the data for outliers, and retrain."
                )
            train_hist.append(train_loss)
            val_hist.append(val_loss)
            bar.update(1)
            bar.set_postfix(train=f"{train_loss:.4g}", val=f"{val_loss:.4g}")
            if val_loss < best[0] - min_delta:
                best, waited = (val_loss, params, rest, epoch), 0
            else:
                waited += 1
                stopped = keep == "best" and waited >= patience
            final = stopped or epoch == max_epochs - 1
            if checkpoint is not None and (final or checkpoint.due(epoch)):
                save_checkpoint(epoch, final)
                saved_epoch = epoch
            if stopped:
                break
    if keep == "best":
        _, params, rest, best_epoch = best
    else:
        best_epoch = best[3]
    trained = nnx.merge(eval_graphdef, params, rest)
    history = TrainHistory(train_hist, val_hist, best_epoch, len(train_hist), time.perf_counter() - start, stopped)
    return trained, history
