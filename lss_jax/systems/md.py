"""Short OpenMM runs from given structures (needs the ``md`` extra), for data generation and adaptive sampling.

A system is defined by the user's files: an Amber ``prmtop`` (the system is built with the shipped
alanine dipeptide protocol's options: OBC2 implicit solvent, no cutoff, H-bond constraints, 4 amu
hydrogens, which is what allows the 4 fs step) or a serialized OpenMM ``System`` XML (used as is), plus a
PDB for the topology. Dynamics: ``LangevinMiddleIntegrator`` at ``temperature_K`` with ``friction_per_ps``.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = ["MDSystem", "run_md"]


class MDSystem(NamedTuple):
    """Files and thermostat settings of an OpenMM system.

    Example:
        >>> MDSystem(pdb="ala2.pdb", prmtop="ala2.prmtop").step_fs
        4.0
    """

    pdb: str | Path
    prmtop: str | Path | None = None
    system_xml: str | Path | None = None
    temperature_K: float = 300.0
    friction_per_ps: float = 1.0
    step_fs: float = 4.0
    platform: str = "Reference"


def _openmm():
    try:
        import openmm
        from openmm import app, unit
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("running MD needs OpenMM; install the md extra: pip install 'lss_jax[md]'") from err
    return openmm, app, unit


def _simulation(system: MDSystem, seed: int):
    openmm, app, unit = _openmm()
    pdb = app.PDBFile(str(system.pdb))
    if (system.prmtop is None) == (system.system_xml is None):
        raise ValueError("define the MD system with exactly one of a prmtop file or an OpenMM System XML file.")
    if system.prmtop is not None:
        prmtop = app.AmberPrmtopFile(str(system.prmtop))
        omm_system = prmtop.createSystem(implicitSolvent=app.OBC2, nonbondedMethod=app.NoCutoff, constraints=app.HBonds,
                                         hydrogenMass=4 * unit.amu)
        topology = prmtop.topology
    else:
        omm_system = openmm.XmlSerializer.deserialize(Path(system.system_xml).read_text())
        topology = pdb.topology
    if omm_system.getNumParticles() != topology.getNumAtoms():
        raise ValueError(f"the system has {omm_system.getNumParticles()} particles but {system.pdb} has "
                         f"{topology.getNumAtoms()} atoms; use matching files.")
    integrator = openmm.LangevinMiddleIntegrator(system.temperature_K * unit.kelvin, system.friction_per_ps / unit.picosecond,
                                                 system.step_fs * unit.femtoseconds)
    integrator.setRandomNumberSeed(seed)
    sim = app.Simulation(topology, omm_system, integrator, openmm.Platform.getPlatformByName(system.platform))
    return sim, pdb, unit


def run_md(
    system: MDSystem,
    n_frames: int,
    *,
    start_xyz: np.ndarray | None = None,
    frame_interval_ps: float = 1.0,
    seed: int = 1,
    minimize: bool = False,
    equilibration_ps: float = 0.0,
    progress: bool = True,
    desc: str = "OpenMM",
):
    """Run Langevin dynamics and return the frames as an ``mdtraj.Trajectory`` (nm, ps).

    Args:
        system: the :class:`MDSystem`.
        n_frames: frames to record, one every ``frame_interval_ps``.
        start_xyz: ``[n_atoms, 3]`` start positions in nm (default: the PDB's).
        seed: integrator and initial-velocity seed (Maxwell-Boltzmann at the system temperature).
        minimize: minimize the energy first (needed from a crystal or model structure, not from an MD frame).
        equilibration_ps: discarded dynamics before the first recorded frame.
    """
    import mdtraj as md

    from lss_jax.engine.progress import progress_bar

    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}.")
    steps_per_frame = frame_interval_ps * 1000.0 / system.step_fs
    if abs(steps_per_frame - round(steps_per_frame)) > 1e-9 or steps_per_frame < 1:
        raise ValueError(f"frame_interval_ps must be a positive multiple of the {system.step_fs:g} fs step "
                         f"({system.step_fs / 1000:g} ps), got {frame_interval_ps}.")
    steps_per_frame = int(round(steps_per_frame))
    sim, pdb, unit = _simulation(system, seed)
    positions = pdb.positions if start_xyz is None else np.asarray(start_xyz, np.float64) * unit.nanometer
    sim.context.setPositions(positions)
    if minimize:
        sim.minimizeEnergy()
    sim.context.setVelocitiesToTemperature(system.temperature_K * unit.kelvin, seed)
    sim.step(int(round(equilibration_ps * 1000.0 / system.step_fs)))
    n_atoms = sim.topology.getNumAtoms()
    xyz = np.empty((n_frames, n_atoms, 3), np.float32)
    with progress_bar(total=n_frames, desc=desc, unit="frame", disable=not progress) as bar:
        for i in range(n_frames):
            sim.step(steps_per_frame)
            xyz[i] = sim.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
            bar.update(1)
    if not np.all(np.isfinite(xyz)):
        raise FloatingPointError(f"{desc}: the simulation blew up (NaN coordinates); minimize the start structure "
                                 "or use a smaller step.")
    top = md.load_topology(str(system.pdb))
    return md.Trajectory(xyz, top, time=equilibration_ps + np.arange(1, n_frames + 1) * frame_interval_ps)
