"""Alanine dipeptide: the shipped trajectories (training and independent) and their re-simulation with OpenMM.

Alanine dipeptide (ACE-ALA-NME), Amber ff96 topology from openmmtools (built with tleap, 22 atoms),
OBC2 implicit solvent, 300 K. Protocol (the same for the shipped data and :func:`simulate_alanine_dipeptide`):

* ``createSystem(implicitSolvent=OBC2, nonbondedMethod=NoCutoff, constraints=HBonds, hydrogenMass=4 amu)``
* ``LangevinMiddleIntegrator(300 K, 1/ps, 4 fs)``, integrator seed = ``seed``
* energy minimization, velocities at 300 K (seed ``seed``), 100 ps equilibration (discarded)
* production: one frame every ``frame_interval_ps`` (250 steps = 1 ps by default)

Nothing is downloaded: the shipped trajectory lives in the package, and re-simulation needs only
the ``md`` extra (OpenMM) and writes to a local cache.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from lss_jax.systems import cache_dir

__all__ = [
    "alanine_dipeptide_files",
    "load_alanine_dipeptide",
    "simulate_alanine_dipeptide",
]

_DATA = "lss_jax.systems"
SHIPPED = {
    # name: (file, integrator/velocity seed)
    "train": ("ala2-seed1-50ns-2ps.xtc", 1),
    "independent": ("ala2-seed2-50ns-2ps.xtc", 2),
}
SHIPPED_FRAME_PS = 2.0


def _data_path(name: str) -> Path:
    return Path(str(resources.files(_DATA).joinpath("data", name)))


def alanine_dipeptide_files() -> dict[str, Path]:
    """Paths of the shipped files: ``prmtop``, ``pdb`` (topology), and the trajectories ``train`` and ``independent``.

    Example:
        >>> files = alanine_dipeptide_files()
        >>> sorted(files), files["pdb"].name
        (['independent', 'pdb', 'prmtop', 'train'], 'alanine-dipeptide.pdb')
        >>> all(path.is_file() for path in files.values())
        True
    """
    files = {"prmtop": _data_path("alanine-dipeptide.prmtop"), "pdb": _data_path("alanine-dipeptide.pdb")}
    files.update({name: _data_path(f) for name, (f, _) in SHIPPED.items()})
    return files


def load_alanine_dipeptide(which: str = "train", *, stride: int = 1):
    """A shipped trajectory as an ``mdtraj.Trajectory`` (all 22 atoms, nm, ``timestep`` in ps).

    Args:
        which: ``"train"``: 50 ns with integrator seed 1 (the first half of the development run);
            ``"independent"``: 50 ns with seed 2, simulated separately with the same protocol, for
            validation. Both one frame every 2 ps (25 000 frames).
        stride: keep every n-th frame.

    Example:
        >>> traj = load_alanine_dipeptide("train", stride=500)
        >>> traj.n_frames, traj.n_atoms, float(traj.timestep)   # 2 ps x 500
        (50, 22, 1000.0)
    """
    import mdtraj as md

    if which not in SHIPPED:
        raise ValueError(f"unknown shipped trajectory {which!r}; choose one of {sorted(SHIPPED)}.")
    files = alanine_dipeptide_files()
    return md.load(str(files[which]), top=str(files["pdb"]), stride=stride)


def simulate_alanine_dipeptide(
    n_frames: int,
    *,
    seed: int = 1,
    frame_interval_ps: float = 1.0,
    equilibration_ps: float = 100.0,
    platform: str = "Reference",
    out: str | Path | None = None,
    progress: bool = True,
):
    """Simulate alanine dipeptide with the shipped protocol (needs the ``md`` extra: OpenMM).

    The result is cached: a second call with the same arguments loads the file instead of simulating.
    The ``Reference`` platform is about 3x faster than ``CPU`` for this 22-atom system (~4.7 us/day
    on one core).

    Args:
        n_frames: production frames to write.
        seed: integrator and velocity seed; a different seed gives an independent trajectory.
        frame_interval_ps: time between frames (a multiple of the 4 fs step).
        equilibration_ps: discarded equilibration.
        platform: OpenMM platform name.
        out: output ``.xtc``/``.dcd``/``.h5`` path (default: in :func:`cache_dir`).
        progress: show a progress bar.

    Returns:
        ``mdtraj.Trajectory`` of the production frames.

    Example:
        Two frames 4 fs apart after 4 fs of equilibration (a real run wants far more of both; skipped in
        the doctests because OpenMM is an optional extra, exercised by ``tests/test_datasets_md.py``):

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:  # doctest: +SKIP
        ...     traj = simulate_alanine_dipeptide(2, frame_interval_ps=0.004, equilibration_ps=0.004,
        ...                                       out=Path(tmp) / "ala2.xtc", progress=False)
        >>> traj.n_frames, traj.n_atoms  # doctest: +SKIP
        (2, 22)
    """
    import mdtraj as md

    from lss_jax.engine.io import atomic_path
    from lss_jax.systems.md import MDSystem, run_md

    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}.")
    files = alanine_dipeptide_files()
    if out is None:
        out = cache_dir() / f"ala2-seed{seed}-{n_frames}x{frame_interval_ps:g}ps.xtc"
    out = Path(out)
    if out.exists():
        return md.load(str(out), top=str(files["pdb"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    system = MDSystem(pdb=files["pdb"], prmtop=files["prmtop"], platform=platform)
    traj = run_md(system, n_frames, frame_interval_ps=frame_interval_ps, seed=seed, minimize=True,
                  equilibration_ps=equilibration_ps, progress=progress, desc=f"OpenMM ala2 seed {seed}")
    with atomic_path(out) as tmp:
        traj.save(str(tmp))
    return traj
