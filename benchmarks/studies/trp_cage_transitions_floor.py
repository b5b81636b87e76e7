"""How many folding/unfolding transitions does decoding each frame on its own add, given MD's own latent path?

The Trp-cage protocol counts transitions (hysteresis on Q, cutoffs 0.3 / 0.7, frames one lag = 50 ps apart) on
decoded frames, and every decoder lss_jax has (retrieval, the chain flow) decodes each frame independently given
ψ. This study isolates that choice from the propagator and from any decoder's errors: the independent run's own
latent path (TICA of the Cα distances at the protocol's lag, fitted on the training run, its first m components)
is decoded by retrieval, each frame replaced by one of the k training frames nearest in latent space, and the
transitions of the result are counted against the run's own. Since retrieval draws MD's frames, its Q given ψ is
MD's; what it lacks is MD's memory from one frame to the next beyond ψ.

Two kinds of pick for every (m, k):

* **independent** (what the decoders do): a uniformly random neighbour per frame, 100 repeats;
* **coherent**: the neighbours sorted by Q and the one at quantile Φ(z_t) picked, z an AR(1) in time with
  correlation ρ (a Gaussian copula; ρ = 0 is the independent pick); beside it MD's own ρ: the lag-one
  autocorrelation of the Gaussianized rank of each MD frame's Q among its neighbours' Q;
* **window**: independent picks, but the neighbours are nearest in the latent *path* around the frame,
  (ψ_{t-w}, ..., ψ_{t+w}) one lag apart (the other frames' coordinates weighted 0.7): what a frame-parallel decoder
  conditioned on a window of the latent trajectory could reach.

    python benchmarks/studies/trp_cage_transitions_floor.py   # 90 s -> results/trp_cage_transitions_floor-cpu.json
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import mdtraj as md
import numpy as np
from scipy.spatial import cKDTree
from scipy.stats import norm

from lss_jax.benchmarking import benchmark_parser, machine_facts, write_results
from lss_jax.encoder import reversible_decomposition
from lss_jax.systems import go as _go
from lss_jax.systems import trp_cage as tc

RESULTS = Path(__file__).resolve().parents[1] / "results"


def transitions(q: np.ndarray) -> tuple[int, float]:
    """Folding + unfolding transitions and the folded fraction of one Q series (the protocol's hysteresis)."""
    events, states = _go.folding_transitions(q), _go.core_states(q)
    assigned = states[states >= 0]
    return int(events.n_folding + events.n_unfolding), float(np.mean(assigned == 1))


def ar1(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    """A stationary AR(1) series of ``n`` standard normals with lag-one correlation ``rho``."""
    e = rng.normal(size=n)
    z = np.empty(n)
    z[0] = e[0]
    for t in range(1, n):
        z[t] = rho * z[t - 1] + np.sqrt(1 - rho**2) * e[t]
    return z


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, out="JSON path (default benchmarks/results/trp_cage_transitions_floor-cpu.json)")
    parser.add_argument("--dims", type=int, nargs="+", default=[1, 2, 3, 5, 10])
    parser.add_argument("--neighbours", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--rhos", type=float, nargs="+", default=[0.15, 0.3, 0.5, 0.7])
    parser.add_argument("--windows", type=int, nargs="+", default=[1, 2],
                        help="half-widths w of the latent window, in lags")
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    train, independent = tc.load_trp_cage("train"), tc.load_trp_cage("independent")
    lag = tc.lss_config().lag
    pairs = np.array(list(itertools.combinations(range(train.n_atoms), 2)))
    d_train, d_ind = md.compute_distances(train, pairs), md.compute_distances(independent, pairs)
    tica = reversible_decomposition([d_train], lag)
    q_train = tc.fraction_native_contacts(train)
    q_md = tc.fraction_native_contacts(independent)[::lag]
    n_md, folded_md = transitions(q_md)
    print(f"MD (independent run, {len(q_md)} frames {lag * float(independent.timestep):g} ps apart): "
          f"{n_md} transitions, folded {folded_md:.3f}", flush=True)
    rng = np.random.default_rng(0)
    rows = []
    for m, k in itertools.product(args.dims, args.neighbours):
        proj = lambda d: (d - tica.mean) @ tica.vectors[:, :m]  # noqa: E731, B023
        p_train, p_ind = proj(d_train), proj(d_ind[::lag])
        scale = p_train.std(0)
        _, idx = cKDTree(p_train / scale).query(p_ind / scale, k=k)
        q_nb = q_train[idx]
        order = np.argsort(q_nb, axis=1)
        rank = (np.sum(q_nb < q_md[:, None], axis=1) + 0.5) / (k + 1)
        z_md = norm.ppf(rank)
        row = {"latent_dim": m, "neighbours": k, "md_rank_autocorrelation_lag1": float(np.corrcoef(z_md[:-1],
                                                                                                   z_md[1:])[0, 1])}
        frames = np.arange(len(idx))
        for rho in [0.0, *args.rhos]:
            counts, folded = [], []
            for _ in range(args.repeats):
                if rho == 0.0:
                    pick = idx[frames, rng.integers(0, k, len(idx))]
                else:
                    j = np.minimum((norm.cdf(ar1(rng, len(idx), rho)) * k).astype(int), k - 1)
                    pick = idx[frames, order[frames, j]]
                n, f = transitions(q_train[pick])
                counts.append(n)
                folded.append(f)
            name = "independent" if rho == 0.0 else f"coherent_rho_{rho:g}"
            row[name] = {"transitions": counts, "mean": float(np.mean(counts)),
                         "relative_to_md": float(np.mean(counts) / n_md - 1),
                         "relative_se": float(np.std(counts, ddof=1) / np.sqrt(len(counts)) / n_md),
                         "folded_fraction": float(np.mean(folded))}
        p_full = proj(d_ind)  # every frame of the run: a window reaches w lags to either side
        for w in args.windows:
            inner = np.arange(w * lag, len(p_train) - w * lag)  # training frames with a whole window
            window = lambda p, at: np.concatenate([p[np.clip(at + o * lag, 0, len(p) - 1)] / scale  # noqa: E731, B023
                                                   * (1.0 if o == 0 else 0.7) for o in range(-w, w + 1)], axis=1)
            _, nb = cKDTree(window(p_train, inner)).query(window(p_full, np.arange(0, len(p_full), lag)), k=k)
            counts = [transitions(q_train[inner[nb[frames, rng.integers(0, k, len(nb))]]])[0]
                      for _ in range(args.repeats)]
            row[f"window_{w}"] = {"transitions": counts, "mean": float(np.mean(counts)),
                                  "relative_to_md": float(np.mean(counts) / n_md - 1),
                                  "relative_se": float(np.std(counts, ddof=1) / np.sqrt(len(counts)) / n_md)}
        rows.append(row)
        ind = row["independent"]
        print(f"m={m:2d} k={k:3d}: independent picks {ind['mean']:.0f} transitions ({ind['relative_to_md']:+.0%} ± "
              f"{ind['relative_se']:.0%}), "
              f"folded {ind['folded_fraction']:.3f}; "
              f"MD's rank autocorrelation {row['md_rank_autocorrelation_lag1']:.3f}; "
              + ", ".join(f"rho {r:g}: {row[f'coherent_rho_{r:g}']['relative_to_md']:+.0%}" for r in args.rhos)
              + "; " + ", ".join(f"window ±{w}: {row[f'window_{w}']['relative_to_md']:+.0%} ± "
                                 f"{row[f'window_{w}']['relative_se']:.0%}" for w in args.windows), flush=True)
    write_results(args.out or RESULTS / "trp_cage_transitions_floor-cpu.json", {
        "benchmark": "trp_cage_transitions_floor",
        "description": "transitions added by decoding each frame independently given MD's own latent path (TICA of "
                       "the Calpha distances), by retrieval among the k nearest training frames",
        "lag_frames": lag, "md": {"transitions": n_md, "folded_fraction": folded_md, "frames": len(q_md)},
        "rows": rows, "repeats": args.repeats, "seconds": time.perf_counter() - start, "machine": machine_facts(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
