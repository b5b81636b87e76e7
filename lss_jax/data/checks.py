"""Checks of training input, shared by the library and the command line (one place, so that both say the same
thing about the same mistake): the atom selection, the trajectory lengths against the lag and the split, and the
data themselves (features that do not move, trajectories of one repeated frame, fewer independent directions than
the latent dimension needs). Each returns or raises with a message that says what was wrong and how to fix it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from lss_jax.data.featurize import _selection_error

if TYPE_CHECKING:  # the configuration is only read here; lss_jax.config imports this module
    from lss_jax.config import LSSConfig

__all__ = ["check_atom_selection", "check_decoded_atoms", "check_training_input", "check_training_data"]


def check_atom_selection(topology, selection: str) -> np.ndarray:
    """Indices of the atoms ``selection`` picks in ``topology`` (all atoms for an empty selection), or a
    ``ValueError`` that says how to fix the selection.

    Example:
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> len(check_atom_selection(load_alanine_dipeptide("train", stride=25_000).topology, "not element H"))
        10
    """
    if not selection:
        return np.arange(topology.n_atoms)
    try:
        atoms = topology.select(selection)
    except Exception as err:  # mdtraj's selection parser raises several types, with multi-line messages
        raise ValueError(
            f"atom_selection {selection!r} is not a valid mdtraj selection ({_selection_error(err)}); "
            "use e.g. 'not element H' or 'all'."
        ) from err
    if len(atoms) == 0:
        raise ValueError(
            f"atom_selection {selection!r} matches no atom of the topology; use e.g. 'not element H' or 'all'.")
    return np.asarray(atoms)


def check_decoded_atoms(topology, atoms: np.ndarray, config: LSSConfig) -> None:
    """A ``ValueError`` that says what to change if the decoder kind cannot generate the decoded ``atoms`` of
    ``topology``.

    Every kind generates the Cα atoms of a protein, and ``knn``, ``flow`` and ``wgan`` its heavy atoms
    (``data.atom_selection = "not element H"``): the internal coordinates of ``flow`` and ``wgan`` are a Z-matrix
    over the topology's chemical bonds. Refused: ``chain``, whose prior and network are a chain of beads, one per
    residue, on atoms more than one per residue; and internal coordinates on a topology with several decoded
    atoms per residue but no bond among them (a format without bonds: the Z-matrix would join atoms by distance).

    Example:
        >>> from lss_jax.config import DecoderConfig, LSSConfig
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> top = load_alanine_dipeptide("train", stride=25_000).topology
        >>> check_decoded_atoms(top, top.select("not element H"), LSSConfig(lag=1))  # flow on heavy atoms: fine
        >>> try:
        ...     check_decoded_atoms(top, top.select("not element H"), LSSConfig(lag=1, decoder=DecoderConfig(kind="chain")))
        ... except ValueError as err:
        ...     print(str(err)[:72])
        the chain decoder generates one bead per residue, but the decoded atoms
    """
    atoms = np.asarray(atoms)
    residues = {topology.atom(int(i)).residue.index for i in atoms}
    if len(residues) == len(atoms):
        return  # one atom per residue: a bead chain, whatever the kind
    decoder = config.decoder
    if decoder.kind == "chain":
        raise ValueError(
            f"the chain decoder generates one bead per residue, but the decoded atoms (atom_selection "
            f"{config.data.atom_selection!r}) are {len(atoms)} atoms in {len(residues)} residues; decode the Cα atoms "
            "(atom_selection = \"name CA\" under [data]) or use decoder.kind = \"knn\" or \"flow\" for heavy atoms.")
    if decoder.kind in ("flow", "wgan", "meanflow") and decoder.coordinates == "internal":
        chosen = set(atoms.tolist())
        if not any(b.atom1.index in chosen and b.atom2.index in chosen for b in topology.bonds):
            raise ValueError(
                f"decoder.coordinates = \"internal\" builds its Z-matrix from the topology's bonds, but the topology "
                f"has no bond among the {len(atoms)} decoded atoms; give a topology with bonds (a PDB of standard "
                "residues, a prmtop, ...), decode the Cα atoms (atom_selection = \"name CA\") or set "
                "decoder.coordinates = \"cartesian\".")


def check_training_input(
    lengths: Sequence[int],
    config: LSSConfig,
    *,
    n_features: int | None = None,
    names: Sequence[str] | None = None,
    lag_name: str = "lag",
    stride_name: str | None = None,
) -> None:
    """Check, before any training, that trajectories of ``lengths`` frames can train an LSS with ``config``.

    Every message says what was wrong and how to fix it. The command line passes the file ``names``,
    ``lag_name="--lag"`` and ``stride_name="--stride K"`` so that its messages name what the user typed.

    Args:
        lengths: frames per trajectory.
        config: the settings to train with.
        n_features: number of encoder features (checked against the latent dimension).
        names: how to name each trajectory in a message (default ``"trajectory i"``).
        lag_name: how to name the lag in a message.
        stride_name: the subsampling the frame counts are after, if any (e.g. ``"--stride 2"``).

    Example:
        >>> from lss_jax.config import LSSConfig
        >>> check_training_input([1000, 800], LSSConfig(lag=5))
        >>> try:
        ...     check_training_input([1000, 3], LSSConfig(lag=5))
        ... except ValueError as err:
        ...     print(err)
        trajectory 1 has 3 frames, not more than lag 5, so it gives no lagged pair; drop it or use a shorter lag.
    """
    lengths = [int(n) for n in lengths]
    if not lengths:
        raise ValueError("no trajectory given.")
    names = [f"trajectory {i}" for i in range(len(lengths))] if names is None else list(names)
    lag = config.lag
    after = f" after {stride_name}" if stride_name else ""
    if max(lengths) <= lag + 1:
        raise ValueError(
            f"{lag_name} {lag} is not shorter than the trajectories (longest: {max(lengths)} frames{after}); "
            f"use a shorter {lag_name} or longer trajectories.")
    for name, n in zip(names, lengths):
        if n <= lag:
            raise ValueError(f"{name} has {n} frames{f' ({after.strip()})' if after else ''}, not more than {lag_name} "
                             f"{lag}, so it gives no lagged pair; drop it or use a shorter {lag_name}.")
    k = config.encoder.n_outputs
    if n_features is not None and k > n_features:
        which = "latent_dim" if config.encoder.latent_dim is not None else "max_latent_dim"
        raise ValueError(
            f"latent dimension {k} ({which}) exceeds the number of features ({n_features}); lower {which} "
            "or add features (torsions, distances).")
    need = 2 * k + 2  # pairs per batch to estimate the k x k SRV covariances
    if config.encoder.batch_size < need:
        raise ValueError(
            f"encoder.batch_size ({config.encoder.batch_size}) is too small to estimate {k}x{k} covariances; "
            f"raise it to at least {need}.")
    data = config.data
    parts = {"": lengths}
    if data.encoder_fraction < 1:  # cross-fitting: as lss_jax.data.pairs.split_trajectories(..., 1 - fraction)
        tail = [round((1 - data.encoder_fraction) * n) for n in lengths]
        parts = {" in the encoder's part": [n - t for n, t in zip(lengths, tail)], " in the propagator's part": tail}
    for part, part_lengths in parts.items():
        n_val = [round(data.val_fraction * n) for n in part_lengths]  # as lss_jax.data.pairs.split_trajectories
        train_pairs = sum(max(0, n - v - lag) for n, v in zip(part_lengths, n_val))
        val_pairs = sum(max(0, v - lag) for v in n_val)
        if train_pairs < need or val_pairs < 1:
            split = (f"; encoder_fraction={data.encoder_fraction} gives the encoder the leading and the propagator "
                     f"the trailing part of each trajectory" if part else "")
            raise ValueError(
                f"too few lagged pairs at lag {lag}{part}: {train_pairs} for training and {val_pairs} for validation "
                f"(the last val_fraction={data.val_fraction} of each trajectory{split}); a training batch needs at "
                f"least {need} and validation at least 1. Use longer trajectories or a shorter lag"
                f"{', or encoder_fraction = 1' if part else ''}.")


_ZERO_VARIANCE = 1e-6  # a feature whose standard deviation is below this is one the standardizer cannot scale
_NOISE_FLOOR = 1e-6  # covariance eigenvalues below this fraction of the largest: float32 round-off, not motion


def _row_blocks(x: np.ndarray, size: int = 65536):
    for i in range(0, len(x), size):
        yield np.asarray(x[i: i + size], np.float64)


def check_training_data(
    features: Sequence[np.ndarray],
    config: LSSConfig,
    *,
    feature_names: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
) -> list[str]:
    """Check, before any training, that the features can train an LSS with ``config``: the data must move.

    Refused (``ValueError`` saying what is wrong in the data and what to do):

    * a trajectory that does not move (all its frames identical);
    * features that all have zero variance (the molecule moves only as a rigid body, or not at all);
    * fewer distinct frames than a training batch (the same frames written again and again);
    * a latent dimension the data cannot support: the standardized features vary along fewer independent
      directions than ``latent_dim`` (the other covariance eigenvalues are at the float32 noise floor,
      below 10⁻⁶ of the largest).

    Without such a check these fail deep inside training (a LAPACK "leading minor ... is not positive
    definite" from the SRV's covariances) after checkpoints were written.

    Args:
        features: ``[n_frames, n_features]`` per trajectory (unstandardized).
        config: the settings to train with.
        feature_names: a label per feature column (:func:`lss_jax.data.featurize.feature_names`).
        names: how to name each trajectory in a message (default ``"trajectory i"``).

    Returns:
        Warnings that do not stop training: features with zero variance among others that move (named).

    Example:
        >>> from lss_jax.config import EncoderConfig, LSSConfig
        >>> rng = np.random.default_rng(0)
        >>> check_training_data([rng.normal(size=(500, 3))], LSSConfig(lag=1, encoder=EncoderConfig(latent_dim=2)))
        []
        >>> try:
        ...     check_training_data([np.ones((500, 3))], LSSConfig(lag=1, encoder=EncoderConfig(latent_dim=2)))
        ... except ValueError as err:
        ...     print(str(err)[:52])
        trajectory 0 does not move: its 500 frames are all i
    """
    feats = [np.asarray(f) for f in features]
    names = [f"trajectory {i}" for i in range(len(feats))] if names is None else [str(n) for n in names]
    d = feats[0].shape[1]
    labels = list(feature_names) if feature_names is not None and len(feature_names) == d else [
        f"feature {j}" for j in range(d)]
    # per-feature mean and variance in float64, block by block (no full-size copy), shifted by the first frame
    shift = np.asarray(feats[0][0], np.float64)
    n, s1, s2 = 0, np.zeros(d), np.zeros(d)
    for name, f in zip(names, feats):
        if len(f) > 1 and not np.any(f != f[:1]):
            raise ValueError(
                f"{name} does not move: its {len(f)} frames are all identical (every one of its {d} features has zero "
                "variance). Training learns dynamics from motion; give the production trajectory (not a minimized "
                "structure or one frame written repeatedly), or drop this file.")
        for block in _row_blocks(f):
            block = block - shift
            n, s1, s2 = n + len(block), s1 + block.sum(0), s2 + (block * block).sum(0)
    std = np.sqrt(np.maximum(s2 / n - (s1 / n) ** 2, 0.0))
    zero = np.flatnonzero(std < _ZERO_VARIANCE)

    def listed(idx, most=8):
        shown = ", ".join(labels[j] for j in idx[:most])
        return shown + (f" and {len(idx) - most} more" if len(idx) > most else "")

    if len(zero) == d:
        raise ValueError(
            f"the training data do not move: all {d} features have zero variance over the {n:,} frames ({listed(zero, 4)}); "
            "the molecule keeps one internal structure (at most it moves as a rigid body). Give trajectories in "
            "which the molecule changes shape.")
    warnings = []
    if len(zero):
        warnings.append(
            f"{len(zero)} of {d} features have zero variance over the training data and carry no information: "
            f"{listed(zero)}; they are kept (standardized to 0). Use other feature types (torsions, distances) or "
            "trajectories in which these move.")
    moving = np.flatnonzero(std >= _ZERO_VARIANCE)
    k = config.encoder.n_outputs
    which = "latent_dim" if config.encoder.latent_dim is not None else "max_latent_dim"
    # distinct frames (rows), by a fixed random projection: distinct rows collide with probability ~0
    rng = np.random.default_rng(0)
    w = rng.normal(size=d)
    sketch = rng.normal(size=(len(moving), min(len(moving), k + 8)))
    mean = s1 / n
    hashes, gram = [], np.zeros((sketch.shape[1],) * 2)
    for f in feats:
        for block in _row_blocks(f):
            hashes.append(block @ w)
            z = (block[:, moving] - shift[moving] - mean[moving]) / std[moving]
            y = z @ sketch
            gram += y.T @ y
    distinct = len(np.unique(np.concatenate(hashes)))
    lag = config.lag
    n_val = [round(config.data.val_fraction * len(f)) for f in feats]
    train_pairs = sum(max(0, len(f) - v - lag) for f, v in zip(feats, n_val))
    batch = min(config.encoder.batch_size, train_pairs)
    if distinct < batch:
        raise ValueError(
            f"the training data hold only {distinct:,} distinct frames among {n:,} (each one repeated "
            f"{n / distinct:.0f} times on average), fewer than a training batch of {batch:,} lagged pairs: the batch "
            "covariances would be degenerate. Check that the files hold the production run and not repeated frames "
            f"(if they are meant to repeat, lower encoder.batch_size to at most {distinct}).")
    eig = np.linalg.eigvalsh(gram / n)[::-1]  # a random sketch keeps the rank of the standardized covariance
    rank = int(np.sum(eig > _NOISE_FLOOR * eig[0])) if eig[0] > 0 else 0
    if rank < k:
        raise ValueError(
            f"latent dimension {k} ({which}) is more than the data can support: the {len(moving)} moving features vary "
            f"along only {rank} independent direction(s) (the other covariance eigenvalues are at the noise floor, "
            f"below {_NOISE_FLOOR:g} of the largest), so {k} slow coordinates cannot be told apart. Lower {which} to "
            f"at most {rank}, or give data that move in more ways (more features or more varied trajectories).")
    return warnings
