"""The decoder's support constraint: decoded frames stay where the training molecules could be.

A conditional generator ``q(x | c)`` approximates the data's ``p(x | c)``; where it errs, it can put atoms that
are far apart in the bond graph on top of each other (a torsion slightly off at one end of a chain moves the
other end by nanometres). Such frames lie outside the support of ``p``: no molecule of the training data ever
came that close. The constraint is learned from the training frames alone: for every pair of decoded atoms at
least ``min_bond_separation`` bonds apart (1-4 pairs and beyond; pairs in different molecules count as far
apart), the smallest distance it ever had, times ``margin``. A frame is inside the support ``S`` when every
pair is at least that far apart, i.e. when :func:`support_ratio` (the smallest ``d_ij / d_min_ij``) is
``>= 1``.

The decoder draws a frame again, with fresh addressed noise, while it lies outside ``S`` (up to
``DecoderConfig.redraws`` times; :func:`lss_jax.decoder.decode_rows`). That samples ``q`` restricted to ``S``,
``q_S = q 1_S / q(S)``, and for any ``p`` that lives in ``S``,

    KL(p || q_S) = KL(p || q) + log q(S) <= KL(p || q),

so the redraws can only bring the decoder closer to the data, never further, and they leave every frame that
was inside ``S`` at its first draw untouched (same noise, same bits). How often the first draw is outside
``S`` is the decoder's own error, and ``report`` states it beside how often MD frames of an independent run
are outside (the constraint's false alarms; ``margin`` keeps them rare).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["SupportConstraint", "fit_support", "support_ratio", "support_arrays", "support_from_arrays"]

# rows per distance evaluation inside a decode block: bounds the [rows, pairs] distance matrix
_ROWS_PER_CHECK = 64


class SupportConstraint(NamedTuple):
    """Pairs of decoded atoms and the distances they must keep (a pytree).

    Attributes:
        pairs: ``[P, 2]`` int32 atom indices (decoded atoms), ``>= min_bond_separation`` bonds apart.
        min_distance: ``[P]`` float32 nm: ``margin`` times the pair's smallest training distance.
    """

    pairs: jax.Array
    min_distance: jax.Array


def fit_support(xyz, topology, *, margin: float = 0.9, min_bond_separation: int = 3) -> SupportConstraint:
    """The support constraint of training frames ``xyz [n_frames, n_atoms, 3]`` (nm) of ``topology``'s atoms.

    Args:
        xyz: training frames (all of them: the constraint is their per-pair minimum distance).
        topology: ``mdtraj.Topology`` of the atoms (its bonds; a Cα-only topology gets the virtual bonds of
            consecutive residues).
        margin: fraction (in (0, 1]) of the smallest training distance a decoded pair must keep.
        min_bond_separation: pairs at least this many bonds apart are checked (3: 1-4 pairs and beyond).

    Example:
        >>> import mdtraj as md
        >>> top = md.Topology(); chain = top.add_chain()
        >>> for _ in range(5):
        ...     _ = top.add_atom("CA", md.element.carbon, top.add_residue("ALA", chain))
        >>> xyz = np.zeros((2, 5, 3), np.float32); xyz[:, :, 0] = np.arange(5) * 0.38; xyz[1, 4, 0] = 1.4
        >>> support = fit_support(xyz, top)
        >>> np.asarray(support.pairs).tolist(), [round(float(d), 3) for d in support.min_distance]
        ([[0, 3], [0, 4], [1, 4]], [1.026, 1.26, 0.918])
    """
    from lss_jax.analysis.structure import distant_pairs

    if not 0.0 < margin <= 1.0:
        raise ValueError(f"support margin must be in (0, 1] (a fraction of the smallest training distance), "
                         f"got {margin!r}.")
    if not isinstance(min_bond_separation, int) or min_bond_separation < 1:
        raise ValueError(f"min_bond_separation must be a positive integer, got {min_bond_separation!r}.")
    xyz = np.asarray(xyz, np.float32)
    n = xyz.shape[1]
    if topology.n_atoms != n:
        raise ValueError(f"topology has {topology.n_atoms} atoms but the frames have {n}.")
    pairs = distant_pairs(topology, min_bond_separation).astype(np.int32)
    dmin = np.full(len(pairs), np.inf, np.float32)
    chunk = max(1, 2**24 // max(1, 3 * len(pairs)))  # frames per evaluation: ~64 MB of pair differences
    for start in range(0, len(xyz), chunk):
        block = xyz[start:start + chunk]
        d = np.linalg.norm(block[:, pairs[:, 0]] - block[:, pairs[:, 1]], axis=-1)
        dmin = np.minimum(dmin, d.min(axis=0)) if len(d) else dmin
    return SupportConstraint(jnp.asarray(pairs), jnp.asarray(margin * dmin, jnp.float32))


def support_ratio(constraint: SupportConstraint, xyz: jax.Array) -> jax.Array:
    """``min_ij d_ij / d_min_ij`` of every frame ``xyz [..., n_atoms, 3]`` (``>= 1``: inside the support;
    ``inf`` when there are no pairs); jit-able.

    Example:
        >>> c = SupportConstraint(jnp.array([[0, 2]]), jnp.array([0.5]))
        >>> xyz = jnp.array([[[0., 0, 0], [0.3, 0, 0], [0.6, 0, 0]], [[0., 0, 0], [0.2, 0, 0], [0.4, 0, 0]]])
        >>> [round(float(r), 3) for r in support_ratio(c, xyz)]
        [1.2, 0.8]
    """
    lead = xyz.shape[:-2]
    if constraint.pairs.shape[0] == 0:
        return jnp.full(lead, jnp.inf, xyz.dtype)
    flat = xyz.reshape(-1, *xyz.shape[-2:])

    def ratio(x):
        d = jnp.sqrt(jnp.sum((x[..., constraint.pairs[:, 0], :] - x[..., constraint.pairs[:, 1], :]) ** 2, -1))
        return jnp.min(d / constraint.min_distance.reshape((1,) * (d.ndim - 1) + (-1,)), axis=-1)

    rows = flat.shape[0]
    if rows > _ROWS_PER_CHECK:  # in blocks of rows, the last one padded (its padding dropped)
        padded = jnp.pad(flat, ((0, -rows % _ROWS_PER_CHECK), (0, 0), (0, 0)))
        out = jax.lax.map(ratio, padded.reshape(-1, _ROWS_PER_CHECK, *flat.shape[1:])).reshape(-1)[:rows]
    else:
        out = ratio(flat)
    return out.reshape(lead)


def support_arrays(constraint: SupportConstraint | None) -> dict[str, np.ndarray]:
    """The constraint as plain arrays for ``np.savez`` (empty for ``None``)."""
    if constraint is None:
        return {}
    return {"support_pairs": np.asarray(constraint.pairs), "support_min_distance": np.asarray(constraint.min_distance)}


def support_from_arrays(arrays) -> SupportConstraint | None:
    """Inverse of :func:`support_arrays` (``None`` when the arrays hold no constraint)."""
    if "support_pairs" not in arrays:
        return None
    return SupportConstraint(jnp.asarray(arrays["support_pairs"], jnp.int32),
                             jnp.asarray(arrays["support_min_distance"], jnp.float32))
