"""The protocol chosen from the topology (lss_jax.protocols) on the shipped topologies, its overrides, and
`lss-jax train --protocol` (the choice printed and recorded in the model)."""

import mdtraj as md
import pytest

from lss_jax.config import DataConfig, DecoderConfig, EncoderConfig, LSSConfig
from lss_jax.data.featurize import feature_names
from lss_jax.datasets import load_alanine_dipeptide
from lss_jax.protocols import PROTOCOLS, choose_protocol, protocol_config
from lss_jax.systems import trp_cage


@pytest.fixture(scope="module")
def all_atom_trp_cage():
    """The all-atom 1L2Y that the package ships (304 atoms, 154 heavy)."""
    return md.load(str(trp_cage.trp_cage_files()["pdb"])).topology


def test_alanine_dipeptide_takes_the_peptide_protocol_which_is_the_defaults():
    choice = choose_protocol(load_alanine_dipeptide("train", stride=25000).topology)
    assert choice.name == "peptide"
    assert "1 amino acid, 10 heavy atoms: 45 heavy-atom pair distances" in choice.reason
    for lag in (1, 5):
        assert protocol_config("peptide", lag) == LSSConfig(lag=lag)


@pytest.mark.parametrize("topology", [lambda: trp_cage.native_structure().topology,
                                      lambda: md.load(str(trp_cage.trp_cage_files()["ca_pdb"])).topology],
                         ids=["native_structure", "ca_pdb"])
def test_the_shipped_trp_cage_ca_topology_takes_the_ca_protocol(topology):
    choice = choose_protocol(topology())
    assert choice.name == "ca"
    assert choice.reason == "Cα-only topology: 20 atoms, all named CA"


def test_all_atom_trp_cage_takes_the_protein_protocol_with_features_linear_in_the_residues(all_atom_trp_cage):
    choice = choose_protocol(all_atom_trp_cage)
    assert choice.name == "protein"
    assert choice.facts["amino_acids"] == 20 and choice.facts["heavy_atoms"] == 154
    assert "11 781 heavy-atom pair distances" in choice.reason and "Cα features instead: 224" in choice.reason
    protein = len(feature_names(all_atom_trp_cage, protocol_config("protein", 5).feature_spec))
    peptide = len(feature_names(all_atom_trp_cage, protocol_config("peptide", 5).feature_spec))
    assert protein == choice.facts["ca_features"] == 224 < 400
    assert peptide > 10_000


def test_protein_protocol_decodes_the_ca_atoms_with_knn_cross_fitted_and_leaves_m_to_the_gap(all_atom_trp_cage):
    config = protocol_config("protein", 5)
    assert config.data == DataConfig(torsions=("ca",), distances="ca", atom_selection="name CA", encoder_fraction=0.3)
    assert config.decoder.kind == "knn" and config.encoder.latent_dim is None
    assert len(all_atom_trp_cage.select(config.data.atom_selection)) == 20
    assert protocol_config("ca", 5) == config


def test_trp_cage_lss_config_is_the_ca_protocol_with_a_3d_latent_space():
    handmade = LSSConfig(lag=10, data=DataConfig(torsions=("ca",), distances="ca", atom_selection="name CA",
                                                 encoder_fraction=0.3),
                         encoder=EncoderConfig(latent_dim=3), decoder=DecoderConfig(kind="knn"))
    assert trp_cage.lss_config() == handmade
    assert trp_cage.lss_config(encoder={"epochs": 2}).encoder == EncoderConfig(latent_dim=3, epochs=2)


def test_any_config_field_overrides_the_protocol():
    assert protocol_config("protein", 5, {"decoder": {"kind": "flow"}}).decoder.kind == "flow"
    config = protocol_config("protein", 5, {"encoder": {"latent_dim": 2}, "seed": 4, "data": {"distances": "heavy"}})
    assert (config.encoder.latent_dim, config.seed, config.data.distances) == (2, 4, "heavy")
    assert config.data.torsions == ("ca",) and config.data.encoder_fraction == 0.3  # the protocol's other fields kept
    assert protocol_config("peptide", 5, {"lag": 7}).lag == 7


def test_an_unknown_protocol_is_refused_with_the_valid_names():
    with pytest.raises(ValueError, match=r"unknown protocol 'auto'.*choose one of peptide, protein, ca"):
        protocol_config("auto", 5)
    with pytest.raises(ValueError, match=r"did you mean 'protein'"):
        protocol_config("proteins", 5)
    assert list(PROTOCOLS) == ["peptide", "protein", "ca"]


def test_an_unknown_override_is_refused():
    with pytest.raises(ValueError, match="unknown encoder key"):
        protocol_config("protein", 5, {"encoder": {"latent_dims": 2}})
