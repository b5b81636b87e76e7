"""Decoder noise with memory along a trajectory (``decoder.noise_memory``): the noise's law, its addressing, the
calibration to MD's memory beyond psi, and a model carrying it through decoding, saving and fitting."""

import jax
import numpy as np
import pytest

from lss_jax.analysis.memory import calibrate_noise_memory, residual_memory, strided_paths
from lss_jax.config import DecoderConfig, LSSConfig
from lss_jax.decoder import memory_noise, memory_terms, row_keys


def _noise(rho, n_traj=4, n_frames=10_000, dim=3, attempts=0, key=0):
    b = np.repeat(np.arange(n_traj, dtype=np.int32), n_frames)
    t = np.tile(np.arange(n_frames, dtype=np.int32), n_traj)
    z = memory_noise(jax.random.key(key), b, t, np.full_like(b, attempts), dim, rho)
    return np.asarray(z, np.float64).reshape(n_traj, n_frames, dim)


def _lag_corr(z, lag):  # pooled over trajectories and components, within trajectories
    a, b = z[:, :-lag].ravel(), z[:, lag:].ravel()
    return float(np.corrcoef(a, b)[0, 1])


@pytest.mark.parametrize("rho", [0.3, 0.7])
def test_memory_noise_is_standard_normal_and_correlates_rho_along_a_trajectory(rho):
    z = _noise(rho)
    n = z.size
    se = 1 / np.sqrt(n)  # standard error of a mean or a correlation of n standard normals (AR(1) inflates it: x3)
    inflate = np.sqrt((1 + rho) / (1 - rho))
    assert abs(z.mean()) < 4 * se * inflate
    assert abs(z.var() - 1) < 4 * np.sqrt(2) * se * inflate ** 2
    k = memory_terms(rho)
    exact = rho * (1 - rho ** (2 * k - 2)) / (1 - rho ** (2 * k))
    assert abs(exact - rho) < 1e-3
    assert abs(_lag_corr(z, 1) - exact) < 4 * se * inflate
    assert abs(_lag_corr(z, 2) - rho ** 2) < 4 * se * inflate
    # trajectories do not share noise: trajectory b and b + 1 at the same frames are uncorrelated
    assert abs(np.corrcoef(z[:-1].ravel(), z[1:].ravel())[0, 1]) < 4 * se * inflate
    # negative control: independent noise (rho = 0) fails the correlation the statistic detects
    assert abs(_lag_corr(_noise(0.0), 1) - exact) > 10 * se * inflate


def test_no_memory_is_the_decoders_draw_and_redraws_change_only_the_frames_own_innovation():
    b, t = np.zeros(50, np.int32), np.arange(50, dtype=np.int32)
    keys = row_keys(jax.random.key(1), b, t, np.zeros_like(b))
    plain = np.asarray(jax.vmap(lambda k: jax.random.normal(k, (4,)))(keys))
    np.testing.assert_array_equal(np.asarray(memory_noise(jax.random.key(1), b, t, np.zeros_like(b), 4, 0.0)), plain)
    rho = 0.5
    first = np.asarray(memory_noise(jax.random.key(1), b, t, np.zeros_like(b), 4, rho))
    again = np.asarray(memory_noise(jax.random.key(1), b, t, np.ones_like(b), 4, rho))
    innovation = lambda a: np.asarray(memory_noise(jax.random.key(1), b, t, np.full_like(b, a), 4, 0.0))  # noqa: E731
    c = np.sqrt((1 - rho ** 2) / (1 - rho ** (2 * memory_terms(rho))))
    np.testing.assert_allclose(again - first, c * (innovation(1) - innovation(0)), atol=1e-5)
    # a frame's noise is addressed: decoding frames 20..49 alone gives the same numbers as within the whole path
    part = np.asarray(memory_noise(jax.random.key(1), b[20:], t[20:], np.zeros(30, np.int32), 4, rho))
    np.testing.assert_array_equal(part, first[20:])


def test_noise_memory_settings_are_checked_and_older_models_load_without_memory():
    for bad in (-0.1, 0.96, "yes", True):
        with pytest.raises(ValueError, match="noise_memory must be a number in"):
            DecoderConfig(noise_memory=bad)
    with pytest.raises(ValueError, match="retrieval"):
        DecoderConfig(kind="knn", noise_memory=0.3)
    assert DecoderConfig(noise_memory="auto").noise_memory == "auto"
    saved = LSSConfig(lag=2).to_dict()
    del saved["decoder"]["noise_memory"]
    assert LSSConfig.from_saved(saved).decoder.noise_memory == 0.0
    assert not [k for k in LSSConfig(lag=2)._flat_dict() if "noise_memory" in k]  # fingerprints of older models hold


def _ar1(rng, n, rho):
    x = np.empty(n)
    x[0] = rng.normal()
    for i in range(1, n):
        x[i] = rho * x[i - 1] + np.sqrt(1 - rho ** 2) * rng.normal()
    return x


def _frames(u, r):  # three atoms: the first distance follows psi, the second the residual
    xyz = np.zeros((len(u), 3, 3))
    xyz[:, 1, 0] = 1.0 + 0.3 * u[:, 0]
    xyz[:, 2, 1] = 1.0 + 0.1 * r
    return xyz


@pytest.mark.parametrize("md_memory", [0.6, 0.0])
def test_calibration_finds_the_rho_whose_decoded_memory_is_mds(md_memory):
    """Known answer: MD whose structure is psi plus a residual with lag memory ``md_memory`` (psi itself without
    memory, so the residual is all the slow coordinate sees), decoded by a map whose residual is AR(1) in its noise
    with the ``rho`` asked for: the calibrated rho is MD's memory, within the errors of 4000 path frames."""
    rng = np.random.default_rng(0)
    n = 8000
    u = rng.uniform(size=(n, 1))
    xyz = _frames(u, _ar1(rng, n, md_memory))

    def decode(rho, points, rows_b, rows_t):
        noise = np.concatenate([_ar1(np.random.default_rng(int(b) + 1), int((rows_b == b).sum()), rho)
                                for b in np.unique(rows_b)])
        return _frames(points, noise)

    rho, info = calibrate_noise_memory(decode, [xyz], [u], 2, rhos=(0.0, 0.4, 0.8), max_frames=4000)
    tolerance = 4 / np.sqrt(info["frames"])
    assert info["frames"] == 4000 and info["paths"] == 1
    assert abs(info["md_residual_memory"] - md_memory ** 2) < tolerance  # frames one lag (2) apart
    assert abs(rho - md_memory ** 2) < 2 * tolerance
    assert info["decoded_residual_memory"]["0.8"] > info["decoded_residual_memory"]["0"] + 0.5


def test_strided_paths_and_residual_memory():
    paths = strided_paths([10, 4], 3, 100)
    assert [p.tolist() for p in paths] == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8], [10, 13], [11], [12]]
    x = np.sin(np.arange(300) / 7.0)
    assert residual_memory([x], [np.zeros(300)]) > 0.95
    with pytest.raises(ValueError, match="at least two rhos"):
        calibrate_noise_memory(None, [np.zeros((10, 3, 3))], [np.zeros((10, 1))], 1, rhos=(0.2,))


def test_a_model_with_noise_memory_decodes_addressed_frames_saves_it_and_calibrates_it(tiny_alanine_model, tmp_path):
    from lss_jax.model.io import load_model

    model, data = tiny_alanine_model
    memory = model.with_noise_memory(0.6)
    assert memory.decoder.noise_memory == 0.6 and memory.config.decoder.noise_memory == 0.6
    assert memory.fingerprint() != model.fingerprint()
    u = np.full((1, 40, model.latent_dim), 0.5, np.float32)  # one latent point: only the noise moves the frames
    whole = memory.decode_unit(jax.random.key(2), u, progress=False)
    halves = np.concatenate([memory.decode_unit(jax.random.key(2), u[:, :20], progress=False),
                             memory.decode_unit(jax.random.key(2), u[:, 20:], first_frame=20, progress=False)], 1)
    np.testing.assert_array_equal(whole, halves)

    def step(m):  # mean squared change of the coordinates between consecutive frames at a fixed latent point
        xyz = m.decode_unit(jax.random.key(2), np.full((1, 400, m.latent_dim), 0.5, np.float32), progress=False)[0]
        return float(np.mean((xyz[1:] - xyz[:-1]) ** 2))

    assert step(memory) < 0.8 * step(model)  # independent noise (the model without memory) changes more per frame
    loaded = load_model(memory.save(tmp_path / "m"))
    assert loaded.decoder.noise_memory == 0.6 and loaded.fingerprint() == memory.fingerprint()
    with pytest.raises(ValueError, match="pass the training trajectories"):
        model.with_noise_memory("auto")
    calibrated = model.with_noise_memory("auto", data)
    record = calibrated.info["decoder"]["noise_memory_calibration"]
    assert calibrated.config.decoder.noise_memory == calibrated.decoder.noise_memory == record["rho"]
    assert set(record["decoded_residual_memory"]) == {"0", "0.5"} and np.isfinite(record["md_residual_memory"])


def test_generation_decodes_frames_saved_every_s_lags_with_memory_rho_to_the_s(tiny_alanine_model):
    """The memory is per lag: saved frames two lags apart are decoded with rho^2 (the frames of the rollout's own
    chunks, decoded again by the model whose memory is rho^2 and, as the control, rho)."""
    from lss_jax.generation import stream

    model = tiny_alanine_model[0].with_noise_memory(0.6)
    key = jax.random.key(4)
    u0 = np.full((2, model.latent_dim), 0.5, np.float32)
    chunk = next(stream.iter_chunks(key, model, u0, n_steps=16, save_every=2))
    k_dec = jax.random.split(key, 3)[2]
    per_frame = lambda rho: model.with_noise_memory(rho).decode_unit(k_dec, chunk.unit, progress=False)  # noqa: E731
    np.testing.assert_array_equal(chunk.xyz, per_frame(0.6 ** 2))
    assert not np.array_equal(chunk.xyz, per_frame(0.6))


def test_fit_calibrates_auto_noise_memory_on_the_frames_the_encoder_did_not_train_on():
    from lss_jax import fit_lss
    from lss_jax.config import DataConfig, EncoderConfig, PropagatorConfig
    from lss_jax.datasets import load_alanine_dipeptide

    data = load_alanine_dipeptide("train", stride=10)
    config = LSSConfig(lag=2, data=DataConfig(encoder_fraction=0.5), encoder=EncoderConfig(latent_dim=2, epochs=2),
                       propagator=PropagatorConfig(epochs=2), decoder=DecoderConfig(iterations=20, noise_memory="auto"),
                       seed=3)
    model = fit_lss(jax.random.key(3), data, config, progress=False)
    record = model.info["decoder"]["noise_memory_calibration"]
    assert record["frames"] == model.info["propagator_frames"]  # every held-out frame, in both phases of the lag
    assert model.config.decoder.noise_memory == model.decoder.noise_memory == record["rho"]
    assert model.info["decoder"].get("noise_memory", 0.0) == record["rho"]
