"""Smoke tests of the command-line paths that no other test runs: `--version`, `demo` on its default system,
`generate --devices/--precision`, `export --platforms` (a flow with structural states and a cWGAN-GP decoder, each
checked against `generate` through docs/examples/run_exported.py), `train --checkpoint-every`, `report --train`,
and the omega/chi1 torsion features. (`four-well` runs through the CLI in tests/test_four_well.py.)

Two trained models serve all of them: the one `lss-jax demo --quick` writes (alanine dipeptide, the full shipped
run, so its flow decoder has structural states) and a tiny cWGAN-GP model from `lss-jax train` on a strided copy
of the shipped run written to tmp.
"""

import json
import runpy
import tomllib
from pathlib import Path

import jax
import mdtraj as md
import numpy as np
import pytest

import lss_jax
from lss_jax.cli import main
from lss_jax.data.featurize import FeatureSpec, feature_names, featurize
from lss_jax.datasets import alanine_dipeptide_files, load_alanine_dipeptide
from lss_jax.generation.simulate import load_generated
from lss_jax.model.facade import LSS

REPO = Path(__file__).resolve().parents[1]
# as tests/test_model.py's TINY, with 3 encoder and propagator epochs so that --checkpoint-every 2 skips one
TINY_TOML = "latent_dim = 2\nseed = 3\n[encoder]\nepochs = 3\n[propagator]\nepochs = 3\n[decoder]\niterations = 20\n"
N_TRAJ, N_STEPS, SEED = 3, 12, 7  # generate and the exported simulator draw the same 3 x 12 frames


def _generate(model_dir, out, *options):
    assert main(["generate", "--model", str(model_dir), "--n-traj", str(N_TRAJ), "--n-steps", str(N_STEPS),
                 "--seed", str(SEED), "--out", str(out), "--no-progress", *options]) == 0
    return load_generated(out)


# ---------------------------------------------------------------- the two models
@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`lss-jax demo --quick` on the default system (alanine dipeptide): its output directory."""
    out = tmp_path_factory.mktemp("demo") / "run"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`lss-jax train --checkpoint-every 2` with a cWGAN-GP decoder (from --config) on an xtc + pdb written to tmp:
    the model directory and every checkpoint save as (name, epoch, done)."""
    from lss_jax.engine.checkpoint import Checkpointer

    where = tmp_path_factory.mktemp("train")
    traj = load_alanine_dipeptide("train", stride=10)
    traj.save_xtc(str(where / "md.xtc"))
    traj[0].save_pdb(str(where / "md.pdb"))
    (where / "tiny.toml").write_text(TINY_TOML + 'kind = "wgan"\n')  # in [decoder]
    saves = []
    original = Checkpointer.save

    def spy(self, state, *, step, fingerprint, done=False, extra=None):
        saves.append((self.name, step, done))
        return original(self, state, step=step, fingerprint=fingerprint, done=done, extra=extra)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Checkpointer, "save", spy)
        code = main(["train", "--traj", str(where / "md.xtc"), "--top", str(where / "md.pdb"), "--lag", "2",
                     "--config", str(where / "tiny.toml"), "--checkpoint-every", "2", "--out", str(where / "model"),
                     "--no-progress"])
    assert code == 0
    return where / "model", saves


# ---------------------------------------------------------------- --version, demo
def test_version_prints_the_package_version(capsys):
    assert main(["--version"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == lss_jax.__version__ and printed


def test_demo_on_alanine_dipeptide_writes_the_model_the_frames_and_the_report(demo):
    heavy = md.load(str(alanine_dipeptide_files()["pdb"])).topology.select("not element H")
    assert len(heavy) == 10  # the decoded atoms: ACE CH3 C O, ALA N CA CB C O, NME N C
    metrics = json.loads((demo / "report" / "metrics.json").read_text())
    # --quick: 50 trajectories x 200 steps, validated against the independent shipped run (25 000 frames)
    assert metrics["n_lss_trajectories"] == 50 and metrics["n_lss_frames"] == 50 * 200
    assert metrics["n_md_frames"] == 25_000
    fe = metrics["free_energy_phi_psi"]  # only for a system with backbone torsions
    assert fe["n_bins"] > 0 and np.isfinite(fe["rmse_kT"]) and np.isfinite(fe["md_half_vs_half_rmse_kT"])
    assert "free_energy_phi_psi" in metrics["decoder"]["round_trip"]
    for pops in (metrics["decoder"]["round_trip"]["basin_populations"]["md"],
                 metrics["decoder"]["lss"]["basin_populations"]["generated"]):
        # alanine dipeptide in implicit solvent at 300 K: beta/PPII ~0.88, alpha_R ~0.12, alpha_L ~0.002 (the MD)
        assert pops["beta_ppii"] > pops["alpha_r"] > pops["alpha_l"] > 0
    assert "folding" not in metrics  # the Trp-cage analysis is not run on alanine dipeptide
    lss = md.load(str(demo / "lss.xtc"), top=str(demo / "lss.pdb"))
    assert lss.n_frames == 50 * 200 and lss.n_atoms == 10
    assert np.load(demo / "lss.latent.npy").shape == (50, 200, 2)
    model = LSS.load(demo / "model")
    assert model.latent_dim == 2 and model.config.lag == 5 and len(model.atom_indices) == 10
    decoder = model.fetch_model().decoder  # the default decoder: the flow itself, 10 Heun steps
    assert (decoder.kind, decoder.flow_steps, decoder.flow_solver) == ("flow", 10, "heun")
    assert {k: model.info["decoder"][k] for k in ("sampler_steps", "sampler_solver", "distilled")} == {
        "sampler_steps": 10, "sampler_solver": "heun", "distilled": False}
    assert 'system = "alanine-dipeptide"' in (demo / "lss-jax-demo.toml").read_text()


# ---------------------------------------------------------------- generate --devices, --precision
@pytest.fixture(scope="module")
def generated(demo, tmp_path_factory):
    """`lss-jax generate` with default options from the demo's model: a chunk directory (float32 frames, no xtc
    rounding), the reference for the option paths below."""
    return _generate(demo / "model", tmp_path_factory.mktemp("generate") / "default")


def test_generate_on_some_devices_is_bitwise_the_default(demo, generated, tmp_path):
    """--devices 1 against the default (all of jax.local_devices(); one on this CPU). The noise of trajectory b at
    step t depends only on (key, b, t), so the frames are the same for any device count."""
    devices = _generate(demo / "model", tmp_path / "one", "--devices", "1")
    assert generated.xyz.shape == (N_TRAJ, N_STEPS, 10, 3)
    np.testing.assert_array_equal(devices.xyz, generated.xyz)
    np.testing.assert_array_equal(devices.latent, generated.latent)


def _bond_lengths(gen):
    bonds = np.array([[a.index, b.index] for a, b in gen.topology.bonds])
    assert len(bonds) == 9  # the 10 decoded heavy atoms of alanine dipeptide form a tree
    return md.compute_distances(gen.trajectory(), bonds)


@pytest.mark.parametrize("precision", ["tf32", "bfloat16"])
def test_generate_at_lower_precision_gives_finite_frames(demo, generated, tmp_path, precision):
    low = _generate(demo / "model", tmp_path / precision, "--precision", precision)
    assert low.xyz.shape == generated.xyz.shape and np.all(np.isfinite(low.xyz))
    settings = json.loads((tmp_path / precision / "generation.json").read_text())["settings"]
    assert settings["precision"] == precision
    # bonds come out of the decoder's network (internal coordinates): a lower precision keeps them within a few
    # per cent of the float32 frames' (bfloat16 has 8 bits of mantissa, 0.4 % rounding)
    ref = np.median(_bond_lengths(generated), axis=0)
    np.testing.assert_allclose(_bond_lengths(low), np.broadcast_to(ref, (N_TRAJ * N_STEPS, 9)), rtol=0.1)
    if precision == "tf32" and jax.default_backend() == "cpu":
        # TF32 is a hint for accelerators' matmul units; XLA:CPU computes float32 anyway, so on a CPU tf32 is the
        # float32 run bit for bit (on a GPU the frames would differ)
        np.testing.assert_array_equal(low.xyz, generated.xyz)
    if precision == "bfloat16":
        # bfloat16 casts the networks' parameters and inputs on every backend, CPU included: not the float32 frames
        assert not np.array_equal(low.xyz, generated.xyz)


# ---------------------------------------------------------------- export --platforms
def _exported_frames(sim, seed):
    """docs/examples/run_exported.py's generate(), run in this process (tests/test_model.py runs the script in a
    fresh process where lss_jax cannot be imported)."""
    script = runpy.run_path(str(REPO / "docs" / "examples" / "run_exported.py"))
    xyz, latent, unit, pdb = script["generate"](str(sim), N_TRAJ, N_STEPS, seed)
    return xyz, latent, pdb


def _check_export(model_dir, expected, tmp_path):
    sim = tmp_path / "sim.jaxexport"
    # 5 steps per exported rollout call: the 12 steps take three calls, each continuing from the last frame
    assert main(["export", "--model", str(model_dir), "--out", str(sim), "--platforms", "cpu",
                 "--chunk-steps", "5"]) == 0
    meta = json.loads(str(np.load(sim)["meta"]))
    assert meta["platforms"] == ["cpu"] and meta["chunk_steps"] == 5
    xyz, latent, pdb = _exported_frames(sim, SEED)
    assert xyz.shape == (N_TRAJ, N_STEPS, 10, 3)
    np.testing.assert_array_equal(xyz, expected.xyz)
    # the min-max inverse is one fused multiply-add away: equal to float32 rounding
    np.testing.assert_allclose(latent, expected.latent, rtol=1e-6, atol=1e-6)
    assert sum(line.startswith(("ATOM", "HETATM")) for line in pdb.splitlines()) == 10
    return meta


def test_export_of_a_flow_with_structural_states_gives_the_generated_frames(demo, generated, tmp_path):
    info = json.loads((demo / "model" / "lss.json").read_text())["info"]["decoder"]
    assert info["kind"] == "flow" and info["states"] == 2  # the full shipped run has enough alpha_L frames
    meta = _check_export(demo / "model", generated, tmp_path)
    assert meta["redraws"] == 8  # the flow's support check travels with the file


def test_export_of_a_wgan_decoder_gives_the_generated_frames(trained, tmp_path):
    model_dir, _ = trained
    assert json.loads((model_dir / "lss.json").read_text())["info"]["decoder"]["kind"] == "wgan"
    expected = _generate(model_dir, tmp_path / "gen")
    _check_export(model_dir, expected, tmp_path)


# ---------------------------------------------------------------- train --checkpoint-every
def test_train_checkpoints_every_second_epoch_and_removes_them(trained):
    model_dir, saves = trained
    model = LSS.load(model_dir)
    assert model.latent_dim == 2 and model.config.lag == 2 and model.config.decoder.kind == "wgan"
    assert model.info["n_frames"] == 2500
    assert not (model_dir.parent / "model.checkpoints").exists()  # removed once the model is saved
    resolved = tomllib.loads((model_dir / "lss-jax-train.toml").read_text())
    assert resolved["decoder"] == {"iterations": 20, "kind": "wgan"} and resolved["encoder"] == {"epochs": 3}
    # 3 epochs, every 2: epoch 1 is due ((1 + 1) % 2 == 0), epoch 2 is the last (always saved); epoch 0 is not
    by_name = {}
    for name, step, done in saves:
        by_name.setdefault(name, []).append((step, done))
    assert by_name["encoder"] == [(1, False), (2, True)]
    assert by_name["propagator"] == [(1, False), (2, True)]
    assert by_name["decoder"][-1][1] and all(done or (step + 1) % 2 == 0 for step, done in by_name["decoder"])


# ---------------------------------------------------------------- report --train
def test_report_with_training_frames_writes_the_novelty_check(demo, tmp_path):
    """--md and --train the same 5 ns of the independent run: every MD frame is its own nearest training frame
    (RMSD 0 up to mdtraj's float32, ~1e-4 nm), while decoded frames are new structures."""
    md_file, top = tmp_path / "md.xtc", str(alanine_dipeptide_files()["pdb"])
    load_alanine_dipeptide("independent")[:2500].save_xtc(str(md_file))
    assert main(["report", "--model", str(demo / "model"), "--md", str(md_file), "--lss", str(demo / "lss.xtc"),
                 "--top", top, "--train", str(md_file), "--out", str(tmp_path / "report")]) == 0
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    novelty = metrics["novelty_nearest_training_rmsd_nm"]
    quantiles = ("min", "q05", "median", "q95")
    assert novelty["independent_md"]["q95"] < 1e-3
    assert all(novelty["lss"][a] <= novelty["lss"][b] for a, b in zip(quantiles, quantiles[1:]))
    assert novelty["lss"]["min"] > 1e-3  # no decoded frame is a copy of an MD frame
    assert 0.0 <= novelty["lss_fraction_below_0.01nm"] <= 1.0
    assert novelty["reference_frames"] == novelty["training_frames"] == 2500  # every training frame, not a sample
    assert metrics["n_md_frames"] == 2500 and metrics["n_lss_frames"] == 50 * 200


def test_report_retrieval_decodes_the_same_latent_trajectories_from_the_training_frames(demo, tmp_path, capsys):
    """--retrieval: the report's latent trajectories decoded by retrieval from --train, reported beside the model's
    decoder. With --train the 2500 frames of --md, every retrieved frame is one of them (novelty ~0, mdtraj's
    float32), the flow's are new, and both reports carry the t1 of the decoded structures."""
    md_file, top = tmp_path / "md.xtc", str(alanine_dipeptide_files()["pdb"])
    load_alanine_dipeptide("independent")[:2500].save_xtc(str(md_file))
    argv = ["report", "--model", str(demo / "model"), "--md", str(md_file), "--lss", str(demo / "lss.xtc"),
            "--top", top, "--out", str(tmp_path / "report"), "--retrieval"]
    assert main(argv) != 0 and "give them with --train" in capsys.readouterr().err  # nothing to retrieve from
    assert main(argv + ["--train", str(md_file)]) == 0
    printed = capsys.readouterr().out
    assert "decoder flow vs retrieval" in printed and "novelty, median (nm)" in printed
    mine = json.loads((tmp_path / "report" / "metrics.json").read_text())
    theirs = json.loads((tmp_path / "report" / "retrieval" / "metrics.json").read_text())
    assert theirs["novelty_nearest_training_rmsd_nm"]["lss"]["q95"] < 1e-3
    assert mine["novelty_nearest_training_rmsd_nm"]["lss"]["min"] > 1e-3
    assert theirs["n_lss_frames"] == mine["n_lss_frames"] == 50 * 200
    # the same latent trajectories: the latent record is the same, the decoded structures are not
    assert theirs["implied_timescales_ps"]["lss"] == mine["implied_timescales_ps"]["lss"]
    for m in (mine, theirs):
        t1 = m["tica"]["lss_timescales_ps"][0]
        assert t1 is None or t1 > 0


# ---------------------------------------------------------------- omega and chi1 features
def _dihedrals(xyz, quads):
    """IUPAC dihedral angles [n_frames, n] in float64 (atan2 of the projected bond vectors)."""
    p = xyz.astype(np.float64)[:, quads]  # [n_frames, n, 4, 3]
    b0, b1, b2 = p[:, :, 0] - p[:, :, 1], p[:, :, 2] - p[:, :, 1], p[:, :, 3] - p[:, :, 2]
    b1 /= np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - np.sum(b0 * b1, -1, keepdims=True) * b1
    w = b2 - np.sum(b2 * b1, -1, keepdims=True) * b1
    return np.arctan2(np.sum(np.cross(b1, v) * w, -1), np.sum(v * w, -1))


def _quads_by_name(topology, kind):
    """Atom quadruplets picked by atom names: omega CA(i)-C(i)-N(i+1)-CA(i+1); chi1 N-CA-CB-(CG|CG1|OG|OG1|SG)."""
    residues = list(topology.residues)
    atom = lambda r, names: next((a.index for a in r.atoms if a.name in names), None)  # noqa: E731
    quads = []
    if kind == "omega":
        for r, s in zip(residues, residues[1:]):
            q = [atom(r, {"CA"}), atom(r, {"C"}), atom(s, {"N"}), atom(s, {"CA"})]
            quads += [q] if None not in q else []
    else:
        for r in residues:
            q = [atom(r, {"N"}), atom(r, {"CA"}), atom(r, {"CB"}), atom(r, {"CG", "CG1", "OG", "OG1", "SG"})]
            quads += [q] if None not in q else []
    return np.array(quads, dtype=int).reshape(-1, 4)


SPEC = FeatureSpec(torsions=("phi", "psi", "omega", "chi1"), distances=None)


def test_omega_and_chi1_features_on_trp_cage_match_dihedrals_from_atom_names():
    """Trp-cage (1L2Y, all atoms, 20 residues: 3 glycines): 19 peptide-bond omegas and 17 chi1 angles (every residue
    with a CB and a gamma atom), as (sin, cos) in the order phi, psi, omega, chi1, each sin block then cos block."""
    traj = md.load(str(REPO / "lss_jax" / "systems" / "data" / "1l2y.pdb"))
    features = featurize(traj, SPEC)
    counts = {"phi": 19, "psi": 19, "omega": 19, "chi1": 17}
    assert features.shape == (traj.n_frames, 2 * sum(counts.values()))
    names = feature_names(traj.topology, SPEC)
    assert len(names) == features.shape[1]
    start = 2 * (counts["phi"] + counts["psi"])
    for kind in ("omega", "chi1"):
        quads = _quads_by_name(traj.topology, kind)
        assert len(quads) == counts[kind]
        np.testing.assert_array_equal(getattr(md, f"compute_{kind}")(traj)[0], quads)  # mdtraj's own definition
        angles = _dihedrals(traj.xyz, quads)
        n = len(quads)
        np.testing.assert_allclose(features[:, start : start + n], np.sin(angles), atol=2e-6)
        np.testing.assert_allclose(features[:, start + n : start + 2 * n], np.cos(angles), atol=2e-6)
        assert all(name.startswith(f"sin {kind}:") for name in names[start : start + n])
        assert all(name.startswith(f"cos {kind}:") for name in names[start + n : start + 2 * n])
        start += 2 * n
    omega = _dihedrals(traj.xyz, _quads_by_name(traj.topology, "omega"))
    assert np.all(np.abs(np.abs(omega) - np.pi) < np.radians(30))  # trans peptide bonds in the NMR model


def test_omega_and_chi1_add_nothing_on_alanine_dipeptide():
    """mdtraj defines omega as CA-C-N-CA, which the caps (ACE CH3, NME C) do not have, and alanine's CB has no gamma
    atom: on alanine dipeptide omega and chi1 select no torsion (as mdtraj's compute_omega / compute_chi1 say), and
    the features are phi and psi alone, matching dihedrals from the atom names."""
    traj = load_alanine_dipeptide("train", stride=500)
    assert md.compute_omega(traj)[0].shape == (0, 4) and md.compute_chi1(traj)[0].shape == (0, 4)
    features = featurize(traj, SPEC)
    assert features.shape == (50, 4)
    np.testing.assert_array_equal(features, featurize(traj, FeatureSpec(torsions=("phi", "psi"), distances=None)))
    top = traj.topology
    pick = lambda res, name: top.select(f"resid {res} and name {name}")[0]  # noqa: E731
    phi = _dihedrals(traj.xyz, np.array([[pick(0, "C"), pick(1, "N"), pick(1, "CA"), pick(1, "C")]]))
    psi = _dihedrals(traj.xyz, np.array([[pick(1, "N"), pick(1, "CA"), pick(1, "C"), pick(2, "N")]]))
    np.testing.assert_allclose(features, np.concatenate([np.sin(phi), np.cos(phi), np.sin(psi), np.cos(psi)], 1),
                               atol=2e-6)
