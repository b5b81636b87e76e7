"""Generation at scale: chunking, resume after SIGKILL, sharding over devices and processes, export."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import mdtraj as md
import numpy as np
import pytest

from lss_jax.cli import main
from lss_jax.config import DecoderConfig, EncoderConfig, PropagatorConfig
from lss_jax.datasets import load_alanine_dipeptide
from lss_jax.generation.simulate import export_trajectory, generate_to_directory, load_generated
from lss_jax.model.facade import LSS

TINY = dict(lag=2, encoder=EncoderConfig(latent_dim=2, epochs=2), propagator=PropagatorConfig(epochs=2),
            decoder=DecoderConfig(iterations=20), seed=3)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model():
    return LSS(**TINY).fit(load_alanine_dipeptide("train", stride=10), progress=False)


@pytest.fixture(scope="module")
def model_dir(model, tmp_path_factory):
    return model.save(tmp_path_factory.mktemp("model") / "model")


def _run(model, out, chunk_steps, **kw):
    kw = dict(dict(n_trajectories=5, n_steps=24, save_every=2), **kw)
    generate_to_directory(jax.random.key(7), model, out, chunk_steps=chunk_steps, progress=False, **kw)
    return load_generated(out)


def test_output_is_bitwise_independent_of_chunk_size_and_equals_in_memory_generate(model, tmp_path):
    runs = [_run(model, tmp_path / f"c{c}", c) for c in (2, 6, 24)]
    for other in runs[1:]:
        np.testing.assert_array_equal(other.latent, runs[0].latent)
        np.testing.assert_array_equal(other.xyz, runs[0].xyz)
    traj, latent = model.generate(jax.random.key(7), 5, 24, save_every=2, return_latent=True, chunk_steps=10,
                                  progress=False)
    np.testing.assert_array_equal(latent, runs[0].latent)
    np.testing.assert_array_equal(traj.xyz, runs[0].trajectory().xyz)
    np.testing.assert_allclose(traj.time[:12], np.arange(1, 13) * 2 * model.lag_time)
    assert runs[0].latent.shape == (5, 12, 2) and runs[0].xyz.shape == (5, 12, 10, 3)
    # a chunk holds what it says: chunk k alone is frames 3k..3k+2 of the full run (6 steps, every 2nd saved)
    assert json.loads((tmp_path / "c6" / "generation.json").read_text())["n_chunks"] == 4
    for name in ("latent", "xyz"):
        chunks = sorted((tmp_path / "c6").glob(f"{name}-*.npy"))
        assert len(chunks) == 4
        for k, chunk in enumerate(chunks):
            np.testing.assert_array_equal(np.load(chunk), getattr(runs[0], name)[:, 3 * k:3 * k + 3])


def test_a_frame_decodes_bitwise_the_same_in_any_number_of_frames(model):
    """More frames than one decode block (4096) against a few: XLA rounds some batched reductions differently
    at different batch sizes, so the decoder must run one fixed shape (this failed with 2048 vs 8192 rows)."""
    u = np.random.default_rng(0).uniform(size=(3, 3000, 2)).astype(np.float32)
    key = jax.random.key(5)
    many = model.decode_unit(key, u, progress=False)
    few = model.decode_unit(key, u[1:2, 100:110], trajectory_ids=[1], first_frame=100, progress=False)
    np.testing.assert_array_equal(few, many[1:2, 100:110])


def test_processes_and_devices_split_the_same_trajectories(model, tmp_path):
    full = _run(model, tmp_path / "one", 6)
    parts = tmp_path / "multi"
    for p in range(3):
        generate_to_directory(jax.random.key(7), model, parts, 5, 24, save_every=2, chunk_steps=6, progress=False,
                              process_index=p, process_count=3)
    joined = load_generated(parts)
    np.testing.assert_array_equal(joined.latent, full.latent)
    np.testing.assert_array_equal(joined.xyz, full.xyz)


def test_resume_after_corrupted_or_missing_chunk_and_settings_mismatch(model, tmp_path):
    ref = _run(model, tmp_path / "ref", 6)
    out = tmp_path / "run"
    _run(model, out, 6)
    np.save(out / "xyz-000002.npy", np.zeros((5, 3, 10, 3), np.float32))  # a chunk damaged after the fact
    (out / "carry-000003.npy").unlink()
    with pytest.raises(ValueError, match="checksum"):
        load_generated(out)
    again = _run(model, out, 6)  # regenerates chunks 2 and 3 only
    np.testing.assert_array_equal(again.xyz, ref.xyz)
    with pytest.raises(ValueError, match="different settings.*n_steps"):
        _run(model, out, 6, n_steps=30)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an lss_jax generation directory"):
        _run(model, tmp_path / "other", 6)


def test_cli_generate_resumes_after_sigkill_with_identical_output(model_dir, tmp_path):
    args = ["--model", str(model_dir), "--n-traj", "40", "--n-steps", "400", "--chunk-steps", "10", "--seed", "2"]
    env = dict(os.environ, LSS_JAX_NO_PROGRESS="1")
    cmd = [sys.executable, "-m", "lss_jax", "generate", *args, "--out", str(tmp_path / "killed.dcd")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    manifest = tmp_path / ".killed.dcd.parts" / "generation.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if manifest.is_file() and len(json.loads(manifest.read_text())["chunks"]) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "generation finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_before = len(json.loads(manifest.read_text())["chunks"])
    assert 3 <= n_before < 40 and not (tmp_path / "killed.dcd").exists()
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "continued after" in rerun.stdout
    assert main(["generate", *args, "--out", str(tmp_path / "clean.dcd"), "--no-progress"]) == 0
    top = str(tmp_path / "clean.pdb")
    killed, clean = md.load(str(tmp_path / "killed.dcd"), top=top), md.load(str(tmp_path / "clean.dcd"), top=top)
    assert killed.n_frames == clean.n_frames == 40 * 400
    np.testing.assert_array_equal(killed.xyz, clean.xyz)  # both files store the same float32 numbers
    np.testing.assert_array_equal(np.load(tmp_path / "killed.latent.npy"), np.load(tmp_path / "clean.latent.npy"))
    assert not (tmp_path / ".killed.dcd.parts").exists()


@pytest.mark.parametrize("suffix", [".xtc", ".dcd", ".pdb"])
def test_export_formats_match_the_generated_coordinates(model, tmp_path, suffix):
    gen = _run(model, tmp_path / "gen", 6)
    out = tmp_path / f"lss{suffix}"
    written = export_trajectory(tmp_path / "gen", out, progress=False)
    assert written == [out, *([tmp_path / "lss.pdb"] if suffix != ".pdb" else []), tmp_path / "lss.latent.npy"]
    back = md.load(str(out), top=str(tmp_path / "gen" / "topology.pdb"))
    # file precision: xtc 1e-3 nm, dcd float32 in Angstrom, pdb 1e-3 Angstrom
    np.testing.assert_allclose(back.xyz, gen.xyz.reshape(-1, 10, 3), atol={".xtc": 6e-4, ".dcd": 1e-6, ".pdb": 6e-5}[suffix])


def test_sharded_rollout_and_generation_equal_single_device(model_dir, tmp_path):
    """Four host devices (XLA flag, so in a fresh process): the same numbers as one device."""
    script = f"""
import jax, numpy as np
from lss_jax import LSS
from lss_jax.generation.simulate import generate_to_directory, load_generated
assert len(jax.devices()) == 4, jax.devices()
model = LSS.load({str(model_dir)!r})
runs = []
for name, devices in (("one", jax.devices()[:1]), ("four", jax.devices())):
    generate_to_directory(jax.random.key(3), model, {str(tmp_path)!r} + "/" + name, 7, 30, chunk_steps=10,
                          devices=devices, progress=False)
    runs.append(load_generated({str(tmp_path)!r} + "/" + name))
np.testing.assert_array_equal(runs[0].latent, runs[1].latent)
np.testing.assert_array_equal(runs[0].xyz, runs[1].xyz)
print("OK", runs[0].latent.shape)
"""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK (7, 30, 2)" in result.stdout


def test_decoding_on_two_host_devices_equals_one_device(model_dir):
    """Blocks decoded in turn on two host devices (a fresh process for the XLA flag), several blocks at once: the
    same bits as one device, and no deadlock (benchmarks/perf/decode_hang.py: jaxlib 0.10.2 hung here while the
    decoder made its Kabsch SVD in one call over a whole block)."""
    script = f"""
import jax, numpy as np
from lss_jax import LSS
assert len(jax.devices()) == 2, jax.devices()
model = LSS.load({str(model_dir)!r})
u = np.random.default_rng(0).uniform(size=(6, 3000, model.latent_dim)).astype(np.float32)
one = model.decode_unit(jax.random.key(5), u, progress=False)
two = model.decode_unit(jax.random.key(5), u, progress=False, devices=jax.devices())
np.testing.assert_array_equal(one, two)
print("OK", two.shape)
"""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK (6, 3000, 10, 3)" in result.stdout


def test_cli_generate_directory_and_report_reads_it(model_dir, tmp_path, capsys):
    out = tmp_path / "gen"
    assert main(["generate", "--model", str(model_dir), "--n-traj", "4", "--n-steps", "10", "--out", str(out),
                 "--no-progress"]) == 0
    assert "generated 4 trajectories x 10 frames" in capsys.readouterr().out
    gen = load_generated(out)
    assert gen.xyz.shape == (4, 10, 10, 3) and (out / "lss-jax-generate.toml").is_file()
    assert main(["generate", "--model", str(model_dir), "--n-traj", "4", "--n-steps", "10", "--out", str(out),
                 "--no-progress"]) == 0  # complete already: nothing to do
    assert "continued after 1 complete chunk" in capsys.readouterr().out


def test_cli_host_devices_shard_the_rollout_over_cpu_cores_with_the_same_numbers(model_dir, tmp_path):
    """`generate --host-devices 2` (fresh processes: the flag must come before JAX starts) gives two CPU devices and
    the same frames as one device; a count that contradicts XLA_FLAGS is refused."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | {"JAX_PLATFORMS": "cpu"}
    outs = {}
    for n in (None, 2):
        out = tmp_path / f"gen{n}"
        cmd = [sys.executable, "-m", "lss_jax", "generate", "--model", str(model_dir), "--n-traj", "5", "--n-steps", "12",
               "--out", str(out), "--no-progress", *(["--host-devices", str(n)] if n else [])]
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"devices          {n or 1} x cpu" in result.stdout
        outs[n] = load_generated(out)
    np.testing.assert_array_equal(outs[None].latent, outs[2].latent)
    np.testing.assert_array_equal(outs[None].xyz, outs[2].xyz)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=3"
    result = subprocess.run([sys.executable, "-m", "lss_jax", "generate", "--model", str(model_dir), "--n-traj", "5",
                             "--n-steps", "12", "--out", str(tmp_path / "bad"), "--host-devices", "2"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "JAX already has 3 host device(s)" in result.stderr


def test_cli_distributed_two_processes_on_this_host_equal_one_process(model_dir, tmp_path):
    """`generate --distributed` in two real processes (coordinator on localhost, JAX_NUM_PROCESSES/JAX_PROCESS_ID
    as docs/generation.md says): the joined shares are the single-process run bit for bit."""
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    base = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | {
        "JAX_PLATFORMS": "cpu", "JAX_COORDINATOR_ADDRESS": f"localhost:{port}", "JAX_NUM_PROCESSES": "2"}
    cmd = [sys.executable, "-m", "lss_jax", "generate", "--model", str(model_dir), "--n-traj", "5", "--n-steps", "12",
           "--out", str(tmp_path / "multi"), "--distributed", "--no-progress"]
    procs = [subprocess.Popen(cmd, env=base | {"JAX_PROCESS_ID": str(i)}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert "process 1 of 2" in outs[0][0] and "process 2 of 2" in outs[1][0]
    assert main(["generate", "--model", str(model_dir), "--n-traj", "5", "--n-steps", "12", "--out",
                 str(tmp_path / "single"), "--no-progress"]) == 0
    multi, single = load_generated(tmp_path / "multi"), load_generated(tmp_path / "single")
    np.testing.assert_array_equal(multi.latent, single.latent)
    np.testing.assert_array_equal(multi.xyz, single.xyz)
    bad = subprocess.run(cmd, env=base | {"JAX_PROCESS_ID": "first"}, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "JAX_PROCESS_ID must be a non-negative integer" in bad.stderr
