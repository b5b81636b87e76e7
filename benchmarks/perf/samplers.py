"""Mixture sampling inside the rollout: the sampler of lss_jax (inverse CDF) against the alternatives, same run.

Every variant runs the rollout's ``lax.scan`` (Trp-cage propagator size: latent 3, C = 24, 2 x 100 ReLU; 300
steps; per-trajectory keys ``fold_in(fold_in(key, b), t)``) and differs only in how one step's sample is drawn:

* ``gumbel``: ``jax.random.categorical`` (C Gumbel variates from one split key) + ``m`` normals from another:
  lss_jax before the inverse-CDF sampler;
* ``inverse_cdf``: ``1 + m`` normals from the step key, the first mapped through the normal CDF to a uniform that
  picks the component by inverse CDF of the weights (``lss_jax.propagator.mixture_sample``);
* ``inverse_cdf_onehot``: the same choice applied as a one-hot matmul instead of a gather;
* ``inverse_cdf`` with the ``rbg`` and ``unsafe_rbg`` PRNG implementations;
* ``no_sampling``: the most likely component's mean, no random numbers (the ceiling).

    python benchmarks/perf/samplers.py          # B = 1 and 4096 -> benchmarks/results/samplers-<backend>.json
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.scipy.special import ndtr

from lss_jax import MDN, apply_boundary, mdn_apply_fn
from lss_jax.benchmarking import benchmark_parser, machine_facts, write_results

RESULTS = Path(__file__).resolve().parents[1] / "results"
LATENT, COMPONENTS, HIDDEN, STEPS = 3, 24, (100, 100), 300


def gumbel(key, logits, means, scales):
    k_component, k_noise = jax.random.split(key)
    c = jax.random.categorical(k_component, logits)
    return means[c] + scales[c] * jax.random.normal(k_noise, (means.shape[-1],))


def inverse_cdf(key, logits, means, scales):
    z = jax.random.normal(key, (1 + means.shape[-1],))
    c = jnp.minimum(jnp.sum(jnp.cumsum(jax.nn.softmax(logits)) < ndtr(z[0])), logits.shape[0] - 1)
    return means[c] + scales[c] * z[1:]


def inverse_cdf_onehot(key, logits, means, scales):
    z = jax.random.normal(key, (1 + means.shape[-1],))
    c = jnp.minimum(jnp.sum(jnp.cumsum(jax.nn.softmax(logits)) < ndtr(z[0])), logits.shape[0] - 1)
    onehot = (jnp.arange(logits.shape[0]) == c).astype(means.dtype)
    return onehot @ means + (onehot @ scales) * z[1:]


def no_sampling(key, logits, means, scales):
    return means[jnp.argmax(logits)]


def make_rollout(fn, sampler):
    @jax.jit
    def run(key, params, x0):
        traj_keys = jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(x0.shape[0]))

        def step(x, t):
            keys = jax.vmap(jax.random.fold_in, (0, None))(traj_keys, t)
            return apply_boundary(jax.vmap(sampler)(keys, *fn(params, x))), None

        return jax.lax.scan(step, x0, jnp.arange(STEPS))[0]

    return run


def time_variant(fn, params, sampler, batch, impl, repeats) -> float:
    run, key = make_rollout(fn, sampler), jax.random.key(0, impl=impl)
    x0 = jax.random.uniform(jax.random.key(1), (batch, LATENT))
    run(key, params, x0).block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(key, params, x0).block_until_ready()
        times.append(time.perf_counter() - start)
    return batch * STEPS / float(np.median(times))


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, out="JSON path (default benchmarks/results/samplers-<backend>.json)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4096])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    graphdef, params = nnx.split(MDN(LATENT, COMPONENTS, HIDDEN, rngs=nnx.Rngs(0)))
    fn = mdn_apply_fn(graphdef)
    variants = [("no_sampling", no_sampling, "threefry2x32"), ("gumbel", gumbel, "threefry2x32"),
                ("inverse_cdf", inverse_cdf, "threefry2x32"), ("inverse_cdf_onehot", inverse_cdf_onehot, "threefry2x32"),
                ("inverse_cdf_rbg", inverse_cdf, "rbg"), ("inverse_cdf_unsafe_rbg", inverse_cdf, "unsafe_rbg")]
    rows = []
    for batch in args.batch:
        row = {"batch": batch}
        for name, sampler, impl in variants:
            row[name] = time_variant(fn, params, sampler, batch, impl, args.repeats)
            row[f"{name}_fraction_of_no_sampling"] = row[name] / row["no_sampling"]
            print(f"B={batch:>5} {name:24s} {row[name]:.3g} steps/s ({row[name] / row['no_sampling']:.1%} of no sampling)",
                  file=sys.stderr, flush=True)
        rows.append(row)
    result = {"benchmark": "samplers", "propagator": {"latent_dim": LATENT, "n_components": COMPONENTS,
                                                      "hidden": list(HIDDEN)}, "steps": STEPS,
              "repeats": args.repeats, "results": rows,
              "machine": machine_facts(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_results(args.out or RESULTS / f"samplers-{jax.default_backend()}.json", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
