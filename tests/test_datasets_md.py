"""Re-simulation with OpenMM (the md extra); skipped where OpenMM is not installed."""

import numpy as np
import pytest

from lss_jax.datasets import simulate_alanine_dipeptide


def test_simulation_is_seeded_cached_and_valid(tmp_path):
    pytest.importorskip("openmm")
    a = simulate_alanine_dipeptide(5, seed=3, frame_interval_ps=0.02, equilibration_ps=0.02, out=tmp_path / "a.xtc",
                                   progress=False)
    again = simulate_alanine_dipeptide(5, seed=3, frame_interval_ps=0.02, equilibration_ps=0.02, out=tmp_path / "a.xtc",
                                       progress=False)  # cached: loaded, not re-simulated
    b = simulate_alanine_dipeptide(5, seed=4, frame_interval_ps=0.02, equilibration_ps=0.02, out=tmp_path / "b.xtc",
                                   progress=False)
    assert a.n_frames == 5 and a.n_atoms == 22 and np.all(np.isfinite(a.xyz))
    np.testing.assert_allclose(again.xyz, a.xyz, atol=1e-3)  # xtc precision
    assert not np.allclose(a.xyz, b.xyz, atol=1e-3)  # another seed, another trajectory
    with pytest.raises(ValueError, match=r"multiple of the 4 fs step \(0.004 ps\)"):
        simulate_alanine_dipeptide(2, frame_interval_ps=0.003, out=tmp_path / "c.xtc")
