"""How much alanine dipeptide's α_L in a full LSS run moves with the generation key alone (issue 28).

The sweep's α_L target (within 1.5× of MD's 0.0018, band 0.0012–0.0027) reads one LSS run of 100 trajectories ×
1000 steps per setting. This trains ``LSS(lag=5, encoder={"latent_dim": m, "linear_floor": ...}, seed=...)`` on the
shipped training run once per encoder (plain SRV, then with the linear floor) and generates that run with
``--keys`` different generation keys: the spread of α_L (φ > 0) and of the α_L basin (0 < φ < 120°) over keys is
the noise of one reading, the model fixed. The training run's own figures are printed beside them.

    python benchmarks/studies/alpha_l_generation_spread.py            # seed 0, m = 2, 8 keys; ~10 min on 2 CPU cores
    python benchmarks/studies/alpha_l_generation_spread.py --seed 1 --dim 3 --keys 4
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import numpy as np

from lss_jax.analysis.torsions import basin_populations, phi_psi
from lss_jax.benchmarking import benchmark_parser, machine_facts, write_results
from lss_jax.datasets import load_alanine_dipeptide
from lss_jax.model.facade import LSS

RESULTS = Path(__file__).resolve().parents[1] / "results"


def alpha_l(traj) -> tuple[float, float]:
    """(α_L = share of frames with φ > 0, basin = share with 0 < φ < 120°), as the validation report counts them."""
    basins = basin_populations(phi_psi(traj))
    return basins["alpha_l"], basins["alpha_l_basin"]


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, out="JSON path (default: results/alpha_l_generation_spread-<backend>.json)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dim", type=int, default=2, help="latent dimension")
    parser.add_argument("--keys", type=int, default=8, help="generation keys per model")
    parser.add_argument("--n-traj", type=int, default=100)
    parser.add_argument("--n-steps", type=int, default=1000)
    args = parser.parse_args(argv)
    out = args.out or RESULTS / f"alpha_l_generation_spread-{jax.default_backend()}.json"
    train = load_alanine_dipeptide("train")
    independent = load_alanine_dipeptide("independent")
    result = {"benchmark": "alpha_l_generation_spread", "machine": machine_facts(), "lag_frames": 5,
              "latent_dim": args.dim, "seed": args.seed, "n_traj": args.n_traj, "n_steps": args.n_steps,
              "training": dict(zip(("alpha_l", "alpha_l_basin"), alpha_l(train))),
              "independent": dict(zip(("alpha_l", "alpha_l_basin"), alpha_l(independent))), "encoders": {}}
    print(f"training run alpha_L {result['training']['alpha_l']:.5f} (basin {result['training']['alpha_l_basin']:.5f}); "
          f"independent {result['independent']['alpha_l']:.5f} ({result['independent']['alpha_l_basin']:.5f})")
    for floor in (False, True):
        name = "linear_floor" if floor else "plain"
        model = LSS(lag=5, encoder={"latent_dim": args.dim, "linear_floor": floor},
                    seed=args.seed).fit(train, progress=False).fetch_model()
        runs = []
        for k in range(args.keys):
            a, basin = alpha_l(model.generate(jax.random.key(100 + k), args.n_traj, args.n_steps, progress=False))
            runs.append({"key": 100 + k, "alpha_l": a, "alpha_l_basin": basin})
            print(f"{name}: key {100 + k}: alpha_L {a:.5f} (basin {basin:.5f})", flush=True)
        values = np.array([[r["alpha_l"], r["alpha_l_basin"]] for r in runs])
        summary = {"alpha_l_mean": float(values[:, 0].mean()), "alpha_l_sd": float(values[:, 0].std(ddof=1)),
                   "alpha_l_basin_mean": float(values[:, 1].mean()),
                   "alpha_l_basin_sd": float(values[:, 1].std(ddof=1)),
                   "in_band": int(np.sum((values[:, 0] >= 0.0018 / 1.5) & (values[:, 0] <= 0.0018 * 1.5))),
                   "tica_path": bool(model.info["encoder"]["linear_floor"].get("tica_path", False)),
                   "rare_state_anchors": model.info["decoder"].get("rare_state_anchors")}
        result["encoders"][name] = {"runs": runs, **summary}
        print(f"{name}: alpha_L {summary['alpha_l_mean']:.5f} ± {summary['alpha_l_sd']:.5f} (sd over keys), basin "
              f"{summary['alpha_l_basin_mean']:.5f} ± {summary['alpha_l_basin_sd']:.5f}; in the band in "
              f"{summary['in_band']} of {args.keys}", flush=True)
        write_results(out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
