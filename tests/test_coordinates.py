"""Coordinate maps of the decoder against mdtraj: Z-matrix geometry, NeRF reconstruction, superposition."""

import jax
import jax.numpy as jnp
import mdtraj as md
import numpy as np
import pytest

from lss_jax.datasets import load_alanine_dipeptide
from lss_jax.decoder import (
    build_zmatrix,
    coordinate_map_arrays,
    coordinate_map_from_arrays,
    features_to_xyz,
    fit_cartesian_map,
    fit_internal_map,
    internal_coordinates,
    kabsch_superpose,
    xyz_to_features,
)


@pytest.fixture(scope="module")
def heavy():
    traj = load_alanine_dipeptide("train", stride=25)  # 1000 frames
    return traj.atom_slice(traj.topology.select("not element H"))


def test_zmatrix_uses_the_bond_graph_and_places_every_atom_once(heavy):
    z = build_zmatrix(heavy.topology, heavy.xyz[0])
    assert sorted(z[:, 0]) == list(range(heavy.n_atoms))
    bonds = {frozenset((b.atom1.index, b.atom2.index)) for b in heavy.topology.bonds}
    placed = set()
    for row in z:
        atom, refs = row[0], [r for r in row[1:] if r >= 0]
        assert all(r in placed for r in refs) and len(set(refs)) == len(refs)  # references come first, distinct
        if len(refs):
            assert frozenset((atom, row[1])) in bonds  # every Z-matrix bond is a chemical bond
        placed.add(atom)


def test_internal_coordinates_agree_with_mdtraj(heavy):
    z = build_zmatrix(heavy.topology, heavy.xyz[0])
    bonds, angles, torsions = internal_coordinates(heavy.xyz, z)
    np.testing.assert_allclose(bonds, md.compute_distances(heavy, z[1:, :2]), atol=2e-6)
    np.testing.assert_allclose(angles, md.compute_angles(heavy, z[2:, [0, 1, 2]]), atol=2e-5)
    ref = md.compute_dihedrals(heavy, z[3:, [3, 2, 1, 0]])
    np.testing.assert_allclose(np.angle(np.exp(1j * (torsions - ref))), 0.0, atol=2e-4)


@pytest.mark.parametrize("kind", ["internal", "cartesian"])
def test_features_round_trip_to_the_superposed_frames(heavy, kind):
    cmap = (fit_internal_map(heavy.xyz, heavy.xyz[0], heavy.topology) if kind == "internal"
            else fit_cartesian_map(heavy.xyz, heavy.xyz[0]))
    f = xyz_to_features(cmap, heavy.xyz)
    np.testing.assert_allclose(f.mean(0), 0.0, atol=1e-4)
    back = md.Trajectory(np.array(jax.jit(features_to_xyz)(cmap, jnp.asarray(f))), heavy.topology)
    # same structure (mdtraj RMSD after optimal superposition, float32) and already superposed on the reference
    assert md.rmsd(back, heavy, 0).shape == (heavy.n_frames,)
    per_frame = np.array([md.rmsd(back[i], heavy[i])[0] for i in range(0, heavy.n_frames, 50)])
    assert per_frame.max() < 2e-4
    aligned = heavy.superpose(heavy[0])
    np.testing.assert_allclose(back.xyz, aligned.xyz, atol=5e-4)
    # a saved and reloaded map is the same map
    again = coordinate_map_from_arrays(coordinate_map_arrays(cmap))
    np.testing.assert_array_equal(np.asarray(features_to_xyz(again, jnp.asarray(f[:5]))),
                                  np.asarray(features_to_xyz(cmap, jnp.asarray(f[:5]))))


def test_generated_torsion_pairs_of_any_radius_give_the_same_structure(heavy):
    cmap = fit_internal_map(heavy.xyz, heavy.xyz[0], heavy.topology)
    f = xyz_to_features(cmap, heavy.xyz[:10]).astype(np.float64)
    n = heavy.n_atoms
    nb, na, nt = n - 1, n - 2, n - 3
    raw = f * np.asarray(cmap.std) + np.asarray(cmap.mean)
    raw[:, nb + na:] *= 2.5  # scale every (cos, sin) pair: atan2 does not care
    scaled = (raw - np.asarray(cmap.mean)) / np.asarray(cmap.std)
    np.testing.assert_allclose(np.asarray(features_to_xyz(cmap, jnp.asarray(scaled, jnp.float32))),
                               np.asarray(features_to_xyz(cmap, jnp.asarray(f, jnp.float32))), atol=2e-5)
    assert raw.shape[1] == nb + na + 2 * nt


def test_calpha_chain_without_bonds_is_linked_along_the_sequence():
    top = md.Topology()
    chain = top.add_chain()
    for i in range(6):
        top.add_atom("CA", md.element.carbon, top.add_residue("ALA", chain))
    rng = np.random.default_rng(0)
    xyz = np.cumsum(rng.normal(size=(6, 3)), axis=0) * 0.2  # a random walk; no bonds in the topology
    z = build_zmatrix(top, xyz)
    for row in z[1:]:
        assert abs(row[0] - row[1]) == 1  # bonded to a sequence neighbour


def test_kabsch_matches_mdtraj_superposition(heavy):
    x = jnp.asarray(heavy.xyz[7])
    rotated = np.asarray(jax.vmap(lambda a: kabsch_superpose(a, jnp.asarray(heavy.xyz[0])))(x[None]))[0]
    expected = heavy[7].superpose(heavy[0]).xyz[0]
    np.testing.assert_allclose(rotated, expected, atol=2e-5)


def _random_rotations(rng, n):
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    from scipy.spatial.transform import Rotation

    return Rotation.from_quat(q).as_matrix()


@pytest.mark.parametrize("case", ["noisy", "mirror", "planar", "collinear"])
def test_kabsch_batched_matches_scipy_rotation_fit_and_is_always_proper(heavy, case):
    """Every frame of a batch against SciPy's least-squares rotation (float64, an SVD of its own), on frames rotated
    at random plus noise from 0.001 to 0.3 nm, on mirror images (the best *proper* rotation, never a reflection),
    planar frames and collinear frames (degenerate eigenvalues: any optimal rotation scores the same)."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(3)
    ref = heavy.xyz[0].astype(np.float64)
    n = 400
    noise = np.geomspace(1e-3, 0.3, n)[:, None, None] * rng.normal(size=(n, *ref.shape))
    x = np.einsum("faj,fij->fai", ref + noise, _random_rotations(rng, n)) + rng.normal(size=(n, 1, 3))
    if case == "mirror":
        x[..., 2] *= -1
    elif case == "planar":
        x[..., 2] = 0.0
        ref = ref.copy()
        ref[:, 2] = 0.0
    elif case == "collinear":
        x = np.arange(ref.shape[0])[None, :, None] * rng.normal(size=(n, 1, 3)) * 0.1
    got = np.asarray(kabsch_superpose(jnp.asarray(x, jnp.float32), jnp.asarray(ref, jnp.float32)), np.float64)
    xc, rc = x - x.mean(1, keepdims=True), ref - ref.mean(0)
    rmsd = lambda a: np.sqrt(((a - ref) ** 2).sum(-1).mean(-1))  # noqa: E731
    best = np.array([Rotation.align_vectors(rc, frame)[0].apply(frame) for frame in xc]) + ref.mean(0)
    scale = np.abs(x).max()
    # as good a fit as SciPy's to float32 rounding of coordinates of this size
    assert np.all(rmsd(got) <= rmsd(best) + 1e-5 * scale)
    # a proper rotation of the frame: distances and handedness (signed volumes) kept
    d = lambda a: np.linalg.norm(a[:, :, None] - a[:, None], axis=-1)  # noqa: E731
    np.testing.assert_allclose(d(got), d(x), atol=1e-5 * scale)
    if case in ("noisy", "mirror"):
        vol = lambda a: np.linalg.det(np.stack([a[:, 1] - a[:, 0], a[:, 2] - a[:, 0], a[:, 3] - a[:, 0]], 1))  # noqa: E731
        np.testing.assert_allclose(vol(got), vol(x), atol=1e-5 * scale**3)
        np.testing.assert_allclose(got, best, atol=2e-5 * scale)  # unique optimum: the same coordinates
