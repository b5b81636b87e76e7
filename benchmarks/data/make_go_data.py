"""Regenerate the shipped Gō-model trajectories of a folding benchmark (``lss_jax/systems/data``).

``trp-cage`` (:data:`lss_jax.systems.trp_cage.SYSTEM`, ``trpcage-go-seed{1,2}.xtc``) and ``villin``
(:data:`lss_jax.systems.villin.SYSTEM`, ``villin-go-seed{1,2}.xtc``). Each trajectory comes from the system's
``simulate`` with its shipped settings (reduced temperature, frame interval, frames after the equilibration, OpenMM
``Reference`` platform) and the seeds in its ``shipped`` table; the Reference platform is deterministic, so the
files are reproduced byte for byte on the same OpenMM/compiler/libm build (checked with ``--check``). Prints, per
trajectory: length, folded fraction, folding/unfolding transitions (Q cutoffs 0.3/0.7), file size, wall time.

    python benchmarks/data/make_go_data.py trp-cage           # overwrite the shipped files (~4 min on one core)
    python benchmarks/data/make_go_data.py villin             # (~9 min on one core)
    python benchmarks/data/make_go_data.py villin --check     # simulate into a temporary folder, compare SHA-256
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path

from lss_jax.benchmarking import benchmark_parser
from lss_jax.systems import trp_cage, villin
from lss_jax.systems.go import STEP_FS, folded_fraction, folding_transitions, temperature_kelvin

SYSTEMS = {"trp-cage": trp_cage.SYSTEM, "villin": villin.SYSTEM}


def sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def make(system, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, (file, seed) in system.shipped.items():
        path = out_dir / file
        path.unlink(missing_ok=True)  # simulate would load an existing file instead of simulating
        start = time.perf_counter()
        traj = system.simulate(system.n_frames, seed=seed, out=path, progress=False)
        wall = time.perf_counter() - start
        steps = (system.equilibration_ps + system.n_frames * system.frame_ps) * 1000 / STEP_FS
        q = system.fraction_native_contacts(traj)
        transitions = folding_transitions(q)
        print(f"{system.name} {name}: seed {seed}, {traj.n_frames} frames x {system.frame_ps:g} ps = "
              f"{traj.n_frames * system.frame_ps / 1000:g} ns, T* = {system.temperature:g} "
              f"({temperature_kelvin(system.temperature):.1f} K); <Q> = {q.mean():.3f}, "
              f"folded fraction {folded_fraction(q):.3f}, {transitions.n_folding} folding / "
              f"{transitions.n_unfolding} unfolding transitions; {path.stat().st_size} bytes; "
              f"{wall:.0f} s wall ({steps / wall:.0f} steps/s)", flush=True)
        paths[name] = path
    return paths


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("system", choices=sorted(SYSTEMS), help="which folding benchmark")
    parser.add_argument("--check", action="store_true", help="simulate into a temporary folder and compare checksums")
    args = parser.parse_args()
    system = SYSTEMS[args.system]
    shipped = system.files()
    if not args.check:
        make(system, shipped["train"].parent)
        return
    with tempfile.TemporaryDirectory() as tmp:
        paths = make(system, Path(tmp))
        same = {name: sha256(path) == sha256(shipped[name]) for name, path in paths.items()}
    print("identical to the shipped files:", same)
    if not all(same.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
