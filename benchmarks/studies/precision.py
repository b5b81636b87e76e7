"""Accuracy cost of lower-precision matmuls in the generation rollout, measured on the four-well.

The four-well validation (``lss_jax.pipelines.four_well``, the paper's protocol) is run once per
precision with the same seed: the Brownian dynamics, the exact reference and the MDN training are
identical (training is always float32); only the 1024 x 50 000-step rollout changes precision. The
free-energy RMSE against the exact Smoluchowski reference and the slowest implied timescale are
compared with the float32 run. The float32 run's own statistical error sets the scale: its RMSE
against the exact reference is mostly sampling noise of the finite rollout.

On a CPU ``tf32`` is float32 (XLA CPUs have no TF32), so only ``float32`` and ``bfloat16`` differ here;
on a GPU run all three.

    python benchmarks/studies/precision.py                      # ~5 min on 2 CPU cores
    python benchmarks/studies/precision.py --quick              # smoke run
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax

from lss_jax.benchmarking import benchmark_parser, machine_facts, write_results
from lss_jax.pipelines.four_well import FourWellConfig, run_four_well

RESULTS = Path(__file__).resolve().parents[1] / "results"


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, quick="small settings (smoke run)",
                              out="JSON path (default benchmarks/results/precision-<backend>.json)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precisions", nargs="+", default=None, help="default: float32 bfloat16 (+ tf32 on GPU)")
    args = parser.parse_args(argv)
    backend = jax.default_backend()
    precisions = args.precisions or (["float32", "bfloat16"] + (["tf32"] if backend == "gpu" else []))
    base = FourWellConfig.quick(seed=args.seed) if args.quick else FourWellConfig(seed=args.seed)
    rows = []
    for precision in precisions:
        start = time.perf_counter()
        m = run_four_well(dataclasses.replace(base, precision=precision), progress=False, log=lambda s: None)
        rows.append({
            "precision": precision,
            "free_energy_rmse_kT": m["free_energy_rmse_kT"],
            "t1": m["implied_timescales"]["lss"][0],
            "t1_exact": m["implied_timescales"]["exact"][0],
            "generation_seconds": m["wall_seconds"]["generation"],
            "seconds": time.perf_counter() - start,
        })
        print(f"{precision:>9}: F RMSE {rows[-1]['free_energy_rmse_kT']:.3f} kT, t1 {rows[-1]['t1']:.4f} "
              f"(exact {rows[-1]['t1_exact']:.4f}), generation {rows[-1]['generation_seconds']:.1f} s")
    ref = rows[0]
    for r in rows:
        r["rmse_minus_float32_kT"] = r["free_energy_rmse_kT"] - ref["free_energy_rmse_kT"]
        r["t1_relative_to_float32"] = r["t1"] / ref["t1"]
    write_results(args.out or RESULTS / f"precision-{backend}.json",
                  {"benchmark": "precision", "backend": backend, "device": str(jax.devices()[0]),
                   "machine": machine_facts(), "quick": args.quick, "seed": args.seed,
                   "config": dataclasses.asdict(base), "results": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
