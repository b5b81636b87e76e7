"""The paper's protein protocol on the Trp-cage Cα model: features, the folding analysis, the report, the demo."""

import json

import mdtraj as md
import numpy as np
import pytest

from lss_jax.data.featurize import FeatureSpec, featurize
from lss_jax.decoder.coordinates import (
    _dihedral,  # float64 NumPy (the Z-matrix's own), not mdtraj's, which featurize uses
)
from lss_jax.systems import trp_cage as tc


def test_ca_pseudo_torsions_match_a_float64_dihedral():
    traj = tc.load_trp_cage("train", stride=1000)
    feats = featurize(traj, FeatureSpec(torsions=("ca",), distances=None))
    x = traj.xyz.astype(np.float64)
    expected = np.stack([_dihedral(x[:, k], x[:, k + 1], x[:, k + 2], x[:, k + 3]) for k in range(17)], axis=1)
    np.testing.assert_allclose(feats[:, :17], np.sin(expected), atol=2e-5)
    np.testing.assert_allclose(feats[:, 17:], np.cos(expected), atol=2e-5)
    assert featurize(traj, FeatureSpec(torsions=("ca",), distances="ca")).shape == (traj.n_frames, 34 + 190)


def test_protocol_settings_and_recognition():
    config = tc.lss_config()
    assert (config.encoder.latent_dim, config.propagator.n_components, config.data.distances,
            config.data.torsions) == (3, 24, "ca", ("ca",))
    assert (config.data.atom_selection, config.data.encoder_fraction, config.decoder.kind) == ("name CA", 0.3, "chain")
    changed = tc.lss_config(lag=4, seed=2, decoder={"kind": "flow"})
    assert (changed.lag, changed.seed, changed.decoder.kind, changed.encoder) == (4, 2, "flow", config.encoder)
    assert tc.is_trp_cage(tc.load_trp_cage("train", stride=5000).topology)
    from lss_jax.datasets import load_alanine_dipeptide

    assert not tc.is_trp_cage(load_alanine_dipeptide("train", stride=5000).topology)
    # the report's hook is chosen by the system layer, from the topology (analysis never recognizes a system)
    from lss_jax.systems.report import report_metrics_for

    assert report_metrics_for(tc.load_trp_cage("train", stride=5000).topology) == tc.SYSTEM.report_metrics
    assert report_metrics_for(load_alanine_dipeptide("train", stride=5000).topology) is None


def _reference_folding(xyz, frame_time_ps):
    """Folded fraction and transitions per µs written independently of the module: Q from mdtraj's distances, the
    hysteresis as a forward fill of the last frame outside (0.3, 0.7) in NumPy, events as changes of
    the filled state."""
    contacts = tc.native_contacts()
    traj = md.Trajectory(np.asarray(xyz, np.float32), tc.native_structure().topology)
    q = np.mean(md.compute_distances(traj, contacts.pairs) < 1.2 * contacts.distances, axis=1)
    outside = np.flatnonzero((q < 0.3) | (q > 0.7))
    last = np.maximum.accumulate(np.where((q < 0.3) | (q > 0.7), np.arange(len(q)), -1))
    state = np.where(last >= 0, (q[np.maximum(last, 0)] > 0.7).astype(int), -1)
    known = state[state >= 0]
    events = int(np.sum(known[1:] != known[:-1]))
    assert len(outside) > 0
    return float(np.mean(known == 1)), events / (len(q) * frame_time_ps * 1e-6)


def test_folding_metrics_against_an_independent_count_and_a_known_schedule():
    md_xyz = tc.load_trp_cage("independent").xyz
    stride = 10
    out = tc.folding_metrics([md_xyz], md_xyz[None, ::stride], md_frame_time=5.0, lss_frame_time=5.0 * stride)
    folded, rate = _reference_folding(md_xyz[::stride], 5.0 * stride)
    for side in ("md", "lss"):  # MD is analysed at the LSS spacing, so both sides see the same strided frames
        assert out["folded_fraction"][side] == pytest.approx(folded, rel=1e-12)
        assert out["transitions_per_us"][side] == pytest.approx(rate, rel=1e-12)
    folded_full, rate_full = _reference_folding(md_xyz, 5.0)
    assert out["folded_fraction"]["md_full_resolution"] == pytest.approx(folded_full, rel=1e-12)
    assert out["transitions_per_us"]["md_full_resolution"] == pytest.approx(rate_full, rel=1e-12)
    assert 0.3 < folded < 0.7 and out["folded_fraction"]["md_se"] > 0
    assert out["virtual_bonds"]["fraction_frames_off_10pct"]["md"] < 1e-3
    assert out["close_pairs"]["separation_4"]["md"]["fraction_frames_below_0.3nm"] == 0.0
    # A schedule with a known answer: native frames (Q = 1) and the native chain stretched 1.5x (Q = 0), in
    # stretches of 10 U, 5 F, 3 U, 2 F frames: 7 of 20 frames folded, 2 folding and 1 unfolding events in 20 frames.
    native = tc.native_structure().xyz[0]
    centre = native.mean(0)
    unfolded = centre + 1.5 * (native - centre)
    schedule = [unfolded] * 10 + [native] * 5 + [unfolded] * 3 + [native] * 2
    known = tc.folding_metrics([md_xyz], np.array(schedule)[None], md_frame_time=5.0, lss_frame_time=50.0)
    assert known["folded_fraction"]["lss"] == pytest.approx(7 / 20)
    assert (known["events"]["lss"]["n_folding"], known["events"]["lss"]["n_unfolding"]) == (2, 1)
    assert known["transitions_per_us"]["lss"] == pytest.approx(3 / (20 * 50.0 * 1e-6))
    assert known["rmsd_to_native_folded_nm"]["lss"][0] == pytest.approx(0.0, abs=1e-3)
    assert known["close_pairs"]["separation_4"]["lss"]["fraction_frames_below_0.3nm"] == 0.0
    # a chain with one virtual bond stretched by 20 % in every frame, and a chain squeezed to half its size
    stretched = md_xyz[:2000:stride].copy()
    stretched[:, 10:] += 0.2 * (stretched[:, 10:11] - stretched[:, 9:10])
    squeezed = 0.5 * md_xyz[:2000:stride]
    bad = tc.folding_metrics([md_xyz], stretched[None], md_frame_time=5.0, lss_frame_time=50.0)
    assert bad["virtual_bonds"]["fraction_frames_off_10pct"]["lss"] == 1.0
    squeezed_metrics = tc.folding_metrics([md_xyz], squeezed[None], md_frame_time=5.0, lss_frame_time=50.0)
    i, j = np.triu_indices(20, k=4)
    closest = np.linalg.norm(md_xyz[:2000:stride, i] - md_xyz[:2000:stride, j], axis=-1).min(axis=1)
    assert squeezed_metrics["close_pairs"]["separation_4"]["lss"]["fraction_frames_below_0.3nm"] == pytest.approx(
        np.mean(closest < 0.6)) and np.mean(closest < 0.6) > 0.5
    with pytest.raises(ValueError, match="whole multiple"):
        tc.folding_metrics([md_xyz], md_xyz[None, ::3], md_frame_time=5.0, lss_frame_time=7.0)


def test_demo_trp_cage_quick_runs_the_protocol_end_to_end(tmp_path, capsys):
    from lss_jax.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "--system", "trp-cage", "--quick", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "folded fraction" in printed and "F(TIC1) RMSE" in printed and "F(phi, psi)" not in printed
    # the protocol's decoder is generative: retrieval decodes the same latent trajectories beside it
    assert "decoder chain vs retrieval" in printed and "novelty, median (nm)" in printed
    theirs = json.loads((out / "report" / "retrieval" / "metrics.json").read_text())
    assert theirs["novelty_nearest_training_rmsd_nm"]["lss"]["median"] < 1e-3  # retrieval copies training frames
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    assert metrics["novelty_nearest_training_rmsd_nm"]["lss"]["median"] > 0.02  # the chain decoder makes new ones
    assert metrics["folding"]["lss_frame_time_ps"] == pytest.approx(50.0)
    assert "free_energy_phi_psi" not in metrics and metrics["tica"]["free_energy_tic1"]["n_bins"] > 10
    # the decoder's conditional distributions cover Q on this model, with the 190 Cα pairs
    cond = metrics["decoder"]["conditional"]
    assert cond["n_pairs"] == 190 and 0 < cond["q"]["sd_md"] < 0.5 and cond["q"]["w1_floor"] > 0
    assert ", Q " in printed
    for name in ("folding.png", "tica.png", "free_energy_psi1_timescales.png", "decoder.png"):
        assert (out / "report" / name).is_file(), name
    model_lss = md.load(str(out / "lss.xtc"), top=str(out / "lss.pdb"))
    assert model_lss.n_atoms == 20 and model_lss.n_frames == 20 * 200


def test_demo_more_md_trains_on_the_simulated_runs_too(tmp_path, capsys, monkeypatch):
    """--more-md N asks the system's simulate for N runs of the shipped length with the seeds after the shipped ones and
    trains on them with the shipped training run (OpenMM stubbed: the stub returns a short piece of shipped data)."""
    from lss_jax.cli import main

    calls = []
    piece = tc.load_trp_cage("independent")[:3000]

    def fake_simulate(system, n_frames, *, seed, progress=True, **kwargs):
        calls.append((system.name, n_frames, seed))
        return piece

    from lss_jax.systems.folding import FoldingSystem

    monkeypatch.setattr(FoldingSystem, "simulate", fake_simulate)
    out = tmp_path / "demo"
    # the retrieval decoder: what is checked is the training data, not the decoder (the chain's is the test above)
    assert main(["demo", "--system", "trp-cage", "--quick", "--more-md", "2", "--decoder", "knn", "--out", str(out),
                 "--no-progress"]) == 0
    assert calls == [("trp-cage", tc.SHIPPED_N_FRAMES, 3), ("trp-cage", tc.SHIPPED_N_FRAMES, 4)]
    assert "simulating 2 more training run(s) (seeds 3, 4; cached)" in capsys.readouterr().out
    info = json.loads((out / "model" / "lss.json").read_text())["info"]
    assert info["n_trajectories"] == 3 and info["n_frames"] == tc.SHIPPED_N_FRAMES + 2 * 3000
    assert main(["demo", "--more-md", "1", "--out", str(tmp_path / "ala")]) == 1
    assert "only the protein systems (trp-cage, villin) simulate more training runs" in capsys.readouterr().err
