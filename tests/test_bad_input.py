"""Bad input on the command line: a one-line error that says what is wrong and how to fix it, a non-zero exit
code, no traceback (unless --debug), and no partial output. The table in docs/errors.md ("Errors and what they mean")."""

import json
import shutil

import numpy as np
import pytest

from lss_jax.cli import main
from lss_jax.config import DecoderConfig, EncoderConfig, PropagatorConfig
from lss_jax.datasets import alanine_dipeptide_files, load_alanine_dipeptide
from lss_jax.model.facade import LSS

TINY = dict(lag=2, encoder=EncoderConfig(latent_dim=2, epochs=1, hidden=(16,)),
            propagator=PropagatorConfig(epochs=1, hidden=(16,), n_components=2),
            decoder=DecoderConfig(iterations=5, hidden=(16,)), seed=3)

CONFIGS = {
    "unknown-key.toml": "n_componets = 3\n",
    "lag-ten.toml": 'lag = "ten"\n',
    "val-fraction-str.toml": '[data]\nval_fraction = "big"\n',
    "hidden-str.toml": '[encoder]\nhidden = ["16"]\n',
    "unknown-table-key.toml": "[propagator]\nn_componets = 3\n",
    "n-traj-float.toml": "n_traj = 1.5\n",
    "latent-only-str.toml": 'latent_only = "yes"\n',
    "invalid.toml": "lag = \n",
    "empty-selection.toml": '[data]\natom_selection = "name XYZ"\n',
    "bad-selection.toml": '[data]\natom_selection = "name CA and and"\n',
    "val-fraction-big.toml": "[data]\nval_fraction = 0.7\n",
    "unknown-decoder.toml": '[decoder]\nkind = "gan"\n',
}


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    """Input files: good, broken and bad trajectories, configs, and a tiny model with broken copies."""
    root = tmp_path_factory.mktemp("inputs")
    traj = load_alanine_dipeptide("train")[:300]
    traj.save(str(root / "ok.xtc"))
    traj[:2].save(str(root / "short.xtc"))  # not longer than lag 2
    traj[:20].save(str(root / "few.xtc"))  # 2 validation frames: no validation pair at lag 2
    nan = traj[:20]
    xyz = nan.xyz.copy()
    xyz[5, 3, 1] = np.nan
    nan.xyz = xyz
    nan.save_dcd(str(root / "nan.dcd"))
    traj[0].atom_slice(range(10)).save_pdb(str(root / "ten-atoms.pdb"))
    traj[:10].save_pdb(str(root / "ok.pdb"))
    (root / "garbage.xtc").write_bytes(np.random.default_rng(0).bytes(4000))
    (root / "dir.xtc").mkdir()
    (root / "traj.xyzzy").write_text("1 2 3\n")
    (root / "gen.xtc").write_bytes(b"")  # a generated file without its .latent.npy
    for name, text in CONFIGS.items():
        (root / name).write_text(text)
    model = LSS(**TINY).fit(traj, progress=False).save(root / "model")
    incomplete = root / "model-incomplete"
    shutil.copytree(model, incomplete)
    (incomplete / "decoder.npz").unlink()
    truncated = root / "model-truncated"
    shutil.copytree(model, truncated)
    data = (truncated / "propagator.npz").read_bytes()
    (truncated / "propagator.npz").write_bytes(data[: len(data) // 2])
    newer = root / "model-newer"
    shutil.copytree(model, newer)
    meta = json.loads((newer / "lss.json").read_text())
    meta["format_version"] += 1
    (newer / "lss.json").write_text(json.dumps(meta))
    return root


TRAIN = "train --top {top} --lag 2 --out {out}/model --no-progress"
GENERATE = "generate --model {d}/model --n-traj 2 --n-steps 3 --out {out}/gen.xtc"
REPORT = "report --md {d}/ok.xtc --top {top} --lss {d}/gen.xtc --out {out}/report"

# (case, command line, exit code, fragment of the one-line message)
CASES = [
    ("nan-coordinates", TRAIN + " --traj {d}/nan.dcd", 1, "nan.dcd contains NaN or Inf coordinates in 1 frame(s)"),
    ("atom-count-mismatch", "train --traj {d}/ok.xtc --top {d}/ten-atoms.pdb --lag 2 --out {out}/model", 1,
     "does not match the atoms of topology"),
    ("trajectories-of-different-systems", "train --traj {d}/ok.pdb {d}/ten-atoms.pdb --lag 2 --out {out}/model", 1,
     "ten-atoms.pdb has 10 atoms but"),
    ("missing-trajectory", TRAIN + " --traj {d}/missing.xtc", 1, "trajectory file not found"),
    ("missing-topology", "train --traj {d}/ok.xtc --top {d}/missing.pdb --lag 2 --out {out}/model", 1,
     "topology file not found"),
    ("missing-relative-paths", "train --traj missing.xtc --top x.pdb --lag 2 --out m", 1, "not found"),
    ("missing-without-topology", "train --traj a.xyzzy --lag 2 --out m", 1, "not found"),
    ("trajectory-is-a-directory", TRAIN + " --traj {d}/dir.xtc", 1, "is a directory, not a trajectory file"),
    ("garbage-trajectory", TRAIN + " --traj {d}/garbage.xtc", 1, "could not read"),
    ("unsupported-extension", TRAIN + " --traj {d}/traj.xyzzy", 1, "unsupported trajectory format '.xyzzy'"),
    ("lag-not-shorter-than-trajectory", "train --traj {d}/ok.xtc --top {top} --lag 300 --out {out}/model", 1,
     "--lag 300 is not shorter than the trajectories"),
    ("too-few-lagged-pairs", TRAIN + " --traj {d}/few.xtc", 1, "too few lagged pairs at lag 2"),
    ("latent-dim-above-features", TRAIN + " --traj {d}/ok.xtc --latent-dim 60", 1,
     "latent dimension 60 (latent_dim) exceeds the number of features (49)"),
    ("one-trajectory-shorter-than-lag", TRAIN + " --traj {d}/ok.xtc {d}/short.xtc", 1,
     "short.xtc has 2 frames (after --stride 1), not more than --lag 2"),
    ("empty-atom-selection", TRAIN + " --traj {d}/ok.xtc --config {d}/empty-selection.toml", 1,
     "atom_selection 'name XYZ' matches no atom"),
    ("invalid-atom-selection", TRAIN + " --traj {d}/ok.xtc --config {d}/bad-selection.toml", 1,
     "atom_selection 'name CA and and' is not a valid mdtraj selection (found ' ' (at char 11)"),
    ("incomplete-model-generate", "generate --model {d}/model-incomplete --n-traj 2 --n-steps 3 --out {out}/g.xtc", 1,
     "is missing decoder.npz; the model directory is incomplete. Retrain"),
    ("truncated-model-report", REPORT + " --model {d}/model-truncated", 1, "propagator.npz does not match its checksum"),
    ("newer-model-format", "generate --model {d}/model-newer --n-traj 2 --n-steps 3 --out {out}/g.xtc", 1,
     "Upgrade lss_jax"),
    ("missing-model", "generate --model nowhere --n-traj 2 --n-steps 3 --out a.xtc", 1,
     "model directory not found: nowhere; give the directory that `lss-jax train --out` wrote."),
    ("report-without-latent-file", REPORT + " --model {d}/model", 1, "gen.latent.npy not found"),
    ("config-unknown-key", TRAIN + " --traj {d}/ok.xtc --config {d}/unknown-key.toml", 1,
     "unknown key(s) 'n_componets' (did you mean 'propagator.n_components'?) in config file"),
    ("config-unknown-table-key", TRAIN + " --traj {d}/ok.xtc --config {d}/unknown-table-key.toml", 1,
     "unknown key(s) 'n_componets' (did you mean 'n_components'?) in [propagator] of config file"),
    ("config-lag-string", "train --traj {d}/ok.xtc --out {out}/model --config {d}/lag-ten.toml", 1,
     'lag-ten.toml: lag must be a positive integer or "auto", got \'ten\' (a string)'),
    ("config-lss-field-string", TRAIN + " --traj {d}/ok.xtc --config {d}/val-fraction-str.toml", 1,
     "data.val_fraction must be a number, got 'big' (a string)"),
    ("config-list-of-strings", TRAIN + " --traj {d}/ok.xtc --config {d}/hidden-str.toml", 1,
     "encoder.hidden must be an array of integers"),
    ("config-value-out-of-range", TRAIN + " --traj {d}/ok.xtc --config {d}/val-fraction-big.toml", 1,
     "val-fraction-big.toml: val_fraction must be in (0, 0.5), got 0.7"),
    ("config-unknown-decoder", TRAIN + " --traj {d}/ok.xtc --config {d}/unknown-decoder.toml", 1,
     "unknown-decoder.toml: decoder must be 'flow' (conditional flow matching), 'wgan' (the paper's cWGAN-GP), "
     "'knn' (retrieval of training frames), 'chain' (flow matching on a chain's Cartesian coordinates) or 'meanflow' "
     "(a flow trained to be sampled in a few steps), got 'gan'"),
    ("config-n-traj-float", GENERATE + " --config {d}/n-traj-float.toml", 1,
     "n-traj-float.toml: n_traj must be a positive integer, got 1.5 (a float)"),
    ("config-flag-string", GENERATE + " --config {d}/latent-only-str.toml", 1,
     "latent_only must be true or false, got 'yes'"),
    ("config-invalid-toml", TRAIN + " --traj {d}/ok.xtc --config {d}/invalid.toml", 1, "invalid.toml is not valid TOML"),
    ("config-missing", GENERATE + " --config {d}/nowhere.toml", 1, "config file not found"),
    ("n-traj-zero", "generate --model {d}/model --n-traj 0 --n-steps 3 --out {out}/g.xtc", 2,
     "argument --n-traj: must be a positive integer, got 0"),
    ("n-traj-negative", "generate --model {d}/model --n-traj -5 --n-steps 3 --out {out}/g.xtc", 2,
     "must be a positive integer, got -5"),
    ("n-steps-not-a-number", "generate --model {d}/model --n-traj 2 --n-steps ten --out {out}/g.xtc", 2,
     "argument --n-steps: expected a positive integer, got 'ten'"),
    ("lag-zero", TRAIN.replace("--lag 2", "--lag 0") + " --traj {d}/ok.xtc", 2, "must be a positive integer, got 0"),
    ("train-out-in-missing-directory", "train --traj {d}/ok.xtc --top {top} --lag 2 --out {out}/nowhere/model", 1,
     "does not exist; create it first"),
    ("generate-out-in-missing-directory", "generate --model {d}/model --n-traj 2 --n-steps 3 --out {out}/no/g.xtc", 1,
     "does not exist; create it first"),
    ("lagscan-missing-trajectory", "lagscan --traj {d}/missing.xtc --lags 1 --out {out}/its", 1,
     "trajectory file not found"),
    ("lagscan-lag-too-long", "lagscan --traj {d}/few.xtc --top {top} --lags 1 30 --out {out}/its", 1,
     "--lags 30 is not shorter than the trajectories"),
    ("missing-required-option", "train --traj {d}/ok.xtc", 2, "the following arguments are required: --lag, --out"),
    ("adapt-beta-out-of-range", "adapt --model {d}/model --traj {d}/ok.xtc --top {top} --n-seeds 2 --beta 2 "
     "--out {out}/adapt", 1, "--beta must be in [0, 1]"),
    ("adapt-four-well-beta-out-of-range", "adapt-four-well --quick --beta -1 --out {out}/fw", 1,
     "beta must be in [0, 1]"),
]


@pytest.mark.parametrize("args,code,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_error_with_no_output(args, code, message, d, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)  # relative outputs land here too
    argv = args.format(d=d, out=out, top=alanine_dipeptide_files()["pdb"]).split()
    assert main(argv) == code
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert message in lines[0] and "Traceback" not in captured.err
    assert lines[0].startswith("lss-jax")
    assert sorted(out.iterdir()) == []  # no partial output, no resolved-options file


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="trajectory file not found"):
        main(["--debug", "train", "--traj", "missing.xtc", "--lag", "2", "--out", "m"])
    (tmp_path / "bad.toml").write_text("n_traj = 1.5\n")
    with pytest.raises(ValueError, match="n_traj must be a positive integer"):
        main(["--debug", "generate", "--config", "bad.toml", "--model", "m", "--n-steps", "1", "--out", "x.npy"])
    assert sorted(tmp_path.iterdir()) == [tmp_path / "bad.toml"]


def test_failed_report_leaves_an_existing_directory_as_it_was(d, tmp_path, capsys):
    report = tmp_path / "report"
    report.mkdir()
    (report / "notes.txt").write_text("keep me")
    argv = ["report", "--model", str(d / "model-truncated"), "--md", str(d / "ok.xtc"), "--top",
            str(alanine_dipeptide_files()["pdb"]), "--lss", str(d / "gen.xtc"), "--out", str(report)]
    assert main(argv) == 1
    assert "checksum" in capsys.readouterr().err
    assert sorted(p.name for p in report.iterdir()) == ["notes.txt"]
