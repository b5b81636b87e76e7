"""The lag chosen from the data (lss_jax.analysis.lagchoice, `lss-jax train --lag auto`) against a known answer.

The known answer: a two-state Markov chain s = +-1 that flips with probability p per frame (autocorrelation
lambda^lag exactly, lambda = 1 - 2p, t1 = -1 / ln lambda) seen through a detector that averages it over the last
K frames and adds white noise. For lags >= K - 1 the lagged covariance of the average is exactly
lambda^lag * g with g = (sum_k lambda^k)(sum_k lambda^-k) / K^2; the noise variance is set to g minus the
average's variance so that the feature's autocorrelation is exactly lambda^lag from lag K - 1 on (the projected
dynamics are Markovian from there), and below it at shorter lags, where the timescale is biased low by the
detector's memory. The exact curve t(lag) = -lag / ln acf(lag) says where the timescale levels off.
"""

from __future__ import annotations

import numpy as np
import pytest

from lss_jax.analysis.lagchoice import DEFAULT_LAGS, LagChoice, choose_lag, format_lag_table

P_FLIP, K = 0.01, 10
LAMBDA = 1.0 - 2.0 * P_FLIP
T1 = -1.0 / np.log(LAMBDA)  # 49.5 frames


def _two_state(rng, n, p=P_FLIP):
    return np.cumprod(np.where(rng.random(n) < p, -1.0, 1.0)) * rng.choice([-1.0, 1.0])


def _detector_noise_variance():
    k = np.arange(K)
    g = (LAMBDA**k).sum() * (LAMBDA ** (-k)).sum() / K**2
    var = (LAMBDA ** np.abs(k[:, None] - k[None, :])).sum() / K**2
    return g - var, g


def _exact_timescale(lag):
    """t(lag) of the detector's feature, from its exact autocorrelation."""
    k = np.arange(K)
    _, g = _detector_noise_variance()
    cov = (LAMBDA ** np.abs(lag + k[:, None] - k[None, :])).sum() / K**2
    return -lag / np.log(cov / g)


def _detector(rng, n):
    s = _two_state(rng, n + K - 1)
    average = np.convolve(s, np.ones(K) / K, mode="valid")  # frame t averages s[t .. t + K - 1]
    ve, _ = _detector_noise_variance()
    return (average + np.sqrt(ve) * rng.normal(size=n))[:, None]


@pytest.fixture(scope="module")
def detector_data():
    rng = np.random.default_rng(11)
    return [_detector(rng, 200_000), _detector(rng, 200_000)]  # ~4000 flips of the slow process


def test_the_exact_curve_is_biased_at_short_lags_and_flat_from_the_detector_memory_on():
    exact = np.array([_exact_timescale(lag) for lag in DEFAULT_LAGS])
    assert exact[0] < 0.4 * T1  # lag 1: the detector's memory hides most of the slow decay
    flat = np.array(DEFAULT_LAGS) >= K - 1
    np.testing.assert_allclose(exact[flat], T1, rtol=1e-10)
    assert np.all(np.diff(exact[~flat]) > 0)


def test_the_chosen_lag_is_where_the_exact_timescale_levels_off(detector_data):
    choice = choose_lag(detector_data, n_processes=1)
    lags = list(choice.lags)
    j = lags.index(choice.lag)
    t, se = choice.timescales[:, 0], choice.errors[:, 0]
    exact = np.array([_exact_timescale(lag) for lag in lags])
    # theory: the first lag whose exact bias is below one standard error, or the next one; never a lag whose bias
    # the data resolve (more than 3 SE)
    first_unbiased = next(i for i in range(len(lags)) if T1 - exact[i] < se[i])
    assert j in (first_unbiased, first_unbiased + 1), (choice.lag, lags[first_unbiased], choice.reason)
    assert T1 - exact[j] < 3 * se[j]
    # the levelled timescale is the exact one within its error (3 SE: a fixed seed must not be a coin toss); lag 1
    # is far from it
    assert abs(t[j] - T1) < 3 * se[j], (t[j], se[j])
    assert T1 - t[0] > 10 * se[0]
    # the measurement follows the exact curve at every lag (the errors are honest)
    assert np.all(np.abs(t - exact) < 3.5 * se), np.abs(t - exact) / se
    assert f"t1 at lag {choice.lag} agrees with lags" in choice.reason
    info = choice.as_info(frame_time=2.0)
    assert info["lag"] == choice.lag and info["lag_time"] == 2.0 * choice.lag
    assert info["timescales"][j][0] == pytest.approx(2.0 * t[j]) and info["lags"] == lags
    table = format_lag_table(choice, frame_time=2.0)
    assert "<- chosen" in table.splitlines()[j + 1] and len(table.splitlines()) == len(lags) + 1


def test_the_rule_fails_without_honest_errors(detector_data):
    """Negative controls: with the error bars inflated 5000-fold (n_sigma = 1e4: the level-off check disabled) the
    shortest lag is chosen, which the exact answer rejects by many real standard errors; shrunk 200-fold (n_sigma =
    0.01) no lag levels off."""
    loose = choose_lag(detector_data, n_processes=1, n_sigma=1e4)
    assert loose.lag == 1
    t, se = loose.timescales[0, 0], loose.errors[0, 0]
    assert T1 - t > 10 * se
    with pytest.raises(ValueError, match="do not level off within 0.01 combined standard errors"):
        choose_lag(detector_data, n_processes=1, n_sigma=0.01)


def test_too_short_data_are_refused():
    rng = np.random.default_rng(0)
    # a handful of transitions: t1 = 500 frames in 6000 frames (9 flips with this seed)
    few = _two_state(rng, 6000, p=0.001)[:, None] + 0.1 * rng.normal(size=(6000, 1))
    too_few = (r"the data are too short to choose a lag: t1\(lag \d+\) = .* frames, longer than 0.2 of a bootstrap "
               r"block \(600 frames of 6,000\): too few transitions")
    with pytest.raises(ValueError, match=too_few):
        choose_lag([few], n_processes=1)
    # too few lagged pairs at every candidate lag
    with pytest.raises(ValueError, match="the data are too short to choose a lag: 500 frames in 1 trajectories "
                                         "leave only 0 of the candidate lags"):
        choose_lag([few[:500]])
    with pytest.raises(ValueError, match="every feature is constant"):
        choose_lag([np.ones((5000, 2))], n_processes=1)


def test_a_second_process_is_compared_only_while_resolved(detector_data):
    # a fast AR(1) feature (t = 4.5 frames) next to the slow one: t2 is resolved only at the shortest lags
    from scipy.signal import lfilter

    rng = np.random.default_rng(3)
    feats = [np.concatenate([x, lfilter([1.0], [1.0, -0.8], rng.normal(size=len(x)))[:, None]], axis=1)
             for x in detector_data]
    choice = choose_lag(feats, n_processes=2)
    assert isinstance(choice, LagChoice) and choice.timescales.shape[1] == 2
    assert choice.lag in (8, 12)
    assert "t2 not compared" in choice.reason


def test_the_noise_floor_of_many_features_is_not_read_as_a_measured_timescale():
    """The two-state process itself (t1 = 49.5 frames at every lag) among 400 white-noise features, 3000 frames: the
    largest noise eigenvalue, about sqrt(2 d / N) = 0.52, reads t ~ 1.4 lag at every long lag, above the lag and
    rising with it. The rule of `t >= lag` counted those lags as measurements and chose lag 30 (t1 and t2 "agreeing"
    with the floor at 50, 80, 120; measured with the previous rule on these data); above the floor by n_sigma errors
    they are left out, and the rule takes a short lag whose t1 is the true one."""
    rng = np.random.default_rng(0)
    n = 3000
    x = np.concatenate([_two_state(rng, n)[:, None], rng.normal(size=(n, 400))], axis=1)
    choice = choose_lag([x], n_blocks=4)
    lags, t, se = np.array(choice.lags), choice.timescales[:, 0], choice.errors[:, 0]
    floor = lags >= 50
    assert floor.sum() >= 3 and np.all(t[floor] > lags[floor]) and np.all(np.diff(t[floor]) > 0)  # the floor
    j = list(lags).index(choice.lag)
    assert choice.lag <= 5 and abs(t[j] - T1) < 2 * se[j], (choice.lag, t[j], se[j])
    compared = {int(v) for part in choice.reason.split("agrees with lags ")[1:]
                for v in part.split(" within")[0].split(";")[0].split(", ")}
    assert not compared & {50, 80, 120}, choice.reason


# ---------------------------------------------------------------- lss-jax train --lag auto
def test_train_lag_auto_prints_the_evidence_and_records_the_choice(tmp_path, capsys):
    import json

    from lss_jax.cli import main
    from lss_jax.datasets import load_alanine_dipeptide
    from lss_jax.model.io import load_model

    traj = load_alanine_dipeptide("train", stride=2)[:5000]  # 20 ns, 4 ps frames
    traj.save_xtc(str(tmp_path / "md.xtc"))
    traj[0].save_pdb(str(tmp_path / "md.pdb"))
    (tmp_path / "tiny.toml").write_text("latent_dim = 2\n[encoder]\nepochs = 2\n[propagator]\nepochs = 2\n"
                                        "[decoder]\niterations = 20\n")
    assert main(["train", "--traj", str(tmp_path / "md.xtc"), "--top", str(tmp_path / "md.pdb"), "--lag", "auto",
                 "--config", str(tmp_path / "tiny.toml"), "--out", str(tmp_path / "model"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    model = load_model(tmp_path / "model")
    record = model.info["lag_choice"]
    lag = model.config.lag
    assert record["lag"] == lag and record["lag_time"] == pytest.approx(4.0 * lag) and record["frame_time"] == 4.0
    assert len(record["timescales"]) == len(record["lags"]) == len(record["errors"]) and record["reason"]
    assert "lag chosen from the data (--lag auto)" in out
    assert "  lag (frames)  lag (ps)  t1 (ps)  t2 (ps)" in out
    assert f"  chosen: lag {lag} frames = {4 * lag:g} ps: " in out and record["reason"] in out
    assert "<- chosen" in next(line for line in out.splitlines() if line.startswith(f"  {lag:>12}  "))
    assert f"{lag} frames = {4 * lag:g} (trajectory time units, ps), chosen from the data (--lag auto" in out
    assert (tmp_path / "model" / "lag_choice.png").stat().st_size > 0
    assert 'lag = "auto"' in (tmp_path / "model" / "lss-jax-train.toml").read_text()
    assert json.loads((tmp_path / "model" / "lss.json").read_text())["info"]["lag_choice"] == record


def test_lag_auto_is_refused_on_too_little_data_and_a_bad_lag_is_a_usage_error(tmp_path, capsys):
    from lss_jax.cli import main
    from lss_jax.datasets import load_alanine_dipeptide

    traj = load_alanine_dipeptide("train", stride=50)[:200]
    traj.save_xtc(str(tmp_path / "md.xtc"))
    traj[0].save_pdb(str(tmp_path / "md.pdb"))
    args = ["train", "--traj", str(tmp_path / "md.xtc"), "--top", str(tmp_path / "md.pdb"), "--out",
            str(tmp_path / "model")]
    assert main([*args, "--lag", "auto"]) == 1
    err = capsys.readouterr().err
    assert "error: --lag auto: the data are too short to choose a lag: 200 frames in 1 trajectories" in err
    assert "(--lag N in frames after --stride 1;" in err and not (tmp_path / "model").exists()
    assert main([*args, "--lag", "ten"]) == 2
    assert 'argument --lag: must be a positive integer or "auto", got \'ten\'' in capsys.readouterr().err


def test_many_trajectories_are_resampled_whole(detector_data):
    # 20 trajectories of 20 000 frames: the bootstrap resamples whole trajectories, the answer is the same
    pieces = [x[i : i + 20_000] for x in detector_data for i in range(0, len(x), 20_000)]
    choice = choose_lag(pieces, n_processes=1)
    assert choice.n_blocks == 20 and choice.block_frames == 20_000
    j = list(choice.lags).index(choice.lag)
    assert choice.lag in (8, 12) and abs(choice.timescales[j, 0] - T1) < 3 * choice.errors[j, 0]
