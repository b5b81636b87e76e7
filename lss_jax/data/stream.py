"""What training needs from MD, and nothing more: encoder features and the decoded atoms' coordinates.

An LSS trains on two arrays per trajectory: the encoder's features ``[n_frames, n_features]`` and the
coordinates of the atoms the decoder generates ``[n_frames, n_decoded, 3]``. :func:`load_training_data` reads
trajectory files chunk by chunk (``mdtraj.iterload``) and keeps only those, so a 10⁶-frame all-atom run never
sits in memory whole; :func:`training_data` does the same for trajectories already loaded. Before reading any
coordinate, :func:`check_memory` estimates what training will hold and refuses, with a message saying what to
change, input that would not fit in the memory available (instead of an out-of-memory kill hours later).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

from lss_jax.engine.io import ResourceLimitError

__all__ = ["TrainingData", "as_trajectory_list", "training_data", "load_training_data", "count_frames", "estimate_training_bytes",
           "check_memory", "available_memory_bytes"]

# bytes held per frame and per float32 feature during training: the features, their standardized copy, the
# lagged pairs of the encoder and their device copy (~2 x 2), the SRV outputs; measured on alanine dipeptide
# and the Trp-cage model (benchmarks/perf/scaling.py) with a margin
_BYTES_PER_FEATURE_VALUE = 4 * 8
_BYTES_PER_COORDINATE_VALUE = 4 * 4  # decoded coordinates, their internal coordinates and standardized copies
_BASELINE_BYTES = 1.5 * 2**30  # the process itself: JAX, XLA, mdtraj


class TrainingData(NamedTuple):
    """Features and decoded-atom coordinates of training trajectories (one entry per trajectory).

    Attributes:
        features: list of ``[n_frames, n_features]`` float32 encoder features (unstandardized).
        xyz: list of ``[n_frames, n_decoded, 3]`` float32 coordinates (nm) of the decoded atoms.
        topology: ``mdtraj.Topology`` of the trajectories (all atoms).
        atom_indices: ``[n_decoded]`` the decoded atoms.
        timestep: time between frames (ps).
    """

    features: list
    xyz: list
    topology: Any
    atom_indices: np.ndarray
    timestep: float

    @property
    def lengths(self) -> list[int]:
        return [len(f) for f in self.features]

    @property
    def decoded_topology(self):
        return self.topology.subset(self.atom_indices)


def as_trajectory_list(trajs) -> list:
    """One ``mdtraj.Trajectory`` or several as a list, checked: at least one, one atom count, finite coordinates."""
    import mdtraj as md

    trajs = [trajs] if isinstance(trajs, md.Trajectory) else list(trajs)
    if not trajs:
        raise ValueError("no trajectory given.")
    n_atoms = trajs[0].n_atoms
    for t in trajs:
        if t.n_atoms != n_atoms:
            raise ValueError(f"all trajectories must have the same atoms ({n_atoms}); got one with {t.n_atoms}.")
        if not np.all(np.isfinite(t.xyz)):
            raise ValueError("a trajectory contains NaN or Inf coordinates; repair or drop those frames.")
    return trajs


def training_data(trajs, config) -> TrainingData:
    """:class:`TrainingData` of loaded ``mdtraj.Trajectory`` objects (one topology) for ``config``.

    Example:
        >>> from lss_jax.config import LSSConfig
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> data = training_data(load_alanine_dipeptide("train", stride=500), LSSConfig(lag=2))
        >>> data.features[0].shape, data.xyz[0].shape, data.timestep
        ((50, 49), (50, 10, 3), 1000.0)
    """
    from lss_jax.data.checks import check_atom_selection, check_decoded_atoms
    from lss_jax.data.featurize import featurize

    trajs = as_trajectory_list(trajs)
    atoms = check_atom_selection(trajs[0].topology, config.data.atom_selection)
    check_decoded_atoms(trajs[0].topology, atoms, config)
    timestep = float(trajs[0].timestep) if trajs[0].n_frames > 1 else 1.0
    return TrainingData([featurize(t, config.feature_spec) for t in trajs],
                        [np.ascontiguousarray(t.xyz[:, atoms], np.float32) for t in trajs], trajs[0].topology, atoms,
                        timestep)


def count_frames(path, topology=None, *, stride: int = 1) -> int:
    """Frames of a trajectory file after ``stride``, without holding its coordinates (mdtraj's own reader)."""
    import mdtraj as md

    try:
        with md.open(str(path)) as f:
            n = len(f)
    except (TypeError, NotImplementedError, AttributeError, ValueError):  # formats whose readers do not count
        n = md.load(str(path), top=None if topology is None else str(topology)).n_frames
    return -(-n // stride)


def estimate_training_bytes(n_frames: int, n_features: int, n_decoded: int) -> float:
    """Peak memory (bytes) that training on ``n_frames`` frames is expected to hold (see the module docstring).

    Example:
        >>> round(estimate_training_bytes(10**6, 224, 20) / 2**30, 1)   # Trp-cage Cα model, 10^6 frames
        9.1
    """
    return _BASELINE_BYTES + n_frames * (n_features * _BYTES_PER_FEATURE_VALUE + 3 * n_decoded * _BYTES_PER_COORDINATE_VALUE)


def available_memory_bytes() -> float:
    """Memory the system can give this process now (``MemAvailable``; physical memory where that is missing)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def check_memory(n_frames: int, n_features: int, n_decoded: int, *, stride: int = 1, available: float | None = None) -> float:
    """Raise a :class:`lss_jax.engine.io.ResourceLimitError` (a ``ValueError``) that says what to change if training would
    not fit in memory; return the estimate.

    Example:
        >>> check_memory(10**4, 49, 10, available=8 * 2**30) < 8 * 2**30
        True
        >>> try:
        ...     check_memory(10**8, 49, 10, available=8 * 2**30)
        ... except ValueError as err:
        ...     print(str(err)[:60])
        training on 100,000,000 frames would hold about 206.4 GB, mo
    """
    need = estimate_training_bytes(n_frames, n_features, n_decoded)
    available = available_memory_bytes() if available is None else available
    if need > available:
        fits = max(1, int((available - _BASELINE_BYTES) / max(need - _BASELINE_BYTES, 1.0) * n_frames))
        factor = -(-n_frames // fits)
        raise ResourceLimitError(
            f"training on {n_frames:,} frames would hold about {need / 1e9:.1f} GB, more than the {available / 1e9:.1f} GB "
            f"available ({n_features} features and {n_decoded} decoded atoms per frame); keep one frame in {factor} "
            f"(--stride {stride * factor}), use fewer distance features (distances = \"ca\") or decode fewer atoms "
            "(atom_selection).")
    return need


def load_training_data(paths: Sequence, topology, config, *, stride: int = 1, chunk: int = 10_000,
                       check: bool = True) -> TrainingData:
    """Stream trajectory files into :class:`TrainingData`: ``mdtraj.iterload`` in chunks of ``chunk`` frames, each
    featurized and cut down to the decoded atoms before the next is read.

    Args:
        paths: trajectory files (one topology).
        topology: topology file (or ``None`` for formats that carry one).
        config: the :class:`lss_jax.LSSConfig` (features, atom selection).
        stride: keep every ``stride``-th frame.
        chunk: frames read at a time.
        check: estimate the memory training needs first (:func:`check_memory`) and refuse what would not fit.
    """
    import mdtraj as md

    from lss_jax.data.checks import check_atom_selection, check_decoded_atoms
    from lss_jax.data.featurize import feature_names, featurize, load_trajectories

    top = load_trajectories(paths, topology, first_frame_only=True)[0].topology  # every check, one frame each
    atoms = check_atom_selection(top, config.data.atom_selection)
    check_decoded_atoms(top, atoms, config)
    n_features = len(feature_names(top, config.feature_spec))
    counts = [count_frames(p, topology, stride=stride) for p in paths]
    if check:
        check_memory(sum(counts), n_features, len(atoms), stride=stride)
    features, xyz, timestep = [], [], None
    for path in paths:
        feats, coords, bad, offset = [], [], [], 0
        kwargs = {"top": str(topology)} if topology is not None else {}
        for part in md.iterload(str(path), chunk=chunk, stride=stride, **kwargs):
            if part.n_atoms != top.n_atoms:
                raise ValueError(f"{path} has {part.n_atoms} atoms but {paths[0]} has {top.n_atoms}.")
            finite = np.all(np.isfinite(part.xyz), axis=(1, 2))
            bad += (offset + np.flatnonzero(~finite)).tolist()
            offset += part.n_frames
            if bad:  # read on to count them, featurize nothing more
                continue
            if timestep is None and part.n_frames > 1:
                timestep = float(part.timestep)
            feats.append(featurize(part, config.feature_spec))
            coords.append(np.ascontiguousarray(part.xyz[:, atoms], np.float32))
        if bad:
            raise ValueError(f"{path} contains NaN or Inf coordinates in {len(bad)} frame(s) (first: {bad[0]}); "
                             "repair or drop those frames.")
        features.append(np.concatenate(feats))
        xyz.append(np.concatenate(coords))
    return TrainingData(features, xyz, top, atoms, timestep if timestep is not None else 1.0)
