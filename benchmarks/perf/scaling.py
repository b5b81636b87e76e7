"""Data of the paper's size: training time and peak memory for 10^4, 10^5 and 10^6 frames, and decoding cost
for 20 Cα beads against the 154 heavy atoms of all-atom Trp-cage.

1. **Training** (``lss-jax train`` as a child process with the Trp-cage Cα protocol of
   :func:`lss_jax.systems.trp_cage.lss_config` as its ``--config``: cross-fitting, and the retrieval decoder, which
   trains nothing (measured so, before the protocol's decoder became the chain decoder; ``--decoder flow`` trains the
   flow decoder instead)): on 10^4, 10^5 and 10^6
   frames. The shipped Gō-model trajectories (2 x 28 000 frames, 5 ps) are concatenated and tiled to the
   length (time and memory depend on the number of frames, not on their novelty; the tiled copies are
   separate trajectory files of at most 56 000 frames). Wall time, peak resident memory of the child
   (``ru_maxrss``) and the estimate :func:`lss_jax.data.stream.estimate_training_bytes` that ``train`` checks
   against the available memory before reading any coordinate.
2. **Decoding**: frames/s of the flow decoder (default settings, briefly trained, without the support
   constraint's redraws: a briefly trained decoder leaves the support often, and the cost of one draw does not
   depend on training) for the 20 Cα atoms and for the 154 heavy atoms of 1L2Y from a short all-atom OpenMM run, and
   of the retrieval decoder for the 20 Cα atoms
   (Amber14, GBn2 implicit solvent, 300 K, 2 fs, 500 frames 0.2 ps apart; its kinetics do not matter).

    python benchmarks/perf/scaling.py            # -> benchmarks/results/scaling-<backend>.json (~25 min on 2 cores)
    python benchmarks/perf/scaling.py --quick    # 10^3, 10^4 frames; 100 all-atom frames
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from lss_jax.benchmarking import benchmark_parser, machine_facts, write_results

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _tiled_files(n_frames: int, where: Path) -> list[Path]:
    import mdtraj as md

    from lss_jax.systems import trp_cage

    base = md.join([trp_cage.load_trp_cage("train"), trp_cage.load_trp_cage("independent")])
    files, left, k = [], n_frames, 0
    while left > 0:
        part = base[: min(left, base.n_frames)]
        path = where / f"trp-{k:03d}.xtc"
        part.save_xtc(str(path))
        files.append(path)
        left -= part.n_frames
        k += 1
    return files


def bench_train(n_frames: int, where: Path, decoder: str = "knn") -> dict:
    from lss_jax.data.stream import estimate_training_bytes
    from lss_jax.systems import trp_cage

    files = _tiled_files(n_frames, where)
    config = where / "trp.toml"
    protocol = trp_cage.lss_config(decoder={"kind": decoder})
    config.write_text(protocol.to_toml())
    cmd = [sys.executable, "-m", "lss_jax", "train", "--traj", *map(str, files), "--top",
           str(trp_cage.trp_cage_files()["ca_pdb"]), "--lag", str(trp_cage.DEFAULT_LAG), "--config", str(config),
           "--out", str(where / "model"), "--no-progress"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    stderr = proc.stderr.read().decode()
    proc.stdout.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"train on {n_frames} frames failed:\n{stderr[-3000:]}")
    import json

    info = json.loads((where / "model" / "lss.json").read_text())["info"]
    return {"n_frames": n_frames, "n_files": len(files), "wall_seconds": seconds, "peak_rss_gb": usage.ru_maxrss / 2**20,
            "estimate_gb": estimate_training_bytes(n_frames, info["n_features"], 20) / 2**30,
            "phase_seconds": info["wall_seconds"], "decoder": info["decoder"]["kind"],
            "decoder_epochs": info["decoder"]["epochs"], "encoder_fraction": protocol.data.encoder_fraction,
            "encoder_epochs": info["encoder"]["epochs"], "propagator_epochs": info["propagator"]["epochs"],
            "srv_timescales_ps": info["srv_timescales_ps"]}


def all_atom_trp_cage(n_frames: int):
    """A short all-atom implicit-solvent run of 1L2Y (Amber14 + GBn2): only its size matters here."""
    from lss_jax.systems import trp_cage

    return trp_cage.simulate_all_atom(n_frames, steps_per_frame=100, minimize_iterations=500)


def decode_rate(model, n_frames: int) -> float:
    u = np.random.default_rng(0).uniform(size=(n_frames, model.latent_dim)).astype(np.float32)
    model.decode_unit(jax.random.key(0), u, progress=False)  # compile
    start = time.perf_counter()
    model.decode_unit(jax.random.key(0), u, progress=False)
    return n_frames / (time.perf_counter() - start)


def bench_decoding(quick: bool) -> dict:
    from lss_jax import LSS
    from lss_jax.systems import trp_cage

    short = dict(encoder={"epochs": 2}, propagator={"epochs": 2})
    decoder = {"iterations": 200, "redraws": 0}
    ca_train = trp_cage.load_trp_cage("train", stride=5)
    ca = LSS(config=trp_cage.lss_config(decoder={**decoder, "kind": "flow"}, **short)).fit(ca_train, progress=False)
    ca_knn = LSS(config=trp_cage.lss_config(decoder={**decoder, "kind": "knn"}, **short)).fit(ca_train, progress=False)
    start = time.perf_counter()
    full = all_atom_trp_cage(100 if quick else 500)
    md_seconds = time.perf_counter() - start
    heavy = LSS(lag=2, encoder={"latent_dim": 2, "epochs": 2}, propagator={"epochs": 2}, decoder=decoder,
                data={"torsions": ("phi", "psi"), "distances": "ca"}).fit(full, progress=False)
    n = 8192 if quick else 65_536
    return {"ca": {"atoms": len(ca.atom_indices), "frames_per_second": decode_rate(ca, n)},
            "ca_knn": {"atoms": len(ca_knn.atom_indices), "frames_per_second": decode_rate(ca_knn, n)},
            "heavy": {"atoms": len(heavy.atom_indices), "frames_per_second": decode_rate(heavy, n),
                      "all_atom_md": {"frames": full.n_frames, "atoms": full.n_atoms, "seconds": md_seconds}},
            "frames_timed": n}


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, quick="10^3 and 10^4 frames, 100 all-atom frames, fewer decoded frames",
                              out="JSON path (default benchmarks/results/scaling-<backend>.json)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--decoder", choices=("flow", "knn"), default="knn",
                        help="train with this decoder (default: retrieval, which trains nothing: the encoder's and "
                             "the propagator's cost)")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([1000, 10_000] if args.quick else [10_000, 100_000, 1_000_000])
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(bench_train(n, Path(tmp), args.decoder))
        r = rows[-1]
        print(f"train {n:>9,} frames: {r['wall_seconds']:7.1f} s, peak {r['peak_rss_gb']:.2f} GB (estimate "
              f"{r['estimate_gb']:.2f} GB), decoder {r['decoder']} ({r['decoder_epochs']} epochs)", flush=True)
    decoding = bench_decoding(args.quick)
    print(f"decode (flow): {decoding['ca']['frames_per_second']:,.0f} frames/s for {decoding['ca']['atoms']} Cα, "
          f"{decoding['heavy']['frames_per_second']:,.0f} frames/s for {decoding['heavy']['atoms']} heavy atoms; "
          f"knn {decoding['ca_knn']['frames_per_second']:,.0f} frames/s for the Cα", flush=True)
    write_results(args.out or RESULTS / f"scaling-{jax.default_backend()}.json",
                  {"benchmark": "scaling", "train": rows, "decoding": decoding, "quick": args.quick,
                   "machine": machine_facts(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
