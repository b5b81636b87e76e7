"""Does random fine-scale error alone add Trp-cage folding transitions? The independent run's own frames with isotropic
Gaussian noise of sd ``s`` nm on every Cα coordinate, counted as the protocol counts them (hysteresis on Q, cutoffs
0.3 / 0.7, frames one lag = 50 ps apart), with the folded fraction and the tails of Q.

A control for the chain decoder's excess of transitions (docs/decoder.md: started from MD frames at t0 = 0.7 on its
path it still adds them, so they are made late on the path, where beads are placed to a few hundredths of a nm): if
random error of that size flipped Q back and forth, noise would add transitions. It does not (it lowers Q evenly).

    python benchmarks/studies/trp_cage_noise_transitions.py   # seconds -> results/trp_cage_noise_transitions-cpu.json
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from lss_jax.benchmarking import benchmark_parser, machine_facts, write_results
from lss_jax.systems import trp_cage as tc

RESULTS = Path(__file__).resolve().parents[1] / "results"


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, out="JSON path (default benchmarks/results/trp_cage_noise_transitions-cpu.json)")
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.01, 0.02, 0.03, 0.05],
                        help="noise sd per coordinate (nm)")
    args = parser.parse_args(argv)
    independent = tc.load_trp_cage("independent")
    lag, frame_ps = tc.lss_config().lag, float(independent.timestep)
    rng = np.random.default_rng(0)
    rows = {}
    for s in args.noise:
        xyz = independent.xyz + rng.normal(0.0, s, independent.xyz.shape).astype(np.float32)
        every_lag = xyz[::lag]
        folding = tc.folding_metrics([every_lag], every_lag[None], md_frame_time=lag * frame_ps,
                                     lss_frame_time=lag * frame_ps)
        q = tc.fraction_native_contacts(xyz)
        rows[f"{s:g}"] = {"transitions_per_us": folding["transitions_per_us"]["lss"],
                          "folded_fraction": folding["folded_fraction"]["lss"], "mean_q": float(q.mean()),
                          "q_below_0.3": float(np.mean(q < 0.3)), "q_above_0.7": float(np.mean(q > 0.7))}
        print(f"noise {s:g} nm: " + ", ".join(f"{k} {v:.4g}" for k, v in rows[f"{s:g}"].items()), flush=True)
    write_results(args.out or RESULTS / "trp_cage_noise_transitions-cpu.json", {
        "benchmark": "trp_cage_noise_transitions", "description": __doc__.split("\n")[0], "lag_frames": lag,
        "rows": rows, "machine": machine_facts(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
