"""Failure modes that used to lose data or kill the process (docs/failure-modes.md has the table): two writers
of one output, a request beyond memory or disk, data that do not move, a full disk, a model from a newer
lss_jax. Each test names its row of the table."""

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import jax
import mdtraj as md
import numpy as np
import pytest

from lss_jax.cli import main
from lss_jax.config import DecoderConfig, EncoderConfig, LSSConfig, PropagatorConfig, check_training_data
from lss_jax.data.featurize import feature_names, featurize
from lss_jax.datasets import alanine_dipeptide_files, load_alanine_dipeptide
from lss_jax.engine import io as _io
from lss_jax.generation.simulate import (
    check_generation_fits,
    estimate_generation,
    generate_to_directory,
    load_generated,
)
from lss_jax.model.facade import LSS
from lss_jax.model.io import ModelFormatError

TINY = dict(lag=2, encoder=EncoderConfig(latent_dim=2, epochs=1, hidden=(16,)),
            propagator=PropagatorConfig(epochs=1, hidden=(16,), n_components=2),
            decoder=DecoderConfig(iterations=5, hidden=(16,)), seed=3)
# TINY as train's --config (without lag and latent_dim: options of train)
TINY_TOML = ("seed = 3\n[encoder]\nepochs = 1\nhidden = [16]\n[propagator]\nepochs = 1\nhidden = [16]\n"
             "n_components = 2\n[decoder]\niterations = 5\nhidden = [16]\n")
TOP = str(alanine_dipeptide_files()["pdb"])
IO_MODULE = Path(_io.__file__)

# A second process that takes the lock of an output with lss_jax's own helper (loaded from its file, so that the
# process starts in a fraction of a second: lss_jax.engine.io needs only numpy) and holds it until told to finish.
HOLDER = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("lock_io", sys.argv[1])
io = importlib.util.module_from_spec(spec)
spec.loader.exec_module(io)
with io.exclusive_output(sys.argv[2]):
    print("locked", flush=True)
    sys.stdin.readline()
"""


@contextlib.contextmanager
def lock_held_by_another_process(path):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(IO_MODULE), str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        with contextlib.suppress(OSError):  # (a test may have killed it)
            proc.communicate("done\n", timeout=60)
        proc.wait()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny model and trajectories: 300 frames that move, and 300 that do not."""
    root = tmp_path_factory.mktemp("failure-modes")
    traj = load_alanine_dipeptide("train")[:300]
    traj.save(str(root / "ok.xtc"))
    md.join([traj[0]] * 300).save(str(root / "constant.xtc"))  # one structure written 300 times
    md.join([traj[i] for i in range(0, 250, 50)] * 60).save(str(root / "repeated.xtc"))  # 5 structures, 60 times each
    model = LSS(**TINY).fit(traj, progress=False)
    model.save(root / "model")
    return root, model


def one_line(capsys) -> str:
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


# ---------------------------------------------------------------------------------------------- concurrent writers
def loads_recorded(monkeypatch) -> list:
    """Every model load and generation started from here on, recorded (not run): a refusal "at once" leaves it
    empty, whatever the machine's speed."""
    started = []
    monkeypatch.setattr(LSS, "load", classmethod(lambda cls, *a, **k: started.append("LSS.load")))
    monkeypatch.setattr("lss_jax.generation.simulate.generate_to_directory",
                        lambda *a, **k: started.append("generate_to_directory"))
    return started


def test_second_writer_is_refused_at_once_naming_the_first(data, tmp_path, capsys, monkeypatch):
    """Rows "two generate runs into one --out", "two train runs into one --out", "--distributed with the same
    process id": the second writer stops before writing a byte, and names the first (pid, host, start time)."""
    root, model = data
    first = f"is being written by another lss_jax process (pid {{}} on host {socket.gethostname()}, started "
    gen = tmp_path / "gen"
    with lock_held_by_another_process(gen) as proc:
        with monkeypatch.context() as patch:
            started = loads_recorded(patch)
            assert main(["generate", "--model", str(root / "model"), "--n-traj", "64", "--n-steps", "3000", "--out",
                         str(gen), "--seed", "2", "--no-progress"]) == 1
        assert started == []  # refused before the model was even loaded
        line = one_line(capsys)
        assert first.format(proc.pid) in line and "wait for it to finish, or give another --out" in line
        assert _io.lock_holder(gen)["pid"] == proc.pid
        with pytest.raises(_io.OutputLockedError, match=f"pid {proc.pid}"):  # the library refuses too
            generate_to_directory(jax.random.key(0), model, gen, 2, 4, progress=False)
    with lock_held_by_another_process(tmp_path / "g.xtc") as proc:
        assert main(["generate", "--model", str(root / "model"), "--n-traj", "2", "--n-steps", "4", "--out",
                     str(tmp_path / "g.xtc")]) == 1
        assert first.format(proc.pid) in one_line(capsys)
    with lock_held_by_another_process(tmp_path / "model") as proc:  # guards the model and model.checkpoints/
        assert main(["train", "--traj", str(root / "ok.xtc"), "--top", TOP, "--lag", "2", "--out",
                     str(tmp_path / "model"), "--no-progress"]) == 1
        assert first.format(proc.pid) in one_line(capsys)
    (tmp_path / "multi").mkdir()
    with lock_held_by_another_process(tmp_path / "multi" / "process-000") as proc:  # same JAX_PROCESS_ID twice
        with pytest.raises(_io.OutputLockedError, match=f"generation directory .*process-000 .*pid {proc.pid}"):
            generate_to_directory(jax.random.key(0), model, tmp_path / "multi", 4, 4, process_index=0,
                                  process_count=2, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["multi"]  # nothing written, no lock file left
    assert sorted(p.name for p in (tmp_path / "multi").iterdir()) == []


def test_reader_refuses_a_generation_that_is_being_written(data, tmp_path, capsys):
    """Row "reading a generation while it is written": load_generated and report --lss refuse it."""
    root, model = data
    gen = tmp_path / "gen"
    generate_to_directory(jax.random.key(1), model, gen, 2, 4, progress=False)
    with lock_held_by_another_process(gen) as proc:
        with pytest.raises(ValueError, match=f"is being written by another lss_jax process \\(pid {proc.pid}"):
            load_generated(gen)
    assert load_generated(gen).latent.shape == (2, 4, 2)  # the writer is gone: readable again
    for lss in (gen, tmp_path / "g.xtc"):  # report --lss: a generation directory, or a file and its .latent.npy
        with lock_held_by_another_process(lss) as proc:
            assert main(["report", "--model", str(root / "model"), "--md", str(root / "ok.xtc"), "--top", TOP,
                         "--lss", str(lss), "--out", str(tmp_path / "report")]) == 1
            assert f"is being written by another lss_jax process (pid {proc.pid}" in one_line(capsys)
    assert not (tmp_path / "report").exists()


def test_stale_lock_of_a_killed_writer_is_taken_over_with_a_note(data, tmp_path, capsys):
    """Row "a writer killed with SIGKILL": the kernel drops its lock; the next run takes over, names the dead
    process, and finishes the output."""
    root, model = data
    gen = tmp_path / "gen"
    with lock_held_by_another_process(gen) as proc:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert json.loads(_io.lock_path(gen).read_text())["pid"] == proc.pid  # the file stays, naming the dead writer
    with pytest.warns(_io.StaleLockWarning, match=f"left by pid {proc.pid} on host .*which no longer runs"):
        generate_to_directory(jax.random.key(1), model, gen, 2, 4, progress=False)
    assert not _io.lock_path(gen).exists()
    assert load_generated(gen).latent.shape == (2, 4, 2)
    with lock_held_by_another_process(tmp_path / "g.xtc") as proc:  # the command line says it in one line
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert main(["generate", "--model", str(root / "model"), "--n-traj", "2", "--n-steps", "4", "--out",
                 str(tmp_path / "g.xtc"), "--no-progress"]) == 0
    notes = capsys.readouterr().err.splitlines()
    assert len(notes) == 1 and notes[0].startswith(f"lss-jax generate: note: took over the lock of {tmp_path / 'g.xtc'} "
                                                   f"left by pid {proc.pid} on host")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.latent.npy", "g.lss-jax-generate.toml", "g.pdb", "g.xtc",
                                                          "gen"]


def test_nested_locks_of_one_process_and_release_on_error(tmp_path):
    """The CLI locks --out and the library function it calls locks it again: same process, no conflict; an
    exception releases the lock and removes its file."""
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="boom"):
        with _io.exclusive_output(out):
            with _io.exclusive_output(out):
                assert _io.lock_holder(out) is None  # held by this very process
            assert _io.lock_path(out).is_file()  # the inner block does not release the outer one
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_a_link_to_an_output_shares_its_lock_and_a_filesystem_without_locks_still_runs(tmp_path, monkeypatch):
    """Rows "the same output through a symbolic link" and "a filesystem without locks"."""
    import fcntl

    (tmp_path / "out").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "out")
    with lock_held_by_another_process(tmp_path / "out") as proc:
        with pytest.raises(_io.OutputLockedError, match=f"pid {proc.pid}"):
            with _io.exclusive_output(tmp_path / "link"):
                pass

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.warns(_io.UnlockedOutputWarning, match="does not support file locks"):
        with _io.exclusive_output(tmp_path / "out") as lock:
            assert lock is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "out"]


# ------------------------------------------------------------------------------------------- beyond memory or disk
def test_generate_refuses_a_request_beyond_memory_before_loading_the_model(data, tmp_path, capsys, monkeypatch):
    """Row "a request far beyond memory": refused at once with exit 2 (an option this machine cannot meet), naming
    the option that makes it fit."""
    root, _ = data
    big = ["generate", "--model", str(root / "model"), "--n-traj", "1000000000", "--n-steps", "1000000000"]
    started = loads_recorded(monkeypatch)
    assert main([*big, "--out", str(tmp_path / "g.xtc")]) == 2
    assert started == []
    line = one_line(capsys)
    assert "generating 1,000,000,000 trajectories x 1,000,000,000 frames into one file would need about" in line
    assert "of memory, more than the" in line and "write a directory instead (--out without an extension)" in line
    assert main([*big, "--out", str(tmp_path / "gen")]) == 2
    assert started == []
    line = one_line(capsys)
    assert "into a directory would need about" in line and "generate at most" in line and "(--n-traj " in line
    assert list(tmp_path.iterdir()) == []
    main(["generate", "--model", str(root / "model"), "--n-traj", "2", "--n-steps", "3", "--out",
          str(tmp_path / "small"), "--no-progress"])  # the control: a request that fits is loaded
    assert started[:1] == ["LSS.load"]


def test_generate_refuses_what_the_disk_cannot_hold(data, tmp_path, capsys, monkeypatch):
    """Row "output larger than the free disk space": refused before generating, with the options that shrink it."""
    root, _ = data
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=100_000))
    assert main(["generate", "--model", str(root / "model"), "--n-traj", "64", "--n-steps", "3000", "--out",
                 str(tmp_path / "gen")]) == 2
    line = one_line(capsys)
    # 64 x 3000 frames x (2 latent + 10 atoms x 3) float32 + start and carry points
    assert "would write about 24.6 MB, more than the 100 kB free on the disk of" in line
    assert "--save-every 246" in line and "--latent-only" in line
    assert list(tmp_path.iterdir()) == []


def test_disk_estimate_is_what_generation_writes(data, tmp_path):
    """The disk estimate against the arrays a generation actually writes (npy payloads, headers aside)."""
    _, model = data
    generate_to_directory(jax.random.key(2), model, tmp_path / "gen", 3, 12, save_every=2, chunk_steps=4,
                          progress=False)
    payload = sum(np.load(f).nbytes for f in (tmp_path / "gen").glob("*.npy"))
    assert payload == estimate_generation(3, 12, latent_dim=2, n_atoms=10, save_every=2, chunk_steps=4).disk
    size = check_generation_fits(3, 12, tmp_path / "gen2", latent_dim=2, n_atoms=10, save_every=2, chunk_steps=4)
    assert size.disk == payload


# ------------------------------------------------------------------------------------------ data that do not move
@pytest.mark.parametrize("name,message", [
    ("constant", "constant.xtc does not move: its 300 frames are all identical (every one of its 49 features has "
                 "zero variance)"),
    ("repeated", "the training data hold only 5 distinct frames among 300 (each one repeated 60 times on average), "
                 "fewer than a training batch of 268 lagged pairs"),
])
def test_train_refuses_data_that_do_not_move_and_leaves_nothing(data, tmp_path, capsys, name, message):
    """Rows "trajectory of identical frames", "a few frames repeated": refused before training, nothing left."""
    root, _ = data
    assert main(["train", "--traj", str(root / f"{name}.xtc"), "--top", TOP, "--lag", "2", "--out",
                 str(tmp_path / "model"), "--no-progress"]) == 1
    assert message in one_line(capsys)
    assert list(tmp_path.iterdir()) == []  # no model, no model.checkpoints/, no lock file


def test_degenerate_features_are_named(data):
    """Rows "features with zero variance", "a rigid body", "latent dimension beyond the data": on real features."""
    traj = load_alanine_dipeptide("train")[:300]
    names = feature_names(traj.topology)
    config = LSSConfig(lag=2, encoder=EncoderConfig(latent_dim=2))
    rigid = md.join([traj[0]] * 300)
    rigid.xyz = rigid.xyz + np.linspace(0, 1, 300, dtype=np.float32)[:, None, None]  # moves, but only as a whole
    with pytest.raises(ValueError, match="the training data do not move: all 49 features have zero variance over "
                                         "the 300 frames \\(sin phi:"):
        check_training_data([featurize(rigid)], config, feature_names=names)
    feats = featurize(traj)
    feats[:, [0, 5]] = feats[0, [0, 5]]  # two features frozen
    warnings = check_training_data([feats], config, feature_names=names)
    assert warnings == [f"2 of 49 features have zero variance over the training data and carry no information: "
                        f"{names[0]}, {names[5]}; they are kept (standardized to 0). Use other feature types "
                        "(torsions, distances) or trajectories in which these move."]
    t = np.random.default_rng(0).normal(size=(300, 1)).astype(np.float32)
    one_direction = t * np.arange(1, 50, dtype=np.float32)  # 49 features, every one a multiple of one number
    with pytest.raises(ValueError, match=r"latent dimension 2 \(latent_dim\) is more than the data can support: the "
                                         r"49 moving features vary along only 1 independent direction"):
        check_training_data([one_direction], config)
    assert check_training_data([one_direction], LSSConfig(lag=2, encoder=EncoderConfig(latent_dim=1))) == []


def test_failed_train_keeps_checkpoints_only_when_resumable(data, tmp_path, capsys, monkeypatch):
    """Row "training fails after a checkpoint was written": kept, and the message says --resume continues it;
    a failure before any checkpoint leaves no checkpoint directory."""
    import lss_jax.model

    root, _ = data
    argv = ["train", "--traj", str(root / "ok.xtc"), "--top", TOP, "--lag", "2", "--out", str(tmp_path / "model"),
            "--no-progress", "--latent-dim", "2", "--config", str(tmp_path / "tiny.toml")]
    (tmp_path / "tiny.toml").write_text(TINY_TOML)

    def fail(*args, **kwargs):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(lss_jax.model, "fit_srv", fail)
    assert main(argv) == 1
    assert one_line(capsys) == "lss-jax train: error: simulated failure"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.toml"]
    monkeypatch.undo()
    monkeypatch.setattr(lss_jax.model, "fit_mdn", fail)  # after the encoder's checkpoints
    assert main(argv) == 1
    line = one_line(capsys)
    assert f"simulated failure The training checkpoints in {tmp_path / 'model.checkpoints'} are kept: rerun the " \
           "same command with --resume to continue from them" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.checkpoints", "tiny.toml"]
    assert (tmp_path / "model.checkpoints" / "encoder.json").is_file()


# ------------------------------------------------------------------------------------------------------ disk full
def test_disk_full_during_generation_keeps_chunks_and_a_rerun_completes_to_the_same_bytes(data, tmp_path, capsys,
                                                                                        monkeypatch):
    """Row "disk full while generating": the third chunk fails with ENOSPC; the two before stay valid, the error
    is one line, and the rerun continues to files byte-identical to an uninterrupted run."""
    root, _ = data
    save = np.save

    def full_disk(file, array, *args, **kwargs):  # the disk fills up halfway through the third chunk's coordinates
        if "xyz-000002" in str(getattr(file, "name", file)):
            file.write(b"\x93NUMPY partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        save(file, array, *args, **kwargs)

    argv = ["generate", "--model", str(root / "model"), "--n-traj", "3", "--n-steps", "12", "--chunk-steps", "2",
            "--seed", "4", "--no-progress", "--out"]
    monkeypatch.setattr(np, "save", full_disk)
    assert main([*argv, str(tmp_path / "gen")]) == 1
    assert ("the disk is full (No space left on device) while writing chunk 3 of 6 to "
            f"{tmp_path / 'gen'}; the 2 complete chunk(s) before it are kept") in one_line(capsys)
    manifest = json.loads((tmp_path / "gen" / "generation.json").read_text())
    assert [c["index"] for c in manifest["chunks"]] == [0, 1] and not manifest["complete"]
    assert not [p for p in (tmp_path / "gen").iterdir() if p.name.startswith(".")]  # no temporary file left
    monkeypatch.undo()
    assert main([*argv, str(tmp_path / "gen")]) == 0
    assert "continued after 2 complete chunk(s)" in capsys.readouterr().out
    assert main([*argv, str(tmp_path / "clean")]) == 0
    files = sorted(p.name for p in (tmp_path / "clean").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "gen").iterdir())
    for name in files:
        if name != "lss-jax-generate.toml":  # the resolved options name their --out
            assert (tmp_path / "gen" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name


def test_file_size_limit_while_writing_the_file_in_a_real_process(data, tmp_path):
    """Row "disk full while writing the single file": a real `lss-jax generate` under RLIMIT_FSIZE (writes beyond
    the limit raise EFBIG) fails on the final file; its chunks are kept and a rerun writes the same frames."""
    root, _ = data
    limit = 40_000  # more than a chunk (4 x 20 frames x 10 atoms: 9.6 kB), less than the whole PDB file (~350 kB)
    # the limit and the ignored SIGXFSZ survive exec (no preexec_fn: this process runs JAX's threads)
    limited = ("import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
               f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
               "os.execv(sys.executable, [sys.executable, '-m', 'lss_jax', *sys.argv[1:]])")
    argv = ["generate", "--model", str(root / "model"), "--n-traj", "4", "--n-steps", "100", "--chunk-steps", "20",
            "--seed", "5", "--no-progress", "--out"]
    env = dict(os.environ, LSS_JAX_NO_PROGRESS="1")
    result = subprocess.run([sys.executable, "-c", limited, *argv, str(tmp_path / "g.pdb")], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("lss-jax generate: error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert f"could not write {tmp_path / 'g.pdb'} (File too large); the generated chunks are kept in" in errors[0]
    assert not (tmp_path / "g.pdb").exists()
    assert len(json.loads((tmp_path / ".g.pdb.parts" / "generation.json").read_text())["chunks"]) == 5
    assert main([*argv, str(tmp_path / "g.pdb")]) == 0
    assert main([*argv, str(tmp_path / "clean.pdb")]) == 0
    np.testing.assert_array_equal(md.load(str(tmp_path / "g.pdb")).xyz, md.load(str(tmp_path / "clean.pdb")).xyz)
    assert (tmp_path / "g.latent.npy").read_bytes() == (tmp_path / "clean.latent.npy").read_bytes()
    assert not (tmp_path / ".g.pdb.parts").exists()


# --------------------------------------------------------------------------------------- a model from a newer lss_jax
@pytest.mark.parametrize("change,message", [
    ({"format": 999}, "was written by a newer lss_jax (it records version 0.1.0) in format 999, which this lss_jax "
                      "(0.1.0) cannot read (it reads model formats 1 to 3). Upgrade lss_jax"),
    ({"format_version": 4, "lss_jax_version": "0.3.0"},
     "was written by lss_jax 0.3.0 in model format 4, which this lss_jax (0.1.0) cannot read (it reads model formats "
     "1 to 3). Upgrade lss_jax: lss_jax 0.3.0 or newer reads it (pip install -U 'lss_jax>=0.3.0')."),
    ({"format": "someone.else"}, "is not an lss_jax model (its lss.json has format 'someone.else', not 'lss_jax.LSS')"),
])
def test_model_from_a_newer_lss_jax_says_which_version_reads_it(data, tmp_path, capsys, change, message):
    """Rows "model from a newer lss_jax" and "not an lss_jax model"."""
    root, _ = data
    model = tmp_path / "model"
    shutil.copytree(root / "model", model)
    meta = json.loads((model / "lss.json").read_text())
    (model / "lss.json").write_text(json.dumps(meta | change))
    with pytest.raises(ModelFormatError) as err:
        LSS.load(model)
    assert message in str(err.value)
    assert main(["generate", "--model", str(model), "--n-traj", "2", "--n-steps", "4", "--out",
                 str(tmp_path / "g.xtc")]) == 1
    assert message in one_line(capsys)
