import contextlib
import os

import jax
import numpy as np
import pytest
from hypothesis import settings

os.environ.setdefault("LSS_JAX_NO_PROGRESS", "1")
# Property tests draw the same examples on every run and machine (fixed seeds, as every other test here); no example
# database, so a run never depends on what an earlier run found.
settings.register_profile("lss_jax", derandomize=True, database=None)
settings.load_profile("lss_jax")
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    return jax.random.key(0)


class CompileCounter:
    """Counts XLA backend compilations while active (jax.monitoring events)."""

    def __init__(self):
        self.count = 0
        self.active = False

    def __call__(self, name, duration, **kwargs):
        if self.active and name == "/jax/core/compile/backend_compile_duration":
            self.count += 1

    @contextlib.contextmanager
    def watch(self):
        self.count, self.active = 0, True
        try:
            yield self
        finally:
            self.active = False


_COUNTER = CompileCounter()
jax.monitoring.register_event_duration_secs_listener(_COUNTER)


@pytest.fixture
def compile_counter():
    return _COUNTER


@pytest.fixture(scope="session")
def tiny_alanine_model():
    """The smallest trained model of the tests, trained once per session: alanine dipeptide (2500 training frames
    20 ps apart), a 2-D latent space, 2 epochs of encoder and propagator, 20 decoder iterations. ``(model, data)``."""
    from lss_jax import fit_lss
    from lss_jax.config import DecoderConfig, EncoderConfig, LSSConfig, PropagatorConfig
    from lss_jax.datasets import load_alanine_dipeptide

    data = load_alanine_dipeptide("train", stride=10)
    config = LSSConfig(lag=2, encoder=EncoderConfig(latent_dim=2, epochs=2), propagator=PropagatorConfig(epochs=2),
                       decoder=DecoderConfig(iterations=20), seed=3)
    return fit_lss(jax.random.key(3), data, config, progress=False), data


def exported_decode(model, u, path, seed: int = 5):
    """Decode the 64 latent points ``u [64, m]`` (trajectory ids 0..63) through the serialized decoder that
    ``lss_jax.generation.export.export_simulator`` writes to ``path``: what a user of the exported file gets."""
    import json

    import jax.numpy as jnp
    import numpy as np

    from lss_jax.generation.export import export_simulator

    sim = np.load(export_simulator(model, path, decode_block=64))
    decode = jax.export.deserialize(bytearray(sim["decode"].tobytes()))
    meta = json.loads(str(sim["meta"]))
    leaves = [jnp.asarray(sim[f"decoder_{i}"]) for i in range(meta["n_decoder_leaves"])]
    rows = jnp.arange(64, dtype=jnp.int32)
    xyz, _ = decode.call(jax.random.key_data(jax.random.key(seed)), leaves, jnp.asarray(u), rows,
                         jnp.zeros(64, jnp.int32), jnp.zeros(64, jnp.int32))
    return np.asarray(xyz)


def bondless_topology(topology):
    """The same atoms, residues and chains as ``topology`` (``mdtraj.Topology``), without bonds: what decoded
    coordinates or a format without bonds carry."""
    import mdtraj as md

    top = md.Topology()
    for chain in topology.chains:
        new_chain = top.add_chain()
        for residue in chain.residues:
            new_residue = top.add_residue(residue.name, new_chain, residue.resSeq)
            for atom in residue.atoms:
                top.add_atom(atom.name, atom.element, new_residue)
    assert top.n_bonds == 0
    return top


def ref_dihedral(p):
    """Dihedral of ``[..., 4, 3]`` points, Blondel & Karplus atan2 form (IUPAC sign); float64 NumPy reference of the
    Gō-model tests, written independently of lss_jax."""
    b0, b1, b2 = p[..., 1, :] - p[..., 0, :], p[..., 2, :] - p[..., 1, :], p[..., 3, :] - p[..., 2, :]
    n1, n2 = np.cross(b0, b1), np.cross(b1, b2)
    y = np.linalg.norm(b1, axis=-1) * np.sum(b0 * n2, axis=-1)
    return np.arctan2(y, np.sum(n1 * n2, axis=-1))


def ref_angle(p):
    """Angle at the middle of ``[..., 3, 3]`` points (float64 NumPy reference)."""
    u, v = p[..., 0, :] - p[..., 1, :], p[..., 2, :] - p[..., 1, :]
    return np.arccos(np.sum(u * v, -1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1))


def openmm_energy_forces(context, xyz, groups=-1):
    """Potential energy (kJ/mol) and forces (kJ/mol/nm) of an OpenMM ``context`` at positions ``xyz`` (nm)."""
    import openmm

    context.setPositions(np.asarray(xyz, np.float64))
    state = context.getState(getEnergy=True, getForces=True, groups=groups)
    return (state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole),
            state.getForces(asNumpy=True).value_in_unit(openmm.unit.kilojoule_per_mole / openmm.unit.nanometer))
