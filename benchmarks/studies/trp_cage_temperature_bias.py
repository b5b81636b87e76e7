"""Where the generative protein decoder loses F(TIC1), and what its temperature trades: the chain decoder with native
contact maps (the protocol benchmark's ``chain-native-contacts``), decoding the shipped independent run's own latent
path, so the encoder and propagator are out of the measurement.

For each sampling temperature (the scale of the prior draw, ``decoder.temperature``; every frame a first draw, the
bits drawn by the contact model and the projection applied, as in generation): the decoded TIC1's mean shift and
width against MD's (in MD standard deviations), F(TIC1) RMSE (kT; the protocol benchmark's metric), the decoded t1
(TICA of the decoded Cα distances along the path, at the protocol's lag) and the split of the mean shift into the
native-contact pairs' share and the other pairs' (each pair's mean distance error times its TIC1 loading), with the
pairs that carry most of it. Beside them, retrieval (the 20 nearest training frames) on the same path.

The conditional spread along TIC1 (``conditional``): at 300 latent points of the path, 50 draws each, the sd of the
decoded TIC1 (in MD sd) with all the noise drawn afresh and with the contact bits' noise fixed at each point (the
field's spread given psi and the bits), against the sd over the 50 training frames nearest in latent space; the
difference of the two variances is the bits' share. Beside the mean sd, the root of the mean unbiased variance
(``tic1_rms_sd``), and MD's in the same measure for k = 5 ... 100 nearest frames with its straight-line extrapolation
to a neighbourhood of radius 0 (``tic1_rms_sd_zero_radius``: MD's spread at psi itself; the 50 nearest frames reach
far enough in psi to widen it).

    python benchmarks/studies/trp_cage_temperature_bias.py                     # trains seed 0 (~7 min), then ~8 min
    python benchmarks/studies/trp_cage_temperature_bias.py --model M --temperatures 0.7 1.0
    python benchmarks/studies/trp_cage_temperature_bias.py --model M150 --epochs 150 --temperatures 0.7 1.0 --tag _e150
    python benchmarks/studies/trp_cage_temperature_bias.py --model MCFG --epochs 300 --condition-dropout 0.1 \
        --temperatures 0.7 1.0 --guidances 1 1.5 2.5 --tag _cfg_e300      # classifier-free guidance
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
from lss_jax.benchmarking import benchmark_parser, machine_facts, trp_cage_native_contact_model, write_results
from lss_jax.decoder import DecoderConfig, fit_decoder
from lss_jax.decoder.coordinates import features_to_xyz
from lss_jax.encoder import implied_timescales, reversible_decomposition
from lss_jax.systems import trp_cage as tc

RESULTS = Path(__file__).resolve().parents[1] / "results"


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, out="JSON path (default benchmarks/results/trp_cage_temperature_bias-cpu.json)")
    parser.add_argument("--seed", type=int, default=0, help="the protocol's seed (training)")
    parser.add_argument("--model", type=Path, default=None,
                        help="a saved model with this decoder (trained and saved here when the path does not exist)")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.7, 0.8, 0.9, 1.0])
    parser.add_argument("--epochs", type=int, default=None, help="the chain decoder's epochs (default: its own, 50)")
    parser.add_argument("--condition-dropout", type=float, default=0.0,
                        help="the chain decoder trained with this condition dropout (classifier-free guidance)")
    parser.add_argument("--guidances", type=float, nargs="+", default=[1.0],
                        help="guidance weights to sample with at each temperature (> 1 needs --condition-dropout)")
    parser.add_argument("--tag", default="", help="suffix of the default JSON name")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    train, independent = tc.load_trp_cage("train"), tc.load_trp_cage("independent")
    lag = tc.lss_config().lag
    tau_ps = lag * float(independent.timestep)
    model = trp_cage_native_contact_model(args.seed, model_dir=args.model, epochs=args.epochs,
                                          condition_dropout=args.condition_dropout)
    pairs = np.array(list(itertools.combinations(range(independent.n_atoms), 2)))
    d_md = md.compute_distances(independent, pairs)
    tica = reversible_decomposition([d_md], lag)
    loading = tica.vectors[:, 0]
    t_md = (d_md - tica.mean) @ loading
    edges = np.linspace(t_md.min(), t_md.max(), 51)
    f_md, p_md = histogram_free_energy(t_md, edges)
    mask = p_md >= 1e-3 * p_md.max()
    net = model.decoder.network
    native = {tuple(sorted(p)) for p in np.asarray(net.pairs[...]).tolist()}
    is_native = np.array([tuple(p) in native for p in pairs.tolist()])
    u_md = np.asarray(model.to_unit(model.encode(independent)), np.float32)[None]

    def t1(d):
        return float(implied_timescales(reversible_decomposition([d], lag).eigenvalues[:1], tau_ps)[0])

    def distances(xyz):
        return np.linalg.norm(xyz[:, pairs[:, 0]] - xyz[:, pairs[:, 1]], axis=-1)

    def row(xyz):
        d = distances(xyz)
        t = (d - tica.mean) @ loading
        error = (d - d_md).mean(0)  # each pair's mean distance error on the same frames
        share = error * loading / t_md.std()  # its part of the mean shift, in MD sd
        top = np.argsort(-np.abs(share))[:5]
        return {"shift_sd": float((t.mean() - t_md.mean()) / t_md.std()), "width_ratio": float(t.std() / t_md.std()),
                "f_tic1_kT": float(free_energy_rmse(histogram_free_energy(t, edges)[0], f_md, mask)),
                "t1_decoded_ps": t1(d), "shift_native_pairs_sd": float(share[is_native].sum()),
                "shift_other_pairs_sd": float(share[~is_native].sum()),
                "mean_abs_pair_error_nm": float(np.abs(error).mean()),
                "largest": [{"pair": pairs[k].tolist(), "error_nm": float(error[k]),
                             "shift_sd": float(share[k])} for k in top]}

    # the conditional spread: 300 latent points of the path, 50 draws each; MD's 50 nearest training frames
    n_points, n_draws = 300, 50
    points = np.random.default_rng(0).choice(u_md.shape[1], n_points, replace=False)
    u_train = np.asarray(model.to_unit(model.encode(train)), np.float32)
    d_train = md.compute_distances(train, pairs)
    t_train = (d_train - tica.mean) @ loading / t_md.std()
    radius2 = ((u_train[None] - u_md[0, points][:, None]) ** 2).sum(-1)
    order = np.argsort(radius2, axis=1)
    near = order[:, :n_draws]
    # MD's conditional spread depends on the neighbourhood: k nearest frames reach further in psi as k grows. The
    # mean unbiased variance over the points against the mean squared latent radius of the k nearest, extrapolated to
    # radius 0 (a straight line), is MD's spread at psi itself (retrieval, 20 nearest, samples the k = 20 one)
    by_k = {k: (float(t_train[order[:, :k]].var(1, ddof=1).mean()),
                float(np.take_along_axis(radius2, order[:, :k], 1).mean())) for k in (5, 10, 20, 35, 50, 75, 100)}
    _, var_zero_radius = np.polyfit([r for _, r in by_k.values()], [v for v, _ in by_k.values()], 1)
    cond = jnp.asarray(np.repeat(u_md[0, points], n_draws, 0))
    z = np.asarray(jax.random.normal(jax.random.key(3), (len(cond), net.noise_dim)), np.float32)
    z = z.reshape(n_points, n_draws, -1)
    z_fixed = z.copy()
    z_fixed[:, :, net.dim:] = z[:, :1, net.dim:]  # the bits' normal variates of the first draw at every point

    def conditional_sd(draw, noise):  # (mean sd over the points, root of the mean unbiased variance)
        noise = jnp.asarray(noise.reshape(len(cond), -1))
        xyz = np.concatenate([np.asarray(draw(noise[i:i + 3000], cond[i:i + 3000])) for i in range(0, len(cond), 3000)])
        t = ((distances(xyz) - tica.mean) @ loading / t_md.std()).reshape(n_points, n_draws)
        return float(t.std(1).mean()), float(np.sqrt(t.var(1, ddof=1).mean()))

    rows = {}
    field = net.field
    for temperature, guidance in itertools.product(args.temperatures, args.guidances):
        field.temperature, field.guidance = temperature, guidance
        name = f"chain T={temperature:g}" + (f",w={guidance:g}" if guidance != 1 else "")
        rows[name] = row(model.decode_unit(jax.random.key(9), u_md)[0])
        cmap, steps, solver = model.decoder.coordinates, model.decoder.flow_steps, model.decoder.flow_solver
        # traced at this temperature and guidance (the field's attributes are constants of the program)
        draw = jax.jit(lambda z, c: features_to_xyz(cmap, net.sample(z, c, n_steps=steps, solver=solver)))
        (sd, rms), (sd_fixed, rms_fixed) = conditional_sd(draw, z), conditional_sd(draw, z_fixed)
        rows[name]["conditional"] = {"tic1_sd": sd, "tic1_sd_bits_fixed": sd_fixed,
                                     "tic1_rms_sd": rms, "tic1_rms_sd_bits_fixed": rms_fixed}
        print(f"{name}: {rows[name]}", flush=True)
    knn, _ = fit_decoder(jax.random.key(args.seed), train.xyz, u_train,
                         topology=train.topology, config=DecoderConfig(kind="knn", redraws=0), progress=False)
    rows["retrieval"] = row(model.replace(decoder=knn).decode_unit(jax.random.key(9), u_md)[0])
    print(f"retrieval: {rows['retrieval']}", flush=True)
    write_results(args.out or RESULTS / f"trp_cage_temperature_bias-cpu{args.tag}.json", {
        "benchmark": "trp_cage_temperature_bias", "seed": args.seed, "lag": lag, "decoder_epochs": args.epochs,
        "condition_dropout": args.condition_dropout,
        "description": "chain decoder with native contact maps decoding the independent run's latent path: TIC1 "
                       "shift and width (MD sd), F(TIC1) (kT), decoded t1 (ps), per temperature; retrieval beside",
        "md": {"t1_ps": t1(d_md), "conditional": {
            "tic1_sd_50_nearest": float(t_train[near].std(1).mean()),
            "tic1_rms_sd_by_k": {k: float(np.sqrt(v)) for k, (v, _) in by_k.items()},
            "mean_sq_latent_radius_by_k": {k: r for k, (_, r) in by_k.items()},
            "tic1_rms_sd_zero_radius": float(np.sqrt(var_zero_radius))}},
        "rows": rows,
        "seconds": time.perf_counter() - start, "machine": machine_facts(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
