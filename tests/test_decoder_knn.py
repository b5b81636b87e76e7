"""The retrieval decoder (decoder = "knn"): its neighbour choice against a brute-force NumPy search, and on a molecule
that every decoded frame is a training frame (mdtraj RMSD), that it saves, loads and exports like the others."""


import chex
import jax
import jax.numpy as jnp
import mdtraj as md
import numpy as np
import pytest
import scipy.stats
from conftest import exported_decode

from lss_jax import fit_lss
from lss_jax.config import DecoderConfig, EncoderConfig, LSSConfig, PropagatorConfig
from lss_jax.datasets import load_alanine_dipeptide
from lss_jax.decoder import NeighbourDecoder
from lss_jax.model.io import load_model


@pytest.mark.parametrize("rows", [37, 256])  # one block, and the blocked path (multiples of 128 rows)
def test_neighbour_choice_is_the_ranked_neighbour_of_a_brute_force_search(rows):
    rng = np.random.default_rng(1)
    latents, features = rng.uniform(size=(500, 3)), rng.normal(size=(500, 4))
    c, z = rng.uniform(size=(rows, 3)), rng.normal(size=(rows, 1))
    k = 7
    out = np.asarray(NeighbourDecoder(latents, features, k)(jnp.asarray(z, jnp.float32), jnp.asarray(c, jnp.float32)))
    order = np.argsort(np.linalg.norm(c[:, None] - latents[None], axis=-1), axis=1)[:, :k]
    rank = np.minimum(np.floor(scipy.stats.norm.cdf(z[:, 0]) * k).astype(int), k - 1)
    np.testing.assert_allclose(out, features[order[np.arange(rows), rank]], rtol=1e-6)


def test_knn_decodes_training_frames_and_saves_loads_and_exports(tmp_path):
    data = load_alanine_dipeptide("train", stride=10)
    config = LSSConfig(lag=2, encoder=EncoderConfig(latent_dim=2, epochs=2), propagator=PropagatorConfig(epochs=2),
                       decoder=DecoderConfig(kind="knn"), seed=3)
    model = fit_lss(jax.random.key(3), data, config, progress=False)
    decoded = model.generate(jax.random.key(4), 3, 40, progress=False)
    heavy = data.atom_slice(model.atom_indices)
    nearest = np.array([md.rmsd(heavy, decoded, frame=i).min() for i in range(decoded.n_frames)])
    assert nearest.max() < 1e-3  # nm: each decoded frame is a training frame, superposed

    loaded = load_model(model.save(tmp_path / "m"))
    chex.assert_trees_all_equal(jax.tree_util.tree_leaves(loaded), jax.tree_util.tree_leaves(model))
    u = np.random.default_rng(0).uniform(size=(50, 2)).astype(np.float32)
    np.testing.assert_array_equal(loaded.decode_unit(jax.random.key(5), u), model.decode_unit(jax.random.key(5), u))

    xyz = exported_decode(model, np.resize(u, (64, 2)), tmp_path / "sim.jaxexport")
    expected = model.decode_unit(jax.random.key(5), np.resize(u, (64, 2))[:, None], trajectory_ids=np.arange(64))
    np.testing.assert_allclose(np.asarray(xyz), expected[:, 0], atol=1e-6)
