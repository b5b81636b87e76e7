"""Latent rollout throughput at the Trp-cage propagator size, against baselines measured in the same run.

Propagator: latent dim 3, C = 24 Gaussian kernels, two hidden layers of 100 ReLU (Sidky et al. 2020).
For each batch size B the script times compilation and execution separately and reports latent
steps per second (trajectory-steps: B x n_steps / s) and the achieved GFLOP/s of the MLP (counting
the three matmuls, 2 FLOP per multiply-add) next to two baselines:

* ``no_sampling``: the same ``lax.scan`` over the same network with the component's mean (argmax of the
  weights) as the next state: the network and the boundary without any random numbers, the ceiling a
  sampler can approach (target: ``lss_jax.rollout`` >= 60 % of it at B >= 4096);
* the GFLOP/s of a large square float32 matmul.

and ``lss_jax.rollout`` with each PRNG implementation (``jax.random.key(seed, impl=...)``: threefry2x32,
the default, rbg and unsafe_rbg); the addressed keys ``fold_in(fold_in(key, b), t)`` are the same scheme
for all three.

    python benchmarks/perf/rollout.py           # B = 1, 64, 1024, 4096, 16384; writes benchmarks/results/rollout-<backend>.json
    python benchmarks/perf/rollout.py --quick   # B = 1, 1024 with --work 4e5, one repeat (< 1 min on 2 CPU cores)
    python benchmarks/perf/rollout.py --batch 1 64 --out /tmp/r.json
"""

from __future__ import annotations

import functools
import itertools
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lss_jax import MDN, apply_boundary, mdn_apply_fn, rollout
from lss_jax.benchmarking import benchmark_parser, machine_facts, write_results

RESULTS = Path(__file__).resolve().parents[1] / "results"

LATENT, COMPONENTS, HIDDEN = 3, 24, (100, 100)
IMPLS = ("threefry2x32", "rbg", "unsafe_rbg")


def mlp_flops_per_step(batch: int) -> int:
    sizes = (LATENT, *HIDDEN, COMPONENTS * (1 + 2 * LATENT))
    return 2 * batch * sum(a * b for a, b in itertools.pairwise(sizes))


def _time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def matmul_peak(n: int = 2048, repeats: int = 5) -> dict:
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    f = jax.jit(jnp.matmul)
    jax.block_until_ready(f(a, b))
    seconds = _time(lambda: f(a, b), repeats)
    return {"n": n, "seconds": seconds, "gflops": 2 * n**3 / seconds / 1e9}


@functools.partial(jax.jit, static_argnums=(0, 3))
def _no_sampling_scan(fn, params, x0, n_steps):
    """The rollout's scan without random numbers: the most likely component's mean is the next state."""

    def step(x, _):
        mix = fn(params, x)
        best = jnp.argmax(mix.logits, axis=-1)[..., None, None]
        return apply_boundary(jnp.take_along_axis(mix.means, best, axis=-2)[..., 0, :]), None

    x, _ = jax.lax.scan(step, x0, None, length=n_steps)
    return x


def _timed(run, batch, n_steps, repeats) -> dict:
    first = _time(run, 1)  # trace + compile + one execution
    seconds = _time(run, repeats)
    return {"compile_seconds": max(first - seconds, 0.0), "run_seconds": seconds,
            "latent_steps_per_second": batch * n_steps / seconds}


def bench_rollout(batch: int, n_steps: int, repeats: int, impls=IMPLS) -> dict:
    graphdef, params = nnx.split(MDN(LATENT, COMPONENTS, HIDDEN, rngs=nnx.Rngs(0)))
    fn = mdn_apply_fn(graphdef)
    x0 = jax.random.uniform(jax.random.key(1), (batch, LATENT))
    row = {"batch": batch, "n_steps": n_steps}
    for impl in impls:
        key = jax.random.key(2, impl=impl)
        timing = _timed(lambda: rollout(key, fn, params, x0, n_steps=n_steps), batch, n_steps, repeats)  # noqa: B023
        row[impl] = timing
    row.update(row[impls[0]])  # the default implementation is the headline
    row["batch_steps_per_second"] = n_steps / row["run_seconds"]
    row["gflops"] = mlp_flops_per_step(batch) * n_steps / row["run_seconds"] / 1e9
    row["no_sampling"] = _timed(lambda: _no_sampling_scan(fn, params, x0, n_steps), batch, n_steps, repeats)
    row["fraction_of_no_sampling"] = row["latent_steps_per_second"] / row["no_sampling"]["latent_steps_per_second"]
    return row


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, quick="B = 1 and 1024, --work 4e5, one repeat",
                              out="JSON path (default benchmarks/results/rollout-<backend>.json)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64, 1024, 4096, 16384])
    parser.add_argument("--work", type=float, default=4e6, help="trajectory-steps per timed run (default 4e6)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.work, args.repeats = [1, 1024], 4e5, 1
    peak = matmul_peak()
    print(f"matmul peak ({peak['n']}^2 float32): {peak['gflops']:.1f} GFLOP/s", file=sys.stderr)
    rows = []
    for batch in args.batch:
        n_steps = int(max(200, min(20_000, args.work // batch)))
        row = bench_rollout(batch, n_steps, args.repeats)
        row["fraction_of_matmul_peak"] = row["gflops"] / peak["gflops"]
        rows.append(row)
        print(
            f"B={batch:>6}  steps={n_steps:>6}  compile {row['compile_seconds']:.2f} s  run {row['run_seconds']:.3f} s  "
            f"{row['latent_steps_per_second']:.3g} latent steps/s  {row['gflops']:.2f} GFLOP/s "
            f"({row['fraction_of_matmul_peak']:.1%} of peak, {row['fraction_of_no_sampling']:.1%} of the no-sampling "
            f"scan; rbg {row['rbg']['latent_steps_per_second']:.3g}, unsafe_rbg "
            f"{row['unsafe_rbg']['latent_steps_per_second']:.3g})",
            file=sys.stderr,
        )
    big = [r for r in rows if r["batch"] >= 4096]
    result = {
        "benchmark": "rollout",
        "sampler": "inverse CDF of the mixture weights from one normal (via its CDF) + m normals, per trajectory-step",
        "issue_target": {"criterion": "rollout >= 60 % of the no-sampling scan at B >= 4096",
                         "fractions": [r["fraction_of_no_sampling"] for r in big],
                         "met": bool(big) and all(r["fraction_of_no_sampling"] >= 0.6 for r in big)},
        "propagator": {"latent_dim": LATENT, "n_components": COMPONENTS, "hidden": list(HIDDEN)},
        "matmul_peak": peak,
        "settings": {"work": args.work, "repeats": args.repeats, "quick": args.quick},
        "results": rows,
        "machine": machine_facts(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_results(args.out or RESULTS / f"rollout-{jax.default_backend()}.json", result)
    print(json.dumps({r["batch"]: round(r["latent_steps_per_second"]) for r in rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
