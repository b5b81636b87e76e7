"""paired_tica_timescale: the error of a difference of two timescales measured on the same paths.

Known answer: two AR(1) sets driven by the same innovations (autocorrelations 0.9 and 0.85, exact timescales
-1 / ln 0.9 = 9.491 and -1 / ln 0.85 = 6.153 frames), 20 trajectories of 2000 frames a set, 40 independent
repetitions. The spread of the 40 estimates is the truth the bootstrap's errors are held to. With 40 repetitions
the sample standard deviation has a relative error of 1 / sqrt(2 * 39) = 11 %; the allowance is 30 % (~2.7 of those).
"""

import math

import numpy as np
import pytest

from lss_jax.analysis.lagchoice import paired_tica_timescale

PHI_A, PHI_B = 0.9, 0.85
N_REPEATS = 40


def _ar(innovations: np.ndarray, phi: float) -> list[np.ndarray]:
    x = np.zeros_like(innovations)
    for t in range(1, innovations.shape[1]):
        x[:, t] = phi * x[:, t - 1] + innovations[:, t]
    return [row[:, None] for row in x]


@pytest.fixture(scope="module")
def repeats():
    out = []
    for seed in range(N_REPEATS):
        e = np.random.default_rng(seed).normal(size=(20, 2000))
        out.append(paired_tica_timescale(_ar(e, PHI_A), _ar(e, PHI_B), 1, seed=seed))
    return {k: np.array([r[k] for r in out]) for k in out[0]}


def test_paired_errors_match_the_spread_of_repeats(repeats):
    exact = -1 / math.log(PHI_A) + 1 / math.log(PHI_B)
    spread = np.std(repeats["difference"], ddof=1)
    assert abs(repeats["difference"].mean() - exact) < 3 * spread / math.sqrt(N_REPEATS)
    for key in ("difference", "a", "b"):
        sd = np.std(repeats[key], ddof=1)
        assert abs(repeats[f"{key}_se"].mean() / sd - 1) < 0.3, (key, repeats[f"{key}_se"].mean(), sd)


def test_pairing_is_what_makes_the_difference_precise(repeats):
    # negative control: treating the two sets as independent (errors added in quadrature) overstates the spread of
    # the difference by more than 2x here, which is why the bootstrap takes the same trajectories from both sets
    unpaired = np.sqrt(repeats["a_se"] ** 2 + repeats["b_se"] ** 2).mean()
    assert unpaired > 2 * np.std(repeats["difference"], ddof=1)


def test_refuses_sets_that_are_not_paired():
    x = [np.zeros((10, 1))] * 3
    with pytest.raises(ValueError, match="same number"):
        paired_tica_timescale(x, x[:2], 1)
    with pytest.raises(ValueError, match="same lengths"):
        paired_tica_timescale(x, [np.zeros((9, 1))] * 3, 1)
