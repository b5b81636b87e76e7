"""Decoder noise with memory along each trajectory, its rho calibrated to MD's own memory beyond psi (not to the t1):
does the decoded t1 come back while the per-frame law stays? (``trp_cage_noise_memory.py`` measured MD's memory beyond
psi and decoded with a few fixed rho on MD's own latent path; this one decodes generated latent paths, with retrieval
on the same paths, and adds the rho whose residual memory is MD's.)

The chain decoder draws every frame's noise independently, so whatever of a structure ψ does not fix decorrelates
within one lag; in MD it does not (the slow coordinate's residual given ψ keeps some memory over a lag). Here the
noise of frame t of a trajectory is an AR(1) process, ``z_t = rho z_(t-1) + sqrt(1 - rho^2) e_t`` (e standard
normal), so every frame's noise is still standard normal — the same per-frame law, F(TIC1), validity and novelty —
while consecutive frames share part of it. For each ``rho``: F(TIC1) against the seven independent runs pooled, the
decoded t1 (TICA of the decoded Cα distances, one lag apart) and the lag-one autocorrelation of the residual of TIC1
given ψ (TIC1 minus the mean TIC1 of the 50 training frames nearest in latent space), against MD's on the
independent run (the calibration target: the rho whose residual memory is MD's).

Model: the protocol benchmark's ``chain-native-contacts`` (:func:`lss_jax.benchmarking.trp_cage_native_contact_model`),
latent trajectories as the protocol benchmark draws them (``--n-traj`` of the training run's length). The t1 here
uses frames one lag apart at lag 1 (the protocol benchmark's estimator uses every MD frame, so MD's figure differs).

    python benchmarks/studies/trp_cage_noise_memory_calibrated.py --model M --epochs 300 --rhos 0 0.5 --calibrate   # ~12 min
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import mdtraj as md
import numpy as np

from lss_jax.analysis.distributions import free_energy_rmse, histogram_free_energy
from lss_jax.benchmarking import (
    ar1_noise,
    benchmark_parser,
    machine_facts,
    trp_cage_native_contact_model,
    write_results,
)
from lss_jax.decoder import DecoderConfig, fit_decoder
from lss_jax.decoder.coordinates import features_to_xyz
from lss_jax.encoder import implied_timescales, reversible_decomposition
from lss_jax.systems import trp_cage as tc

RESULTS = Path(__file__).resolve().parents[1] / "results"


def main(argv=None) -> int:
    parser = benchmark_parser(
        __doc__, out="JSON path (default benchmarks/results/trp_cage_noise_memory_calibrated-cpu{TAG}.json)")
    parser.add_argument("--seed", type=int, default=0, help="the protocol's seed")
    parser.add_argument("--model", type=Path, default=None, help="a saved model (trained and saved here if absent)")
    parser.add_argument("--epochs", type=int, default=None, help="the chain decoder's epochs (default: its own, 50)")
    parser.add_argument("--temperature", type=float, default=1.0, help="the prior temperature (default 1)")
    parser.add_argument("--rhos", type=float, nargs="+", default=[0.0, 0.4, 0.8])
    parser.add_argument("--calibrate", action="store_true",
                        help="then also the rho whose residual memory is MD's, interpolated linearly between the "
                             "measured rhos (row 'calibrated')")
    parser.add_argument("--n-traj", type=int, default=10, help="latent trajectories (default 10)")
    parser.add_argument("--tag", default="", help="suffix of the default JSON name")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    model = trp_cage_native_contact_model(args.seed, model_dir=args.model, epochs=args.epochs)
    train, independent = tc.load_trp_cage("train"), tc.load_trp_cage("independent")
    lag = tc.lss_config().lag
    tau = lag * float(independent.timestep)
    pairs = np.array(list(itertools.combinations(range(independent.n_atoms), 2)))
    d_md = md.compute_distances(independent, pairs)
    tica = reversible_decomposition([d_md], lag)

    def tic1(d):
        return (d - tica.mean) @ tica.vectors[:, 0]

    def t1(series):
        return float(implied_timescales(reversible_decomposition(series, 1).eigenvalues[:1], tau)[0])

    t_md = tic1(d_md)
    edges = np.linspace(t_md.min(), t_md.max(), 51)
    runs = [t_md] + [tic1(md.compute_distances(tc.simulate_trp_cage(tc.SHIPPED_N_FRAMES, seed=s, progress=False),
                                               pairs)) for s in range(3, 9)]
    f_pool, p_pool = histogram_free_energy(np.concatenate(runs), edges)
    mask = p_pool >= 1e-3 * p_pool.max()
    u_train = np.asarray(model.to_unit(model.encode(train)), np.float32)
    t_train = tic1(md.compute_distances(train, pairs))

    def conditional_mean(u):  # mean TIC1 of the 50 training frames nearest in the unit box
        out = np.empty(len(u))
        for i in range(0, len(u), 2000):
            d2 = ((u[i:i + 2000, None] - u_train[None]) ** 2).sum(-1)
            out[i:i + 2000] = t_train[np.argpartition(d2, 50, axis=1)[:, :50]].mean(1)
        return out

    def residual_memory(t_series, mean_series):  # (lag-one autocorrelation of the residual, its sd in MD sd)
        r = [t - mean for t, mean in zip(t_series, mean_series)]
        a, b = np.concatenate([x[:-1] for x in r]), np.concatenate([x[1:] for x in r])
        return {"autocorrelation": float(np.corrcoef(a, b)[0, 1]), "sd": float(np.concatenate(r).std() / t_md.std())}

    u_md = np.asarray(model.to_unit(model.encode(independent)), np.float32)
    results = {"md": {"residual": residual_memory([t_md[::lag]], [conditional_mean(u_md[::lag])]), "t1_decoded_ps": t1([d_md[::lag]])}}
    print(f"MD: {results['md']}", flush=True)
    latent = model.generate(jax.random.key(100 + args.seed), args.n_traj, train.n_frames // lag, latent_only=True,
                            progress=False)
    u = np.asarray(model.to_unit(latent), np.float32)
    net = model.decoder.network
    net.field.temperature = args.temperature
    cmap, steps, solver = model.decoder.coordinates, model.decoder.flow_steps, model.decoder.flow_solver
    draw = jax.jit(lambda z, c: features_to_xyz(cmap, net.sample(z, c, n_steps=steps, solver=solver)))
    n_b, n_t, m = u.shape
    mean_paths = conditional_mean(u.reshape(n_b * n_t, m)).reshape(n_b, n_t)  # once: the same paths in every row

    def distances(xyz):  # [B, L, n, 3] -> [B, L, pairs]
        return np.linalg.norm(xyz[..., pairs[:, 0], :] - xyz[..., pairs[:, 1], :], axis=-1)

    def score(d):  # decoded distances [B, L, pairs] along the latent trajectories
        t = tic1(d.reshape(n_b * n_t, -1))
        return {"f_tic1_pooled_kT": float(free_energy_rmse(histogram_free_energy(t, edges)[0], f_pool, mask)),
                "t1_decoded_ps": t1(list(d)), "residual": residual_memory(list(t.reshape(n_b, n_t)), list(mean_paths))}

    eps = np.asarray(jax.random.normal(jax.random.key(7), (n_b, n_t, net.noise_dim)), np.float32)
    knn, _ = fit_decoder(jax.random.key(args.seed), train.xyz, u_train, topology=train.topology,
                         config=DecoderConfig(kind="knn", redraws=0), progress=False)
    d_knn = distances(model.replace(decoder=knn).decode(jax.random.key(200 + args.seed), latent))
    rows = {"retrieval": score(d_knn)}
    print(f"retrieval: {rows['retrieval']}", flush=True)
    rhos = list(args.rhos)
    for rho in rhos + ([None] if args.calibrate else []):
        if rho is None:  # the rho whose residual memory is MD's, linear between the measured ones
            measured = sorted((rows[f"rho={r:g}"]["residual"]["autocorrelation"], r) for r in rhos)
            rho = float(np.clip(np.interp(results["md"]["residual"]["autocorrelation"], *zip(*measured)), 0, 0.99))
        t0 = time.perf_counter()
        z, c = ar1_noise(eps, rho).reshape(n_b * n_t, -1), u.reshape(n_b * n_t, m)
        xyz = np.concatenate([np.asarray(draw(jnp.asarray(z[i:i + 4000]), jnp.asarray(c[i:i + 4000])))
                              for i in range(0, len(z), 4000)])
        rows[f"rho={rho:g}"] = {**score(distances(xyz.reshape(n_b, n_t, *xyz.shape[1:]))),
                                "seconds": time.perf_counter() - t0}
        print(f"rho = {rho:g}: {rows[f'rho={rho:g}']}", flush=True)
    write_results(args.out or RESULTS / f"trp_cage_noise_memory_calibrated-cpu{args.tag}.json", {
        "benchmark": "trp_cage_noise_memory_calibrated", "seed": args.seed, "decoder_epochs": args.epochs,
        "temperature": args.temperature, "n_traj": args.n_traj, "lag": lag,
        "description": "chain decoder (native contact maps) with AR(1) decoder noise along each trajectory: F(TIC1) "
                       "against seven MD runs pooled, decoded t1 (frames one lag apart), residual memory of TIC1 "
                       "given psi, against MD's",
        "md": results["md"], "rows": rows, "seconds": time.perf_counter() - start, "machine": machine_facts(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
