"""Structural validation of generated molecular configurations against MD (float64 NumPy + mdtraj, host side).

All functions take :class:`mdtraj.Trajectory` objects that share one topology (for example the heavy atoms
of alanine dipeptide, ``traj.atom_slice(traj.topology.select("not element H"))``). Lengths are in nm and
angles in radians unless a key or argument says otherwise. These metrics are applied identically to MD
frames and to decoded LSS frames, and most report the MD value alongside, so a reader can compare a
generated ensemble's deviation with the natural thermal spread of the reference.
"""

from __future__ import annotations

from typing import Any

import mdtraj as md
import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from lss_jax.analysis._common import check_int

__all__ = [
    "VDW_RADII_NM",
    "radius_of_gyration",
    "bonded_geometry",
    "geometry_deviation",
    "count_clashes",
    "nearest_frame_rmsd",
    "binned_rmsd",
]

#: Van der Waals radii (nm) used by :func:`count_clashes`; elements not listed use ``_DEFAULT_VDW_RADIUS_NM``.
VDW_RADII_NM: dict[str, float] = {"H": 0.12, "C": 0.17, "N": 0.155, "O": 0.152, "S": 0.18}
_DEFAULT_VDW_RADIUS_NM = 0.17

_MIN_FRAMES_PER_BIN = 5
_DISTANCE_CHUNK_FRAMES = 1000


# --------------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------------


def _check_traj(traj: Any, name: str) -> md.Trajectory:
    if not isinstance(traj, md.Trajectory):
        raise ValueError(
            f"{name} must be an mdtraj.Trajectory, got {type(traj).__name__}; load it with "
            "mdtraj.load(...) or wrap coordinates with mdtraj.Trajectory(xyz, topology)."
        )
    if traj.n_frames < 1:
        raise ValueError(f"{name} has no frames; pass a trajectory with at least one frame.")
    return traj


def _check_compatible(a: md.Trajectory, b: md.Trajectory, name_a: str, name_b: str) -> None:
    """Same atoms in the same order (checked by count and element sequence)."""
    if a.n_atoms != b.n_atoms:
        raise ValueError(
            f"{name_a} has {a.n_atoms} atoms but {name_b} has {b.n_atoms}; both must share one topology. "
            "Slice them to the same atoms, e.g. traj.atom_slice(traj.topology.select('not element H'))."
        )
    el_a = [_element_symbol(atom) for atom in a.topology.atoms]
    el_b = [_element_symbol(atom) for atom in b.topology.atoms]
    if el_a != el_b:
        first = next(i for i, (x, y) in enumerate(zip(el_a, el_b)) if x != y)
        raise ValueError(
            f"{name_a} and {name_b} differ in element at atom {first} ({el_a[first]} vs {el_b[first]}); "
            "both must list the same atoms in the same order."
        )


def _element_symbol(atom) -> str:
    element = atom.element
    return "" if element is None else str(element.symbol)


def _bond_pairs(topology: md.Topology) -> np.ndarray:
    pairs = np.array([[b.atom1.index, b.atom2.index] for b in topology.bonds], dtype=np.int64).reshape(-1, 2)
    if pairs.shape[0] == 0 and topology.n_atoms > 1 and all(a.name == "CA" for a in topology.atoms):
        # a Cα model read from a PDB has no bonds: its bonds are the virtual bonds of consecutive residues
        pairs = np.array([[r1.atom(0).index, r2.atom(0).index] for chain in topology.chains
                          for r1, r2 in zip(list(chain.residues)[:-1], list(chain.residues)[1:])],
                         dtype=np.int64).reshape(-1, 2)
    if pairs.shape[0] == 0:
        raise ValueError(
            "the topology has no bonds; load a topology with bonds, e.g. a PDB with standard residues "
            "(mdtraj.load_pdb) or a prmtop, and atom_slice it to the atoms you use."
        )
    pairs = np.sort(pairs, axis=1)
    return np.unique(pairs, axis=0)


def distant_pairs(topology: md.Topology, min_bond_separation: int) -> np.ndarray:
    """``[P, 2]`` atom pairs ``i < j`` at least ``min_bond_separation`` bonds apart in the topology's bond graph
    (pairs in different connected components count as far apart)."""
    n = topology.n_atoms
    bonds = _bond_pairs(topology)
    graph = scipy.sparse.csr_matrix((np.ones(len(bonds)), (bonds[:, 0], bonds[:, 1])), shape=(n, n))
    hops = scipy.sparse.csgraph.shortest_path(graph, directed=False, unweighted=True)
    i, j = np.triu_indices(n, k=1)
    keep = hops[i, j] >= min_bond_separation  # inf (different components) passes
    return np.stack([i[keep], j[keep]], axis=1)


def _angle_triples(bond_pairs: np.ndarray, n_atoms: int) -> np.ndarray:
    neighbours: list[list[int]] = [[] for _ in range(n_atoms)]
    for i, j in bond_pairs:
        neighbours[i].append(int(j))
        neighbours[j].append(int(i))
    triples = []
    for centre, nbrs in enumerate(neighbours):
        nbrs = sorted(nbrs)
        for a in range(len(nbrs)):
            for c in range(a + 1, len(nbrs)):
                triples.append((nbrs[a], centre, nbrs[c]))
    return np.array(triples, dtype=np.int64).reshape(-1, 3)


def _subsample(n: int, max_n: int, rng: np.random.Generator) -> np.ndarray:
    if n <= max_n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=max_n, replace=False))


def _centered(traj: md.Trajectory) -> md.Trajectory:
    out = md.Trajectory(np.array(traj.xyz, dtype=np.float32, copy=True), traj.topology)
    out.center_coordinates()
    return out


# --------------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------------


def radius_of_gyration(traj: md.Trajectory) -> np.ndarray:
    """Mass-unweighted radius of gyration of every frame (via :func:`mdtraj.compute_rg`).

    Args:
        traj: trajectory with ``n_frames`` frames.

    Returns:
        ``[n_frames]`` float64 radii of gyration in nm, ``sqrt(mean_i |x_i - mean_j x_j|^2)``.

    Example:
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> traj = load_alanine_dipeptide("train", stride=500)
        >>> heavy = traj.atom_slice(traj.topology.select("not element H"))
        >>> rg = radius_of_gyration(heavy)
        >>> rg.shape, bool(0.2 < rg.mean() < 0.3)
        ((50,), True)
    """
    traj = _check_traj(traj, "traj")
    return np.asarray(md.compute_rg(traj), dtype=np.float64)


def bonded_geometry(traj: md.Trajectory) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bond lengths and bond angles defined by the topology's bond graph.

    Bonds are taken from ``traj.topology.bonds`` (each pair once, ``i < j``, sorted); angles are all bonded
    triples ``i-j-k`` with ``j`` the centre and ``i < k``.

    Args:
        traj: trajectory whose topology has bonds.

    Returns:
        ``(bond_pairs [n_bonds, 2], bond_lengths [n_frames, n_bonds], angle_triples [n_angles, 3],
        angles [n_frames, n_angles])``: atom indices, lengths in nm and angles in radians (float64).

    Raises:
        ValueError: if the topology has no bonds.

    Example:
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> traj = load_alanine_dipeptide("train", stride=500)
        >>> heavy = traj.atom_slice(traj.topology.select("not element H"))
        >>> pairs, lengths, triples, angles = bonded_geometry(heavy)
        >>> pairs.shape, lengths.shape, triples.shape, angles.shape
        ((9, 2), (50, 9), (11, 3), (50, 11))
    """
    traj = _check_traj(traj, "traj")
    pairs = _bond_pairs(traj.topology)
    triples = _angle_triples(pairs, traj.n_atoms)
    lengths, angles = _measure(traj, pairs, triples)
    return pairs, lengths, triples, angles


def _measure(traj: md.Trajectory, pairs: np.ndarray, triples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.asarray(md.compute_distances(traj, pairs), dtype=np.float64)
    angles = np.asarray(md.compute_angles(traj, triples), dtype=np.float64)
    return lengths, angles


def geometry_deviation(reference: md.Trajectory, generated: md.Trajectory) -> dict[str, float]:
    """Deviation of generated bond lengths and angles from the reference (MD) averages.

    Bonds and angles come from the reference topology (see :func:`bonded_geometry`) and are measured in
    both trajectories, so ``generated`` may carry a bond-less topology as long as its atoms match. With
    ``l`` a bond length (or angle), ``<.>_ref`` / ``<.>_gen`` averages over frames:

    * ``bond_length_mad_relative``: mean over bonds of ``mean_gen |l - <l>_ref| / <l>_ref``;
    * ``bond_length_mean_relative_error``: mean over bonds of ``|<l>_gen - <l>_ref| / <l>_ref``;
    * ``angle_mad_relative`` and ``angle_mean_relative_error``: the same for angles (radians);
    * ``angle_mad_degrees``: mean over angles and generated frames of ``|a - <a>_ref|`` in degrees;
    * ``reference_bond_length_mad_relative`` and ``reference_angle_mad_degrees``: the MADs of the reference
      itself about its own means, i.e. the natural thermal spread to compare the generated MADs with.

    Angle entries are ``nan`` when the topology has no bonded triples.

    Args:
        reference: ``n_ref`` reference frames (its topology must have bonds).
        generated: ``n_gen`` generated frames with the same atoms.

    Returns:
        dict of float, keys as listed above.

    Example:
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> traj = load_alanine_dipeptide("train", stride=500)
        >>> heavy = traj.atom_slice(traj.topology.select("not element H"))
        >>> dev = geometry_deviation(heavy[:25], heavy[25:])   # MD vs MD: thermal spread only
        >>> len(dev), dev["bond_length_mad_relative"] < 0.05, dev["angle_mad_degrees"] < 5
        (7, True, True)
    """
    reference = _check_traj(reference, "reference")
    generated = _check_traj(generated, "generated")
    _check_compatible(reference, generated, "reference", "generated")
    pairs = _bond_pairs(reference.topology)
    triples = _angle_triples(pairs, reference.n_atoms)
    l_ref, a_ref = _measure(reference, pairs, triples)
    l_gen, a_gen = _measure(generated, pairs, triples)

    def _stats(ref: np.ndarray, gen: np.ndarray) -> tuple[float, float, float, float]:
        if ref.shape[1] == 0:
            return (np.nan,) * 4
        mean_ref = ref.mean(axis=0)
        mad_rel = float(np.mean(np.abs(gen - mean_ref).mean(axis=0) / mean_ref))
        mean_err = float(np.mean(np.abs(gen.mean(axis=0) - mean_ref) / mean_ref))
        mad_abs = float(np.mean(np.abs(gen - mean_ref)))
        ref_mad_rel = float(np.mean(np.abs(ref - mean_ref).mean(axis=0) / mean_ref))
        return mad_rel, mean_err, mad_abs, ref_mad_rel

    b_mad, b_err, _, b_ref_mad = _stats(l_ref, l_gen)
    a_mad, a_err, a_mad_abs, _ = _stats(a_ref, a_gen)
    _, _, a_ref_mad_abs, _ = _stats(a_ref, a_ref)
    return {
        "bond_length_mad_relative": b_mad,
        "bond_length_mean_relative_error": b_err,
        "angle_mad_relative": a_mad,
        "angle_mean_relative_error": a_err,
        "angle_mad_degrees": float(np.degrees(a_mad_abs)),
        "reference_bond_length_mad_relative": b_ref_mad,
        "reference_angle_mad_degrees": float(np.degrees(a_ref_mad_abs)),
    }


def count_clashes(
    traj: md.Trajectory,
    *,
    reference: md.Trajectory | None = None,
    scale: float = 0.75,
    min_bond_separation: int = 3,
) -> dict[str, Any]:
    """Count steric clashes between atoms that are far apart in the bond graph.

    Rule: a pair of atoms ``(i, j)`` is checked when its shortest path in the topology's bond graph has at
    least ``min_bond_separation`` bonds (pairs in different connected components count as far apart), so
    the default 3 checks 1-4 pairs and beyond and skips bonded (1-2) and angle (1-3) neighbours. The pair
    clashes in a frame when ``d_ij < scale * (r_i + r_j)``, with ``r`` the van der Waals radii in
    :data:`VDW_RADII_NM` (0.17 nm for unlisted elements). A frame has a clash when any pair clashes.
    Distances use mdtraj's minimum-image convention when the trajectory has unit cells.

    With hydrogens included, hydrogen bonds (``H...O`` about 0.18-0.20 nm) fall below the default
    threshold (``0.75 * 0.272 = 0.204`` nm) and count as clashes; use heavy atoms or a smaller ``scale``.

    Args:
        traj: ``n_frames`` frames to check.
        reference: optional trajectory with the same atoms whose topology supplies the bond graph and the
            elements, for when ``traj`` carries a topology without bonds (e.g. decoded coordinates).
        scale: fraction (> 0) of the van der Waals contact distance below which a pair clashes.
        min_bond_separation: minimum graph distance (>= 1 bond) of checked pairs.

    Returns:
        dict with ``n_frames`` (int), ``frames_with_clash`` (int), ``fraction_frames_with_clash`` (float),
        ``n_clashing_pairs_total`` (int, clashing pairs summed over frames) and ``threshold_scale``.

    Raises:
        ValueError: if the bond-graph topology has no bonds or the arguments are invalid.

    Example:
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> traj = load_alanine_dipeptide("train", stride=500)
        >>> heavy = traj.atom_slice(traj.topology.select("not element H"))
        >>> result = count_clashes(heavy)
        >>> result["n_frames"], result["frames_with_clash"]
        (50, 0)
    """
    traj = _check_traj(traj, "traj")
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive finite number (fraction of the vdW contact), got {scale!r}.")
    min_bond_separation = check_int(min_bond_separation, "min_bond_separation")
    if reference is not None:
        reference = _check_traj(reference, "reference")
        _check_compatible(reference, traj, "reference", "traj")
        topology = reference.topology
    else:
        topology = traj.topology
    pairs = distant_pairs(topology, min_bond_separation)
    radii = np.array([VDW_RADII_NM.get(_element_symbol(a), _DEFAULT_VDW_RADIUS_NM) for a in topology.atoms])
    threshold = scale * (radii[pairs[:, 0]] + radii[pairs[:, 1]])

    clashes_per_frame = np.zeros(traj.n_frames, dtype=np.int64)
    if len(pairs):
        for start in range(0, traj.n_frames, _DISTANCE_CHUNK_FRAMES):
            chunk = traj[start : start + _DISTANCE_CHUNK_FRAMES]
            d = md.compute_distances(chunk, pairs)
            clashes_per_frame[start : start + chunk.n_frames] = np.sum(d < threshold, axis=1)
    frames_with_clash = int(np.count_nonzero(clashes_per_frame))
    return {
        "n_frames": int(traj.n_frames),
        "frames_with_clash": frames_with_clash,
        "fraction_frames_with_clash": frames_with_clash / traj.n_frames,
        "n_clashing_pairs_total": int(clashes_per_frame.sum()),
        "threshold_scale": float(scale),
    }


# --------------------------------------------------------------------------------------------------
# RMSD-based comparisons
# --------------------------------------------------------------------------------------------------


def _rmsd_matrix_mean(target: md.Trajectory, reference: md.Trajectory, *, distinct_pairs: bool) -> float:
    """Mean RMSD over all (target, reference) frame pairs; both must be centred.

    With ``distinct_pairs`` (``target is reference``) the diagonal is excluded; RMSD is symmetric so the
    mean over ``i != j`` equals the mean over distinct unordered pairs.
    """
    total, count = 0.0, 0
    for k in range(reference.n_frames):
        r = md.rmsd(target, reference, frame=k, precentered=True, parallel=False).astype(np.float64)
        if distinct_pairs:
            r = np.delete(r, k)
        total += float(r.sum())
        count += r.size
    return total / count if count else np.nan


def nearest_frame_rmsd(
    generated: md.Trajectory,
    reference: md.Trajectory,
    *,
    max_generated: int = 1000,
    max_reference: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """RMSD of every generated frame to its nearest reference frame (novelty check).

    Values near 0 mean a generated frame is a copy of a reference frame; values comparable to the RMSD
    between neighbouring MD frames mean the generator produces new, but nearby, structures. mdtraj
    computes RMSD in float32, so an exact copy gives about 1e-4 nm rather than 0. The loop over reference
    frames calls :func:`mdtraj.rmsd` serially (``parallel=False``), which is faster than its OpenMP path
    for the small per-call work here and robust on busy machines.

    Args:
        generated: ``n_gen`` frames; at most ``max_generated`` are drawn at random without replacement.
        reference: ``n_ref`` frames with the same atoms; all of them by default (a sample of the reference
            overstates novelty: a copy of a frame left out of the sample counts as new).
        max_generated: cap on the number of generated frames (>= 1).
        max_reference: cap on the number of reference frames (>= 1; ``None``: every frame), drawn at random.
        seed: seed of ``numpy.random.default_rng`` for the subsampling.

    Returns:
        ``[n]`` float64 minimum RMSD (nm, after optimal superposition) of each kept generated frame, in
        trajectory order, ``n = min(n_gen, max_generated)``.

    Example:
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> traj = load_alanine_dipeptide("train", stride=500)
        >>> heavy = traj.atom_slice(traj.topology.select("not element H"))
        >>> rmsd = nearest_frame_rmsd(heavy[:10], heavy)   # copies of reference frames
        >>> rmsd.shape, bool(rmsd.max() < 1e-3)
        ((10,), True)
    """
    generated = _check_traj(generated, "generated")
    reference = _check_traj(reference, "reference")
    _check_compatible(reference, generated, "reference", "generated")
    max_generated = check_int(max_generated, "max_generated")
    max_reference = reference.n_frames if max_reference is None else check_int(max_reference, "max_reference")
    rng = np.random.default_rng(seed)
    gen = _centered(generated[_subsample(generated.n_frames, max_generated, rng)])
    ref = _centered(reference[_subsample(reference.n_frames, max_reference, rng)])
    if gen.n_frames <= ref.n_frames:  # one mdtraj call per frame of the smaller set, over every frame of the other
        return np.array([md.rmsd(ref, gen, frame=i, precentered=True, parallel=False).min()
                         for i in range(gen.n_frames)], np.float64)
    best = np.full(gen.n_frames, np.inf)
    for k in range(ref.n_frames):
        np.minimum(best, md.rmsd(gen, ref, frame=k, precentered=True, parallel=False), out=best)
    return best


def _as_latent(latent, n_frames: int, name: str, traj_name: str) -> np.ndarray:
    latent = np.asarray(latent, dtype=np.float64)
    if latent.ndim == 1:
        latent = latent[:, None]
    if latent.ndim != 2:
        raise ValueError(f"{name} must have shape [n_frames, m], got {latent.shape}.")
    if latent.shape[0] != n_frames:
        raise ValueError(
            f"{name} has {latent.shape[0]} rows but {traj_name} has {n_frames} frames; pass one latent "
            "vector per frame."
        )
    return latent


def binned_rmsd(
    md_traj: md.Trajectory,
    md_latent,
    lss_traj: md.Trajectory,
    lss_latent,
    *,
    n_bins: int = 10,
    dim: int = 0,
    max_per_bin: int = 200,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Structural agreement of LSS and MD frames that sit in the same region of latent space.

    Both sets are binned on latent coordinate ``dim`` with ``n_bins`` equal bins spanning the MD range
    (LSS frames outside it are ignored). In each bin with at least 5 frames of both, up to ``max_per_bin``
    frames of each are drawn at random and the mean RMSD over all LSS-MD pairs is reported, with, as a
    baseline, the mean RMSD over distinct MD-MD pairs of the same bin: an LSS-MD value close to the MD-MD
    value means the decoded structures are as similar to MD as MD frames are to each other.

    Args:
        md_traj: ``n_md`` MD frames.
        md_latent: ``[n_md, m]`` (or ``[n_md]``) latent coordinates of the MD frames.
        lss_traj: ``n_lss`` LSS (decoded) frames with the same atoms.
        lss_latent: ``[n_lss, m]`` (or ``[n_lss]``) latent coordinates of the LSS frames.
        n_bins: number of bins (>= 1).
        dim: latent coordinate to bin on (``0 <= dim < m``).
        max_per_bin: cap on frames per set and bin (>= 2).
        seed: seed of ``numpy.random.default_rng`` for the subsampling.

    Returns:
        dict with ``edges [n_bins + 1]``, ``centers [n_bins]``, ``lss_md_rmsd [n_bins]`` and
        ``md_md_rmsd [n_bins]`` (nm; ``nan`` in bins with fewer than 5 frames of either set), and
        ``counts_md [n_bins]``, ``counts_lss [n_bins]`` (frames per bin before subsampling).

    Example:
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> traj = load_alanine_dipeptide("train", stride=500)
        >>> heavy = traj.atom_slice(traj.topology.select("not element H"))
        >>> rg = radius_of_gyration(heavy)   # any per-frame coordinate serves as the "latent" one here
        >>> result = binned_rmsd(heavy, rg, heavy, rg, n_bins=2)
        >>> result["lss_md_rmsd"].shape, int(result["counts_md"].sum())
        ((2,), 50)
    """
    md_traj = _check_traj(md_traj, "md_traj")
    lss_traj = _check_traj(lss_traj, "lss_traj")
    _check_compatible(md_traj, lss_traj, "md_traj", "lss_traj")
    md_latent = _as_latent(md_latent, md_traj.n_frames, "md_latent", "md_traj")
    lss_latent = _as_latent(lss_latent, lss_traj.n_frames, "lss_latent", "lss_traj")
    if md_latent.shape[1] != lss_latent.shape[1]:
        raise ValueError(
            f"md_latent has {md_latent.shape[1]} columns but lss_latent has {lss_latent.shape[1]}; both "
            "must be coordinates of the same latent space."
        )
    n_bins = check_int(n_bins, "n_bins")
    max_per_bin = check_int(max_per_bin, "max_per_bin", minimum=2)
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not 0 <= dim < md_latent.shape[1]:
        raise ValueError(f"dim must be an integer in [0, {md_latent.shape[1]}), got {dim!r}.")
    x_md, x_lss = md_latent[:, dim], lss_latent[:, dim]
    if not (np.all(np.isfinite(x_md)) and np.all(np.isfinite(x_lss))):
        raise ValueError("the latent coordinates contain nan or inf; remove or fix those frames first.")
    lo, hi = float(x_md.min()), float(x_md.max())
    if not hi > lo:
        raise ValueError(f"the MD latent coordinate {dim} is constant ({lo}); choose a dim that varies.")
    edges = np.linspace(lo, hi, n_bins + 1)

    def _assign(x: np.ndarray) -> np.ndarray:
        idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, n_bins - 1)
        return np.where((x >= lo) & (x <= hi), idx, -1)

    bin_md, bin_lss = _assign(x_md), _assign(x_lss)
    counts_md = np.bincount(bin_md[bin_md >= 0], minlength=n_bins)
    counts_lss = np.bincount(bin_lss[bin_lss >= 0], minlength=n_bins)
    lss_md = np.full(n_bins, np.nan)
    md_md = np.full(n_bins, np.nan)
    rng = np.random.default_rng(seed)
    for b in range(n_bins):
        if counts_md[b] < _MIN_FRAMES_PER_BIN or counts_lss[b] < _MIN_FRAMES_PER_BIN:
            continue
        idx_md = np.flatnonzero(bin_md == b)
        idx_lss = np.flatnonzero(bin_lss == b)
        idx_md = idx_md[_subsample(idx_md.size, max_per_bin, rng)]
        idx_lss = idx_lss[_subsample(idx_lss.size, max_per_bin, rng)]
        sub_md, sub_lss = _centered(md_traj[idx_md]), _centered(lss_traj[idx_lss])
        lss_md[b] = _rmsd_matrix_mean(sub_lss, sub_md, distinct_pairs=False)
        md_md[b] = _rmsd_matrix_mean(sub_md, sub_md, distinct_pairs=True)
    return {
        "edges": edges,
        "centers": 0.5 * (edges[:-1] + edges[1:]),
        "lss_md_rmsd": lss_md,
        "md_md_rmsd": md_md,
        "counts_md": counts_md,
        "counts_lss": counts_lss,
    }
