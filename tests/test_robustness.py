"""Numerical robustness of SRV training on the shipped alanine dipeptide data (20 seeds)."""

import jax
import numpy as np

from lss_jax.config import EncoderConfig
from lss_jax.data.featurize import FeatureSpec, featurize, standardizer_fit
from lss_jax.datasets import load_alanine_dipeptide
from lss_jax.encoder import fit_srv, reversible_decomposition


def test_srv_trains_over_20_seeds_without_nan_even_with_collinear_features():
    traj = load_alanine_dipeptide("train")
    f = featurize(traj, FeatureSpec())
    f = standardizer_fit([f]).transform(f)
    # exactly collinear and near-constant columns make the feature covariances singular; the SRV's
    # covariances of its outputs must stay regularized regardless
    f = np.concatenate([f, f[:, :1], 1e-6 * f[:, 1:2]], axis=1).astype(np.float32)
    lag = 5
    tica = reversible_decomposition([f[:, :-2]], lag).eigenvalues[0]
    leading = []
    for seed in range(20):
        _, projection, history = fit_srv(jax.random.key(seed), [f], lag, 4, config=EncoderConfig(epochs=3),
                                         progress=False)
        assert np.all(np.isfinite(history.train_loss)) and np.all(np.isfinite(history.val_loss)), seed
        lam = projection.eigenvalues
        assert np.all(np.isfinite(lam)) and np.all(np.abs(lam) <= 1.0 + 1e-6), (seed, lam)
        assert np.all(np.diff(lam) <= 0), (seed, lam)
        assert lam[0] > 5 * abs(lam[1]), (seed, lam)
        leading.append(lam[0])
    # Every seed finds the slow backbone process: linear TICA of the same features gives lambda_1 = 0.35
    # and the next processes are fast (|lambda_2| ~ 0.01-0.03 for every seed), so a failed fit would
    # sit near zero. After only 3 epochs the estimate has not converged (0.32-0.34; 10 epochs reach
    # 0.33-0.39 depending on early stopping), so this checks that training worked, not how well.
    assert min(leading) > 0.5 * tica, (tica, leading)
