"""All-atom protein input (issue 27, item 5): a short OpenMM implicit-solvent run of Trp-cage from its NMR
structure (1L2Y, all atoms) trains with the protein protocol through the streamed featurization, decodes the Cα
atoms by default and every heavy atom on request, and the heavy-atom round trip reports bond/angle validity and
clashes."""

import pytest

pytest.importorskip("openmm")

import jax  # noqa: E402

from lss_jax import LSS  # noqa: E402
from lss_jax.analysis.molecular import compare_structures, decoder_round_trip  # noqa: E402
from lss_jax.data.featurize import feature_names  # noqa: E402
from lss_jax.data.stream import load_training_data  # noqa: E402
from lss_jax.protocols import choose_protocol, protocol_config  # noqa: E402
from lss_jax.systems.trp_cage import simulate_all_atom  # noqa: E402

N_FRAMES, STEPS_PER_FRAME = 120, 10  # 2.4 ps of 2 fs steps: ~20 s on one contended core
# a moment of training on 2.4 ps: the propagator's timescales and the walls warn, as they should
pytestmark = pytest.mark.filterwarnings("ignore:propagator and SRV timescales:UserWarning",
                                        "ignore:rollouts press against the unit-box walls:UserWarning")
TINY = {"encoder": {"epochs": 1, "latent_dim": 2}, "propagator": {"epochs": 1}}


@pytest.fixture(scope="session")
def trp_cage_all_atom(tmp_path_factory):
    """``(dcd, pdb)`` files of :func:`lss_jax.systems.trp_cage.simulate_all_atom` (Amber14 + GBn2 implicit solvent,
    300 K, 2 fs steps): 120 frames 20 fs apart, one CPU thread."""
    out = tmp_path_factory.mktemp("trp_cage_all_atom")
    traj = simulate_all_atom(N_FRAMES, steps_per_frame=STEPS_PER_FRAME, minimize_iterations=100, threads=1)
    dcd, top = out / "trp_cage.dcd", out / "trp_cage.pdb"
    traj.save_dcd(str(dcd))
    traj[0].save_pdb(str(top))
    return dcd, top


def _fit(dcd, top, overrides=None):
    """The auto protocol's configuration with ``overrides``, streamed in chunks of 50 frames, fitted for a moment."""
    import mdtraj as md

    topology = md.load_topology(str(top))
    choice = choose_protocol(topology)
    config = protocol_config(choice.name, 2, {**TINY, **(overrides or {})})
    data = load_training_data([dcd], top, config, chunk=50)
    return choice, config, data, LSS(config=config).fit(data, progress=False).fetch_model()


def test_all_atom_protein_trains_with_the_protein_protocol_and_decodes_ca(trp_cage_all_atom):
    dcd, top = trp_cage_all_atom
    choice, config, data, model = _fit(dcd, top)
    assert choice.name == "protein"
    assert choice.facts["atoms"] == 304 and choice.facts["heavy_atoms"] == 154 and choice.facts["amino_acids"] == 20
    # the features are the Cα ones (190 distances + 2 x 17 pseudo-torsions), read in three chunks
    assert data.features[0].shape == (N_FRAMES, choice.facts["ca_features"]) == (N_FRAMES, 224)
    names = feature_names(data.topology, config.feature_spec)
    assert len(names) == 224 and not any("dist" in n and "CA" not in n for n in names)
    # Cα decoded by default
    decoded = model.decoded_topology
    assert decoded.n_atoms == 20 and all(a.name == "CA" for a in decoded.atoms)
    assert model.config.decoder.kind == "knn" and model.config.data.encoder_fraction == 0.3


def test_all_atom_protein_decodes_heavy_atoms_on_request(trp_cage_all_atom, tmp_path, capsys):
    """The documented switch, through the command line: ``atom_selection = "not element H"`` under ``[data]``."""
    import mdtraj as md

    from lss_jax.cli import main
    from lss_jax.model.io import load_model

    dcd, top = trp_cage_all_atom
    (tmp_path / "heavy.toml").write_text('[data]\natom_selection = "not element H"\n'
                                         '[encoder]\nepochs = 1\nlatent_dim = 2\n[propagator]\nepochs = 1\n')
    assert main(["train", "--traj", str(dcd), "--top", str(top), "--lag", "2", "--config", str(tmp_path / "heavy.toml"),
                 "--out", str(tmp_path / "model"), "--no-progress"]) == 0
    assert "lss-jax train: protocol protein (20 amino acids, 154 heavy atoms" in capsys.readouterr().out
    model = load_model(tmp_path / "model")
    # the protocol's other choices stay: Cα features, knn, cross-fitting
    assert model.info["protocol"]["name"] == "protein" and model.info["protocol"]["chosen"]
    assert model.config.data.distances == "ca" and model.config.data.torsions == ("ca",)
    assert model.config.decoder.kind == "knn" and model.config.data.encoder_fraction == 0.3
    decoded = model.decoded_topology
    assert decoded.n_atoms == 154 and not any(a.element.symbol == "H" for a in decoded.atoms)
    # the heavy-atom round trip, as report computes it: retrieval returns MD frames, so no bond is off (known answer)
    md_traj = md.load(str(dcd), top=str(top))
    heavy = md_traj.atom_slice(model.atom_indices)
    round_trip = decoder_round_trip(jax.random.key(0), model, md_traj)
    assert round_trip.n_frames == N_FRAMES and round_trip.n_atoms == 154
    out = compare_structures(heavy, round_trip)
    assert out["bonds_off_10pct_fraction"] == {"md": 0.0, "generated": 0.0}
    assert out["clashes"]["generated"]["frames_with_clash"] == 0
    g = out["geometry"]
    assert g["bond_length_mad_relative"] < 0.05 and g["angle_mad_degrees"] < 10.0
    assert abs(g["angle_mad_degrees"] - g["reference_angle_mad_degrees"]) < 1.0  # retrieved frames are MD frames
    assert "free_energy_phi_psi" in out  # heavy atoms carry the backbone torsions


def test_chain_decoder_on_heavy_atoms_is_refused(trp_cage_all_atom):
    dcd, top = trp_cage_all_atom
    config = protocol_config("protein", 2, {"data": {"atom_selection": "not element H"}, "decoder": {"kind": "chain"}})
    with pytest.raises(ValueError, match="one bead per residue.*154 atoms in 20 residues"):
        load_training_data([dcd], top, config)
    # the Cα atoms suit it, and flow on internal coordinates takes the heavy atoms (bonds from the topology)
    load_training_data([dcd], top, protocol_config("protein", 2, {"decoder": {"kind": "chain"}}))
    load_training_data([dcd], top, protocol_config("protein", 2, {"data": {"atom_selection": "not element H"},
                                                                  "decoder": {"kind": "flow"}}))
