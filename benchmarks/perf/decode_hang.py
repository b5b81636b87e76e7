"""Why decoding on several XLA:CPU host devices hung, in a few lines of JAX, and that lss_jax's decoder no longer does.

jaxlib 0.10.2 runs a batched LAPACK call (SVD, eigh, QR, Cholesky, LU) of at least 2 x 10^5 flop (about 740 3 x 3
SVDs) by queueing its parts on XLA:CPU's intra-op thread pool and waiting for them *on a thread of that pool*. When
two programs on two host devices reach such a call at once on a machine whose pool has two threads, both threads
wait for parts that only they could run: a deadlock (gdb: both ``tf_XLAEigen`` threads in
``lapack_sgesdd_ffi -> jax::ParallelBatchMap -> absl::BlockingCounter::Wait``). A while loop before the call
(here a ``lax.scan``) is what moves execution onto a pool thread. It is fixed upstream by jax-ml/jax commit
859992407d ("Don't try to parallelize LAPACK kernels in opensource builds", issue #36927).

lss_jax's decoder used to call an SVD per frame (the Kabsch superposition that ends the internal-coordinate map), then
made that call in groups of 512 frames (below the threshold); it now makes no LAPACK call at all
(``lss_jax.decoder.coordinates.kabsch_superpose`` finds Horn's quaternion by repeated squaring of a 4 x 4 matrix,
elementwise over the batch, 2.1x faster than the grouped SVD on one core). Each case below runs in a subprocess
with a time limit, so a hang is recorded, not suffered:

* ``svd_two_devices``: scan + SVD of B = 65 536 matrices on 2 host devices at once (expected: hangs on jaxlib 0.10.2);
* ``svd_one_device_twice``: the same program twice on one device (runs);
* ``svd_in_groups_two_devices``: the SVD in groups of 512 on 2 devices (runs; the decoder's former workaround);
* ``decoder_nerf_two_devices``: ``lss_jax.decoder.features_to_xyz`` (NeRF + Kabsch, no LAPACK) after a scan,
  on 2 devices (runs).

    python benchmarks/perf/decode_hang.py      # -> benchmarks/results/decode_hang-<backend>.json
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax

from lss_jax.benchmarking import benchmark_parser, machine_facts, write_results

RESULTS = Path(__file__).resolve().parents[1] / "results"

PROGRAM = textwrap.dedent('''
    import os, sys, time
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    import numpy as np, jax, jax.numpy as jnp
    case, B = sys.argv[1], 65536
    x = np.random.default_rng(0).normal(size=(B, 3, 3)).astype(np.float32)

    def scan(x):
        return jax.lax.scan(lambda c, _: (jnp.sin(c) + 0.5 * c, None), x, None, length=10)[0]

    if case.startswith("decoder"):
        from lss_jax.decoder.coordinates import InternalMap, features_to_xyz
        n = 10
        z = np.array([[i, i - 1, i - 2, i - 3] for i in range(n)]).clip(-1)
        z = np.where(np.arange(4)[None] > np.arange(n)[:, None], -1, z)
        ref = np.random.default_rng(1).normal(size=(n, 3)).astype(np.float32)
        d = 3 * n - 6 + (n - 3)
        cmap = InternalMap(zmatrix=z, mean=np.r_[np.full(n - 1, 0.15), np.full(n - 2, 1.9), np.zeros(2 * (n - 3))].astype(np.float32),
                           std=np.full(d, 0.05, np.float32), torsion_mean=np.zeros(n - 3, np.float32), reference=ref)
        x = np.random.default_rng(2).normal(size=(4096, d)).astype(np.float32)
        f = jax.jit(lambda x: features_to_xyz(cmap, scan(x)))
    elif case.startswith("svd_in_groups"):
        f = jax.jit(lambda x: jax.lax.map(lambda c: jnp.linalg.svd(c)[0], scan(x), batch_size=512))
    else:
        f = jax.jit(lambda x: jnp.linalg.svd(scan(x))[0])
    devices = jax.devices() if "two_devices" in case else jax.devices()[:1] * 2
    xs = [jax.device_put(x, d) for d in devices]
    for i in range(10):
        start = time.perf_counter()
        jax.block_until_ready([f(a) for a in xs])  # dispatch on both, then wait
        print(f"round {i}: {time.perf_counter() - start:.3f} s", flush=True)
    print("completed")
''')

CASES = ("svd_two_devices", "svd_one_device_twice", "svd_in_groups_two_devices", "decoder_nerf_two_devices")


def run_case(case: str, timeout: float) -> dict:
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-c", PROGRAM, case], capture_output=True, text=True, timeout=timeout)
        out, status = done.stdout, "completed" if "completed" in done.stdout else f"failed (exit {done.returncode})"
        if done.returncode and done.stderr:
            out += done.stderr[-2000:]
    except subprocess.TimeoutExpired as e:
        out, status = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""), "hung"
    rounds = [float(line.split(": ")[1].split()[0]) for line in out.splitlines() if line.startswith("round ")]
    return {"status": status, "rounds_completed": len(rounds), "round_seconds": rounds,
            "wall_seconds": time.perf_counter() - start, "time_limit_seconds": timeout}


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, out="JSON path (default benchmarks/results/decode_hang-<backend>.json)")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds before a case counts as hung")
    args = parser.parse_args(argv)
    results = {"benchmark": "decode_hang", "machine": machine_facts(packages=["jaxlib"]), "cases": {}}
    for case in CASES:
        results["cases"][case] = run_case(case, args.timeout)
        r = results["cases"][case]
        print(f"{case:28s} {r['status']:10s} {r['rounds_completed']} rounds in {r['wall_seconds']:.1f} s", flush=True)
    write_results(args.out or RESULTS / f"decode_hang-{jax.default_backend()}.json", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
