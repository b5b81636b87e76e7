"""Regenerate the shipped Trp-cage Gō-model trajectories (``lss_jax/systems/data/trpcage-go-seed{1,2}.xtc``).

Both come from :func:`lss_jax.systems.trp_cage.simulate_trp_cage` with the shipped settings (reduced
temperature ``SHIPPED_TEMPERATURE``, one frame every ``SHIPPED_FRAME_PS``, ``SHIPPED_N_FRAMES`` frames after
``SHIPPED_EQUILIBRATION_PS`` of equilibration, OpenMM ``Reference`` platform) and the seeds in ``SHIPPED``;
the Reference platform is deterministic, so the files are reproduced byte for byte on the same
OpenMM/compiler/libm build (checked with ``--check``). Prints, per trajectory: length, folded fraction,
folding/unfolding transitions (Q cutoffs ``Q_UNFOLDED``/``Q_FOLDED``), file size, wall time.

    python benchmarks/data/make_trp_cage_data.py           # overwrite the shipped files (~4 min on one core)
    python benchmarks/data/make_trp_cage_data.py --check   # simulate into a temporary folder, compare SHA-256
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path

from lss_jax.benchmarking import benchmark_parser
from lss_jax.systems import trp_cage as tc


def sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def make(out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, (file, seed) in tc.SHIPPED.items():
        path = out_dir / file
        path.unlink(missing_ok=True)  # simulate_trp_cage would load an existing file instead of simulating
        start = time.perf_counter()
        traj = tc.simulate_trp_cage(tc.SHIPPED_N_FRAMES, seed=seed, temperature=tc.SHIPPED_TEMPERATURE,
                                    frame_interval_ps=tc.SHIPPED_FRAME_PS,
                                    equilibration_ps=tc.SHIPPED_EQUILIBRATION_PS, platform=tc.SHIPPED_PLATFORM,
                                    out=path, progress=False)
        wall = time.perf_counter() - start
        steps = (tc.SHIPPED_EQUILIBRATION_PS + tc.SHIPPED_N_FRAMES * tc.SHIPPED_FRAME_PS) * 1000 / tc.STEP_FS
        q = tc.fraction_native_contacts(traj)
        transitions = tc.folding_transitions(q)
        print(f"{name}: seed {seed}, {traj.n_frames} frames x {tc.SHIPPED_FRAME_PS:g} ps = "
              f"{traj.n_frames * tc.SHIPPED_FRAME_PS / 1000:g} ns, T* = {tc.SHIPPED_TEMPERATURE:g} "
              f"({tc.temperature_kelvin(tc.SHIPPED_TEMPERATURE):.1f} K); <Q> = {q.mean():.3f}, "
              f"folded fraction {tc.folded_fraction(q):.3f}, {transitions.n_folding} folding / "
              f"{transitions.n_unfolding} unfolding transitions; {path.stat().st_size} bytes; "
              f"{wall:.0f} s wall ({steps / wall:.0f} steps/s)", flush=True)
        paths[name] = path
    return paths


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--check", action="store_true", help="simulate into a temporary folder and compare checksums")
    args = parser.parse_args()
    shipped = tc.trp_cage_files()
    if not args.check:
        make(shipped["train"].parent)
        return
    with tempfile.TemporaryDirectory() as tmp:
        paths = make(Path(tmp))
        same = {name: sha256(path) == sha256(shipped[name]) for name, path in paths.items()}
    print("identical to the shipped files:", same)
    if not all(same.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
