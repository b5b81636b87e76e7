"""How much do independent MD runs of the Trp-cage Gō model disagree? The reference spread for the folding targets.

The Trp-cage targets (t1, folded fraction, transition rate) are read against one independent 140 ns run, with
block standard errors from within that run. This script simulates more independent runs with the shipped
protocol (:func:`lss_jax.systems.trp_cage.simulate_trp_cage`, one seed each, cached; ~2-3 min per run on one
core) and measures, on every run, with a trained model's encoder:

* ``t1_ps``: the slowest implied timescale of the encoded run (reversible estimator at the model's lag);
* ``folded_fraction`` and ``transitions_per_us`` at the model's lag spacing (as ``report`` compares them).

It prints and writes (JSON) each run, and the mean, standard deviation and standard error over the
independent runs (the shipped ``independent`` run and the new seeds; the ``train`` run, which the encoder was
fitted to, is listed apart: its t1 is in-sample).

    python benchmarks/studies/trp_cage_md_spread.py --model DIR                 # seeds 3..8
    python benchmarks/studies/trp_cage_md_spread.py --model DIR --seeds 3 4     # fewer runs
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from lss_jax import LSS
from lss_jax.benchmarking import benchmark_parser, machine_facts, write_results
from lss_jax.encoder import implied_timescales, reversible_decomposition
from lss_jax.systems import trp_cage as tc

RESULTS = Path(__file__).resolve().parents[1] / "results"


def measure(model, traj) -> dict:
    """t1 of the encoded run and its folding observables at the model's lag spacing."""
    lag, lag_time = model.config.lag, model.lag_time
    latent = list(model.encode([traj]))
    t1 = float(implied_timescales(reversible_decomposition(latent, lag).eigenvalues[:1], lag_time)[0])
    frame_ps = float(traj.timestep)
    folding = tc.folding_metrics([traj.xyz], traj.xyz[None, ::lag], md_frame_time=frame_ps,
                                 lss_frame_time=lag * frame_ps)
    return {"t1_ps": t1, "folded_fraction": folding["folded_fraction"]["md"],
            "transitions_per_us": folding["transitions_per_us"]["md"], "n_frames": int(traj.n_frames),
            "time_ns": float(traj.n_frames * frame_ps / 1000)}


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, out="JSON path (default benchmarks/results/trp_cage_md_spread-cpu.json)")
    parser.add_argument("--model", required=True, help="a Trp-cage model directory (lss-jax demo --system trp-cage "
                                                      "--out DIR writes DIR/model)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 4, 5, 6, 7, 8],
                        help="seeds of the extra runs (the shipped runs are seeds 1 and 2)")
    args = parser.parse_args(argv)
    if any(s in (seed for _, seed in tc.SHIPPED.values()) for s in args.seeds):
        parser.error(f"--seeds must differ from the shipped runs' seeds {[s for _, s in tc.SHIPPED.values()]}")
    if not Path(args.model).is_dir():
        parser.error(f"model directory not found: {args.model}")
    model = LSS.load(args.model)
    if not tc.is_trp_cage(model.decoded_topology):
        parser.error(f"{args.model} is not a Trp-cage Cα model")
    start = time.perf_counter()
    runs = {"train": tc.load_trp_cage("train"), "independent": tc.load_trp_cage("independent")}
    rows = {}
    print(f"{'run':>12} {'t1 (ps)':>8} {'folded':>7} {'trans./µs':>9}")
    for name in [*runs, *(f"seed{s}" for s in args.seeds)]:
        traj = runs[name] if name in runs else tc.simulate_trp_cage(tc.SHIPPED_N_FRAMES, seed=int(name[4:]),
                                                                    progress=False)
        rows[name] = measure(model, traj)
        r = rows[name]
        print(f"{name:>12} {r['t1_ps']:>8.1f} {r['folded_fraction']:>7.3f} {r['transitions_per_us']:>9.0f}", flush=True)
    independent = [r for name, r in rows.items() if name != "train"]
    summary = {}
    for key in ("t1_ps", "folded_fraction", "transitions_per_us"):
        values = np.array([r[key] for r in independent])
        sd = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
        summary[key] = {"mean": float(values.mean()), "sd": sd, "se": sd / np.sqrt(len(values)),
                        "min": float(values.min()), "max": float(values.max()), "n_runs": len(values),
                        "train_run": rows["train"][key],
                        "train_run_z": (rows["train"][key] - float(values.mean())) / sd if sd > 0 else float("nan")}
        s = summary[key]
        print(f"{key}: independent runs {s['mean']:.4g} ± {s['se']:.2g} (SE; sd {s['sd']:.2g}, {s['min']:.4g}–"
              f"{s['max']:.4g}, n = {s['n_runs']}); training run {s['train_run']:.4g} ({s['train_run_z']:+.1f} sd)")
    result = {
        "benchmark": "trp_cage_md_spread",
        "description": "t1 (model encoder), folded fraction and transitions per µs of independent Trp-cage Gō runs",
        "model": str(args.model), "lag_time_ps": model.lag_time, "runs": rows, "summary": summary,
        "seconds": time.perf_counter() - start,
        "machine": machine_facts(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_results(args.out or RESULTS / "trp_cage_md_spread-cpu.json", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
