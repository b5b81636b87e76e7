"""What a decoder generates: the coordinate representations of a molecule and their exact inverses.

A decoder is a conditional generative model of a feature vector ``f [D]``; a *coordinate map* says
how frames become features and features become frames (nm, superposed on a reference structure):

* :class:`CartesianMap` (``"cartesian"``, the paper's): the aligned Cartesian coordinates, standardized
  per coordinate. Bond lengths are whatever the network makes of 3 N correlated numbers.
* :class:`InternalMap` (``"internal"``): a Z-matrix built from the bond graph. Every atom after the first
  is placed from three already placed atoms by a bond length, a bond angle and a torsion (NeRF), so
  bonds and angles are generated as themselves and are right by construction when their distributions
  are; torsions enter as ``(cos, sin)`` pairs (periodic, no cut). Bonds and angles are standardized per
  feature; each torsion pair is rotated by the torsion's circular mean and shares one scale, so
  ``atan2`` recovers the angle from a generated pair whatever its radius.

Both are NamedTuples of arrays (pytrees): they cross ``jit`` as arguments, and
:func:`features_to_xyz` is jit-able and batched (``[..., D] -> [..., n_atoms, 3]``). :func:`xyz_to_features`
runs on the host in float64.

References:
    J. Parsons et al., "Practical conversion from torsion space to Cartesian space for in silico protein
    synthesis", J. Comput. Chem. 26, 1063 (2005) (NeRF).
    F. Noé, S. Olsson, J. Köhler, H. Wu, "Boltzmann generators", Science 365, eaaw1147 (2019) (Z-matrix
    coordinates for generative models of molecules).
    W. Kabsch, Acta Cryst. A 32, 922 (1976) (superposition).
"""

from __future__ import annotations

from typing import NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from lss_jax.config import COORDINATES  # the names DecoderConfig accepts

__all__ = [
    "CartesianMap",
    "InternalMap",
    "CoordinateMap",
    "COORDINATES",
    "build_zmatrix",
    "internal_coordinates",
    "nerf",
    "kabsch_superpose",
    "fit_cartesian_map",
    "fit_internal_map",
    "fit_coordinate_map",
    "xyz_to_features",
    "features_to_xyz",
    "feature_dim",
    "coordinate_map_arrays",
    "coordinate_map_from_arrays",
]

_STD_FLOOR = 1e-6


class CartesianMap(NamedTuple):
    """Aligned Cartesian coordinates, standardized.

    Attributes:
        reference: ``[n_atoms, 3]`` structure all frames are superposed on (nm).
        mean, std: ``[3 n_atoms]`` per-coordinate standardization of the aligned frames.
    """

    reference: jax.Array
    mean: jax.Array
    std: jax.Array


class InternalMap(NamedTuple):
    """Z-matrix internal coordinates with NeRF reconstruction.

    Attributes:
        zmatrix: ``[n_atoms, 4]`` int rows ``(atom, bonded_to, angle_with, torsion_with)`` in placement order
            (``-1`` where a row has no reference: the first atom has none, the second only a bond, the
            third a bond and an angle).
        reference: ``[n_atoms, 3]`` structure the reconstructed frames are superposed on (nm).
        mean, std: ``[D]`` standardization of the feature vector
            ``[bonds (n-1), angles (n-2), cos (n-3), sin (n-3)]`` (torsion pairs share one ``std``).
        torsion_mean: ``[n-3]`` circular means the torsions are rotated by before ``cos`` and ``sin``.
    """

    zmatrix: jax.Array
    reference: jax.Array
    mean: jax.Array
    std: jax.Array
    torsion_mean: jax.Array


CoordinateMap = Union[CartesianMap, InternalMap]


# --------------------------------------------------------------------------------------------------
# Z-matrix
# --------------------------------------------------------------------------------------------------


def _tree_edges(topology, reference_xyz: np.ndarray) -> list[list[int]]:
    """Neighbour lists of a spanning tree of the atoms: chemical bonds first, then (for atoms a topology
    leaves unbonded, e.g. C-alpha beads) the shortest links between sequence-adjacent residues, then
    any shortest links (a minimum spanning tree with those preferences)."""
    import scipy.sparse
    import scipy.sparse.csgraph

    n = topology.n_atoms
    d = np.linalg.norm(reference_xyz[:, None, :] - reference_xyz[None, :, :], axis=-1)
    residue = np.array([a.residue.index for a in topology.atoms])
    chain = np.array([a.residue.chain.index for a in topology.atoms])
    adjacent = (np.abs(residue[:, None] - residue[None, :]) <= 1) & (chain[:, None] == chain[None, :])
    weight = 1.0 + d + np.where(adjacent, 0.0, 100.0)  # > 0 everywhere: zero means "no edge" to scipy
    for bond in topology.bonds:
        i, j = bond.atom1.index, bond.atom2.index
        weight[i, j] = weight[j, i] = 1e-6 * (1.0 + d[i, j])
    tree = scipy.sparse.csgraph.minimum_spanning_tree(scipy.sparse.csr_matrix(np.triu(weight, 1)))
    tree = tree.toarray()
    tree = (tree + tree.T) > 0
    return [sorted(np.nonzero(tree[i])[0].tolist()) for i in range(n)]


def build_zmatrix(topology, reference_xyz) -> np.ndarray:
    """A Z-matrix ``[n_atoms, 4]`` of rows ``(atom, bonded_to, angle_with, torsion_with)`` from the bond graph.

    The atoms are placed in breadth-first order from a terminal atom of a spanning tree of the bond graph
    (for atoms without bonds in the topology, such as C-alpha beads, the tree links sequence-adjacent
    residues by their shortest distance). An atom's bond and angle partners are its tree parent and
    grandparent. Its torsion partner is an already placed sibling when there is one, which makes the
    torsion an improper-like angle with a narrow distribution (the planarity of a carbonyl, the
    chirality of a C-alpha), otherwise the great-grandparent (a proper torsion).

    Args:
        topology: ``mdtraj.Topology`` of the decoded atoms (``n_atoms >= 3``).
        reference_xyz: ``[n_atoms, 3]`` a structure of them (nm), for the tree links between unbonded atoms.

    Returns:
        ``int64 [n_atoms, 4]``, ``-1`` for the references the first three rows do not have.

    Example:
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> heavy = load_alanine_dipeptide("train", stride=1000)
        >>> heavy = heavy.atom_slice(heavy.topology.select("not element H"))
        >>> z = build_zmatrix(heavy.topology, heavy.xyz[0])
        >>> z.shape, z[:3].tolist()
        ((10, 4), [[0, -1, -1, -1], [1, 0, -1, -1], [2, 1, 0, -1]])
    """
    n = topology.n_atoms
    reference_xyz = np.asarray(reference_xyz, np.float64)
    if n < 3:
        raise ValueError(f"internal coordinates need at least 3 atoms, got {n}; use decoder.coordinates = 'cartesian'.")
    if reference_xyz.shape != (n, 3):
        raise ValueError(f"reference_xyz must be [{n}, 3], got {reference_xyz.shape}.")
    nbrs = _tree_edges(topology, reference_xyz)
    degree = np.array([len(x) for x in nbrs])
    root = int(np.flatnonzero(degree == 1)[0]) if np.any(degree == 1) else 0
    parent, order = {root: -1}, [root]
    for i in order:  # breadth-first: order grows while it is read
        for j in nbrs[i]:
            if j not in parent:
                parent[j] = i
                order.append(j)
    placed: list[int] = []
    rows = []
    for i in order:
        if not placed:
            row = (i, -1, -1, -1)
        else:
            p = parent[i]
            if len(placed) == 1:
                row = (i, p, -1, -1)
            else:
                a = parent[p] if parent[p] != -1 else next(x for x in nbrs[p] if x in placed and x != i)
                if len(placed) == 2:
                    row = (i, p, a, -1)
                else:
                    siblings = [x for x in nbrs[p] if x in placed and x not in (i, a)]
                    if siblings:
                        d = siblings[0]
                    else:
                        cand = [x for x in nbrs[a] if x in placed and x not in (i, p)]
                        d = cand[0] if cand else next(x for x in placed if x not in (i, p, a))
                    row = (i, p, a, d)
        rows.append(row)
        placed.append(i)
    return np.array(rows, np.int64)


def _dihedral(p0, p1, p2, p3):
    """Dihedral angle of the points ``p0-p1-p2-p3`` (radians, IUPAC sign), float64 NumPy, batched."""
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1 = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - np.sum(b0 * b1, -1, keepdims=True) * b1
    w = b2 - np.sum(b2 * b1, -1, keepdims=True) * b1
    return np.arctan2(np.sum(np.cross(b1, v) * w, -1), np.sum(v * w, -1))


def internal_coordinates(xyz, zmatrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bond lengths, angles and torsions of the Z-matrix rows, float64.

    Args:
        xyz: ``[n_frames, n_atoms, 3]`` (nm).
        zmatrix: from :func:`build_zmatrix`.

    Returns:
        ``(bonds [n_frames, n-1] nm, angles [n_frames, n-2] rad in [0, pi], torsions [n_frames, n-3] rad in
        (-pi, pi])``: row ``k``'s bond is ``|x_atom - x_bonded|``, its angle is at ``bonded``, its torsion
        is that of ``torsion_with - angle_with - bonded - atom``.

    Example:
        >>> xyz = np.array([[[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1]]], float)
        >>> z = np.array([[0, -1, -1, -1], [1, 0, -1, -1], [2, 1, 0, -1], [3, 2, 1, 0]])
        >>> b, a, t = internal_coordinates(xyz, z)
        >>> b.tolist(), np.degrees(a).round(6).tolist(), np.degrees(t).round(6).tolist()
        ([[1.0, 1.0, 1.0]], [[90.0, 90.0]], [[90.0]])
    """
    x = np.asarray(xyz, np.float64)
    z = np.asarray(zmatrix)
    i, p = z[1:, 0], z[1:, 1]
    bonds = np.linalg.norm(x[:, i] - x[:, p], axis=-1)
    i, p, a = z[2:, 0], z[2:, 1], z[2:, 2]
    u, v = x[:, i] - x[:, p], x[:, a] - x[:, p]
    cos = np.sum(u * v, -1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
    angles = np.arccos(np.clip(cos, -1.0, 1.0))
    i, p, a, d = z[3:, 0], z[3:, 1], z[3:, 2], z[3:, 3]
    torsions = _dihedral(x[:, d], x[:, a], x[:, p], x[:, i])
    return bonds, angles, torsions


# NeRF's vectors are triples of component arrays ``[B]`` (a batch of frames), each its own elementwise expression: 1.5x
# the same steps on stacked ``[3, B]`` arrays on XLA:CPU. Norms sum the three squares explicitly: XLA's vectorized
# ``jnp.sum`` over a short axis rounds differently for different batch sizes, and a frame must decode bitwise the same
# in any batch.


def _sub(u, v):
    return tuple(ui - vi for ui, vi in zip(u, v))


def _unit(v):
    inverse = jax.lax.rsqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    return tuple(vi * inverse for vi in v)


def _cross(u, v):
    return (u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0])


def _place(c_, b_, a_, bond, cos_angle, sin_angle, cos_torsion, sin_torsion):
    """Position of the atom bonded to ``c_`` at ``bond``, with angle ``angle`` at ``c_`` to ``b_`` and torsion
    ``torsion`` about ``b_-c_`` from ``a_``: one NeRF step on triples."""
    bc = _unit(_sub(c_, b_))
    normal = _unit(_cross(_sub(b_, a_), bc))
    side = _cross(normal, bc)
    along, rs = -bond * cos_angle, bond * sin_angle
    across, out = rs * cos_torsion, rs * sin_torsion
    return tuple(c_[i] + bc[i] * along + side[i] * across + normal[i] * out for i in range(3))


def nerf(bonds: jax.Array, angles: jax.Array, torsions: jax.Array, zmatrix: jax.Array) -> jax.Array:
    """Cartesian coordinates ``[..., n_atoms, 3]`` of frames from their Z-matrix values (natural extension
    reference frame); the inverse of :func:`internal_coordinates` up to a rigid motion.

    The first atom sits at the origin, the second on the x axis, the third in the xy plane; every later
    atom is placed from its three references. A batch of frames is built at once with the frames on the last axis
    and each Cartesian component its own row, so every step is elementwise arithmetic over the batch (1.8x a
    ``vmap`` of one frame on XLA:CPU), and a frame's numbers do not depend on the batch it is in. The placements
    run in a ``lax.scan`` (one compilation whatever ``n_atoms``).

    Args:
        bonds: ``[..., n-1]``, angles: ``[..., n-2]``, torsions: ``[..., n-3]`` as returned by
            :func:`internal_coordinates`; the leading axes (none for one frame) are the batch.
        zmatrix: ``[n_atoms, 4]`` int.

    Example:
        >>> z = jnp.array([[0, -1, -1, -1], [1, 0, -1, -1], [2, 1, 0, -1], [3, 2, 1, 0]])
        >>> x = nerf(jnp.ones(3), jnp.full(2, jnp.pi / 2), jnp.array([-jnp.pi / 2]), z)
        >>> b, a, t = internal_coordinates(np.asarray(x)[None], np.asarray(z))
        >>> np.round(b, 5).tolist(), np.round(np.degrees(t), 4).tolist()
        ([[1.0, 1.0, 1.0]], [[-90.0]])
    """
    return _nerf(bonds, angles, jnp.cos(torsions), jnp.sin(torsions), zmatrix)


def _nerf(bonds, angles, cos_torsions, sin_torsions, zmatrix) -> jax.Array:
    """:func:`nerf` of the torsions' cosines and sines."""
    n = zmatrix.shape[0]
    batch = bonds.shape[:-1]
    # frames last: [n-1, B], [n-2, B], [n-3, B]
    bonds, angles, cos_t, sin_t = (v.reshape(-1, v.shape[-1]).T for v in (bonds, angles, cos_torsions, sin_torsions))
    cos_a, sin_a = jnp.cos(angles), jnp.sin(angles)
    dtype, width = bonds.dtype, bonds.shape[1]
    zero = jnp.zeros(width, dtype)
    z = jnp.asarray(zmatrix)
    row_of = jnp.zeros(n, jnp.int32).at[z[:, 0]].set(jnp.arange(n, dtype=jnp.int32))  # atom -> placement row
    pos = jnp.zeros((n, 3, width), dtype).at[1, 0].set(bonds[0])  # [placement row, component, frame]
    # third atom: bonded to row p (0 or 1), angle with the other one, in the xy plane
    p, a = tuple(pos[row_of[z[2, 1]]]), tuple(pos[row_of[z[2, 2]]])
    bc = _unit(_sub(p, a))
    perp = (-bc[1], bc[0], zero)
    pos = pos.at[2].set(jnp.stack([p[i] - bonds[1] * (cos_a[0] * bc[i] - sin_a[0] * perp[i]) for i in range(3)]))

    def place(pos, k):
        c_, b_, a_ = (tuple(pos[row_of[z[k, j]]]) for j in (1, 2, 3))
        xyz = _place(c_, b_, a_, bonds[k - 1], cos_a[k - 2], sin_a[k - 2], cos_t[k - 3], sin_t[k - 3])
        return pos.at[k].set(jnp.stack(xyz)), None

    if n > 3:
        pos, _ = jax.lax.scan(place, pos, jnp.arange(3, n))
    # back to atom order, frames first
    return jnp.transpose(pos[row_of], (2, 0, 1)).reshape(*batch, n, 3)


# Squarings of the shifted quaternion matrix in :func:`kabsch_superpose`: the top eigenvector's weight against the
# next grows as ((lam1 + s) / (lam2 + s)) ** (2 ** KABSCH_SQUARINGS); 12 (an exponent of 4096) converges to float32 on
# every decoded frame measured (alanine dipeptide heavy atoms from 8 on, Trp-cage C-alpha from 6 on). A frame that
# has not converged (near-collinear atoms: the two top eigenvalues almost equal) still gets a proper rotation, only
# a slightly less than optimal one.
KABSCH_SQUARINGS = 12


def _quaternion_rotation(q: jax.Array) -> jax.Array:
    """Rotation matrices ``[..., 3, 3]`` of unit quaternions ``q [..., 4]`` (w, x, y, z)."""
    w, x, y, z = (q[..., i] for i in range(4))
    rows = [[w * w + x * x - y * y - z * z, 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), w * w - x * x + y * y - z * z, 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), w * w - x * x - y * y + z * z]]
    return jnp.stack([jnp.stack(row, -1) for row in rows], -2)


def kabsch_superpose(x: jax.Array, reference: jax.Array) -> jax.Array:
    """``x [..., n_atoms, 3]`` rotated and translated onto ``reference [n_atoms, 3]`` (least squares, proper rotation).

    Horn's quaternion form of the Kabsch problem (J. Opt. Soc. Am. A 4, 629, 1987): the best rotation is the
    quaternion of the largest eigenvalue of a symmetric 4x4 matrix ``K`` built from the 3x3 correlation of the
    centred frames. The eigenvector is found without LAPACK, by squaring ``K / s + I`` (``s`` bounds ``K``'s
    spectrum, so the shifted matrix is positive semi-definite and its top eigenvalue is ``K``'s) ``KABSCH_SQUARINGS``
    times with a trace normalisation: a few 4x4 products per frame, elementwise over any batch, with no batched
    LAPACK call (jaxlib 0.10.2's batched SVD deadlocked decoding on several host devices,
    ``benchmarks/perf/decode_hang.py``) and no reflection to correct (a unit quaternion is always a proper
    rotation). Agrees with the float64 SVD Kabsch to float32 rounding (``tests/test_coordinates.py``).

    Example:
        >>> ref = jnp.array([[0.0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 3]])
        >>> rot = jnp.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])          # 90 degrees about z
        >>> bool(jnp.allclose(kabsch_superpose(ref @ rot.T + 5.0, ref), ref, atol=1e-5))
        True
    """
    lead = (1,) * (x.ndim - 2)
    xc, rc = jnp.mean(x, -2, keepdims=True), jnp.mean(reference, 0, keepdims=True)
    d, centred = x - xc, reference - rc
    h = [[jnp.sum(d[..., i] * centred[:, j].reshape(*lead, -1), -1) for j in range(3)] for i in range(3)]  # [...] each
    (sxx, sxy, sxz), (syx, syy, syz), (szx, szy, szz) = h
    # |eigenvalues of K| <= sigma1 + sigma2 + sigma3 <= sqrt(3) ||h||_F
    bound = jnp.sqrt(3.0 * sum(v * v for row in h for v in row))
    scale = 1.0 / jnp.where(bound > 0, bound, 1.0)
    # the symmetric K / bound + I as its upper triangle, one array over the batch per entry (elementwise
    # arithmetic on whole batches is several times faster on XLA:CPU than batched 4x4 products)
    k = {(0, 0): sxx + syy + szz, (0, 1): syz - szy, (0, 2): szx - sxz, (0, 3): sxy - syx,
         (1, 1): sxx - syy - szz, (1, 2): sxy + syx, (1, 3): szx + sxz,
         (2, 2): syy - sxx - szz, (2, 3): syz + szy, (3, 3): szz - sxx - syy}
    a = {ij: v * scale + (1.0 if ij[0] == ij[1] else 0.0) for ij, v in k.items()}
    upper = list(a)

    def square(_, entries):  # the 10 entries [10, ...] -> those of the square, trace-normalized
        a = dict(zip(upper, entries))
        entry = lambda i, j: a[(min(i, j), max(i, j))]  # noqa: E731
        a = {(i, j): sum(entry(i, m) * entry(m, j) for m in range(4)) for (i, j) in upper}
        inverse = 1.0 / (a[0, 0] + a[1, 1] + a[2, 2] + a[3, 3])
        return jnp.stack([a[ij] * inverse for ij in upper])

    # a loop, not unrolled: XLA fuses unrolled squarings into expressions that recompute earlier entries for every
    # use (with this reciprocal, 100x slower; with ten divisions, 1.2x); each loop step is one pass over the batch
    a = dict(zip(upper, jax.lax.fori_loop(0, KABSCH_SQUARINGS, square, jnp.stack([a[ij] for ij in upper]))))
    entry = lambda i, j: a[(min(i, j), max(i, j))]  # noqa: E731
    # a -> v v^T: its row with the largest diagonal entry is the best-conditioned multiple of v
    best = jnp.argmax(jnp.stack([a[i, i] for i in range(4)], -1), axis=-1)
    q = [sum(jnp.where(best == i, entry(i, j), 0.0) for i in range(4)) for j in range(4)]
    norm = jax.lax.rsqrt(sum(v * v for v in q))
    r = _quaternion_rotation(jnp.stack([v * norm for v in q], -1))[..., None, :, :]  # [..., 1, 3, 3]
    # rotated components as sums of products over the batch (a batched 3x3 product is slower on XLA:CPU)
    return jnp.stack([sum(d[..., i] * r[..., j, i] for i in range(3)) for j in range(3)], -1) \
        + rc.reshape(*lead, 1, 3)


# --------------------------------------------------------------------------------------------------
# fitting the maps and converting
# --------------------------------------------------------------------------------------------------


def _aligned(xyz: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Frames superposed on the reference (float64 Kabsch, NumPy)."""
    x = xyz - xyz.mean(axis=1, keepdims=True)
    r = reference - reference.mean(axis=0)
    h = np.einsum("fai,aj->fij", x, r)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(u @ vt))
    u[:, :, -1] *= np.where(d == 0, 1.0, d)[:, None]
    return np.einsum("fai,fij->faj", x, u @ vt) + reference.mean(axis=0)


def fit_cartesian_map(xyz, reference) -> CartesianMap:
    """Standardization of the frames ``xyz [n_frames, n_atoms, 3]`` superposed on ``reference [n_atoms, 3]``.

    Example:
        >>> xyz = np.random.default_rng(0).normal(size=(50, 4, 3))
        >>> cmap = fit_cartesian_map(xyz, xyz[0])
        >>> xyz_to_features(cmap, xyz).shape
        (50, 12)
    """
    xyz, reference = np.asarray(xyz, np.float64), np.asarray(reference, np.float64)
    flat = _aligned(xyz, reference).reshape(len(xyz), -1)
    return CartesianMap(jnp.asarray(reference, jnp.float32), jnp.asarray(flat.mean(0), jnp.float32),
                        jnp.asarray(np.maximum(flat.std(0), _STD_FLOOR), jnp.float32))


def fit_internal_map(xyz, reference, topology) -> InternalMap:
    """Z-matrix (:func:`build_zmatrix` on ``topology`` and ``reference``) and feature standardization of
    ``xyz [n_frames, n_atoms, 3]``.

    Example:
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> heavy = load_alanine_dipeptide("train", stride=100)
        >>> heavy = heavy.atom_slice(heavy.topology.select("not element H"))
        >>> imap = fit_internal_map(heavy.xyz, heavy.xyz[0], heavy.topology)
        >>> f = xyz_to_features(imap, heavy.xyz)
        >>> f.shape                                    # 9 bonds, 8 angles, 7 torsions as (cos, sin)
        (250, 31)
        >>> back = np.asarray(features_to_xyz(imap, jnp.asarray(f)))
        >>> float(np.abs(back - _aligned(heavy.xyz.astype(float), heavy.xyz[0].astype(float))).max()) < 1e-4
        True
    """
    xyz, reference = np.asarray(xyz, np.float64), np.asarray(reference, np.float64)
    z = build_zmatrix(topology, reference)
    bonds, angles, torsions = internal_coordinates(xyz, z)
    mu = np.arctan2(np.sin(torsions).mean(0), np.cos(torsions).mean(0))
    c, s = np.cos(torsions - mu), np.sin(torsions - mu)
    pair_std = np.sqrt((c.var(0) + s.var(0)) / 2.0)
    mean = np.concatenate([bonds.mean(0), angles.mean(0), c.mean(0), s.mean(0)])
    std = np.concatenate([bonds.std(0), angles.std(0), pair_std, pair_std])
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    return InternalMap(jnp.asarray(z, jnp.int32), f32(reference), f32(mean), f32(np.maximum(std, _STD_FLOOR)), f32(mu))


def fit_coordinate_map(kind: str, xyz, reference, topology) -> CoordinateMap:
    """:func:`fit_internal_map` for ``"internal"``, :func:`fit_cartesian_map` for ``"cartesian"``."""
    if kind == "internal":
        return fit_internal_map(xyz, reference, topology)
    if kind == "cartesian":
        return fit_cartesian_map(xyz, reference)
    raise ValueError(f"decoder coordinates must be one of {COORDINATES}, got {kind!r}.")


def feature_dim(cmap: CoordinateMap) -> int:
    """Length ``D`` of the feature vector."""
    return int(cmap.mean.shape[0])


def xyz_to_features(cmap: CoordinateMap, xyz) -> np.ndarray:
    """Standardized features ``float32 [n_frames, D]`` of frames ``xyz [n_frames, n_atoms, 3]`` (host, float64)."""
    xyz = np.asarray(xyz, np.float64)
    n_atoms = cmap.reference.shape[0]
    if xyz.ndim != 3 or xyz.shape[1:] != (n_atoms, 3):
        raise ValueError(f"xyz must be [n_frames, {n_atoms}, 3], got {xyz.shape}.")
    mean, std = np.asarray(cmap.mean, np.float64), np.asarray(cmap.std, np.float64)
    if isinstance(cmap, CartesianMap):
        f = _aligned(xyz, np.asarray(cmap.reference, np.float64)).reshape(len(xyz), -1)
    else:
        bonds, angles, torsions = internal_coordinates(xyz, np.asarray(cmap.zmatrix))
        rel = torsions - np.asarray(cmap.torsion_mean, np.float64)
        f = np.concatenate([bonds, angles, np.cos(rel), np.sin(rel)], axis=1)
    return ((f - mean) / std).astype(np.float32)


def features_to_xyz(cmap: CoordinateMap, features: jax.Array) -> jax.Array:
    """Frames ``[..., n_atoms, 3]`` (nm, superposed on the reference) from features ``[..., D]``; jit-able."""
    lead = (1,) * (features.ndim - 1)
    f = features * cmap.std.reshape(*lead, -1) + cmap.mean.reshape(*lead, -1)
    n_atoms = cmap.reference.shape[0]
    if isinstance(cmap, CartesianMap):
        return f.reshape(*f.shape[:-1], n_atoms, 3)
    nb, na, nt = n_atoms - 1, n_atoms - 2, n_atoms - 3
    bonds, angles = f[..., :nb], f[..., nb : nb + na]
    cos, sin = f[..., nb + na : nb + na + nt], f[..., nb + na + nt :]
    # the torsion is atan2(sin, cos) + torsion_mean: its cosine and sine by rotating the unit pair (no atan2 round
    # trip); a pair at the origin is the angle 0, as atan2(0, 0)
    r2 = cos * cos + sin * sin
    cos, sin = jnp.where(r2 > 0, cos, 1.0), jnp.where(r2 > 0, sin, 0.0)
    inv = jax.lax.rsqrt(jnp.where(r2 > 0, r2, 1.0))
    cos_mean, sin_mean = (g(cmap.torsion_mean).reshape(*lead, -1) for g in (jnp.cos, jnp.sin))
    cos_t, sin_t = (cos * cos_mean - sin * sin_mean) * inv, (sin * cos_mean + cos * sin_mean) * inv

    batch = f.shape[:-1]
    flat = _nerf(bonds.reshape(-1, nb), angles.reshape(-1, na), cos_t.reshape(-1, nt), sin_t.reshape(-1, nt),
                 cmap.zmatrix)
    flat = kabsch_superpose(flat, cmap.reference)
    return flat.reshape(*batch, n_atoms, 3)


def coordinate_map_arrays(cmap: CoordinateMap) -> dict[str, np.ndarray]:
    """The map as named NumPy arrays (for ``np.savez``), ``kind`` included; inverse :func:`coordinate_map_from_arrays`.

    Example:
        >>> cmap = fit_cartesian_map(np.random.default_rng(0).normal(size=(5, 3, 3)), np.eye(3))
        >>> back = coordinate_map_from_arrays(coordinate_map_arrays(cmap))
        >>> type(back).__name__, bool(np.array_equal(back.std, cmap.std))
        ('CartesianMap', True)
    """
    kind = "internal" if isinstance(cmap, InternalMap) else "cartesian"
    return {"kind": np.array(kind), **{name: np.asarray(value) for name, value in cmap._asdict().items()}}


def coordinate_map_from_arrays(arrays) -> CoordinateMap:
    """Rebuild a map saved with :func:`coordinate_map_arrays`."""
    kind = str(arrays["kind"])
    cls = {"internal": InternalMap, "cartesian": CartesianMap}.get(kind)
    if cls is None:
        raise ValueError(f"unknown coordinate map kind {kind!r} (expected one of {COORDINATES}).")
    return cls(**{name: jnp.asarray(arrays[name]) for name in cls._fields})
