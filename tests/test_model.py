"""The fitted model as a value: fit_lss, the LSS facade, pytree behaviour, I/O, and the exported simulator."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import chex
import jax
import mdtraj as md
import numpy as np
import pytest

from lss_jax import LSS, LSSModel, fit_lss
from lss_jax.config import DataConfig, DecoderConfig, EncoderConfig, LSSConfig, PropagatorConfig
from lss_jax.datasets import load_alanine_dipeptide
from lss_jax.engine.io import sha256_file
from lss_jax.generation.simulate import generate_to_directory, load_generated
from lss_jax.model.io import load_model
from lss_jax.propagator.scaling import minmax_inverse

TINY = dict(lag=2, encoder=EncoderConfig(latent_dim=2, epochs=2), propagator=PropagatorConfig(epochs=2),
            decoder=DecoderConfig(iterations=20), seed=3)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data():
    return load_alanine_dipeptide("train", stride=10)


@pytest.fixture(scope="module")
def model(data):
    return fit_lss(jax.random.key(3), data, LSSConfig(**TINY), progress=False)


def test_the_facade_holds_what_fit_lss_returns(model, data):
    facade = LSS(**TINY).fit(data, progress=False)
    fetched = facade.fetch_model()
    assert isinstance(fetched, LSSModel)
    chex.assert_trees_all_equal(jax.tree_util.tree_leaves(fetched), jax.tree_util.tree_leaves(model))
    assert facade.latent_dim == model.latent_dim and facade.fingerprint() == model.fingerprint()
    with pytest.raises(RuntimeError, match="not fitted yet"):
        LSS(lag=2).encode(data)
    with pytest.raises(AttributeError, match="does not grow attributes"):
        facade.decoder = None


def test_model_is_an_immutable_pytree(model, data):
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.latent_dim = 3
    rebuilt = jax.tree_util.tree_map(lambda x: x, model)
    assert isinstance(rebuilt, LSSModel) and rebuilt.config == model.config
    chex.assert_trees_all_equal(jax.tree_util.tree_leaves(rebuilt), jax.tree_util.tree_leaves(model))
    # a model crosses jit as an argument (static metadata hashable, arrays traced)
    to_latent = jax.jit(lambda m, u: minmax_inverse(m.latent_scaler, u))
    u = np.full((4, 2), 0.5, np.float32)
    np.testing.assert_allclose(np.asarray(to_latent(model, u)), model.from_unit(u), rtol=1e-6)
    psi = model.encode(data[:20])
    np.testing.assert_array_equal(rebuilt.encode(data[:20]), psi)


def test_save_load_round_trip_is_the_same_model(model, tmp_path):
    loaded = load_model(model.save(tmp_path / "m"))
    chex.assert_trees_all_equal(jax.tree_util.tree_leaves(loaded), jax.tree_util.tree_leaves(model))
    assert loaded.config == model.config and loaded.info == model.info and loaded.fingerprint() == model.fingerprint()


def test_the_decode_block_is_the_backends_and_a_frames_bits_follow_only_it(model, monkeypatch):
    """Rows are decoded in blocks of 4096 on a CPU and of 65 536 on an accelerator (benchmarks/perf/decoding.py
    --blocks on an H200: 2.4x the frames/s of 4096). The default is that block: the same bits as naming it, whatever
    else is decoded with a frame; another block size may round differently, which is why the default is fixed per
    backend rather than grown with the request."""
    from lss_jax.decoder import default_decode_block

    assert default_decode_block() == 4096  # the tests run on a CPU
    u = np.random.default_rng(0).uniform(size=(2, 40, 2)).astype(np.float32)
    default = model.decode_unit(jax.random.key(1), u)
    np.testing.assert_array_equal(default, model.decode_unit(jax.random.key(1), u, chunk=4096))
    np.testing.assert_array_equal(default[1], model.decode_unit(jax.random.key(1), u[1], trajectory_ids=[1]))
    assert default_decode_block("gpu") == default_decode_block("tpu", 32) == 65_536
    # larger molecules: fewer rows (a power of two, at least 4096)
    assert [default_decode_block("gpu", n) for n in (33, 64, 128, 1000)] == [32_768, 16_384, 4096, 4096]
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert default_decode_block() == 65_536 and default_decode_block("cpu") == 4096


def test_a_flow_with_structural_states_saves_and_loads(tmp_path):
    """Every frame of the shipped run has the 17 alpha_L frames the default flow makes a state of."""
    model = fit_lss(jax.random.key(4), load_alanine_dipeptide("train"), LSSConfig(**TINY), progress=False)
    assert model.info["decoder"]["states"] == 2 and model.decoder.noise_dim == 32  # 31 features (9 bonds, 8 angles, 7 torsion pairs) + the state draw
    loaded = load_model(model.save(tmp_path / "m"))
    chex.assert_trees_all_equal(jax.tree_util.tree_leaves(loaded), jax.tree_util.tree_leaves(model))
    u = np.random.default_rng(0).uniform(size=(64, 2)).astype(np.float32)
    np.testing.assert_array_equal(loaded.decode_unit(jax.random.key(1), u), model.decode_unit(jax.random.key(1), u))
    # the rare state's anchors are the latent points of its frames its flow reproduces inside the support: every one
    # an alpha_L frame's (phi > 0), at most the 17, each reproduced at least half of the time
    classifier = model.decoder.network.classifier
    anchors, owners = np.asarray(classifier.anchors[...]), np.asarray(classifier.anchor_states[...])
    assert 1 <= len(anchors) <= 17 and anchors.shape[1] == 2 and len(set(owners.tolist())) == 1
    assert model.info["decoder"]["rare_state_anchors"] == len(anchors)
    share = model.decoder.network.anchor_support(jax.random.key(0), model.decoder.coordinates, model.decoder.support,
                                                 n_steps=model.decoder.flow_steps)
    assert np.all(share >= 0.5) or len(anchors) == 1
    train = load_alanine_dipeptide("train")
    u_train = model.to_unit(model.encode([train])[0])
    rows = [int(np.flatnonzero(np.all(u_train == a, axis=1))[0]) for a in anchors]
    assert np.all(md.compute_phi(train[rows])[1][:, 0] > 0)
    # a model saved before anchors existed loads with none (its rare state's flow given psi itself)
    saved = tmp_path / "m" / "decoder.npz"
    weights = {k: v for k, v in np.load(saved).items() if not k.startswith("classifier/anchor")}
    assert len(weights) == len(np.load(saved)) - 2
    np.savez(saved, **weights)
    meta = json.loads((tmp_path / "m" / "lss.json").read_text())
    meta["files"]["decoder.npz"] = sha256_file(saved)
    (tmp_path / "m" / "lss.json").write_text(json.dumps(meta))
    old = load_model(tmp_path / "m")
    assert old.decoder.network.classifier.anchors[...].shape == (0, 2)
    assert old.decode_unit(jax.random.key(1), u).shape == (64, 10, 3)


def test_a_distilled_flow_saves_loads_and_samples_in_one_evaluation(data, tmp_path):
    """decoder.distill_steps = 1: fit_lss distils the flow (states included) into a one-step student, which the
    saved model loads back as such and decodes bit for bit; the teacher's sampler is gone from the model."""
    config = LSSConfig(**{**TINY, "decoder": DecoderConfig(iterations=20, distill_steps=1)})
    model = fit_lss(jax.random.key(3), data, config, progress=False)
    assert (model.decoder.flow_steps, model.decoder.flow_solver) == (1, "euler")
    assert (model.info["decoder"]["sampler_steps"], model.info["decoder"]["distilled"]) == (1, True)
    loaded = load_model(model.save(tmp_path / "m"))
    assert (loaded.decoder.flow_steps, loaded.decoder.flow_solver) == (1, "euler")
    chex.assert_trees_all_equal(jax.tree_util.tree_leaves(loaded), jax.tree_util.tree_leaves(model))
    u = np.random.default_rng(0).uniform(size=(64, 2)).astype(np.float32)
    np.testing.assert_array_equal(loaded.decode_unit(jax.random.key(1), u), model.decode_unit(jax.random.key(1), u))


def test_exported_simulator_runs_without_lss_jax_and_gives_the_generated_frames(model, tmp_path):
    """`lss-jax export` + docs/examples/run_exported.py in a fresh process where lss_jax, flax and mdtraj cannot be
    imported: the decoded frames are bitwise those of generate_to_directory for the same seed."""
    _check_export(model, tmp_path)


def test_a_mean_flow_decoder_saves_loads_exports_and_samples_in_its_steps(tmp_path):
    """decoder.kind = "meanflow" (lss_jax.decoder.meanflow), states included: the saved model loads back with its
    sampler's step count and decodes bit for bit; one and two steps are different frames of the same addressed noise;
    the exported simulator gives the generated frames."""
    config = LSSConfig(**{**TINY, "decoder": DecoderConfig(kind="meanflow", iterations=20, flow_steps=1)})
    model = fit_lss(jax.random.key(4), load_alanine_dipeptide("train"), config, progress=False)
    assert model.decoder.kind == "meanflow" and model.decoder.flow_steps == 1
    assert model.info["decoder"]["states"] == 2  # the flow's torsion states (alpha_L a state of its own)
    loaded = load_model(model.save(tmp_path / "m"))
    assert (loaded.decoder.kind, loaded.decoder.flow_steps) == ("meanflow", 1)
    chex.assert_trees_all_equal(jax.tree_util.tree_leaves(loaded), jax.tree_util.tree_leaves(model))
    u = np.random.default_rng(0).uniform(size=(64, 2)).astype(np.float32)
    one = model.decode_unit(jax.random.key(1), u)
    np.testing.assert_array_equal(loaded.decode_unit(jax.random.key(1), u), one)
    two = model.replace(decoder=model.decoder.replace(flow_steps=2)).decode_unit(jax.random.key(1), u)
    assert np.all(np.isfinite(two)) and not np.array_equal(one, two)
    _check_export(model, tmp_path)


def _check_export(model, tmp_path):
    from lss_jax.cli import main

    model_dir = model.save(tmp_path / "model")
    sim = tmp_path / "sim.jaxexport"
    assert main(["export", "--model", str(model_dir), "--out", str(sim), "--chunk-steps", "7"]) == 0
    generate_to_directory(jax.random.key(5), model, tmp_path / "gen", 6, 30, progress=False)
    expected = load_generated(tmp_path / "gen")
    runner = f"""
import runpy, sys
class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("lss_jax", "flax", "mdtraj", "optax"):
            raise ImportError(name + " is not available to an exported simulator")
sys.meta_path.insert(0, Blocked())
sys.argv = ["run_exported.py", {str(sim)!r}, "--n-traj", "6", "--n-steps", "30", "--seed", "5",
            "--out", {str(tmp_path / "frames.npz")!r}]
runpy.run_path({str(REPO / "docs" / "examples" / "run_exported.py")!r}, run_name="__main__")
assert not any(m.split(".")[0] in ("lss_jax", "flax", "mdtraj") for m in sys.modules)
"""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", runner], env=env, capture_output=True, text=True, timeout=300,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    frames = np.load(tmp_path / "frames.npz")
    assert frames["xyz"].shape == (6, 30, len(model.atom_indices), 3)
    np.testing.assert_array_equal(frames["xyz"], expected.xyz)
    # the min-max inverse is one fused multiply-add away: equal to float32 rounding
    np.testing.assert_allclose(frames["latent"], expected.latent, rtol=1e-6, atol=1e-6)
    assert (tmp_path / "frames.pdb").read_text().startswith(("REMARK", "CRYST1", "MODEL", "ATOM"))


def test_cross_fitting_trains_the_encoder_and_the_propagator_on_different_frames(data, monkeypatch):
    """data.encoder_fraction < 1: the SRV sees the leading part of every trajectory, the MDN the latent points of the
    trailing part (as the fitted encoder maps them), and the decoder every frame."""
    import lss_jax.model as model_module

    seen = {}
    for name in ("fit_srv", "fit_mdn", "fit_decoder"):
        original = getattr(model_module, name)

        def spy(*args, _name=name, _original=original, **kwargs):
            seen[_name] = args
            return _original(*args, **kwargs)

        monkeypatch.setattr(model_module, name, spy)
    trajs = [data, data[:151]]
    model = fit_lss(jax.random.key(3), trajs, LSSConfig(**TINY, data=DataConfig(encoder_fraction=0.6)), progress=False)
    tails = [round(0.4 * t.n_frames) for t in trajs]
    heads = [t.n_frames - k for t, k in zip(trajs, tails)]
    assert [len(f) for f in seen["fit_srv"][1]] == heads
    prop_u = seen["fit_mdn"][1]
    assert [len(u) for u in prop_u] == tails
    for traj, head, u in zip(trajs, heads, prop_u):
        np.testing.assert_allclose(u, model.to_unit(model.encode(traj[head:])), atol=2e-5)
    assert [len(x) for x in seen["fit_decoder"][1]] == [t.n_frames for t in trajs]
    assert model.info["encoder_frames"] == sum(heads) and model.info["propagator_frames"] == sum(tails)
    for bad in (0.0, 1.5, True):
        with pytest.raises(ValueError, match="encoder_fraction must be in"):
            LSSConfig(**TINY, data=DataConfig(encoder_fraction=bad))
    from lss_jax.config import check_training_input

    with pytest.raises(ValueError, match="in the propagator's part.*encoder_fraction = 1"):
        check_training_input([200], LSSConfig(**{**TINY, "lag": 10}, data=DataConfig(encoder_fraction=0.9)))
    check_training_input([400], LSSConfig(**{**TINY, "lag": 10}, data=DataConfig(encoder_fraction=0.5)))
