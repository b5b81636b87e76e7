"""Adaptive sampling vs plain MD continuation on the four-well potential, over several seeds.

Protocol, acquisition rule and error metric: :mod:`lss_jax.adaptive.four_well`. Per repeat (seed):
an initial 2000-step BD run that saw only the two left wells; 8 adaptive rounds of 8 x 1000 BD steps
(MDN ensemble -> acquisition -> BD from the seeds); plain continuation of the initial run evaluated at
the same budgets and further out to 400 000 steps. Each evaluation trains one MDN and scores 256 LSS
trajectories against the exact free energy.

Reported: per repeat and as mean / std / min-max, the first MD budget at which the LSS free-energy RMSE
is <= 0.3 kT for each arm (also the "sustained" reading: from then on always <= 0.3 kT, and the same on
the 64 core bins), the ratio plain / adaptive, the RMSE-vs-steps curves, and the evaluation noise: the
final data of each arm of the first repeat re-evaluated with ``--noise-keys`` more training keys (the
spread of the RMSE for fixed data, which sets how sharp "steps to 0.3 kT" can be).

Ablation (``random_seeds``, skip with ``--no-ablation``): the same rounds with the seeds drawn uniformly
from the gathered frames instead of by the acquisition score (same BD and evaluation keys), which
separates the effect of the rule from that of replacing one long run by many short ones. Diagnostics
per repeat at the last adaptive budget: how far each arm's data are from the equilibrium distribution
(total variation on the 80 analysis bins) and the RMS free-energy error per band of exact F
(< 1 kT, 1-3 kT, >= 3 kT above the minimum).

The persistent XLA compilation cache is switched on (in a temporary directory): every repeat has the
same array shapes, so repeats 2+ reuse the compilations of the first.

    python benchmarks/studies/adaptive_four_well.py             # 3 seeds, ~10-15 min on 2 CPU cores
    python benchmarks/studies/adaptive_four_well.py --quick     # 2 seeds of the smoke settings, ~2 min
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from lss_jax.adaptive.four_well import AdaptiveConfig, evaluate_lss, run_adaptive_four_well
from lss_jax.analysis.plots import adaptive_four_well_figure
from lss_jax.benchmarking import benchmark_parser, load_average, machine_facts, write_results

ROOT = Path(__file__).resolve().parents[2]  # the repository
ABLATIONS = {"random_seeds": {"seed_rule": "random"}, "beta_1": {"beta": 1.0}}


def summarize(values, cap):
    """Mean/std/min/max of steps-to-target over repeats; ``None`` (not reached) is censored at ``cap``."""
    reached = [v for v in values if v is not None]
    censored = [cap if v is None else v for v in values]
    return {
        "per_repeat": values,
        "n_reached": len(reached),
        "n_repeats": len(values),
        "mean": float(np.mean(reached)) if len(reached) == len(values) else None,
        "std": float(np.std(reached, ddof=1)) if len(reached) == len(values) and len(values) > 1 else None,
        "min": min(reached) if reached else None,
        "max": max(reached) if reached else None,
        "mean_lower_bound_if_censored": float(np.mean(censored)),
        "censoring_cap": cap,
    }


def diagnostics(m, data_dir):
    """Where the data lie and where the error sits, at the last adaptive budget, for each arm."""
    ref = m["reference"]
    f_exact, mask = np.asarray(ref["f_exact"]), np.asarray(ref["populated"])
    centers = np.asarray(ref["bin_centers"])
    width = centers[1] - centers[0]
    edges = np.append(centers - width / 2, centers[-1] + width / 2)
    p_exact = np.exp(-(f_exact - f_exact.min()))
    p_exact /= p_exact.sum()
    i_last = len(m["adaptive"]["md_steps"]) - 1
    steps = m["adaptive"]["md_steps"][i_last]
    data = np.load(data_dir / "trajectories.npz")
    frames, profiles = {}, {}
    for name in m["arms"]:
        if name == "plain":
            frames[name] = data["plain"][: steps // m["settings"]["config"]["save_every"] + 1]
            profiles[name] = m["plain"]["evaluations"][m["plain"]["md_steps"].index(steps)]["f_lss"]
        else:
            frames[name] = np.concatenate([data[k] for k in sorted(data.files) if k.startswith(f"{name}/traj_")])
            profiles[name] = m[name]["evaluations"][i_last]["f_lss"]
    band = f_exact[mask] - f_exact[mask].min()
    bands = {"F<1kT": band < 1, "1<=F<3kT": (band >= 1) & (band < 3), "F>=3kT": band >= 3}
    out = {"md_steps": steps, "bins_per_band": {k: int(v.sum()) for k, v in bands.items()}}
    for name, x in frames.items():
        p_data = np.histogram(x, edges)[0] / len(x)
        d = (np.asarray(profiles[name]) - f_exact)[mask]
        d -= d.mean()
        out[name] = {
            "data_total_variation_to_equilibrium": round(0.5 * float(np.abs(p_data - p_exact).sum()), 4),
            "data_fraction_at_F_ge_3kT": round(float(p_data[mask][bands["F>=3kT"]].sum()), 4),
            "data_range": [round(float(x.min()), 3), round(float(x.max()), 3)],
            "rms_error_per_band_kT": {k: round(float(np.sqrt(np.mean(d[v] ** 2))), 3) for k, v in bands.items()},
            "share_of_squared_error_in_F_ge_3kT": round(float(np.sum(d[bands["F>=3kT"]] ** 2) / np.sum(d**2)), 3),
        }
    out["equilibrium_fraction_at_F_ge_3kT"] = round(float(p_exact[mask][bands["F>=3kT"]].sum()), 4)
    return out


def arm_summary(m, name):
    arm = m[name]
    return {
        "md_steps": arm["md_steps"],
        "rmse": [round(r, 4) for r in arm["rmse"]],
        "rmse_core": [round(r, 4) for r in arm["rmse_core"]],
        "rmse_sampled": [round(r, 4) for r in arm["rmse_sampled"]],
        "data_range": [e["data_range"] for e in arm["evaluations"]],
        "wells_visited_md": [e["wells_visited_md"] for e in arm["evaluations"]],
        "best_epoch_of_epochs": [[e["best_epoch"], e["epochs"]] for e in arm["evaluations"]],
    }


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, quick="smoke settings (AdaptiveConfig.quick), 2 seeds",
                              out="JSON path (default benchmarks/results/adaptive_four_well-<backend>.json; with "
                                  "--quick a temporary directory)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=None, help="adaptive rounds (default: AdaptiveConfig's, 8)")
    parser.add_argument("--noise-keys", type=int, default=3, help="extra training keys for the noise check (0: skip)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--no-ablation", action="store_true", help="skip the ablation arms (random seeds, beta = 1)")
    parser.add_argument("--figure", type=Path, default=None,
                        help="figure path (default docs/figures/adaptive_four_well.png; with --quick next to --out)")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="adaptive-four-well-"))
    jax.config.update("jax_compilation_cache_dir", str(tmp / "xla-cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    if args.quick:
        args.seeds = args.seeds[:2]
    backend = jax.default_backend()
    out = args.out or (tmp / "adaptive_four_well.json" if args.quick else
                       ROOT / "benchmarks" / "results" / f"adaptive_four_well-{backend}.json")
    figure = args.figure or (out.with_suffix(".png") if args.quick else ROOT / "docs" / "figures" / "adaptive_four_well.png")
    load_start = load_average()
    start = time.perf_counter()

    overrides = {} if args.rounds is None else {"n_rounds": args.rounds}
    runs, repeats = [], []
    for seed in args.seeds:
        cfg = AdaptiveConfig.quick(seed=seed, **overrides) if args.quick else AdaptiveConfig(seed=seed, **overrides)
        t = time.perf_counter()
        m = run_adaptive_four_well(cfg, tmp / f"seed-{seed}", extra_arms=None if args.no_ablation else ABLATIONS,
                                   progress=not args.no_progress)
        runs.append(m)
        repeats.append({
            "seed": seed,
            "initial": m["initial"],
            "steps_to_target": m["steps_to_target"],
            "steps_to_target_sustained": m["steps_to_target_sustained"],
            "steps_to_target_core": m["steps_to_target_core"],
            "ratio_plain_over_adaptive": m["steps_ratio_plain_over_adaptive"],
            **{name: arm_summary(m, name) for name in m["arms"]},
            "seeds_per_round": [[round(s, 4) for s in r["seeds"]] for r in m["adaptive"]["rounds"]],
            "diagnostics": diagnostics(m, tmp / f"seed-{seed}"),
            "wall_seconds": round(time.perf_counter() - t, 1),
        })
        print(f"seed {seed}: steps to <= {cfg.target_rmse} kT " +
              "  ".join(f"{name} {m['steps_to_target'][name]}" for name in m["arms"]) +
              f"  ({time.perf_counter() - t:.0f} s)", flush=True)

    # evaluation noise: the final data of each arm of the first repeat, more training keys
    noise = None
    if args.noise_keys > 0:
        seed = args.seeds[0]
        cfg = AdaptiveConfig.quick(seed=seed, **overrides) if args.quick else AdaptiveConfig(seed=seed, **overrides)
        data = np.load(tmp / f"seed-{seed}" / "trajectories.npz")
        arms = {"adaptive": [data[k].astype(np.float64) for k in sorted(data.files) if k.startswith("adaptive/traj_")],
                "plain": [data["plain"].astype(np.float64)]}
        noise = {"seed": seed, "note": "same data, training/generation keys 10_000 + j; first entry of rmse is the "
                                       "value from the run itself"}
        for name, trajs in arms.items():
            rmse = [runs[0][name]["rmse"][-1]]
            for j in range(args.noise_keys):
                rmse.append(evaluate_lss(jax.random.key(10_000 + j), trajs, cfg)["rmse"])
            noise[name] = {"md_steps": runs[0][name]["md_steps"][-1], "rmse": [round(r, 4) for r in rmse],
                           "std": float(np.std(rmse, ddof=1))}
            print(f"noise check, {name} at {noise[name]['md_steps']:,} steps: RMSE {noise[name]['rmse']}", flush=True)

    cfg0 = runs[0]["settings"]["config"]
    cap = max(runs[0]["plain"]["md_steps"])
    names = runs[0]["arms"]
    reach = {arm: summarize([r["steps_to_target"][arm] for r in repeats], cap) for arm in names}
    reach_sustained = {arm: summarize([r["steps_to_target_sustained"][arm] for r in repeats], cap) for arm in names}
    reach_core = {arm: summarize([r["steps_to_target_core"][arm] for r in repeats], cap) for arm in names}

    def ratio(d):
        a, p = d["adaptive"], d["plain"]
        if a["mean"] is None:
            return None
        return (p["mean"] or p["mean_lower_bound_if_censored"]) / a["mean"]

    per_repeat_ratio = [r["ratio_plain_over_adaptive"] for r in repeats]
    met = ratio(reach) is not None and ratio(reach) >= 3.0
    curves = {}
    for arm in names:
        rm = np.array([r[arm]["rmse"] for r in repeats])
        curves[arm] = {"md_steps": repeats[0][arm]["md_steps"], "rmse_mean": rm.mean(0).round(4).tolist(),
                       "rmse_std": (rm.std(0, ddof=1) if len(rm) > 1 else np.zeros(rm.shape[1])).round(4).tolist(),
                       "rmse_min": rm.min(0).round(4).tolist(), "rmse_max": rm.max(0).round(4).tolist(),
                       "rmse_sampled_mean": np.mean([r[arm]["rmse_sampled"] for r in repeats], 0).round(4).tolist()}
    result = {
        "benchmark": "adaptive sampling vs plain continuation, four-well potential (lss_jax.adaptive.four_well)",
        "issue_target": "adaptive reaches free-energy RMSE <= 0.3 kT with at most 1/3 of the MD steps plain "
                        "continuation needs",
        "target_rmse_kT": cfg0["target_rmse"],
        "steps_to_target": reach,
        "ratio_of_means_plain_over_adaptive": ratio(reach),
        "ratio_is_lower_bound": reach["plain"]["mean"] is None and ratio(reach) is not None,
        "ratio_per_repeat": per_repeat_ratio,
        "target_met": met,
        "steps_to_target_sustained": reach_sustained,
        "ratio_of_means_sustained": ratio(reach_sustained),
        "steps_to_target_core_bins": reach_core,
        "ratio_of_means_core_bins": ratio(reach_core),
        "curves": curves,
        "evaluation_noise": noise,
        "repeats": repeats,
        "settings": {
            "config": {k: v for k, v in cfg0.items() if k != "seed"},
            "quick": args.quick,
            "md_budget": "BD steps of all trajectories, the initial 2000-step run included",
            "steps_to_target": "first evaluated budget with RMSE <= target; sustained: first budget from which all "
                               "later evaluated budgets are <= target; not reached counts as the largest plain "
                               "budget in mean_lower_bound_if_censored",
            "arms": {"adaptive": "lss_jax.adaptive rule, beta = 0 (least counts) + ensemble uncertainty",
                     **{k: str(v) for k, v in ({} if args.no_ablation else ABLATIONS).items()}},
            "rmse": "free-energy RMSE of the LSS's exact stationary density (transition matrix on 1000 cells) over "
                    "bins with exact p >= 1e-3 max (66 of 80 on [-1.4, 1.4]); LSS bins below 1e-3 of the LSS max "
                    "floored there; core: bins with exact p >= 1e-2 max (64); rmse_sampled: the same from 256 "
                    "generated trajectories x 1000 lags",
        },
        "wall_seconds": round(time.perf_counter() - start, 1),
        "machine": machine_facts(load_average_start=load_start),
        "date": time.strftime("%Y-%m-%d"),
    }
    write_results(out, result)
    figure.parent.mkdir(parents=True, exist_ok=True)
    adaptive_four_well_figure(figure, runs)

    fmt = lambda s: "n/a" if s["mean"] is None else f"{s['mean']:,.0f} ± {s['std'] or 0:,.0f}"  # noqa: E731
    print(f"\nsteps to <= {cfg0['target_rmse']} kT over seeds {args.seeds}:" +
          "".join(f"\n  {arm:<13} {reach[arm]['per_repeat']}  mean ± std {fmt(reach[arm])}" for arm in names) +
          f"\n  ratio of means plain / adaptive: {ratio(reach)}   (target >= 3: {'met' if met else 'not met'})"
          f"\n  wall time {time.perf_counter() - start:.0f} s -> {out}, {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
