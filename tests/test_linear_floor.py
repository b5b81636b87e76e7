"""The linear floor of the encoder: an SRV never ends below TICA on the same features, lag and split.

The failure it guards (issue: sparse rare-event data): a slow process that a linear projection separates, visited
in a handful of transitions. Minibatches rarely hold its frames and the validation block may never visit it, so a
plain SRV trained from a random start can settle on the fast processes; TICA, fitted on all training pairs at
once, keeps it. The synthetic system (:func:`lss_jax.datasets.rare_state_features`) is such a case with a known answer: a hidden two-state Markov chain
(a rare state holding ~2.4 % of the frames, entered 3-4 times in 10 000 frames; exact slowest timescale
-1 / ln(1 - p01 - p10) = 77.6 frames) seen through a noisy linear feature, mixed with three fast AR(1) processes
and nonlinear functions of them into 10 features.
"""

import jax
import numpy as np
import pytest
from deeptime.decomposition import TICA

from lss_jax.config import EncoderConfig
from lss_jax.data.pairs import lagged_pairs, split_trajectories
from lss_jax.datasets import rare_state_features, rare_state_timescale
from lss_jax.encoder import below_floor, fit_srv, implied_timescales, linear_floor, reversible_decomposition, srv_loss

LAG, K = 5, 3


def _t1(eigenvalues):
    return float(implied_timescales(eigenvalues[:1], LAG)[0])


# Seeds whose validation block (the last 10 %) never or rarely visits the rare state: the plain SRV's failure cases.
@pytest.mark.parametrize("seed", [0, 2, 4])
def test_srv_keeps_the_rare_slow_process_that_tica_finds(seed):
    x, s = rare_state_features(seed)
    assert 2 <= np.sum((s[1:] == 1) & (s[:-1] == 0)) <= 6  # a handful of transitions
    t_tica = _t1(reversible_decomposition([x], LAG).eigenvalues)
    assert t_tica > 15  # TICA sees the slow process (the fast ones are below 10 frames)
    net, projection, _ = fit_srv(jax.random.key(seed), [x], LAG, K, config=EncoderConfig(linear_floor=True),
                                 progress=False)
    assert net.linear is not None  # the plain SRV ended below TICA's VAMP-2, so the TICA path was trained
    assert _t1(projection.eigenvalues) >= 0.95 * t_tica
    assert _t1(projection.eigenvalues) <= 1.1 * rare_state_timescale()  # and invents no slower one (exact: 77.6)
    assert not below_floor(linear_floor(net, [x], LAG))
    # negative control: the plain SRV loses it in these seeds (t1 10-21 frames vs TICA 17-41), and scores below TICA
    plain_net, plain, _ = fit_srv(jax.random.key(seed), [x], LAG, K, progress=False)
    assert _t1(plain.eigenvalues) < 0.8 * t_tica
    assert below_floor(linear_floor(plain_net, [x], LAG))


def test_training_that_only_hurts_returns_the_tica_start():
    """A learning rate that wrecks every epoch: early stopping keeps the untrained network, which is TICA
    (best_epoch -1, the same validation VAMP-2 as TICA's to float32 rounding); without the floor the wrecked
    network is what comes back."""
    x, _ = rare_state_features(1, n=4000)
    kwargs = dict(config=EncoderConfig(hidden=(16,), batch_size=500, epochs=2, patience=1, learning_rate=5.0),
                  progress=False)
    net, _, history = fit_srv(jax.random.key(0), [x], LAG, K, tica_path=True, **kwargs)
    assert history.best_epoch == -1
    floor = linear_floor(net, [x], LAG)
    assert floor["srv_val_vamp2"] == pytest.approx(floor["tica_val_vamp2"], abs=1e-4)
    assert floor["srv_train_vamp2"] == pytest.approx(floor["tica_train_vamp2"], abs=1e-4)
    plain, _, history = fit_srv(jax.random.key(0), [x], LAG, K, tica_path=False, **kwargs)
    assert history.best_epoch >= 0
    assert linear_floor(plain, [x], LAG)["srv_val_vamp2"] < floor["tica_val_vamp2"] - 0.05


def test_linear_floor_reports_tica_as_deeptime_computes_it():
    x, _ = rare_state_features(3, n=4000)
    net, _, _ = fit_srv(jax.random.key(0), [x], LAG, K, tica_path=True, config=EncoderConfig(hidden=(16,), epochs=2),
                        progress=False)
    floor = linear_floor(net, [x], LAG)
    reference = TICA(lagtime=LAG, dim=K, scaling=None).fit(x.astype(np.float64)).fetch_model()
    np.testing.assert_allclose(floor["tica_eigenvalues"], reference.singular_values[:K], rtol=1e-6)
    # TICA's validation VAMP-2, written out in float64: 1 + ||C0^-1/2 C1 C0^-1/2||_F^2 of its projections on the
    # validation pairs, with the symmetrized (reversible) covariances about the pairs' joint mean
    train, val = split_trajectories([x], 0.1)
    tica = reversible_decomposition(train, LAG)
    x0, xt = lagged_pairs(val, LAG)
    y0, yt = [(np.asarray(a, np.float64) - tica.mean) @ tica.vectors[:, :K] for a in (x0, xt)]
    mean = 0.5 * (y0.mean(0) + yt.mean(0))
    y0, yt = y0 - mean, yt - mean
    c0 = 0.5 * (y0.T @ y0 + yt.T @ yt) / len(y0)
    c1 = 0.5 * (y0.T @ yt + yt.T @ y0) / len(y0)
    w, v = np.linalg.eigh(c0)
    inv_sqrt = v @ np.diag(w**-0.5) @ v.T
    assert floor["tica_val_vamp2"] == pytest.approx(1 + np.sum((inv_sqrt @ c1 @ inv_sqrt) ** 2), rel=1e-4)
    assert float(-srv_loss(net, (x0, xt))) == pytest.approx(floor["srv_val_vamp2"])


def test_a_model_with_the_tica_path_records_the_floor_and_saves_and_loads(monkeypatch, tmp_path):
    """fit_lss with encoder.linear_floor: the fallback's network (forced here) is saved with its linear path, found
    again from the weights on load, and the model is bitwise the same; the comparison is in the model's record."""
    import chex

    import lss_jax.encoder as encoder_module
    from lss_jax import fit_lss
    from lss_jax.config import DecoderConfig, LSSConfig, PropagatorConfig
    from lss_jax.datasets import load_alanine_dipeptide
    from lss_jax.model.io import load_model

    monkeypatch.setattr(encoder_module, "below_floor", lambda scores, tolerance=1e-3: True)
    config = LSSConfig(lag=2, encoder=EncoderConfig(latent_dim=2, epochs=2, linear_floor=True),
                       propagator=PropagatorConfig(epochs=2), decoder=DecoderConfig(iterations=20), seed=3)
    model = fit_lss(jax.random.key(3), load_alanine_dipeptide("train", stride=10), config, progress=False)
    floor = model.info["encoder"]["linear_floor"]
    assert model.encoder.linear is not None and floor["tica_path"]
    assert floor["srv_val_vamp2"] >= floor["tica_val_vamp2"] - 1e-4  # the TICA start is a candidate of early stopping
    assert len(floor["tica_timescales_ps"]) == 2
    loaded = load_model(model.save(tmp_path / "m"))
    assert loaded.encoder.linear is not None
    chex.assert_trees_all_equal(jax.tree_util.tree_leaves(loaded), jax.tree_util.tree_leaves(model))


def _ar_pairs(seed, n=5000, phi=(0.98, 0.9, 0.5)):
    rng = np.random.default_rng(seed)
    phi = np.asarray(phi)
    x = np.zeros((n, len(phi)))
    for t in range(1, n):
        x[t] = phi * x[t - 1] + np.sqrt(1 - phi**2) * rng.normal(size=len(phi))
    return x[:-LAG], x[LAG:]


def test_block_moments_give_the_float64_reversible_vamp2_and_a_calibrated_standard_error():
    """below_floor's standard error: the difference of two projections' reversible VAMP-2 on lagged pairs of an
    AR(1) process (correlation times up to 50 frames), its block-bootstrap SE against the spread of the same
    difference over 40 independent data sets. The sd of 40 draws is known to ~11 %, so the median SE must be within
    0.6-1.6x of it (measured: 1.00); a bootstrap of single pairs (blocks of one) ignores the correlation and is the
    negative control (0.41)."""
    from lss_jax.encoder import _pair_block_moments, _reversible_vamp2

    a, b = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), np.array([[0.6, 0.0], [0.0, 0.2], [0.8, 1.0]])
    x0, xt = _ar_pairs(0)
    # all blocks once: the score itself, as a float64 reference computes it
    y0, yt = x0 @ a, xt @ a
    mean = 0.5 * (y0.mean(0) + yt.mean(0))
    c0 = 0.5 * ((y0 - mean).T @ (y0 - mean) + (yt - mean).T @ (yt - mean)) / len(y0)
    c1 = 0.5 * ((y0 - mean).T @ (yt - mean) + (yt - mean).T @ (y0 - mean)) / len(y0)
    w, v = np.linalg.eigh(c0)
    inv_sqrt = v @ np.diag(w**-0.5) @ v.T
    whole = _reversible_vamp2(_pair_block_moments(y0, yt, 20), np.ones((1, 20)))
    assert whole[0] == pytest.approx(1 + np.sum((inv_sqrt @ c1 @ inv_sqrt) ** 2), rel=1e-10)

    def difference_and_se(seed, n_blocks):
        x0, xt = _ar_pairs(seed)
        ma, mb = _pair_block_moments(x0 @ a, xt @ a, n_blocks), _pair_block_moments(x0 @ b, xt @ b, n_blocks)
        counts = np.random.default_rng(seed).multinomial(len(ma[0]), np.full(len(ma[0]), 1 / len(ma[0])), 200)
        ones = np.ones((1, len(ma[0])))
        d = _reversible_vamp2(ma, ones)[0] - _reversible_vamp2(mb, ones)[0]
        return d, np.std(_reversible_vamp2(ma, counts) - _reversible_vamp2(mb, counts), ddof=1)

    runs = np.array([difference_and_se(seed, 20) for seed in range(1, 41)])
    spread = np.std(runs[:, 0], ddof=1)
    assert 0.6 <= np.median(runs[:, 1]) / spread <= 1.6
    single = np.median([difference_and_se(seed, len(x0))[1] for seed in range(1, 6)])  # blocks of one pair
    assert single / spread < 0.6
