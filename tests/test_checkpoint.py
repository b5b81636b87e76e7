"""Training checkpoints: bitwise resume (in process and after SIGKILL), refusal of foreign or corrupted
checkpoints, and a diverging GAN that stops with its last good checkpoint kept."""

import json
import os
import signal
import subprocess
import sys
import time

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lss_jax.config import PropagatorConfig
from lss_jax.decoder import fit_wgan
from lss_jax.engine.checkpoint import Checkpointer, CheckpointError
from lss_jax.propagator import fit_mdn


def _unit_traj(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 1), np.float32)
    for t in range(1, n):
        x[t] = 0.9 * x[t - 1] + 0.1 * rng.normal()
    return (x - x.min()) / (x.max() - x.min())


MDN_KW = dict(lag=1, config=PropagatorConfig(n_components=3, hidden=(16,), batch_size=128, epochs=8, patience=8),
              progress=False)


class Killed(Exception):
    pass


def _die_after_saves(monkeypatch, n):
    """Make the process 'die' (raise Killed) right after the n-th checkpoint is written."""
    save = Checkpointer.save
    calls = {"n": 0}

    def save_then_die(self, *args, **kwargs):
        save(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == n:
            raise Killed

    monkeypatch.setattr(Checkpointer, "save", save_then_die)
    return save


def _params(model):
    from flax import nnx

    return nnx.to_pure_dict(nnx.state(model))


def test_mdn_training_resumed_after_interruption_is_bitwise_identical(tmp_path, monkeypatch):
    u = _unit_traj()
    reference, ref_hist = fit_mdn(jax.random.key(1), [u], **MDN_KW)
    save = _die_after_saves(monkeypatch, 3)  # the process dies right after the checkpoint of epoch 2
    with pytest.raises(Killed):
        fit_mdn(jax.random.key(1), [u], checkpoint=Checkpointer(tmp_path, "mdn"), **MDN_KW)
    monkeypatch.setattr(Checkpointer, "save", save)
    assert json.loads((tmp_path / "mdn.json").read_text())["step"] == 2
    resumed, hist = fit_mdn(jax.random.key(1), [u], checkpoint=Checkpointer(tmp_path, "mdn"), **MDN_KW)
    chex.assert_trees_all_equal(_params(resumed), _params(reference))
    assert hist.val_loss == ref_hist.val_loss and hist.best_epoch == ref_hist.best_epoch
    # a finished checkpoint returns the trained model without training again
    again, _ = fit_mdn(jax.random.key(1), [u], checkpoint=Checkpointer(tmp_path, "mdn"), **MDN_KW)
    chex.assert_trees_all_equal(_params(again), _params(reference))


def test_foreign_corrupted_or_unrequested_checkpoints_are_refused(tmp_path):
    u = _unit_traj()
    fit_mdn(jax.random.key(1), [u], checkpoint=Checkpointer(tmp_path, "mdn"), **MDN_KW)
    with pytest.raises(CheckpointError, match="other settings or data"):
        fit_mdn(jax.random.key(2), [u], checkpoint=Checkpointer(tmp_path, "mdn"), **MDN_KW)
    with pytest.raises(CheckpointError, match="other settings or data"):
        fit_mdn(jax.random.key(1), [u[:-10]], checkpoint=Checkpointer(tmp_path, "mdn"), **MDN_KW)
    with pytest.raises(CheckpointError, match="--resume"):
        fit_mdn(jax.random.key(1), [u], checkpoint=Checkpointer(tmp_path, "mdn", resume=False), **MDN_KW)
    with open(tmp_path / json.loads((tmp_path / "mdn.json").read_text())["file"], "r+b") as f:  # flip one byte
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(CheckpointError, match="checksum"):
        fit_mdn(jax.random.key(1), [u], checkpoint=Checkpointer(tmp_path, "mdn"), **MDN_KW)


def test_a_save_killed_before_its_json_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    """The window SIGKILL found in CI: the new step's arrays written, its JSON not yet. The previous step's JSON
    must still name a complete file with its checksum (before the fix the arrays went to one file name, so the old
    JSON's checksum no longer matched and the run could not be resumed)."""
    import lss_jax.engine.checkpoint as checkpoint_module

    ckpt = Checkpointer(tmp_path, "s")
    first = {"w": jnp.arange(3.0), "key": jax.random.key(1)}
    ckpt.save(first, step=0, fingerprint="f")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed between the arrays and the JSON")

    monkeypatch.setattr(checkpoint_module._io, "write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save({"w": jnp.arange(3.0) + 10, "key": jax.random.key(2)}, step=1, fingerprint="f")
    monkeypatch.undo()
    restored, meta = ckpt.load(first, fingerprint="f")
    assert meta["step"] == 0
    chex.assert_trees_all_equal(restored["w"], first["w"])
    ckpt.save({"w": jnp.arange(3.0) + 20, "key": jax.random.key(3)}, step=2, fingerprint="f")
    assert sorted(p.name for p in tmp_path.glob("s.*npz")) == ["s.2.npz"]  # older steps' files are gone
    assert ckpt.load(first, fingerprint="f")[1]["step"] == 2


def test_diverging_gan_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path):
    x = jax.random.normal(jax.random.key(0), (512, 6))
    c = jax.random.uniform(jax.random.key(1), (512, 1))
    # 460 training frames, n_critic = 2, batch 64: 2 iterations (4 critic updates) per epoch. Healthy at first;
    # from critic update 180 on (epoch 45) a learning rate that blows the critic up.
    schedule = optax.piecewise_constant_schedule(1e-3, {180: 5e4})
    with pytest.raises(FloatingPointError) as err:
        fit_wgan(jax.random.key(2), (x[:460], c[:460]), (x[460:], c[460:]), noise_dim=4, hidden=(32, 32), n_critic=2,
                 batch_size=64, n_iterations=400, learning_rate=schedule, progress=False,
                 checkpoint=Checkpointer(tmp_path, "decoder"))
    import re

    found = re.search(r"diverged at epoch (\d+) .*last good checkpoint \(epoch (\d+)\) is kept", str(err.value))
    assert found, str(err.value)
    diverged, kept = map(int, found.groups())
    assert diverged >= 45 and kept == diverged - 1
    meta = json.loads((tmp_path / "decoder.json").read_text())
    assert meta["step"] == kept and not meta["done"]
    losses = meta["extra"]["train_loss"]
    assert len(losses) == kept + 1 and all(np.isfinite(losses)) and max(map(abs, losses)) < 1e4


def test_cli_train_killed_and_resumed_gives_the_same_model(tmp_path):
    """SIGKILL during decoder training, `--resume`: the saved weights equal an uninterrupted run's."""
    from lss_jax.datasets import load_alanine_dipeptide

    load_alanine_dipeptide("train", stride=10)[:1500].save_dcd(str(tmp_path / "md.dcd"))
    top = str(tmp_path.parent / "top.pdb")
    load_alanine_dipeptide("train")[0].save_pdb(top)
    (tmp_path / "cfg.toml").write_text(
        "latent_dim = 2\n[encoder]\nepochs = 3\n[propagator]\nepochs = 3\n[decoder]\niterations = 3000\n"
        "hidden = [32, 32]\nbatch_size = 64\nn_critic = 2\n")
    base = ["train", "--traj", str(tmp_path / "md.dcd"), "--top", top, "--lag", "2", "--config",
            str(tmp_path / "cfg.toml"), "--no-progress"]
    env = dict(os.environ, LSS_JAX_NO_PROGRESS="1")
    cmd = [sys.executable, "-m", "lss_jax", *base, "--out", str(tmp_path / "killed")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    meta = tmp_path / "killed.checkpoints" / "decoder.json"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if meta.is_file() and json.loads(meta.read_text())["step"] >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = json.loads(meta.read_text())["step"]
    assert 1 <= step < 11 and not (tmp_path / "killed").exists()
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 1 and "--resume" in rerun.stderr  # no silent restart over a checkpoint
    rerun = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert not (tmp_path / "killed.checkpoints").exists()
    clean = subprocess.run([*cmd[:-1], str(tmp_path / "clean")], env=env, capture_output=True, text=True, timeout=600)
    assert clean.returncode == 0, clean.stderr[-2000:]
    for name in ("encoder", "propagator", "decoder"):
        a, b = np.load(tmp_path / "killed" / f"{name}.npz"), np.load(tmp_path / "clean" / f"{name}.npz")
        assert sorted(a.files) == sorted(b.files)
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{name}/{k}")
    np.testing.assert_array_equal(np.load(tmp_path / "killed" / "arrays.npz")["latent_low"],
                                  np.load(tmp_path / "clean" / "arrays.npz")["latent_low"])


def test_checkpointer_round_trips_keys_and_checks_shapes(tmp_path):
    state = {"w": jnp.ones((2, 3)), "key": jax.random.key(5), "step": jnp.int32(4)}
    ckpt = Checkpointer(tmp_path, "s")
    ckpt.save(state, step=0, fingerprint="f")
    restored, _ = ckpt.load(state, fingerprint="f")
    assert jnp.array_equal(jax.random.key_data(restored["key"]), jax.random.key_data(state["key"]))
    with pytest.raises(CheckpointError, match="shape"):
        ckpt.load({"w": jnp.ones((3, 3)), "key": jax.random.key(5), "step": jnp.int32(4)}, fingerprint="f")


@pytest.mark.parametrize("kind", ["flow", "wgan"])
def test_decoder_training_resumed_after_interruption_is_bitwise_identical(tmp_path, monkeypatch, kind):
    """Both decoders train on lss_jax.engine.train.fit (the GAN through its step_fn): a run killed after a checkpoint and
    resumed ends with bitwise the parameters of an uninterrupted run."""
    from lss_jax.decoder import DecoderConfig, fit_feature_model

    x = np.asarray(jax.random.normal(jax.random.key(0), (600, 4)))
    c = np.asarray(jax.random.uniform(jax.random.key(1), (600, 2)))
    data = dict(train_data=(x[:500], c[:500]), val_data=(x[500:], c[500:]))
    config = DecoderConfig(kind=kind, hidden=(16,), batch_size=32, epochs=6, noise_dim=4, n_critic=2)
    reference, _, ref_hist = fit_feature_model(jax.random.key(2), **data, config=config, progress=False)
    save = _die_after_saves(monkeypatch, 3)
    with pytest.raises(Killed):
        fit_feature_model(jax.random.key(2), **data, config=config, progress=False,
                          checkpoint=Checkpointer(tmp_path, "decoder"))
    monkeypatch.setattr(Checkpointer, "save", save)
    resumed, _, hist = fit_feature_model(jax.random.key(2), **data, config=config, progress=False,
                                         checkpoint=Checkpointer(tmp_path, "decoder"))
    chex.assert_trees_all_equal(_params(resumed), _params(reference))
    assert hist.val_loss == ref_hist.val_loss
