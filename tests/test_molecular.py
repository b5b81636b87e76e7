"""Molecular pipeline: featurization, lagged pairs, SRV, the LSS facade, save/load and the CLI."""

import json
import shutil
from pathlib import Path

import jax
import mdtraj as md
import numpy as np
import pytest
from deeptime.decomposition import TICA

from lss_jax.cli import main
from lss_jax.config import DecoderConfig, EncoderConfig, FlatConfigWarning, PropagatorConfig
from lss_jax.data.featurize import FeatureSpec, feature_names, featurize, load_trajectories
from lss_jax.data.pairs import lagged_pairs, split_trajectories
from lss_jax.datasets import alanine_dipeptide_files, load_alanine_dipeptide
from lss_jax.encoder import fit_srv, implied_timescales, reversible_decomposition
from lss_jax.model.facade import LSS, LSSConfig, ModelFormatError

TINY = dict(lag=2, encoder=EncoderConfig(latent_dim=2, epochs=2), propagator=PropagatorConfig(epochs=2),
            decoder=DecoderConfig(iterations=20), seed=3)


@pytest.fixture(scope="module")
def traj():
    return load_alanine_dipeptide("train", stride=10)  # 2500 frames, 20 ps apart


@pytest.fixture(scope="module")
def fitted(traj):
    return LSS(**TINY).fit(traj, progress=False)


def test_featurize_matches_mdtraj(traj):
    f = featurize(traj[:50], FeatureSpec(torsions=("phi", "psi"), distances="heavy"))
    _, phi = md.compute_phi(traj[:50])
    _, psi = md.compute_psi(traj[:50])
    heavy = traj.topology.select("not element H")
    pairs = np.array([(i, j) for k, i in enumerate(heavy) for j in heavy[k + 1 :]])
    expected = np.concatenate([np.sin(phi), np.cos(phi), np.sin(psi), np.cos(psi), md.compute_distances(traj[:50], pairs)], 1)
    np.testing.assert_allclose(f, expected, rtol=1e-6, atol=1e-6)
    assert len(feature_names(traj.topology, FeatureSpec(torsions=("phi", "psi")))) == f.shape[1] == 4 + 45
    with pytest.raises(ValueError, match="at least 2"):  # alanine dipeptide has a single C-alpha
        featurize(traj[:5], FeatureSpec(torsions=(), distances="ca"))
    with pytest.raises(ValueError, match="unknown torsion"):
        featurize(traj[:5], FeatureSpec(torsions=("kappa",)))


def test_lagged_pairs_never_cross_trajectories():
    a, b = np.arange(10.0)[:, None], 100 + np.arange(4.0)[:, None]
    x0, xt = lagged_pairs([a, b], 3)
    assert len(x0) == 7 + 1
    np.testing.assert_array_equal(xt - x0, 3.0)
    with pytest.raises(ValueError, match="not shorter"):
        lagged_pairs([b], 4)
    train, val = split_trajectories([a, b], 0.2)
    assert [len(t) for t in train] == [8, 3] and [len(v) for v in val] == [2, 1]


def test_short_runs_are_held_out_whole_not_cut():
    # Adaptive sampling appends many short runs: cutting 20% off each leaves no validation pair in any
    # tail (10 frames at lag 10) and wastes the frames. With lag, every 5th short run is held out whole,
    # no frame is lost, and every validation run yields pairs; long runs are cut as before.
    long_run = np.arange(200.0)[:, None]
    short = [1000.0 * (i + 1) + np.arange(51.0)[:, None] for i in range(10)]
    train, val = split_trajectories([long_run] + short, 0.2, lag=10)
    assert len(train[0]) == 160 and len(val[0]) == 40
    assert [(int(v[0, 0]), len(v)) for v in val[1:]] == [(5000, 51), (10000, 51)]  # runs 5 and 10, whole
    assert sum(len(t) for t in train) + sum(len(v) for v in val) == 200 + 10 * 51
    assert len(lagged_pairs(val, 10)[0]) == 30 + 2 * 41
    old_train, old_val = split_trajectories([long_run] + short, 0.2)
    assert len(lagged_pairs(old_val, 10)[0]) == 30  # without lag: the short tails give nothing


def test_reversible_decomposition_matches_deeptime_tica():
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=(5000, 3)), 0) * 0.01 + rng.normal(size=(5000, 3))
    y = np.cumsum(rng.normal(size=(3000, 3)), 0) * 0.01 + rng.normal(size=(3000, 3))
    ours = reversible_decomposition([x, y], 5, epsilon=0.0)
    ref = TICA(lagtime=5, epsilon=1e-14, scaling=None).fit([x, y]).fetch_model()
    np.testing.assert_allclose(ours.eigenvalues, ref.singular_values, rtol=1e-8, atol=1e-10)


def test_srv_recovers_a_hidden_slow_process():
    # Features are a fixed random linear mixing of one slow AR(1) process (a = 0.95) and four fast ones
    # (a = 0.1); the slowest SRV eigenvalue at lag 1 must approach 0.95.
    rng = np.random.default_rng(1)
    n, a = 20_000, np.array([0.95, 0.1, 0.1, 0.1, 0.1])
    z = np.zeros((n, 5))
    noise = rng.normal(size=(n, 5)) * np.sqrt(1 - a**2)
    for t in range(1, n):
        z[t] = a * z[t - 1] + noise[t]
    feats = (z @ rng.normal(size=(5, 5))).astype(np.float32)
    _, proj, _ = fit_srv(jax.random.key(0), [feats], 1, 2, config=EncoderConfig(batch_size=1000, epochs=20),
                         progress=False)
    # Exact transfer-operator eigenvalues of this process: a^k for Hermite polynomials of z_1, so
    # 0.95, 0.95^2 = 0.9025, ... The SRV eigenvalues are variational lower bounds (up to sampling
    # error, standard error sqrt((1 - a^2)/n) = 0.002) and the first must come close.
    lam = proj.eigenvalues
    assert 0.93 < lam[0] < 0.95 + 0.01
    assert lam[1] < 0.9025 + 0.01
    np.testing.assert_allclose(implied_timescales([0.95], 1.0), [-1 / np.log(0.95)])


def test_lss_fit_generate_and_round_trip(fitted, traj, tmp_path):
    model = fitted
    assert model.latent_dim == 2 and model.info["n_frames"] == traj.n_frames
    psi = model.encode(traj[:200])
    assert psi.shape == (200, 2)
    np.testing.assert_allclose(model.encode(traj).std(0), 1.0, rtol=0.05)  # unit-variance eigenfunctions
    gen = model.generate(jax.random.key(0), 3, 7)
    assert isinstance(gen, md.Trajectory) and gen.n_frames == 21 and gen.n_atoms == 10
    np.testing.assert_allclose(gen.time[:7], np.arange(1, 8) * model.lag_time)
    lat = model.generate(jax.random.key(0), 3, 7, latent_only=True)
    assert lat.shape == (3, 7, 2)
    path = model.save(tmp_path / "model")
    loaded = LSS.load(path)
    np.testing.assert_array_equal(loaded.generate(jax.random.key(0), 3, 7).xyz, gen.xyz)
    np.testing.assert_array_equal(loaded.encode(traj[:200]), psi)
    assert json.loads((path / "lss.json").read_text())["format_version"] == 3


def test_a_format_2_model_with_the_flat_configuration_loads_with_a_warning(fitted, tmp_path):
    """Model format 3 stores the nested configuration; format 2 stored the flat one of earlier lss_jax (one key per
    setting): it is read, translated and warned about, and the model keeps its fingerprint."""
    path = fitted.save(tmp_path / "m")
    meta = json.loads((path / "lss.json").read_text())
    assert set(meta["config"]) == {"lag", "seed", "data", "encoder", "propagator", "decoder"}
    assert meta["config"]["encoder"]["epochs"] == 2 and meta["config"]["decoder"]["iterations"] == 20
    flat = fitted.config._flat_dict()  # as format 2 wrote it (tests/test_config.py checks it against the old keys)
    assert flat["encoder_epochs"] == 2 and flat["decoder_iterations"] == 20 and flat["decoder"] == "flow"
    (path / "lss.json").write_text(json.dumps({**meta, "format_version": 2, "config": flat}))
    with pytest.warns(FlatConfigWarning, match=r"lss.json \(model format 2; .*\): flat configuration keys are "
                                               r"deprecated, .*torsions -> data.torsions, .* and 37 more"):
        old = LSS.load(path)
    assert old.config == fitted.config and old.fingerprint() == fitted.fingerprint()


def test_load_rejects_incomplete_corrupt_and_newer_models(fitted, tmp_path):
    path = fitted.save(tmp_path / "m")
    broken = tmp_path / "broken"
    shutil.copytree(path, broken)
    (broken / "lss.json").unlink()
    with pytest.raises(ModelFormatError, match="no lss.json"):
        LSS.load(broken)
    shutil.rmtree(broken)
    shutil.copytree(path, broken)
    with open(broken / "propagator.npz", "r+b") as f:
        f.seek(100)
        f.write(b"garbage")
    with pytest.raises(ModelFormatError, match="checksum"):
        LSS.load(broken)
    meta = json.loads((path / "lss.json").read_text())
    meta["format_version"] = 99
    (path / "lss.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match="Upgrade"):
        LSS.load(path)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"data": {"atom_selection": "name XYZ"}}, "matches no atom"),
        ({"encoder": {"latent_dim": 60}}, "exceeds the number of features"),
        ({"lag": 5000}, "shorter than the trajectories"),
    ],
)
def test_fit_rejects_bad_settings(traj, kwargs, match):
    with pytest.raises(ValueError, match=match):
        LSS(config=LSSConfig(**TINY), **kwargs).fit(traj[:1000], progress=False)


def test_config_rejects_unknown_keys_and_bad_values():
    with pytest.raises(ValueError, match="unknown configuration key"):
        LSSConfig.from_dict({"lag": 2, "n_componets": 3})
    with pytest.raises(ValueError, match="positive integer"):
        LSSConfig(lag=0)


def test_cli_train_generate_report(tmp_path, traj, capsys):
    files = alanine_dipeptide_files()
    short = tmp_path / "short.xtc"
    traj.save(str(short))
    config = tmp_path / "tiny.toml"
    # the flat keys of earlier lss_jax (tests/test_cli_smoke.py trains from the tables): still read, with one line
    # that names the new spelling, and written back nested
    config.write_text("encoder_epochs = 2\npropagator_epochs = 2\ndecoder_iterations = 20\nlatent_dim = 2\n")
    model_dir = tmp_path / "model"
    capsys.readouterr()
    assert main(["train", "--traj", str(short), "--top", str(files["pdb"]), "--lag", "2", "--out", str(model_dir),
                 "--config", str(config), "--no-progress"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "deprecated" in line]
    assert len(warned) == 1 and warned[0].startswith(f"lss-jax train: warning: config file {config}: flat "), warned
    assert "encoder_epochs -> encoder.epochs, propagator_epochs -> propagator.epochs, decoder_iterations -> " \
           "decoder.iterations" in warned[0]
    assert json.loads((model_dir / "lss.json").read_text())["config"]["encoder"]["epochs"] == 2
    assert "\n[encoder]\nepochs = 2\n" in (model_dir / "lss-jax-train.toml").read_text()
    out = tmp_path / "gen.xtc"
    assert main(["generate", "--model", str(model_dir), "--n-traj", "6", "--n-steps", "60", "--out", str(out)]) == 0
    assert out.is_file() and (tmp_path / "gen.pdb").is_file() and np.load(tmp_path / "gen.latent.npy").shape == (6, 60, 2)
    assert md.load(str(out), top=str(tmp_path / "gen.pdb")).n_frames == 360
    # options from a TOML file (required ones included); the resolved options are written next to the output
    gen_cfg = tmp_path / "gen.toml"
    gen_cfg.write_text(f'model = "{model_dir}"\nn_traj = 2\nn_steps = 5\nlatent_only = true\n')
    assert main(["generate", "--config", str(gen_cfg), "--out", str(tmp_path / "lat.npy")]) == 0
    assert np.load(tmp_path / "lat.npy").shape == (2, 5, 2)
    resolved = tmp_path / "lat.lss-jax-generate.toml"
    assert "n_traj = 2" in resolved.read_text()
    assert main(["generate", "--config", str(resolved), "--out", str(tmp_path / "lat2.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "lat2.npy"), np.load(tmp_path / "lat.npy"))  # same seed
    gen_cfg.write_text("n_trajs = 2\n")
    assert main(["generate", "--config", str(gen_cfg), "--model", "m", "--n-traj", "1", "--n-steps", "1",
                 "--out", "x.npy"]) == 1
    report = tmp_path / "report"
    capsys.readouterr()
    assert main(["report", "--model", str(model_dir), "--md", str(short), "--top", str(files["pdb"]), "--lss", str(out),
                 "--out", str(report)]) == 0
    assert "200 latent points  W1 / MD-vs-MD floor Rg " in capsys.readouterr().out
    metrics = json.loads((report / "metrics.json").read_text())
    assert (report / "decoded_models.pdb").read_text().count("MODEL") >= 2
    assert (report / "lss-jax-report.toml").is_file() and (model_dir / "lss-jax-train.toml").is_file()
    assert metrics["free_energy_phi_psi"]["n_bins"] > 0 and metrics["n_lss_frames"] == 360
    assert (report / "free_energy_phi_psi.png").stat().st_size > 10_000
    floor = metrics["encoder"]["linear_floor"]  # the encoder against TICA, as the model recorded it at training
    assert floor == json.loads((model_dir / "lss.json").read_text())["info"]["encoder"]["linear_floor"]
    assert {"srv_val_vamp2", "tica_val_vamp2", "srv_train_eigenvalues", "tica_path"} <= set(floor)
    # the decoder alone: one decoded frame per MD frame, every diagnostic present for both it and the full LSS
    dec = metrics["decoder"]
    assert dec["kind"] == "flow" and dec["coordinates"] == "internal"
    md_frames = md.load(str(short), top=str(files["pdb"])).n_frames
    assert dec["round_trip"]["n_generated_frames"] == md_frames and dec["lss"]["n_generated_frames"] == 360
    for block in (dec["round_trip"], dec["lss"]):
        assert 0 <= block["free_energy_phi_psi"]["coverage"] <= 1 and len(block["rmsf_nm"]["generated"]) == 10
        assert set(block["basin_populations"]["generated"]) == {"beta_ppii", "alpha_r", "alpha_l", "alpha_l_basin"}
        assert block["geometry"]["reference_bond_length_mad_relative"] > 0
    assert (report / "decoder.png").stat().st_size > 10_000
    # its conditional distributions at 200 MD latent points against MD's nearest frames (no Q: no native contacts)
    cond = dec["conditional"]
    assert (cond["n_points"], cond["n_draws"], cond["n_neighbours"], cond["n_pairs"]) == (200, 32, 32, 45)
    assert cond["window_frames"] == 2 and "q" not in cond  # the lag, 2 frames of this MD
    for name in ("radius_of_gyration_nm", "pair_distances_nm"):
        assert cond[name]["w1"] > 0 and cond[name]["w1_floor"] > 0 and cond[name]["sd_ratio"] > 0
        assert np.isfinite(cond[name]["slope_ratio"]) and cond[name]["slope_floor"] > 0  # MD's means move with psi


def test_load_trajectories_errors(tmp_path):
    files = alanine_dipeptide_files()
    bad = tmp_path / "t.foo"
    bad.write_text("x")
    with pytest.raises(ValueError, match="unsupported trajectory format"):
        load_trajectories([bad], files["pdb"])
    with pytest.raises(FileNotFoundError, match="topology"):
        load_trajectories([files["train"]], tmp_path / "none.pdb")


def test_lag_scan_timescales_are_lag_independent_for_a_markov_process(tmp_path):
    # For an AR(1) slow process the implied timescale -lag / ln(a^lag) = -1 / ln(a) is the same at every lag.
    from lss_jax.analysis.plots import implied_timescales_vs_lag
    from lss_jax.encoder import srv_lag_scan

    rng = np.random.default_rng(2)
    n, a = 20_000, np.array([0.95, 0.2, 0.2])
    z = np.zeros((n, 3))
    noise = rng.normal(size=(n, 3)) * np.sqrt(1 - a**2)
    for t in range(1, n):
        z[t] = a * z[t - 1] + noise[t]
    feats = (z @ rng.normal(size=(3, 3))).astype(np.float32)
    ts = srv_lag_scan(jax.random.key(1), [feats], [1, 3, 6], 1, config=EncoderConfig(batch_size=1000, epochs=20),
                      progress=False)
    exact = -1 / np.log(0.95)
    # variational: estimates approach the exact timescale from below (5 % allowed for sampling noise);
    # 20 % covers the finite network training
    assert np.all(ts[:, 0] < 1.05 * exact)
    np.testing.assert_allclose(ts[:, 0], exact, rtol=0.2)
    fig = implied_timescales_vs_lag([1, 3, 6], ts, frame_time=1.0, unit="steps", path=tmp_path / "its.png")
    assert (tmp_path / "its.png").stat().st_size > 5000 and fig is not None


def test_shipped_trajectories_are_independent_and_complete():
    train = load_alanine_dipeptide("train", stride=50)
    independent = load_alanine_dipeptide("independent", stride=50)
    assert train.n_atoms == independent.n_atoms == 22 and train.n_frames == independent.n_frames == 500
    assert train.timestep == pytest.approx(100.0)  # 2 ps frames x stride 50
    # different seeds: the two trajectories are different from their first frame on
    assert md.rmsd(independent[:1], train[:1])[0] > 0.01
    with pytest.raises(ValueError, match="unknown shipped trajectory"):
        load_alanine_dipeptide("validation")


def test_cli_lagscan(tmp_path, traj):
    files = alanine_dipeptide_files()
    short = tmp_path / "short.xtc"
    traj[:1500].save(str(short))
    assert main(["lagscan", "--traj", str(short), "--top", str(files["pdb"]), "--lags", "1", "2", "--n-outputs", "2",
                 "--epochs", "2", "--out", str(tmp_path / "its")]) == 0
    result = json.loads((tmp_path / "its" / "its.json").read_text())
    assert len(result["implied_timescales_ps"]) == 2 and (tmp_path / "its" / "its.png").is_file()


def test_format_1_model_written_by_the_previous_release_loads_and_decodes_the_same_frames():
    """tests/data/ala2-model-format1 was saved by lss_jax before the flow decoder (model format 1: a cWGAN-GP
    on aligned Cartesian coordinates); -encode.npy is what that release produced. -decode.npy is its decoder on
    fixed latent points, recorded while generate still reproduced that release's -generate.npy bit for bit (the
    inverse-CDF mixture sampler has since changed the rollout's random stream, not the decoder's)."""
    data = Path(__file__).parent / "data"
    with pytest.warns(FlatConfigWarning, match=r"ala2-model-format1/lss.json \(model format 1; .*: flat configuration "
                      r"keys are deprecated, .*: latent_dim -> encoder.latent_dim, max_latent_dim -> "):
        model = LSS.load(data / "ala2-model-format1")  # its configuration is flat
    assert model.config.decoder.kind == "wgan" and model.config.decoder.coordinates == "cartesian"
    assert model.config.encoder.hidden == (16,) and model.config.decoder.noise_dim == 8
    traj = load_alanine_dipeptide("train", stride=10)[:1500]
    np.testing.assert_allclose(model.encode(traj[:50]), np.load(data / "ala2-model-format1-encode.npy"), atol=1e-5)
    u = model.to_unit(model.encode(traj[:21])).reshape(3, 7, -1)
    np.testing.assert_allclose(model.decode_unit(jax.random.key(4), u), np.load(data / "ala2-model-format1-decode.npy"),
                               atol=1e-5)
    assert model.generate(jax.random.key(0), 3, 7, progress=False).xyz.shape == (21, 10, 3)
