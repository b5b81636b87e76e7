"""Streaming training data: what load_training_data keeps equals the in-memory path; input too large is refused."""

import mdtraj as md
import numpy as np
import pytest

from lss_jax.config import LSSConfig
from lss_jax.data import stream
from lss_jax.datasets import alanine_dipeptide_files


def test_streamed_equals_in_memory_features_and_decoded_atoms():
    files = alanine_dipeptide_files()
    config = LSSConfig(lag=2)
    streamed = stream.load_training_data([files["train"]], files["pdb"], config, stride=7, chunk=333)
    loaded = stream.training_data(md.load(str(files["train"]), top=str(files["pdb"]), stride=7), config)
    assert streamed.lengths == loaded.lengths == [25_000 // 7 + 1]
    np.testing.assert_array_equal(streamed.features[0], loaded.features[0])
    np.testing.assert_array_equal(streamed.xyz[0], loaded.xyz[0])
    np.testing.assert_array_equal(streamed.atom_indices, loaded.atom_indices)
    assert streamed.timestep == loaded.timestep == 14.0
    assert streamed.xyz[0].shape[1] == 10  # heavy atoms only: the hydrogens were never kept


def test_memory_estimate_scales_with_frames_and_refuses_what_does_not_fit():
    small, large = stream.estimate_training_bytes(10**4, 224, 20), stream.estimate_training_bytes(10**6, 224, 20)
    assert large > small and (large - small) == pytest.approx(99 * (small - stream._BASELINE_BYTES))
    with pytest.raises(ValueError, match=r"keep one frame in 3 \(--stride 3\)"):
        stream.check_memory(3 * 10**6, 224, 20, available=stream.estimate_training_bytes(10**6, 224, 20) * 1.01)


def test_cli_train_refuses_input_that_would_not_fit_before_reading_it(tmp_path, monkeypatch, capsys):
    from lss_jax.cli import main

    files = alanine_dipeptide_files()
    monkeypatch.setattr(stream, "available_memory_bytes", lambda: stream._BASELINE_BYTES + 2**20)
    code = main(["train", "--traj", str(files["train"]), "--top", str(files["pdb"]), "--lag", "2",
                 "--out", str(tmp_path / "model"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "would hold about" in err and "--stride" in err and not (tmp_path / "model").exists()
