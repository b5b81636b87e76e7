"""The generic training loop: it learns, stops early with the best parameters, does not recompile."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from lss_jax import fit


def _mse(model, batch):
    x, y = batch
    return jnp.mean((model(x) - y) ** 2)


def _data(seed, n):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]]) + 0.3 + 0.01 * rng.normal(size=(n, 1))).astype(np.float32)
    return x, y


def test_fit_recovers_linear_map(key):
    model, hist = fit(
        key, nnx.Linear(3, 1, rngs=nnx.Rngs(0)), _mse, _data(0, 4096), _data(1, 1000),
        optimizer=optax.adam(3e-2), batch_size=128, max_epochs=30, patience=30)
    np.testing.assert_allclose(np.asarray(model.kernel[...])[:, 0], [1.0, -2.0, 0.5], atol=0.02)
    assert hist.val_loss[-1] < 1e-3 and hist.epochs_run == 30


def test_early_stopping_returns_best_epoch(key):
    # validation targets are the negated training targets: the better the model fits the training
    # data, the worse it does on validation, so the best epoch is the first one.
    x_val, y_val = _data(1, 500)
    model, hist = fit(
        key, nnx.Linear(3, 1, rngs=nnx.Rngs(0)), _mse, _data(0, 1024), (x_val, -y_val),
        optimizer=optax.adam(3e-2), batch_size=128, max_epochs=50, patience=3)
    assert hist.stopped_early and hist.best_epoch == 0 and hist.epochs_run == 4
    assert hist.val_loss[0] == min(hist.val_loss)
    np.testing.assert_allclose(float(_mse(model, (x_val, -y_val))), hist.val_loss[0], rtol=1e-5)


def test_fit_compiles_once(key, compile_counter):
    args = (_mse, _data(0, 1024), _data(1, 300))
    fit(key, nnx.Linear(3, 1, rngs=nnx.Rngs(0)), *args, batch_size=128, max_epochs=1)
    with compile_counter.watch() as counter:
        fit(key, nnx.Linear(3, 1, rngs=nnx.Rngs(1)), *args, batch_size=128, max_epochs=5, patience=5)
    # a fresh fit builds new jitted closures (epoch step, evaluation); epochs after the first reuse them
    first = counter.count
    with compile_counter.watch() as counter:
        fit(key, nnx.Linear(3, 1, rngs=nnx.Rngs(1)), *args, batch_size=128, max_epochs=10, patience=10)
    assert counter.count == first


def test_fit_rejects_oversized_batch(key):
    with pytest.raises(ValueError, match="batch_size"):
        fit(key, nnx.Linear(3, 1, rngs=nnx.Rngs(0)), _mse, _data(0, 100), _data(1, 10), batch_size=1000)


def test_stochastic_loss_gets_fresh_keys_in_training_and_fixed_keys_in_validation(key):
    # loss = mean((w x - y)^2) + noise(key): with a zero learning rate the parameters never move, so the
    # training loss changes between epochs only through its keys, and the validation loss not at all
    def noisy(k, model, batch):
        x, y = batch
        return jnp.mean((model(x) - y) ** 2) + jax.random.normal(k, ())

    model, hist = fit(key, nnx.Linear(3, 1, rngs=nnx.Rngs(0)), noisy, _data(0, 512), _data(1, 100),
                      optimizer=optax.sgd(0.0), batch_size=64, max_epochs=4, patience=4, stochastic=True)
    assert len(set(hist.train_loss)) == 4
    assert len(set(hist.val_loss)) == 1


def test_keep_last_trains_all_epochs_and_returns_the_final_parameters(key):
    x_val, y_val = _data(1, 500)
    args = (nnx.Linear(3, 1, rngs=nnx.Rngs(0)), _mse, _data(0, 1024), (x_val, -y_val))
    model, hist = fit(key, *args, optimizer=optax.adam(3e-2), batch_size=128, max_epochs=6, patience=2,
                      keep="last")
    assert hist.epochs_run == 6 and not hist.stopped_early and hist.best_epoch == 0
    np.testing.assert_allclose(float(_mse(model, (x_val, -y_val))), hist.val_loss[-1], rtol=1e-5)


def test_custom_step_fn_replaces_the_gradient_step(key):
    # a step that sets the bias to the batch mean of y: after any epoch the bias is a minibatch mean
    def step_fn(k, graphdef, params, rest, opt_state, batch):
        model = nnx.merge(graphdef, params, rest)
        model.bias[...] = jnp.mean(batch[1], axis=0)
        _, params, rest = nnx.split(model, nnx.Param, ...)
        return params, rest, opt_state, jnp.float32(0.0)

    x, y = _data(0, 1024)
    model, hist = fit(key, nnx.Linear(3, 1, rngs=nnx.Rngs(0)), _mse, (x, y), _data(1, 100), batch_size=1024,
                      max_epochs=1, step_fn=step_fn)
    np.testing.assert_allclose(np.asarray(model.bias[...]), y.mean(0), rtol=1e-5)
    assert hist.train_loss == [0.0]
