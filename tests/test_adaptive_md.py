"""Adaptive sampling with a molecular LSS: seed selection, rounds through the CLI, resume."""

import json

import jax
import numpy as np
import pytest

from lss_jax.adaptive import acquisition_scores, select_seeds
from lss_jax.cli import main
from lss_jax.config import DecoderConfig, EncoderConfig, PropagatorConfig
from lss_jax.datasets import alanine_dipeptide_files, load_alanine_dipeptide
from lss_jax.model.facade import LSS

TINY = dict(lag=2, encoder=EncoderConfig(latent_dim=2, epochs=2),
            propagator=PropagatorConfig(epochs=2, ensemble_size=2), decoder=DecoderConfig(iterations=20), seed=3)


@pytest.fixture(scope="module")
def traj():
    return load_alanine_dipeptide("train", stride=10)


@pytest.fixture(scope="module")
def model(traj):
    return LSS(**TINY).fit(traj, progress=False)


def test_seeds_are_the_best_scored_distinct_frames(model, traj):
    sel = select_seeds(jax.random.key(0), model, traj, 5, max_candidates=500, exclusion=0.1)
    assert len(sel.indices) == 5 and len(set(sel.indices.tolist())) == 5
    assert np.all(np.diff(sel.scores) <= 0)
    u = model.to_unit(sel.psi)
    d = np.linalg.norm(u[:, None] - u[None], axis=-1) + np.eye(5) * 10
    assert d.min() >= 0.1 * np.sqrt(2) - 1e-6
    # the best seed is the best candidate overall (nothing excludes the first pick)
    psi = model.encode(traj)  # candidates as select_seeds takes them: a strided subsample plus the extremes
    cand = np.unique(np.concatenate([np.linspace(0, traj.n_frames - 1, 500).astype(int), psi.argmin(0), psi.argmax(0)]))
    scores, terms = acquisition_scores(jax.random.key(0), model, psi[cand])
    assert np.isclose(sel.scores[0], scores.max())
    assert set(terms) == {"log_pi_lss", "log_rho_md", "epistemic_uncertainty"}
    # The MD density term against a brute-force Gaussian KDE (Scott's rule: covariance n^(-2/(m+4)) times the data's)
    # of the stored training frames in the unit box, and the score against the rule written out (beta = 0 with an
    # ensemble: z[-log rho_MD] + z[U]), neither through the module's functions.
    data = np.asarray(model.start_points, np.float64)
    x = np.clip(model.to_unit(psi[cand]), 0, 1).astype(np.float64)
    n, m = data.shape
    cov = np.cov(data.T) * n ** (-2 / (m + 4))
    diff = x[:, None] - data[None]
    maha = np.einsum("ijk,kl,ijl->ij", diff, np.linalg.inv(cov), diff)
    rho = np.exp(-0.5 * maha).mean(1) / np.sqrt((2 * np.pi) ** m * np.linalg.det(cov))
    np.testing.assert_allclose(terms["log_rho_md"], np.log(np.maximum(rho, 1e-12)), rtol=1e-6, atol=1e-9)
    z = lambda v: (v - v.mean()) / v.std()  # noqa: E731
    np.testing.assert_allclose(scores, z(-terms["log_rho_md"]) + z(terms["epistemic_uncertainty"].astype(np.float64)), atol=1e-6)
    np.testing.assert_allclose(model.encode(traj[int(sel.indices[0])]), sel.psi[:1], rtol=1e-5, atol=1e-6)


def test_cli_adapt_rounds_with_openmm_and_resume(model, traj, tmp_path, capsys):
    pytest.importorskip("openmm")
    files = alanine_dipeptide_files()
    path = model.save(tmp_path / "model")
    traj[:600].save_dcd(str(tmp_path / "md.dcd"))
    args = ["adapt", "--model", str(path), "--traj", str(tmp_path / "md.dcd"), "--top", str(files["pdb"]),
            "--n-seeds", "2", "--rounds", "2", "--md-frames", "30", "--prmtop", str(files["prmtop"]),
            "--out", str(tmp_path / "adapt"), "--no-progress"]
    assert main(args) == 0
    first = capsys.readouterr().out
    for r in (0, 1):
        entry = json.loads((tmp_path / "adapt" / f"round-{r:03d}" / "round.json").read_text())
        assert entry["md_files"] == ["md-00.xtc", "md-01.xtc"]
    assert entry["n_frames_total"] == 600 + 4 * 30
    assert (tmp_path / "adapt" / "round-001" / "model" / "lss.json").is_file()  # retrained in round 1
    assert "round 1: training on 660 frames in 3 trajectories" in first
    assert main(args) == 0  # complete: nothing is redone (no training, same summary)
    again = capsys.readouterr().out
    assert "training" not in again and again.strip() == first[first.index("adaptive sampling") - 1 :].strip()


def test_cli_adapt_without_md_system_writes_seeds_only(model, traj, tmp_path, capsys):
    import mdtraj as md

    path = model.save(tmp_path / "model")
    traj[:600].save_dcd(str(tmp_path / "md.dcd"))
    assert main(["adapt", "--model", str(path), "--traj", str(tmp_path / "md.dcd"), "--top",
                 str(alanine_dipeptide_files()["pdb"]), "--n-seeds", "3", "--out", str(tmp_path / "a")]) == 0
    assert "no MD system given" in capsys.readouterr().out
    seeds = md.load(str(tmp_path / "a" / "round-000" / "seeds.pdb"))
    assert seeds.n_frames == 3 and seeds.n_atoms == 22
