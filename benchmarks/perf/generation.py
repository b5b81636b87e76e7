"""Streamed generation: decoding throughput and peak memory for 10^5 vs 10^6 steps per trajectory.

1. Decoding throughput: ``LSS.decode_unit`` on a fixed set of latent points, after a warm-up of the
   same size (compilation excluded), frames/s, for the model's decoder (the default: flow matching on
   internal coordinates) and for every other decoder kind and coordinate map on the same latent points
   (the paper's cWGAN-GP on Cartesian coordinates among them; throughput does not depend on training).
2. Peak memory: ``lss-jax generate --out DIR`` (chunked: rollout -> decode -> write, one chunk at a
   time) run as a child process for ``--n-traj`` trajectories x 10^5 and x 10^6 steps with the same
   ``--chunk-steps``; peak resident memory of the child (``ru_maxrss``), wall time and frames/s. The
   target: the 10^6-step run needs no more than 10% more memory than the 10^5-step run (memory is set
   by the chunk, not by the trajectory length).

The model is the quickly trained alanine dipeptide LSS of ``md_vs_lss.py``
(:func:`lss_jax.benchmarking.throughput_model`; throughput and memory do not depend on how well it is trained).

    python benchmarks/perf/generation.py                 # ~4 min on 2 CPU cores -> results/generation-<backend>.json
    python benchmarks/perf/generation.py --quick         # 10^4 vs 10^5 steps
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from lss_jax.benchmarking import benchmark_parser, machine_facts, throughput_model, write_results

RESULTS = Path(__file__).resolve().parents[1] / "results"


def decode_throughput(model, n_frames: int, repeats: int = 3) -> dict:
    u = np.random.default_rng(0).uniform(size=(n_frames, model.latent_dim)).astype(np.float32)
    key = jax.random.key(0)
    start = time.perf_counter()
    model.decode_unit(key, u, progress=False)
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.decode_unit(key, u, progress=False)
        times.append(time.perf_counter() - start)
    seconds = float(np.median(times))
    return {"frames": n_frames, "seconds": seconds, "frames_per_second": n_frames / seconds,
            "first_call_seconds_incl_compile": first, "n_atoms": len(model.atom_indices)}


def decoder_throughputs(model, n_frames: int) -> dict:
    """frames/s of every decoder kind x coordinate map, each briefly trained on the model's own latents."""
    from lss_jax.datasets import load_alanine_dipeptide
    from lss_jax.decoder import DecoderConfig, fit_decoder

    traj = load_alanine_dipeptide("train", stride=5)
    heavy = traj.atom_slice(model.atom_indices)
    u = model.to_unit(model.encode(traj))
    base, out = model.fetch_model(), {}
    for kind in ("flow", "wgan"):
        for coordinates in ("internal", "cartesian"):
            config = DecoderConfig(kind=kind, coordinates=coordinates, iterations=5)
            decoder, _ = fit_decoder(jax.random.key(0), heavy.xyz, u, topology=heavy.topology,
                                     reference=heavy.xyz[0], config=config, progress=False)
            variant = base.replace(decoder=decoder,
                                   config=base.config.replace(decoder={"kind": kind, "coordinates": coordinates}))
            out[f"{kind}-{coordinates}"] = decode_throughput(variant, n_frames, repeats=2)
            print(f"decode {kind:4s} {coordinates:9s}: {out[f'{kind}-{coordinates}']['frames_per_second']:,.0f} frames/s")
    return out


def run_generate(model_dir: Path, out: Path, n_traj: int, n_steps: int, chunk_steps: int) -> dict:
    """One ``lss-jax generate`` child process; its peak RSS from ``wait4``."""
    cmd = [sys.executable, "-m", "lss_jax", "generate", "--model", str(model_dir), "--n-traj", str(n_traj),
           "--n-steps", str(n_steps), "--chunk-steps", str(chunk_steps), "--out", str(out), "--no-progress"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    stdout, stderr = proc.stdout.read().decode(), proc.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{stderr[-2000:]}")
    frames = n_traj * n_steps
    disk = sum(f.stat().st_size for f in out.iterdir())
    return {"n_traj": n_traj, "n_steps": n_steps, "chunk_steps": chunk_steps, "frames": frames,
            "peak_rss_mb": usage.ru_maxrss / 1024, "wall_seconds": seconds, "frames_per_second": frames / seconds,
            "output_mb": disk / 2**20, "summary": stdout.strip().splitlines()[-4:]}


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, quick="10^4 vs 10^5 steps and a smaller model",
                              out="JSON path (default benchmarks/results/generation-<backend>.json)")
    parser.add_argument("--n-traj", type=int, default=4, help="trajectories per run (default 4)")
    parser.add_argument("--chunk-steps", type=int, default=20_000, help="steps per chunk in both runs")
    parser.add_argument("--decode-frames", type=int, default=262_144)
    args = parser.parse_args(argv)
    backend = jax.default_backend()
    short, long_ = (10_000, 100_000) if args.quick else (100_000, 1_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model, model_info = throughput_model(quick=args.quick, model_dir=tmp / "model")
        decode = decode_throughput(model, 100_000 if args.quick else args.decode_frames)
        print(f"decode: {decode['frames_per_second']:,.0f} frames/s ({decode['n_atoms']} atoms)")
        decoders = decoder_throughputs(model, 32_768 if args.quick else 262_144)
        runs = []
        for n_steps in (short, long_):
            runs.append(run_generate(tmp / "model", tmp / f"gen-{n_steps}", args.n_traj, n_steps,
                                     min(args.chunk_steps, short)))
            r = runs[-1]
            print(f"{args.n_traj} x {n_steps:,} steps: peak RSS {r['peak_rss_mb']:,.0f} MB, {r['wall_seconds']:.1f} s, "
                  f"{r['frames_per_second']:,.0f} frames/s, {r['output_mb']:,.0f} MB written")
    ratio = runs[1]["peak_rss_mb"] / runs[0]["peak_rss_mb"]
    print(f"peak memory ratio {long_:,} / {short:,} steps: {ratio:.3f} (target <= 1.10)")
    write_results(args.out or RESULTS / f"generation-{backend}.json", {
        "benchmark": "generation", "backend": backend, "device": str(jax.devices()[0]), "machine": machine_facts(),
        "cpu_count": os.cpu_count(), "jax": jax.__version__, "quick": args.quick, "model": model_info,
        "decode": decode, "decoders": decoders, "runs": runs, "peak_memory_ratio_long_over_short": ratio,
        "target_ratio": 1.10, "target_met": ratio <= 1.10,
        "self_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
