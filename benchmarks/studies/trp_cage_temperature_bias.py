"""Where the generative protein decoder loses F(TIC1), and what its temperature trades: the chain decoder with native
contact maps (the protocol benchmark's ``chain-native-contacts``), decoding the shipped independent run's own latent
path, so the encoder and propagator are out of the measurement.

For each sampling temperature (the scale of the prior draw, ``decoder.temperature``; every frame a first draw, the
bits drawn by the contact model and the projection applied, as in generation): the decoded TIC1's mean shift and
width against MD's (in MD standard deviations), F(TIC1) RMSE (kT; the protocol benchmark's metric), the decoded t1
(TICA of the decoded Cα distances along the path, at the protocol's lag) and the split of the mean shift into the
native-contact pairs' share and the other pairs' (each pair's mean distance error times its TIC1 loading), with the
pairs that carry most of it. Beside them, retrieval (the 20 nearest training frames) on the same path.

    python benchmarks/studies/trp_cage_temperature_bias.py                     # trains seed 0 (~7 min), then ~8 min
    python benchmarks/studies/trp_cage_temperature_bias.py --model M --temperatures 0.7 1.0
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import jax
import mdtraj as md
import numpy as np

from lss_jax.analysis.distributions import free_energy_rmse, histogram_free_energy
from lss_jax.benchmarking import benchmark_parser, machine_facts, trp_cage_native_contact_model, write_results
from lss_jax.decoder import DecoderConfig, fit_decoder
from lss_jax.encoder import implied_timescales, reversible_decomposition
from lss_jax.systems import trp_cage as tc

RESULTS = Path(__file__).resolve().parents[1] / "results"


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, out="JSON path (default benchmarks/results/trp_cage_temperature_bias-cpu.json)")
    parser.add_argument("--seed", type=int, default=0, help="the protocol's seed (training)")
    parser.add_argument("--model", type=Path, default=None,
                        help="a saved model with this decoder (trained and saved here when the path does not exist)")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.7, 0.8, 0.9, 1.0])
    args = parser.parse_args(argv)
    start = time.perf_counter()
    train, independent = tc.load_trp_cage("train"), tc.load_trp_cage("independent")
    lag = tc.lss_config().lag
    tau_ps = lag * float(independent.timestep)
    model = trp_cage_native_contact_model(args.seed, model_dir=args.model)
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

    def row(xyz):
        d = np.linalg.norm(xyz[:, pairs[:, 0]] - xyz[:, pairs[:, 1]], axis=-1)
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

    rows = {}
    field = net.field
    for temperature in args.temperatures:
        field.temperature = temperature
        rows[f"chain T={temperature:g}"] = row(model.decode_unit(jax.random.key(9), u_md)[0])
        print(f"T = {temperature:g}: {rows[f'chain T={temperature:g}']}", flush=True)
    knn, _ = fit_decoder(jax.random.key(args.seed), train.xyz, model.to_unit(model.encode(train)),
                         topology=train.topology, config=DecoderConfig(kind="knn", redraws=0), progress=False)
    rows["retrieval"] = row(model.replace(decoder=knn).decode_unit(jax.random.key(9), u_md)[0])
    print(f"retrieval: {rows['retrieval']}", flush=True)
    write_results(args.out or RESULTS / "trp_cage_temperature_bias-cpu.json", {
        "benchmark": "trp_cage_temperature_bias", "seed": args.seed, "lag": lag,
        "description": "chain decoder with native contact maps decoding the independent run's latent path: TIC1 "
                       "shift and width (MD sd), F(TIC1) (kT), decoded t1 (ps), per temperature; retrieval beside",
        "md": {"t1_ps": t1(d_md)}, "rows": rows,
        "seconds": time.perf_counter() - start, "machine": machine_facts(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
