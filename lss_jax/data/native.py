"""A protein's native contacts from its structure: the contacts Q counts and the contact-map decoder keeps.

Best, Hummer & Eaton's definition: residues ``i``, ``j`` at least ``min_separation`` apart along the chain with heavy
atoms within ``contact_cutoff`` (0.45 nm) in the native structure (for a structure with Calpha atoms only, Calpha
atoms within ``ca_contact_cutoff``); a contact is formed in a frame when its Calpha distance is below
:data:`Q_TOLERANCE` times its native Calpha distance sigma_ij. :func:`lss_jax.systems.go.go_model` builds its
energy function on these contacts; :mod:`lss_jax.decoder.contacts` draws them as contact-map states.

References:
    R. B. Best, G. Hummer, W. A. Eaton, "Native contacts determine protein folding mechanisms in atomistic
    simulations", PNAS 110, 17874 (2013).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = ["CA_CONTACT_CUTOFF", "CONTACT_CUTOFF", "MAX_CA_CA", "MIN_SEPARATION", "NativeChain", "NativeContacts",
           "Q_TOLERANCE", "native_chain"]

CONTACT_CUTOFF = 0.45  # nm, heavy atoms of the all-atom native structure
CA_CONTACT_CUTOFF = 0.8  # nm, Cα atoms, for structures with Cα atoms only
MIN_SEPARATION = 4  # |i - j| of non-bonded pairs
MAX_CA_CA = 0.43  # nm: consecutive Cα further apart than this are a chain break (trans 0.38, cis 0.29 nm)
Q_TOLERANCE = 1.2  # a native contact is formed when r < 1.2 sigma


class NativeContacts(NamedTuple):
    """Native contacts of a protein chain.

    Attributes:
        pairs: ``[n_contacts, 2]`` residue (= bead) indices, i < j.
        distances: ``[n_contacts]`` native Cα–Cα distances σ_ij in nm (float64).
    """

    pairs: np.ndarray
    distances: np.ndarray


class NativeChain(NamedTuple):
    """One protein chain of a native structure: ``ca_xyz [n, 3]`` (nm, float64), ``residues`` (mdtraj residues, in
    chain order) and its :class:`NativeContacts`."""

    ca_xyz: np.ndarray
    residues: tuple
    contacts: NativeContacts


def _load_structure(structure, model: int):
    import mdtraj as md

    if isinstance(structure, md.Trajectory):
        traj, name = structure, "the trajectory"
    else:
        path = Path(structure)
        if not path.is_file():
            raise FileNotFoundError(f"no structure file {path}; give a PDB (or any file mdtraj reads) or an "
                                    "mdtraj.Trajectory.")
        traj, name = md.load(str(path)), str(path)
    if int(model) != model or not -traj.n_frames <= model < traj.n_frames:
        raise ValueError(f"model must be a frame index of {name}, which has {traj.n_frames} model(s); got {model}.")
    return traj, name


def _select_chain(top, chain, name):
    protein = [c for c in top.chains if any(r.is_protein for r in c.residues)]
    if not protein:
        raise ValueError(f"{name} has no protein residues (standard amino-acid names); native contacts need a protein "
                         "chain.")
    if chain is None:
        return protein[0]
    if isinstance(chain, (int, np.integer)):
        matches = [c for c in protein if c.index == chain]
    else:
        matches = [c for c in protein if getattr(c, "chain_id", None) == chain]
    if not matches:
        ids = [(c.index, getattr(c, "chain_id", None)) for c in protein]
        raise ValueError(f"no protein chain {chain!r} in {name}; its protein chains (index, id) are {ids}.")
    return matches[0]


def native_chain(structure, *, chain: int | str | None = None, model: int = 0,
                 contact_cutoff: float = CONTACT_CUTOFF, ca_contact_cutoff: float = CA_CONTACT_CUTOFF,
                 min_separation: int = MIN_SEPARATION) -> NativeChain:
    """The Cα atoms and native contacts of one protein chain of a structure.

    Args:
        structure: path of a PDB (or any file ``mdtraj.load`` reads on its own), or an ``mdtraj.Trajectory``;
            all-atom or Cα-only.
        chain: chain index (``int``) or chain ID (``str``, e.g. ``"A"``); default the first chain with protein.
        model: frame of the structure (an NMR file's models are frames).
        contact_cutoff: heavy-atom distance of a native contact, nm.
        ca_contact_cutoff: Cα distance of a native contact for Cα-only structures, nm.
        min_separation: smallest |i − j| of a native contact.

    Raises:
        ValueError: no protein residues, a residue without a CA atom, fewer than 4 residues, or a chain break
            (consecutive Cα more than 0.43 nm apart: missing residues).

    Example:
        >>> from lss_jax.systems.trp_cage import trp_cage_files
        >>> native = native_chain(trp_cage_files()["pdb"])
        >>> len(native.residues), native.contacts.pairs[:3].tolist(), round(float(native.contacts.distances[0]), 3)
        (20, [[0, 4], [1, 5], [1, 18]], 0.632)
    """
    if not (contact_cutoff > 0 and ca_contact_cutoff > 0) or int(min_separation) != min_separation or min_separation < 1:
        raise ValueError(f"need contact_cutoff > 0, ca_contact_cutoff > 0 and an integer min_separation >= 1, got "
                         f"{contact_cutoff}, {ca_contact_cutoff} and {min_separation}.")
    traj, name = _load_structure(structure, model)
    residues = [r for r in _select_chain(traj.topology, chain, name).residues if r.is_protein]
    ca = []
    for residue in residues:
        atoms = [a.index for a in residue.atoms if a.name == "CA"]
        if not atoms:
            raise ValueError(f"residue {residue} (number {residue.resSeq}) of {name} has no CA atom; every residue "
                             "needs one (repair the structure, or cut the chain to the residues that have it).")
        ca.append(atoms[0])
    n = len(residues)
    if n < 4:
        raise ValueError(f"a protein chain needs at least 4 residues (one torsion); the chain of {name} has {n}.")
    xyz = traj.xyz[model].astype(np.float64)
    ca_xyz = xyz[ca]
    gaps = np.linalg.norm(ca_xyz[1:] - ca_xyz[:-1], axis=-1)
    if np.any(gaps > MAX_CA_CA):
        breaks = ", ".join(f"{residues[i]}–{residues[i + 1]} ({gaps[i]:.2f} nm)" for i in np.flatnonzero(gaps > MAX_CA_CA))
        raise ValueError(f"chain break in {name}: consecutive Cα more than {MAX_CA_CA} nm apart at {breaks}; "
                         "missing residues must be modelled first, or choose a fragment without gaps.")

    ca_only = all(r.n_atoms == 1 for r in residues)
    heavy = [[a.index for a in r.atoms if getattr(a.element, "symbol", None) != "H"] for r in residues]
    pairs, distances = [], []
    for i in range(n):
        for j in range(i + int(min_separation), n):
            if ca_only:
                formed = np.linalg.norm(ca_xyz[i] - ca_xyz[j]) < ca_contact_cutoff
            else:
                d = np.linalg.norm(xyz[heavy[i]][:, None] - xyz[heavy[j]][None], axis=-1)
                formed = d.min() < contact_cutoff
            if formed:
                pairs.append((i, j))
                distances.append(np.linalg.norm(ca_xyz[i] - ca_xyz[j]))
    contacts = NativeContacts(np.asarray(pairs, np.int64).reshape(-1, 2), np.asarray(distances, np.float64))
    return NativeChain(ca_xyz, tuple(residues), contacts)
