"""Is the generative protein decoder's short decoded t1 a lack of memory in its noise? The chain decoder with native
contact maps (the protocol benchmark's ``chain-native-contacts``) draws every frame's noise afresh, so a decoded
frame remembers the one before only through psi. This study measures how much memory MD's structures have beyond
psi, and what memory in the decoder's noise would do.

* MD: the independent run's TIC1 (TICA of all Cα distances at the protocol's lag) split into its conditional mean
  given psi (the mean over the ``--neighbours`` training frames nearest in latent space) and the residual; the
  residual's share of the variance, the autocorrelation at the lag of each part, and TIC1's lag covariance split into
  the parts' own and their cross terms (a decoder whose frames are independent given psi has no cross term).
* The decoder's own noise for MD's frames: each training frame carried back to t = 0 by the field (20 Heun steps
  backwards, conditioned on its psi and its contact bits) and whitened along the prior's principal axes; its sd and
  autocorrelation at the lag, apart from the superposed frames' six rigid-body directions (the prior's variance there
  is its ridge, so any error there is magnified; reported on their own).
* Decoding the independent run's own latent path (split into ``lag`` interleaved trajectories whose frames are one lag
  apart) with the field's noise an AR(1) process along each trajectory, ``z_t = rho z_{t-1} + sqrt(1 - rho^2) e_t``
  (every frame's noise still standard normal), at each temperature: the decoded t1 (TICA of the decoded Cα
  distances, lag one frame) and F(TIC1) (the protocol benchmark's metric, against the independent run).

    python benchmarks/studies/trp_cage_noise_memory.py --model M       # trains seed 0 there first (~7 min), ~12 min
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import jax
import mdtraj as md
import numpy as np
from scipy.spatial import cKDTree

from lss_jax.analysis.distributions import free_energy_rmse, histogram_free_energy
from lss_jax.benchmarking import (
    ar1_noise,
    benchmark_parser,
    machine_facts,
    trp_cage_native_contact_model,
    write_results,
)
from lss_jax.decoder.contacts import contact_bits
from lss_jax.decoder.coordinates import features_to_xyz, xyz_to_features
from lss_jax.decoder.flow import integrate_flow
from lss_jax.encoder import implied_timescales, reversible_decomposition
from lss_jax.systems import trp_cage as tc

RESULTS = Path(__file__).resolve().parents[1] / "results"
BLOCK = 2000  # frames per network call (memory)
RIDGE = 1e-3  # the fitted prior's ridge (lss_jax.decoder.chain.ChainField.fit_prior)


def autocorrelation(x: np.ndarray, k: int) -> float:
    """Lag-``k`` autocorrelation of ``x [T]`` or, averaged over columns, ``x [T, D]``."""
    x = (x - x.mean(0)).reshape(len(x), -1)
    return float(np.mean((x[:-k] * x[k:]).mean(0) / x.var(0)))


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, out="JSON path (default benchmarks/results/trp_cage_noise_memory-cpu.json)")
    parser.add_argument("--seed", type=int, default=0, help="the protocol's seed (training)")
    parser.add_argument("--model", type=Path, default=None,
                        help="a saved model with this decoder (trained and saved here when the path does not exist)")
    parser.add_argument("--neighbours", type=int, default=50, help="training frames that make MD's conditional mean")
    parser.add_argument("--rhos", type=float, nargs="+", default=[0.0, 0.5, 0.8])
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 0.7])
    args = parser.parse_args(argv)
    start = time.perf_counter()
    train, independent = tc.load_trp_cage("train"), tc.load_trp_cage("independent")
    lag = tc.lss_config().lag
    tau_ps = lag * float(independent.timestep)
    model = trp_cage_native_contact_model(args.seed, model_dir=args.model)
    net, cmap = model.decoder.network, model.decoder.coordinates
    field = net.field
    pairs = np.array(list(itertools.combinations(range(independent.n_atoms), 2)))
    d_md = md.compute_distances(independent, pairs)
    tica = reversible_decomposition([d_md], lag)
    project = lambda d: (d - tica.mean) @ tica.vectors[:, 0]  # noqa: E731
    t_md, t_train = project(d_md), project(md.compute_distances(train, pairs))
    u_md = np.asarray(model.to_unit(model.encode(independent)), np.float32)
    u_train = np.asarray(model.to_unit(model.encode(train)), np.float32)

    # MD: TIC1 = its conditional mean given psi + a residual
    _, nearest = cKDTree(u_train).query(u_md, k=args.neighbours)
    mean = t_train[nearest].mean(1)
    residual = t_md - mean
    md_row = {"residual_variance_share": float(residual.var() / t_md.var()),
              "acf_tic1": autocorrelation(t_md, lag), "acf_conditional_mean": autocorrelation(mean, lag),
              "acf_residual": autocorrelation(residual, lag),
              # TIC1's lag covariance (over its variance) = mean-mean + residual-residual + the cross terms (the
              # residual now with the conditional mean one lag later and back): what psi_t does not say about TIC1 later
              "lag_covariance_parts": {name: float(np.mean((a[:-lag] - a.mean()) * (b[lag:] - b.mean())) / t_md.var())
                                       for name, (a, b) in {"mean_mean": (mean, mean),
                                                            "residual_residual": (residual, residual),
                                                            "mean_residual": (mean, residual),
                                                            "residual_mean": (residual, mean)}.items()}}
    print(f"MD: {md_row}", flush=True)

    # the field's noise of the training frames: the flow run backwards, whitened by the prior
    x1 = np.asarray(xyz_to_features(cmap, train.xyz), np.float32)
    bits = contact_bits(x1.reshape(len(x1), -1, 3), np.asarray(net.pairs[...]), np.asarray(net.cutoffs[...]))
    cond = np.concatenate([u_train, bits], 1).astype(np.float32)
    backwards = jax.jit(lambda x, c: integrate_flow(lambda y, s, cc: -field(y, 1 - s, cc), x, c, n_steps=20))
    x0 = np.concatenate([np.asarray(backwards(x1[i:i + BLOCK], cond[i:i + BLOCK])) for i in range(0, len(x1), BLOCK)])
    prior_mean = np.asarray(field.prior_mean[...])[0] + cond @ np.asarray(field.prior_slope[...])[0].T
    chol = np.asarray(field.prior_chol[...])[0]
    variance, axes = np.linalg.eigh(chol @ chol.T)
    z = (x0 - prior_mean) @ axes / np.sqrt(variance)  # whitened along the prior's principal axes
    rigid = variance < 2 * RIDGE  # the superposed frames' rigid-body directions: the prior's variance is the ridge
    noise_row = {"sd": float(z[:, ~rigid].std()), "rigid_body_directions": int(rigid.sum()),
                 "sd_rigid_body_directions": float(z[:, rigid].std()), "acf": autocorrelation(z[:, ~rigid], lag),
                 "acf_per_dimension_max": max(autocorrelation(z[:, i], lag) for i in np.flatnonzero(~rigid))}
    print(f"the field's noise of the training frames: {noise_row}", flush=True)

    # decoding the independent run's path with AR(1) field noise
    n = len(u_md) // lag * lag
    u_split = u_md[:n].reshape(-1, lag, u_md.shape[1]).transpose(1, 0, 2).reshape(-1, u_md.shape[1])
    edges = np.linspace(t_md.min(), t_md.max(), 51)
    f_md, p_md = histogram_free_energy(t_md, edges)
    mask = p_md >= 1e-3 * p_md.max()
    bit_noise = np.asarray(jax.random.normal(jax.random.key(2), (len(u_split), net.noise_dim - net.dim)))

    def t1(series):
        return float(implied_timescales(reversible_decomposition(series, 1).eigenvalues[:1], tau_ps)[0])

    rows = {}
    for temperature in args.temperatures:
        field.temperature = temperature  # read when traced: one compiled sampler per temperature
        sample = jax.jit(lambda zz, c: features_to_xyz(cmap, net.sample(zz, c, n_steps=model.decoder.flow_steps)))
        for rho in args.rhos:
            noise = ar1_noise(np.asarray(jax.random.normal(jax.random.key(1), (lag, n // lag, net.dim))),
                              rho).reshape(-1, net.dim)
            zz = np.concatenate([noise, bit_noise], 1).astype(np.float32)
            xyz = np.concatenate([np.asarray(sample(zz[i:i + BLOCK], u_split[i:i + BLOCK]))
                                  for i in range(0, len(zz), BLOCK)])
            d = np.linalg.norm(xyz[:, pairs[:, 0]] - xyz[:, pairs[:, 1]], axis=-1).reshape(lag, n // lag, -1)
            t = project(d.reshape(-1, d.shape[-1]))
            rows[f"T={temperature:g}, rho={rho:g}"] = {
                "t1_decoded_ps": t1(list(d)),
                "f_tic1_kT": float(free_energy_rmse(histogram_free_energy(t, edges)[0], f_md, mask)),
                "shift_sd": float((t.mean() - t_md.mean()) / t_md.std())}
            print(f"T {temperature:g}, rho {rho:g}: {rows[f'T={temperature:g}, rho={rho:g}']}", flush=True)
    write_results(args.out or RESULTS / "trp_cage_noise_memory-cpu.json", {
        "benchmark": "trp_cage_noise_memory", "seed": args.seed, "lag": lag, "neighbours": args.neighbours,
        "description": "MD's memory beyond psi along TIC1, the chain decoder's noise of MD's frames, and decoding the "
                       "independent run's latent path with AR(1) field noise: decoded t1 (ps), F(TIC1) (kT)",
        "md": {**md_row, "t1_ps": t1([d_md[:n][i::lag] for i in range(lag)])}, "field_noise": noise_row,
        "rows": rows, "seconds": time.perf_counter() - start, "machine": machine_facts(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
