"""Kinetic and distributional validation metrics (lss_jax.analysis: distributions, msm, metastable,
autocorrelation, chapman_kolmogorov, compare) against references we did not write: SciPy's
Jensen-Shannon distance, deeptime's MSM mean first-passage times, hand-solved Markov chains, exact
autocorrelations of AR(1) processes, and the asymptotic variance of Markov-chain averages."""

import doctest
import json
import warnings

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from lss_jax.analysis import autocorrelation as autocorrelation_module
from lss_jax.analysis import chapman_kolmogorov as chapman_kolmogorov_module
from lss_jax.analysis import compare, distributions, metastable, msm, tica, torsions
from lss_jax.analysis.autocorrelation import autocorrelation, e_folding_time, integrated_autocorrelation_time
from lss_jax.analysis.chapman_kolmogorov import chapman_kolmogorov
from lss_jax.analysis.compare import compare_kinetics
from lss_jax.analysis.distributions import js_distance, jsd_1d, jsd_2d, jsd_reference_range, torsion_jsds
from lss_jax.analysis.metastable import metastable_kinetics, metastable_msm
from lss_jax.analysis.msm import coarse_transition_matrix, mfpt_between_sets, mfpt_to_set, pcca_memberships
from lss_jax.analysis.torsions import torsion_angles

# a 3-state chain solved by hand: pi = (1/4, 1/2, 1/4); MFPT to state 2 from (0, 1) = (8, 6)
T3 = np.array([[0.5, 0.5, 0.0], [0.25, 0.5, 0.25], [0.0, 0.5, 0.5]])
# two metastable pairs {0, 1} and {2, 3}, reversible (symmetric)
T4 = np.array([[0.90, 0.10, 0.00, 0.00],
               [0.10, 0.88, 0.02, 0.00],
               [0.00, 0.02, 0.88, 0.10],
               [0.00, 0.00, 0.10, 0.90]])


def sample_chain(T, n_steps, seed, start=0):
    """A trajectory of the Markov chain ``T`` (independent of the code under test)."""
    rng = np.random.default_rng(seed)
    cum = np.cumsum(T, axis=1).tolist()
    u = rng.random(n_steps).tolist()
    out = np.empty(n_steps, np.int64)
    s = start
    for t in range(n_steps):
        out[t] = s
        row = cum[s]
        x = u[t]
        s = 0
        while s < len(row) - 1 and x >= row[s]:
            s += 1
    return out


def exact_stationary(T):
    w, v = np.linalg.eig(T.T)
    pi = np.real(v[:, np.argmin(np.abs(w - 1))])
    return pi / pi.sum()


def asymptotic_sd_of_mean(T, f):
    """sd of sqrt(N) (mean_N f - pi f) for the chain T: 2 <fb, Z fb>_pi - <fb, fb>_pi, Z the fundamental matrix."""
    pi = exact_stationary(T)
    fb = f - pi @ f
    Z = np.linalg.inv(np.eye(len(T)) - T + np.outer(np.ones(len(T)), pi))
    return float(np.sqrt(2 * pi @ (fb * (Z @ fb)) - pi @ fb**2))


# --------------------------------------------------------------------------------------------------
# Jensen-Shannon distances
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_js_distance_matches_scipy_with_empty_bins(seed):
    rng = np.random.default_rng(seed)
    p, q = rng.random((2, 40))
    p[rng.random(40) < 0.3] = 0.0  # empty bins on one side or both
    q[:5] = 0.0
    assert js_distance(p, q) == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)
    assert js_distance(p.reshape(5, 8), q.reshape(5, 8)) == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)


def test_jsd_1d_and_2d_match_scipy_on_numpy_histograms():
    rng = np.random.default_rng(3)
    a = rng.vonmises(-1.0, 2.0, size=(5000, 2))
    b = rng.vonmises(-0.7, 1.5, size=(3000, 2))
    edges = np.linspace(-np.pi, np.pi, 61)
    ref_1d = jensenshannon(np.histogram(a[:, 0], edges)[0], np.histogram(b[:, 0], edges)[0], base=2)
    assert jsd_1d(a[:, 0], b[:, 0], bins=60) == pytest.approx(ref_1d, abs=1e-12)
    e2 = np.linspace(-np.pi, np.pi, 26)
    ha = np.histogram2d(a[:, 0], a[:, 1], [e2, e2])[0].ravel()
    hb = np.histogram2d(b[:, 0], b[:, 1], [e2, e2])[0].ravel()
    assert jsd_2d(a, b, bins=25) == pytest.approx(jensenshannon(ha, hb, base=2), abs=1e-12)


def test_jsd_reference_range_matches_scipy_with_clipped_outliers():
    rng = np.random.default_rng(4)
    ref, other = rng.normal(0, 1, 4000), rng.normal(0.5, 1.5, 4000)
    edges = np.linspace(ref.min(), ref.max(), 31)
    expected = jensenshannon(np.histogram(ref, edges)[0], np.histogram(np.clip(other, ref.min(), ref.max()), edges)[0],
                             base=2)
    assert jsd_reference_range(ref, other, bins=30) == pytest.approx(expected, abs=1e-12)
    # 2-D: same on the product grid
    ref2, other2 = rng.normal(size=(4000, 2)), rng.normal(0.3, 1.2, size=(4000, 2))
    lo, hi = ref2.min(0), ref2.max(0)
    grid = [np.linspace(lo[k], hi[k], 21) for k in range(2)]
    clipped = np.clip(other2, lo, hi)
    expected2 = jensenshannon(np.histogram2d(*ref2.T, grid)[0].ravel(), np.histogram2d(*clipped.T, grid)[0].ravel(),
                              base=2)
    assert jsd_reference_range(ref2, other2, bins=20) == pytest.approx(expected2, abs=1e-12)


def test_jsd_identical_is_zero_disjoint_is_maximal():
    rng = np.random.default_rng(5)
    x = rng.uniform(-np.pi, 0.0, 2000)
    assert jsd_1d(x, x) == 0.0
    assert jsd_1d(x, x - 2 * np.pi) == 0.0  # another branch of the same angles (periodic wrap)
    assert jsd_1d(x, x + np.pi) == pytest.approx(1.0, abs=1e-12)  # disjoint halves of the circle
    xy = rng.uniform(-np.pi, 0.0, (2000, 2))
    assert jsd_2d(xy, xy) == 0.0
    assert jsd_2d(xy, xy + np.array([np.pi, 0.0])) == pytest.approx(1.0, abs=1e-12)
    t = rng.normal(size=(2000, 2))
    assert jsd_reference_range(t, t) == 0.0
    assert jsd_reference_range(t[:, 0], t[:, 0] + 100.0, bins=10) == pytest.approx(
        jensenshannon(np.histogram(t[:, 0], 10)[0], np.eye(10)[-1], base=2))
    # non-periodic clipping keeps every sample: far outliers pile into the edge bin instead of vanishing
    assert jsd_1d(np.full(10, 0.5), np.full(10, 50.0), range=(0, 1), bins=4, periodic=False) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "call",
    [
        lambda: jsd_1d([0.1, np.nan], [0.2]),
        lambda: jsd_1d([], [0.2]),
        lambda: jsd_1d([0.1], [0.2], bins=0),
        lambda: jsd_1d([0.1], [0.2], range=(1.0, 0.0)),
        lambda: jsd_2d(np.zeros((5, 3)), np.zeros((5, 2))),
        lambda: js_distance([1, 2], [1, 2, 3]),
        lambda: js_distance([0, 0], [1, 2]),
        lambda: js_distance([-1, 2], [1, 2]),
        lambda: jsd_reference_range(np.zeros((5, 3)), np.zeros((5, 3))),
    ],
)
def test_jsd_bad_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()


# --------------------------------------------------------------------------------------------------
# MFPT, coarse graining, PCCA+
# --------------------------------------------------------------------------------------------------


def test_mfpt_three_state_chain_by_hand():
    assert mfpt_to_set(T3, [2]).tolist() == pytest.approx([8.0, 6.0, 0.0])
    assert mfpt_to_set(T3, [2], lag_time=2.5).tolist() == pytest.approx([20.0, 15.0, 0.0])
    # to state 0: m2 = 1 + m2/2 + m1/2, m1 = 1 + m1/2 + m2/4  ->  m1 = 6, m2 = 8 (mirror image)
    assert mfpt_to_set(T3, [0]).tolist() == pytest.approx([0.0, 6.0, 8.0])
    # from {0, 1} at equilibrium (weights 1/4, 1/2) to {2}: (8/4 + 6/2) / (3/4)
    assert mfpt_between_sets(T3, [0, 1], [2]) == pytest.approx(20.0 / 3.0)


def test_mfpt_matches_deeptime_on_random_reversible_chains():
    from deeptime.markov.msm import MarkovStateModel

    rng = np.random.default_rng(7)
    for _ in range(5):
        c = rng.random((6, 6)) ** 3
        c = c + c.T
        T = c / c.sum(1, keepdims=True)
        msm = MarkovStateModel(T, lagtime=3)
        for origin, target in [([0], [5]), ([0, 1, 2], [4, 5]), ([3], [0, 2])]:
            ours = mfpt_between_sets(T, origin, target, lag_time=3)
            assert ours == pytest.approx(msm.mfpt(origin, target), rel=1e-9)


def test_mfpt_unreachable_target_is_infinite():
    T = np.array([[1.0, 0.0], [0.5, 0.5]])  # state 0 absorbing
    assert mfpt_to_set(T, [1]).tolist() == [np.inf, 0.0]


def test_coarse_transition_matrix_two_lumps():
    P, pi = coarse_transition_matrix(T4, np.full(4, 0.25), [0, 0, 1, 1], 2)
    assert pi.tolist() == pytest.approx([0.5, 0.5])
    assert P == pytest.approx(np.array([[0.99, 0.01], [0.01, 0.99]]))


def test_pcca_recovers_two_metastable_sets():
    memberships, assignments = pcca_memberships(T4, 2)
    assert assignments.tolist() in ([0, 0, 1, 1], [1, 1, 0, 0])
    assert np.allclose(memberships.sum(1), 1.0)


def _embedded(dtraj, seed, centers=(0.0, 1.0, 10.0, 11.0)):
    rng = np.random.default_rng(seed)
    return (np.asarray(centers)[dtraj] + rng.normal(0, 0.05, dtraj.size))[:, None]


def test_metastable_msm_and_kinetics_recover_a_known_chain():
    from deeptime.markov.msm import MarkovStateModel

    n = 60_000
    dtraj = sample_chain(T4, n, seed=11)
    model = metastable_msm(_embedded(dtraj, 0), lag=1, n_clusters=4, n_metastable=2, seed=0)
    order = np.argsort(model.centers[:, 0])  # clusters in the order of the true states
    sets = model.cluster_sets[order]
    assert sets[0] == sets[1] != sets[2] == sets[3]

    # the same clustering applied to a second ("generated") data set from a chain with different populations
    T_gen = T4.copy()
    T_gen[1] = [0.10, 0.86, 0.04, 0.00]  # more 1 -> 2: pi shifts towards {2, 3} (and breaks detailed balance)
    gen = sample_chain(T_gen, n, seed=12)
    kin = metastable_kinetics(model, [_embedded(gen[: n // 2], 1), _embedded(gen[n // 2 :], 2)], lag=1,
                              n_bootstrap=50, n_blocks=10, seed=0)
    pi_gen = exact_stationary(T_gen)
    A = sets[0]
    for label, states in ((A, [0, 1]), (1 - A, [2, 3])):
        f = np.isin(np.arange(4), states).astype(float)
        tol = 4 * asymptotic_sd_of_mean(T_gen, f) / np.sqrt(n)
        assert abs(kin["populations"][label] - pi_gen[states].sum()) < tol
        assert abs(kin["stationary_distribution"][label] - pi_gen[states].sum()) < tol
        assert kin["populations_err"][label] == pytest.approx(asymptotic_sd_of_mean(T_gen, f) / np.sqrt(n), rel=0.5)

    # MFPT between the metastable sets of the reference chain vs deeptime on the true matrix
    ref = metastable_kinetics(model, _embedded(dtraj, 0), lag=1, frame_time=2.0, n_bootstrap=50, seed=0)
    msm = MarkovStateModel(T4, lagtime=2.0)
    for a, b, origin, target in ((A, 1 - A, [0, 1], [2, 3]), (1 - A, A, [2, 3], [0, 1])):
        exact = msm.mfpt(origin, target)
        assert abs(ref["mfpt"][a, b] - exact) < 4 * ref["mfpt_err"][a, b]
        assert ref["mfpt_err"][a, b] < 0.2 * exact  # the error bar is informative
    assert ref["gross_flux"][A, 1 - A] == pytest.approx(ref["gross_flux"][1 - A, A])  # reversible estimator
    assert np.all(ref["net_flux"] < 1e-12)
    assert np.allclose(ref["transition_matrix"].sum(1), 1.0)
    assert ref["n_active"] == 4 and ref["active_fraction"] == 1.0


def test_metastable_msm_restricts_to_the_largest_connected_set():
    rng = np.random.default_rng(13)
    main = _embedded(sample_chain(T4, 5000, seed=13), 3)
    island = np.full((50, 1), 30.0) + rng.normal(0, 0.01, (50, 1))  # a separate trajectory never connected
    with pytest.warns(UserWarning, match="largest connected set"):
        model = metastable_msm([main, island], lag=1, n_clusters=5, n_metastable=2, seed=0)
    assert model.active_set.size == 4
    far = int(np.argmax(model.centers[:, 0]))
    assert far not in model.active_set.tolist()
    # the island cluster is mapped to the set of the nearest active centre (state 3's)
    nearest = int(np.argmax(np.where(np.isin(np.arange(5), model.active_set), model.centers[:, 0], -np.inf)))
    assert model.cluster_sets[far] == model.cluster_sets[nearest]


# --------------------------------------------------------------------------------------------------
# Chapman-Kolmogorov
# --------------------------------------------------------------------------------------------------


def test_ck_passes_on_markov_data_and_fails_on_a_lumped_chain_with_memory():
    # default n_sigma = 4: about 8 free comparisons (k = 2..5, 2 sets), each a ratio to a 20-block bootstrap
    # error (t-like with 19 dof): P(max |t| > 4) is about 0.5 %; over 20 seeds the largest value seen was 3.2
    dtraj = sample_chain(T3, 100_000, seed=21)
    ok = chapman_kolmogorov(dtraj, 1, [np.array([0]), np.array([1, 2])], k_max=5, seed=0)
    assert ok["passed"], ok["max_deviation_sigma"]
    assert ok["predicted"].shape == (5, 2, 2)
    assert np.allclose(ok["predicted"][0], ok["estimated"][0])  # k = 1 by construction
    assert np.allclose(ok["predicted"].sum(-1), 1.0)

    # hidden chain A1 <-> A2 <-> B2 <-> B1 observed as {A1, A2} -> 0, {B2, B1} -> 1: the exit time from a lump
    # depends on where in it the chain sits (memory), so P(tau)^k underestimates the staying probability
    hidden = np.array([[0.99, 0.01, 0.00, 0.00],
                       [0.10, 0.80, 0.10, 0.00],
                       [0.00, 0.10, 0.80, 0.10],
                       [0.00, 0.00, 0.01, 0.99]])
    observed = (sample_chain(hidden, 100_000, seed=22) >= 2).astype(np.int64)
    bad = chapman_kolmogorov(observed, 1, np.array([0, 1]), k_max=5, seed=0)
    assert not bad["passed"]
    assert bad["max_deviation_sigma"] > 8  # 11-14 sigma over 5 seeds
    assert np.all(bad["estimated"][1:, 0, 0] > bad["predicted"][1:, 0, 0])


def test_ck_with_a_precomputed_transition_matrix():
    dtraj = sample_chain(T3, 50_000, seed=23)
    true = chapman_kolmogorov(dtraj, 1, np.array([0, 1, 1]), transition_matrix=T3, k_max=4, seed=0)
    assert true["passed"] and np.all(true["predicted_err"] == 0)
    # the exact k-step probabilities from 0: (T^k)[0, 0]
    assert true["predicted"][:, 0, 0] == pytest.approx([np.linalg.matrix_power(T3, k)[0, 0] for k in range(1, 5)])
    wrong = np.array([[0.8, 0.2, 0.0], [0.1, 0.8, 0.1], [0.0, 0.2, 0.8]])  # too slow
    assert not chapman_kolmogorov(dtraj, 1, np.array([0, 1, 1]), transition_matrix=wrong, k_max=4, seed=0)["passed"]


def test_ck_plot_writes_a_figure(tmp_path):
    dtraj = sample_chain(T3, 5000, seed=24)
    from lss_jax.analysis.plots import plot_chapman_kolmogorov

    result = chapman_kolmogorov(dtraj, 1, [[0], [1, 2]], k_max=3, n_bootstrap=10, seed=0)
    fig = plot_chapman_kolmogorov(result, frame_time=2.0, unit="ps", labels=["A", "B"], path=tmp_path / "ck.png")
    assert (tmp_path / "ck.png").stat().st_size > 1000
    assert len(fig.axes) == 4


@pytest.mark.parametrize(
    "call",
    [
        lambda: chapman_kolmogorov(np.array([0.5, 1.0]), 1, np.array([0, 1])),
        lambda: chapman_kolmogorov(np.array([0, 1, 0]), 0, np.array([0, 1])),
        lambda: chapman_kolmogorov(np.array([0, 1, 0]), 1, [[0, 1], [1]]),  # overlapping sets
        lambda: chapman_kolmogorov(np.array([0, 1, 0]), 5, np.array([0, 1])),  # shorter than k_max * lag
        lambda: mfpt_to_set(np.array([[0.5, 0.6], [0.5, 0.5]]), [0]),  # rows do not sum to 1
        lambda: mfpt_to_set(T3, [3]),
        lambda: metastable_msm(np.zeros((10, 1)), lag=1, n_clusters=20),
        lambda: pcca_memberships(T3, 4),
    ],
)
def test_kinetics_bad_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()


# --------------------------------------------------------------------------------------------------
# autocorrelation
# --------------------------------------------------------------------------------------------------


def ar1(n, tau, seed, n_traj=1, scale=1.0):
    rng = np.random.default_rng(seed)
    rho = np.exp(-1.0 / tau)
    noise = rng.normal(0, np.sqrt(1 - rho**2), (n_traj, n))
    x = np.empty((n_traj, n))
    x[:, 0] = rng.normal(size=n_traj)
    for t in range(1, n):
        x[:, t] = rho * x[:, t - 1] + noise[:, t]
    return scale * x


def test_ar1_autocorrelation_and_decorrelation_times():
    tau, n = 10.0, 200_000
    rho = np.exp(-1 / tau)
    x = ar1(n, tau, seed=31)[0]
    acf = autocorrelation(x, max_lag=100)[:, 0]
    lags = np.arange(101)
    # Bartlett: var r(k) <= (1 + rho^2) / (1 - rho^2) / n for an AR(1)
    tol = 5 * np.sqrt((1 + rho**2) / (1 - rho**2) / n)
    assert np.max(np.abs(acf - rho**lags)) < tol
    tau_int, converged = integrated_autocorrelation_time(acf)
    exact = (1 + rho) / (2 * (1 - rho))
    # Sokal: var tau_int ~ 2 (2M + 1) / n tau_int^2, M ~ 5 tau_int; plus the window's e^-5 tail bias
    sd = np.sqrt(2 * (2 * 5 * exact + 1) / n) * exact
    assert converged[0] and abs(tau_int[0] - exact) < 4 * sd + np.exp(-5) * exact
    assert e_folding_time(acf)[0] == pytest.approx(tau, abs=4 * tol * tau * np.e)


def test_autocorrelation_pools_trajectories_and_is_circular():
    tau = 5.0
    rho = np.exp(-1 / tau)
    sigma = 0.6
    x = ar1(4000, tau, seed=32, n_traj=25, scale=sigma)  # 25 trajectories, wrapped-Gaussian angles
    angles = [np.angle(np.exp(1j * xi)) for xi in x]
    acf = autocorrelation(angles, 30, circular=True)[:, 0]
    # exact: E[cos(x_s - x_t)] = exp(-sigma^2 (1 - rho^k)), mean vector (exp(-sigma^2 / 2), 0)
    k = np.arange(31)
    exact = (np.exp(sigma**2 * rho**k) - 1) / (np.exp(sigma**2) - 1)
    assert np.max(np.abs(acf - exact)) < 5 * np.sqrt((1 + rho**2) / (1 - rho**2) / x.size)
    # 2 pi jumps do not matter
    shifted = [a + 2 * np.pi * np.random.default_rng(1).integers(-2, 3, a.size) for a in angles]
    assert np.allclose(autocorrelation(shifted, 30, circular=True)[:, 0], acf)


def test_decorrelation_times_of_exact_exponentials():
    t = np.arange(400)
    acf = np.stack([np.exp(-t / 4.0), np.exp(-t / 20.0)], axis=1)
    tau_int, ok = integrated_autocorrelation_time(acf, dt=0.5)
    rho = np.exp(-1 / np.array([4.0, 20.0]))
    assert np.all(ok)
    assert tau_int == pytest.approx(0.5 * (1 + rho) / (2 * (1 - rho)), rel=np.exp(-5) + 1e-3)
    assert e_folding_time(acf, dt=0.5) == pytest.approx([2.0, 10.0], abs=1e-9)
    slow, ok = integrated_autocorrelation_time(np.exp(-t[:20] / 50.0))
    assert not ok[0]  # the window does not fit: flagged, not silently accepted
    assert np.isnan(e_folding_time(np.exp(-t[:20] / 50.0))[0])


# --------------------------------------------------------------------------------------------------
# alanine dipeptide: MD vs MD floors, and a deliberately wrong "generated" set
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ala2():
    from lss_jax.datasets import load_alanine_dipeptide

    return load_alanine_dipeptide("train", stride=2), load_alanine_dipeptide("independent", stride=2)


def test_alanine_dipeptide_floors_small_and_wrong_ensemble_detected(ala2):
    train, independent = ala2
    # 4 ps frames; the slowest process (beta <-> alpha_R) relaxes in ~10 ps, so the MSM lag is one frame
    kw = dict(md_frame_time=4.0, lss_frame_time=4.0, msm_lag_time=4.0, n_clusters=50, n_metastable=2,
              bins=50, bins_2d=30, tica_bins=30, n_bootstrap=20, seed=0)
    good = compare_kinetics(train, independent, **kw)
    json.dumps(good, allow_nan=False)  # strict JSON
    assert set(good["jsd"]["torsions"]) == {"phi:ALA2", "psi:ALA2"}
    for key in ("phi_psi", "tica_0", "tica_01"):
        assert set(good["jsd"][key]) == {"lss_vs_md", "md_vs_md"}
    for key in ("populations", "stationary", "transition_matrix", "flux", "mfpt"):
        assert {"lss_vs_md", "md_vs_md", "md", "lss", "md_err", "lss_err"} <= set(good["msm"][key])
    assert set(good["autocorrelation"]) == {"phi:ALA2", "psi:ALA2"}

    def floors(m):
        return [m["jsd"]["torsions"]["phi:ALA2"], m["jsd"]["torsions"]["psi:ALA2"], m["jsd"]["phi_psi"],
                m["jsd"]["tica_0"], m["jsd"]["tica_01"]]

    for entry in floors(good):  # two independent MD runs: as close as two halves of one
        assert entry["md_vs_md"] < 0.2
        assert entry["lss_vs_md"] < 1.5 * entry["md_vs_md"]
    assert good["msm"]["populations"]["md_vs_md"] < 0.03 and good["msm"]["populations"]["lss_vs_md"] < 0.03
    assert good["msm"]["mfpt"]["md_vs_md"] < 0.3 and good["msm"]["mfpt"]["lss_vs_md"] < 0.3

    # a wrong ensemble: only the frames with psi > 0 (no alpha_R basin). (Only phi < 0 would be nearly right
    # here: alpha_L holds 0.2 % of this force field's ensemble.)
    _, angles = torsion_angles(independent)
    wrong = independent[np.flatnonzero(angles[:, 1] > 0)]
    bad = compare_kinetics(train, wrong, **kw)
    assert bad["jsd"]["torsions"]["psi:ALA2"]["lss_vs_md"] > 2 * bad["jsd"]["torsions"]["psi:ALA2"]["md_vs_md"]
    assert bad["jsd"]["phi_psi"]["lss_vs_md"] > 1.5 * bad["jsd"]["phi_psi"]["md_vs_md"]
    assert bad["jsd"]["tica_01"]["lss_vs_md"] > 1.5 * bad["jsd"]["tica_01"]["md_vs_md"]
    assert bad["msm"]["populations"]["lss_vs_md"] > 5 * bad["msm"]["populations"]["md_vs_md"]
    assert bad["msm"]["mfpt"]["lss_vs_md"] > 3 * bad["msm"]["mfpt"]["md_vs_md"]
    assert bad["autocorrelation"]["psi:ALA2"]["lss_vs_md"] > 3 * bad["autocorrelation"]["psi:ALA2"]["md_vs_md"]


def test_torsion_jsds_with_feature_arrays_for_tica(ala2):
    train, independent = ala2
    result = torsion_jsds(train, independent, tica_lag=2)
    assert set(result) == {"torsions", "phi_psi", "phi_psi_residues", "tica_0", "tica_01"}
    # a C-alpha-like caller: no torsions, just features
    rng = np.random.default_rng(0)
    feats = [rng.normal(size=(500, 4)), rng.normal(size=(300, 4))]
    only = torsion_jsds(None, None, md_features=feats, gen_features=feats[0], tica_lag=1)
    assert only["torsions"] == {} and 0 <= only["tica_01"] < 0.5
    with pytest.raises(ValueError):
        torsion_jsds(train, None)


def test_compare_kinetics_with_features_only():
    # a C-alpha-like caller without torsions: the 4-state chain seen through noisy 3-D features
    rng = np.random.default_rng(41)
    embedding = rng.normal(size=(4, 3)) * 5
    md = [embedding[sample_chain(T4, 5000, seed=s)] + rng.normal(0, 0.3, (5000, 3)) for s in (42, 43)]
    gen = [embedding[sample_chain(T4, 2000, seed=s)] + rng.normal(0, 0.3, (2000, 3)) for s in range(44, 49)]
    m = compare_kinetics(None, None, md_features=md, lss_features=gen, md_frame_time=1.0, lss_frame_time=1.0,
                         msm_lag_time=1.0, n_clusters=10, n_bootstrap=20)
    json.dumps(m, allow_nan=False)
    assert m["jsd"]["torsions"] == {} and m["autocorrelation"] == {} and m["jsd"]["phi_psi"]["lss_vs_md"] is None
    assert m["jsd"]["tica_01"]["lss_vs_md"] < 1.5 * m["jsd"]["tica_01"]["md_vs_md"]
    pops = m["msm"]["populations"]
    assert abs(pops["lss"][0] - pops["md"][0]) < 4 * np.hypot(pops["lss_err"][0], pops["md_err"][0])
    with pytest.raises(ValueError, match="whole number"):
        compare_kinetics(None, None, md_features=md, lss_features=gen, md_frame_time=2.0, lss_frame_time=3.0,
                         msm_lag_time=4.0)


def test_docstring_examples():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the examples use settings that need no warning
        results = [doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
                   for module in (distributions, torsions, tica, msm, metastable, autocorrelation_module,
                                  chapman_kolmogorov_module, compare)]
    assert sum(r.attempted for r in results) > 20 and sum(r.failed for r in results) == 0
