"""Alanine dipeptide at default settings across lags and latent dimensions: decoder and full-LSS targets.

For every lag in 2, 4, 10, 20 ps (1, 2, 5, 10 frames of the shipped 2 ps data) and latent dimension 1, 2, 3,
``LSS(lag=..., encoder={"latent_dim": ...})`` with every other setting at its default is trained on the shipped 50 ns
training run and scored against the shipped independent 50 ns run:

* decoder alone, decode(encode(MD)): F(phi, psi) RMSE against MD (10-degree bins, MD probability >= 1e-3 of its
  maximum) and the share of those bins visited; basin populations; bond-length and angle MAD next to MD's own
  thermal spread; frames with any bond more than 10 % off its MD mean; frames with a steric clash (heavy atoms
  closer than 0.75 x the vdW sum, >= 3 bonds apart);
* full LSS, 100 trajectories x 1000 steps from random training frames: the same metrics;
* alpha_L is phi > 0 (``lss_jax.analysis.torsions.basin_populations``), which also counts beta frames across
  phi = +-180 deg, so every block records ``alpha_l_basin`` (0 < phi < 120 deg) beside it, and ``md`` records the
  training run's populations beside the reference's (the two MD runs differ most in how their alpha_L splits);
* the issue's targets, each a boolean: round-trip F within 1.5 x the MD-vs-MD floor (training run against the
  independent run, same bins), full LSS F within 2 x the floor, alpha_L within a factor 1.5 of MD (both), <= 0.1 %
  of frames with a bond > 10 % off and no clash frame (both), bond MAD within 0.2 percentage points and angle MAD
  within 0.3 degrees of MD's thermal spread (both); and the decoder's training time on this machine.

    python benchmarks/studies/ala2_sweep.py                   # 12 models, ~50 min on 2 CPU cores -> results/ala2_sweep-<backend>.json
    python benchmarks/studies/ala2_sweep.py --lags 5 --dims 2 # one cell
    python benchmarks/studies/ala2_sweep.py --no-linear-floor --tag _plain   # the plain SRV, whatever the floor's check
    python benchmarks/studies/ala2_sweep.py --keys 4 --tag _keys  # the LSS targets also on means over 4 generation keys
    python benchmarks/studies/ala2_sweep.py --samplers heun10 midpoint2 distill1 --tag _samplers
    python benchmarks/studies/ala2_sweep.py --lags 1 5 --dims 2 3 --seed 1 --samplers heun10 distill1 distill2 --repeat --tag _samplers_seed1
    python benchmarks/studies/ala2_sweep.py --lags 1 5 --dims 2 --samplers heun10 meanflow2 meanflow1 --repeat --tag _meanflow

``--keys N`` generates the full LSS of every setting with N generation keys (the first is the one scored above)
and records, per setting, each key's F(phi, psi), alpha_L, alpha_L basin and clash frames with their mean and
standard deviation, and the LSS targets judged on the means (``targets_over_keys``): one LSS run's alpha_L
scatters by about +-0.00012 over keys (``benchmarks/studies/alpha_l_generation_spread.py``), a third of the band's
lower margin, so a single reading can miss where the model does not.

``--repeat`` scores the first sampler a second time with other round-trip and generation keys (same model, same
decoder), so each sampler's difference from it reads against the spread of two runs of one decoder; ``--seed``
trains with another LSS seed.

``--samplers`` scores several ways of sampling the decoder on one trained model, in the same run: the model is
trained with ``distill_steps=0`` (the flow itself), and each sampler is ``heunK``, ``midpointK``, ``eulerK`` or
``rk4_K`` (``K`` steps of that solver on the trained flow) or ``distillK`` (the flow distilled into ``K`` Euler steps on
the decoder's own training latent points, :func:`lss_jax.decoder.distill_decoder`, as ``distill_steps=K`` does
inside ``fit``) or ``meanflowK`` (a mean-flow decoder, ``decoder.kind = "meanflow"``, trained on the same frames and
latent points with the key ``fit`` gives the flow, sampled in ``K`` steps). Every sampler decodes the same latent trajectories (same generation key), so their differences
are the decoder's alone; each run records every sampler's metrics, targets, distillation time and decode
throughput (frames/s of ``decode_unit`` on 65 536 latent points of the LSS run).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import jax
import numpy as np

from lss_jax.analysis.molecular import compare_structures, comparison_summary, decoder_round_trip
from lss_jax.benchmarking import benchmark_parser, decode_rate, machine_facts, refit_decoder, write_results
from lss_jax.data.pairs import split_trajectories
from lss_jax.datasets import load_alanine_dipeptide
from lss_jax.decoder import distill_decoder
from lss_jax.model.facade import LSS
from lss_jax.systems.alanine_dipeptide import SHIPPED_FRAME_PS

RESULTS = Path(__file__).resolve().parents[1] / "results"


def heavy(traj):
    return traj.atom_slice(traj.topology.select("not element H"))


def targets(rt: dict, lss: dict, floor: float, md: dict) -> dict:
    return {**block_targets("round_trip", rt, 1.5, floor, md), **block_targets("lss", lss, 2.0, floor, md)}


def block_targets(name: str, block: dict, factor: float, floor: float, md: dict) -> dict:
    """The targets of one block (round trip or LSS): F(phi, psi) within ``factor`` x the MD-vs-MD floor, alpha_L
    within 1.5x of MD's, bonds, clashes and MADs."""
    ratio = block["alpha_l"] / md["alpha_l"] if md["alpha_l"] > 0 else 0.0
    return {f"{name}_f_within_{factor:g}x_floor": block["f_phi_psi_rmse_kT"] <= factor * floor,
            f"{name}_alpha_l_within_1.5x": 1 / 1.5 <= ratio <= 1.5,
            f"{name}_bonds_off_at_most_0.1pct": block["bonds_off_10pct_pct"] <= 0.1,
            f"{name}_no_clash": block["clash_frames"] == 0,
            f"{name}_bond_mad_within_0.2pp": abs(block["bond_mad_pct"] - md["bond_mad_pct"]) <= 0.2,
            f"{name}_angle_mad_within_0.3deg": abs(block["angle_mad_deg"] - md["angle_mad_deg"]) <= 0.3}


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, out="folder of the JSON (default benchmarks/results)")
    parser.add_argument("--lags", nargs="+", type=int, default=[1, 2, 5, 10], help="lags in frames (2 ps each)")
    parser.add_argument("--dims", nargs="+", type=int, default=[1, 2, 3], help="latent dimensions")
    parser.add_argument("--n-traj", type=int, default=100)
    parser.add_argument("--n-steps", type=int, default=1000)
    parser.add_argument("--tag", default="", help="suffix of the JSON file name")
    parser.add_argument("--samplers", nargs="+", default=None, metavar="SAMPLER",
                        help="score these samplers of one trained flow: heunK, midpointK, eulerK, rk4_K, distillK, "
                             "meanflowK (see above)")
    parser.add_argument("--repeat", action="store_true",
                        help="also score the first sampler with other round-trip and generation keys: the spread of "
                             "every metric between two runs of one decoder, against which the samplers' differences read")
    parser.add_argument("--keys", type=int, default=1,
                        help="generation keys per setting: the LSS targets also judged on the means over them (above)")
    parser.add_argument("--seed", type=int, default=None, help="the LSS seed (default: the default configuration's)")
    parser.add_argument("--state-tail", type=float, default=None,
                        help="decoder.state_tail: torsion modes' tails below this share of their peak become states")
    parser.add_argument("--linear-floor", action=argparse.BooleanOptionalAction, default=True,
                        help="encoder.linear_floor (the default: an SRV that loses a slow process TICA finds is trained "
                             "again from TICA, docs/encoder.md); --no-linear-floor keeps the plain SRV")
    args = parser.parse_args(argv)

    train, independent = load_alanine_dipeptide("train"), load_alanine_dipeptide("independent")
    train_h, indep_h = heavy(train), heavy(independent)
    md_block = compare_structures(indep_h, train_h)  # the training run as a sample of the independent one
    floor = md_block["free_energy_phi_psi"]["rmse_kT"]
    pops = md_block["basin_populations"]["md"]
    train_pops = md_block["basin_populations"]["generated"]  # the training run's, beside the reference's (MD vs MD)
    md = {"f_phi_psi_floor_kT": floor, "alpha_l": pops["alpha_l"], "alpha_r": pops["alpha_r"],
          "alpha_l_basin": pops["alpha_l_basin"], "train_alpha_l": train_pops["alpha_l"],
          "train_alpha_l_basin": train_pops["alpha_l_basin"],
          "bond_mad_pct": 100 * md_block["geometry"]["reference_bond_length_mad_relative"],
          "angle_mad_deg": md_block["geometry"]["reference_angle_mad_degrees"]}
    results = {"benchmark": "ala2_sweep", "backend": jax.default_backend(), "machine": machine_facts(),
               "jax": jax.__version__,
               "training": "shipped train 50 ns (2 ps frames)", "reference": "shipped independent 50 ns",
               "n_trajectories": args.n_traj, "n_steps": args.n_steps, "md": md, "runs": []}
    print(f"MD vs MD F(phi, psi) floor {floor:.3f} kT; MD alpha_L {md['alpha_l']:.4f} (basin {md['alpha_l_basin']:.4f}; "
          f"the training run's {md['train_alpha_l']:.4f}, basin {md['train_alpha_l_basin']:.4f}); bond MAD "
          f"{md['bond_mad_pct']:.2f} %, angle MAD {md['angle_mad_deg']:.2f} deg", flush=True)
    path = (args.out or RESULTS) / f"ala2_sweep-{jax.default_backend()}{args.tag}.json"
    for lag in args.lags:
        for m in args.dims:
            run = sweep_cell(args, lag, m, train, independent, indep_h, floor, md)
            results["runs"].append(run)
            write_results(path, results)  # after every cell: a long sweep keeps what it has
    return 0


_MEAN_FLOWS: dict = {}  # the mean-flow decoder of each model of the run, trained once, sampled with every K asked for


def sampler_variant(model, name: str, u_train, u_val, train=None):
    """The model with its decoder sampled as ``name`` (``heunK``, ``midpointK``, ``eulerK``, ``rk4_K``, ``distillK`` or
    ``meanflowK``) and the seconds the variant took to make (distillation; the mean flow's training on ``train``)."""
    match = re.fullmatch(r"(heun|midpoint|euler|rk4|distill|meanflow)_?(\d+)", name)
    if not match:
        raise SystemExit(f"unknown sampler {name!r}: use heunK, midpointK, eulerK, rk4_K, distillK or meanflowK (K a "
                         "step count).")
    kind, k = match.group(1), int(match.group(2))
    start = time.perf_counter()
    if kind == "distill":
        decoder = distill_decoder(jax.random.key(11), model.decoder, u_train, u_val, n_steps=k, progress=False)
    elif kind == "meanflow":
        if id(model) not in _MEAN_FLOWS:
            _MEAN_FLOWS[id(model)] = (refit_decoder(model, train, progress=False, kind="meanflow"),
                                      time.perf_counter() - start)
        decoder, seconds = _MEAN_FLOWS[id(model)]
        return model.replace(decoder=decoder.replace(flow_steps=k)), seconds
    else:
        decoder = model.decoder.replace(flow_steps=k, flow_solver=kind)
    return model.replace(decoder=decoder), time.perf_counter() - start


def score(model, independent, indep_h, lss_key, args, floor, md, round_trip_key=None) -> dict:
    round_trip_key = jax.random.key(3) if round_trip_key is None else round_trip_key
    round_trip, draws = decoder_round_trip(round_trip_key, model, independent, return_draws=True)
    lss, latent = model.generate(lss_key, args.n_traj, args.n_steps, progress=False, return_latent=True)
    rt = comparison_summary(compare_structures(indep_h, round_trip, seed=5))
    full = comparison_summary(compare_structures(indep_h, lss, seed=5))
    unit = model.to_unit(np.asarray(latent).reshape(-1, model.latent_dim))[:65536]
    return {"round_trip": rt, "lss": full, "round_trip_redrawn_pct": 100 * float((draws > 0).mean()),
            "round_trip_outside_after_redraws": int((draws > model.decoder.redraws).sum()),
            "decode_frames_per_second": decode_rate(model, unit), "targets": targets(rt, full, floor, md)}


def sweep_cell(args, lag, m, train, independent, indep_h, floor, md) -> dict:
    start = time.perf_counter()
    settings = {"lag": lag, "encoder": {"latent_dim": m, "linear_floor": args.linear_floor}}
    if args.seed is not None:
        settings["seed"] = args.seed
    if args.samplers:
        settings["decoder"] = {"distill_steps": 0}  # the trained flow, sampled every way below
    if args.state_tail is not None:
        settings.setdefault("decoder", {})["state_tail"] = args.state_tail
    model = LSS(**settings).fit(train, progress=False).fetch_model()
    fit_seconds = time.perf_counter() - start
    run = {"lag_frames": lag, "lag_ps": lag * SHIPPED_FRAME_PS, "latent_dim": m, "seed": model.config.seed,
           "linear_floor": model.info["encoder"]["linear_floor"],
           "srv_timescales_ps": model.info["srv_timescales_ps"], "fit_seconds": fit_seconds,
           "decoder_seconds": model.info["wall_seconds"]["decoder"],
           "decoder_states": int(getattr(model.decoder.network, "n_states", 0)),
           "rare_state_anchors": model.info["decoder"].get("rare_state_anchors")}
    if not args.samplers:
        run.update(score(model, independent, indep_h, jax.random.key(1), args, floor, md))
        report(lag, m, run, run)
        if args.keys > 1:
            run["lss_over_keys"] = lss_over_keys(model, indep_h, args, floor, md, run["lss"])
            report_keys(lag, m, run["lss_over_keys"])
        return run
    u_train, u_val = split_trajectories([model.to_unit(p) for p in model.encode([train])], model.config.data.val_fraction)
    u_train, u_val = np.concatenate(u_train), np.concatenate(u_val)
    run["samplers"] = {}
    for name in args.samplers:
        variant, seconds = sampler_variant(model, name, u_train, u_val, train)
        block = {"make_seconds": seconds, **score(variant, independent, indep_h, jax.random.key(1), args, floor, md)}
        run["samplers"][name] = block
        report(lag, m, run, block, name)
        if args.repeat and name == args.samplers[0]:  # the same decoder, other keys: the noise of one run
            again = score(variant, independent, indep_h, jax.random.key(21), args, floor, md, jax.random.key(13))
            report(lag, m, run, again, name + " (other keys)")
            run["repeat_of_" + name] = {
                "round_trip_f_diff_kT": again["round_trip"]["f_phi_psi_rmse_kT"] - block["round_trip"]["f_phi_psi_rmse_kT"],
                "lss_f_diff_kT": again["lss"]["f_phi_psi_rmse_kT"] - block["lss"]["f_phi_psi_rmse_kT"],
                "round_trip_alpha_l": again["round_trip"]["alpha_l"], "lss_alpha_l": again["lss"]["alpha_l"],
                "targets": again["targets"]}
    first = run["samplers"][args.samplers[0]]
    for name, block in run["samplers"].items():  # each sampler against the first (the reference sampler)
        block["vs_" + args.samplers[0]] = {
            "round_trip_f_diff_kT": block["round_trip"]["f_phi_psi_rmse_kT"] - first["round_trip"]["f_phi_psi_rmse_kT"],
            "lss_f_diff_kT": block["lss"]["f_phi_psi_rmse_kT"] - first["lss"]["f_phi_psi_rmse_kT"],
            "decode_speedup": block["decode_frames_per_second"] / first["decode_frames_per_second"]}
    return run


def lss_over_keys(model, indep_h, args, floor, md, first: dict) -> dict:
    """The full LSS generated with ``args.keys`` generation keys (the first, key 1, is ``first``; then keys 101, 102,
    ...): per key and as mean and standard deviation, with the LSS targets judged on the means."""
    blocks = [first] + [comparison_summary(compare_structures(
        indep_h, model.generate(jax.random.key(100 + k), args.n_traj, args.n_steps, progress=False), seed=5))
        for k in range(1, args.keys)]
    out = {"keys": [1] + [100 + k for k in range(1, args.keys)]}
    for name in ("f_phi_psi_rmse_kT", "alpha_l", "alpha_l_basin", "clash_frames", "bonds_off_10pct_pct",
                 "bond_mad_pct", "angle_mad_deg"):
        values = np.array([b[name] for b in blocks], np.float64)
        out[name] = {"values": values.tolist(), "mean": float(values.mean()), "sd": float(values.std(ddof=1))}
    means = {name: value["mean"] for name, value in out.items() if name != "keys"}
    out["targets_over_keys"] = block_targets("lss", means, 2.0, floor, md)
    return out


def report_keys(lag, m, keys: dict) -> None:
    missed = [k for k, ok in keys["targets_over_keys"].items() if not ok]
    f, a = keys["f_phi_psi_rmse_kT"], keys["alpha_l"]
    print(f"lag {lag * SHIPPED_FRAME_PS:4.0f} ps m {m} over {len(keys['keys'])} keys: LSS F {f['mean']:.3f} ± "
          f"{f['sd']:.3f} aL {a['mean']:.5f} ± {a['sd']:.5f} clash frames {keys['clash_frames']['values']} | missed: "
          f"{', '.join(missed) or 'none'}", flush=True)


def report(lag, m, run, block, name: str = "") -> None:
    rt, full = block["round_trip"], block["lss"]
    missed = [k for k, ok in block["targets"].items() if not ok]
    print(f"lag {lag * SHIPPED_FRAME_PS:4.0f} ps m {m}{' ' + name if name else ''}: decoder {run['decoder_seconds']:.0f} s | "
          f"round trip F {rt['f_phi_psi_rmse_kT']:.2f} aL {rt['alpha_l']:.4f} (basin {rt['alpha_l_basin']:.4f}) bonds "
          f"{rt['bond_mad_pct']:.2f} % angles {rt['angle_mad_deg']:.2f} clash {rt['clash_frames']} redrawn "
          f"{block['round_trip_redrawn_pct']:.2f} % | LSS F {full['f_phi_psi_rmse_kT']:.2f} aL {full['alpha_l']:.4f} "
          f"(basin {full['alpha_l_basin']:.4f}) clash {full['clash_frames']}/{full['n_frames_checked']} | "
          f"{block['decode_frames_per_second']:.0f} frames/s | missed: {', '.join(missed) or 'none'}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
