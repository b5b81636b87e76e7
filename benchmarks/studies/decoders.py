"""Decoders side by side on alanine dipeptide: which generative model and which coordinates.

One encoder and propagator (``LSS(lag=5, latent_dim=2)`` on the shipped 50 ns training trajectory, 2 ps
frames: lag 10 ps, the demo's model) supply the latent points; every decoder variant is then trained on the
same training frames and latents and scored against the shipped *independent* 50 ns with the same estimators:

* the decoder alone, decode(encode(MD)): F(phi, psi) RMSE on the MD's populated 10-degree bins and the share
  of those bins it visits, basin populations (beta/PPII, alpha_R, alpha_L), bond-length and angle MAD against
  MD's own thermal spread, frames with any bond more than 10 % off, frames with a steric clash;
* the full LSS: 100 trajectories x 1000 steps from the shared propagator decoded by the variant, the same metrics;
* cost: training time and decoding throughput (frames/s, compilation excluded) on this machine.

The MD-vs-MD floor is the training run against the independent run on the same bins.

Variants (``VARIANTS``): conditional flow matching on internal coordinates (the default, with structural states;
also without them, trained twice as long, wider and deeper, and sampled with twice the ODE steps) and on Cartesian coordinates; the paper's
cWGAN-GP (aligned Cartesian coordinates, 5000 iterations at a constant 2e-4) and that GAN changed along one axis
at a time (learning-rate decay, 4x the iterations, a wider critic, the condition fed to every layer, 4x the
batch, 10 critic steps, 8 noise dimensions); lss_jax's wgan defaults (4x the iterations) on internal coordinates.

    python benchmarks/studies/decoders.py                    # all variants, ~40 min on 2 CPU cores -> results/decoders-<backend>.json
    python benchmarks/studies/decoders.py --only flow-internal wgan-paper   # updates those entries of the JSON
    python benchmarks/studies/decoders.py --quick            # tiny budgets: checks that the script runs
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

from lss_jax.analysis.molecular import compare_structures, comparison_summary, decoder_round_trip
from lss_jax.benchmarking import benchmark_parser, machine_facts, write_results
from lss_jax.datasets import load_alanine_dipeptide
from lss_jax.decoder import DecoderConfig, fit_decoder
from lss_jax.model.facade import LSS

RESULTS = Path(__file__).resolve().parents[1] / "results"
PAPER_WGAN = dict(kind="wgan", coordinates="cartesian", hidden=(200, 200, 200), learning_rate=2e-4, iterations=5000,
                  lr_decay=False, batch_size=256)
VARIANTS = {
    "flow-internal": dict(kind="flow", coordinates="internal"),  # the default decoder
    "flow-internal-no-states": dict(kind="flow", coordinates="internal", states=0),  # one flow for every conformation
    "flow-cartesian": dict(kind="flow", coordinates="cartesian"),
    "flow-internal-600-epochs": dict(kind="flow", coordinates="internal", epochs=600),
    "flow-internal-4x512": dict(kind="flow", coordinates="internal", hidden=(512, 512, 512, 512)),
    "flow-internal-20-steps": dict(kind="flow", coordinates="internal", flow_steps=20),
    "wgan-paper": PAPER_WGAN,
    "wgan-lr-decay": {**PAPER_WGAN, "lr_decay": True},
    "wgan-20k-iterations": {**PAPER_WGAN, "iterations": 20_000},
    "wgan-wide-critic": {**PAPER_WGAN, "critic_hidden": (400, 400, 400)},
    "wgan-every-layer": {**PAPER_WGAN, "condition": "every_layer"},
    "wgan-batch-1024": {**PAPER_WGAN, "batch_size": 1024},
    "wgan-10-critic-steps": {**PAPER_WGAN, "n_critic": 10},
    "wgan-noise-8": {**PAPER_WGAN, "noise_dim": 8},
    "wgan-internal": dict(kind="wgan", coordinates="internal"),  # lss_jax's wgan defaults (= wgan-20k-iterations)
}


def heavy(traj):
    return traj.atom_slice(traj.topology.select("not element H"))


def decode_throughput(model, n_frames: int = 16384) -> float:
    u = np.random.default_rng(0).uniform(size=(n_frames, model.latent_dim)).astype(np.float32)
    model.decode_unit(jax.random.key(0), u, progress=False)  # compile
    times = []
    for r in range(3):
        start = time.perf_counter()
        model.decode_unit(jax.random.key(r), u, progress=False)
        times.append(time.perf_counter() - start)
    return n_frames / float(np.median(times))


def save(results: dict, path: Path, *, keep_previous: bool) -> None:
    """Write the JSON; with ``keep_previous`` (a rerun of some variants) the file's other current variants stay."""
    if keep_previous and path.is_file():
        previous = json.loads(path.read_text()).get("variants", {})
        results = {**results, "variants": {**{k: v for k, v in previous.items() if k in VARIANTS and
                                              k not in results["variants"]}, **results["variants"]}}
    write_results(path, results)


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, quick="tiny training budgets (a smoke test of the script)",
                              out="folder of the JSON (default benchmarks/results)")
    parser.add_argument("--only", nargs="+", choices=sorted(VARIANTS), help="run these variants only")
    args = parser.parse_args(argv)

    train, independent = load_alanine_dipeptide("train"), load_alanine_dipeptide("independent")
    train_h, indep_h = heavy(train), heavy(independent)
    settings = dict(lag=5, seed=0, encoder={"latent_dim": 2}, decoder={"iterations": 1})
    if args.quick:
        settings.update(encoder={"latent_dim": 2, "epochs": 3}, propagator={"epochs": 3})
    start = time.perf_counter()
    base = LSS(**settings).fit(train, progress=False)
    encoder_seconds = time.perf_counter() - start
    u_train = base.to_unit(base.encode(train))
    n_traj, n_steps = (20, 100) if args.quick else (100, 1000)
    latent = base.generate(jax.random.key(1), n_traj, n_steps, latent_only=True, progress=False)
    floor = compare_structures(indep_h, train_h)["free_energy_phi_psi"]
    results = {
        "benchmark": "decoders", "backend": jax.default_backend(), "machine": machine_facts(), "jax": jax.__version__, "quick": args.quick, "system": "alanine dipeptide, 10 heavy atoms",
        "training": "shipped train 50 ns (25 000 frames, 2 ps)", "reference": "shipped independent 50 ns",
        "lag_ps": base.lag_time, "latent_dim": base.latent_dim, "encoder_propagator_seconds": encoder_seconds,
        "md_vs_md": {"f_phi_psi_rmse_kT": floor["rmse_kT"], "coverage": floor["coverage"],
                     **{f"md_{k}": v for k, v in compare_structures(indep_h, indep_h[:1000])["basin_populations"]["md"].items()}},
        "lss_frames": n_traj * n_steps, "variants": {},
    }
    md_geo = compare_structures(indep_h, train_h)["geometry"]
    results["md_vs_md"].update(bond_mad_pct=100 * md_geo["reference_bond_length_mad_relative"],
                               angle_mad_deg=md_geo["reference_angle_mad_degrees"])
    path = (args.out or RESULTS) / f"decoders-{jax.default_backend()}{'-quick' if args.quick else ''}.json"
    print(f"encoder + propagator: {encoder_seconds:.0f} s; MD vs MD F(phi, psi) RMSE {floor['rmse_kT']:.2f} kT", flush=True)
    for name in args.only or list(VARIANTS):
        spec = dict(VARIANTS[name])
        if args.quick:
            spec["iterations"] = 50
        config = DecoderConfig(**spec)
        start = time.perf_counter()
        decoder, history = fit_decoder(jax.random.key(2), train_h.xyz, u_train, topology=train_h.topology,
                                       reference=train_h.xyz[0], config=config, progress=False)
        seconds = time.perf_counter() - start
        model = base.fetch_model().replace(  # the shared encoder and propagator with this decoder
            decoder=decoder,
            config=base.config.replace(decoder={"kind": config.kind, "coordinates": config.coordinates}))
        round_trip = decoder_round_trip(jax.random.key(3), model, independent)
        lss = model.trajectory_from_latent(jax.random.key(4), latent)  # latent: psi units, as generate returns it
        entry = {
            "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config.resolved()).items()},
            "train_seconds": seconds, "epochs": history.epochs_run,
            "decode_frames_per_second": decode_throughput(model),
            "round_trip": comparison_summary(compare_structures(indep_h, round_trip, seed=5)),
            "lss": comparison_summary(compare_structures(indep_h, lss, seed=5)),
        }
        results["variants"][name] = entry
        rt, full = entry["round_trip"], entry["lss"]
        print(f"{name:22s} train {seconds:6.0f} s, decode {entry['decode_frames_per_second']:9.0f} frames/s | round trip "
              f"F {rt['f_phi_psi_rmse_kT']:.2f} kT cov {rt['coverage']:.3f} aL {rt['alpha_l']:.4f} bonds {rt['bond_mad_pct']:.2f} % "
              f"angles {rt['angle_mad_deg']:.2f} off {rt['bonds_off_10pct_pct']:.2f} % clash {rt['clash_frames_pct']:.3f} % | "
              f"LSS F {full['f_phi_psi_rmse_kT']:.2f} kT aL {full['alpha_l']:.4f} clash {full['clash_frames_pct']:.3f} %",
              flush=True)
        save(results, path, keep_previous=bool(args.only))  # after every variant: a long run keeps what it has
    save(results, path, keep_previous=bool(args.only))
    return 0


if __name__ == "__main__":
    sys.exit(main())
