"""The protocol chosen from the topology (lss_jax.protocols) on the shipped topologies, its overrides, and
`lss-jax train --protocol` (the choice printed and recorded in the model)."""

import dataclasses

import mdtraj as md
import pytest
from conftest import bondless_topology

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


def test_trp_cage_lss_config_is_the_ca_protocol_with_a_3d_latent_space_and_the_chain_decoder():
    retrieval = LSSConfig(lag=10, data=DataConfig(torsions=("ca",), distances="ca", atom_selection="name CA",
                                                  encoder_fraction=0.3),
                          encoder=EncoderConfig(latent_dim=3, min_latent_dim=2), decoder=DecoderConfig(kind="knn"))
    native = str(trp_cage.trp_cage_files()["pdb"])
    chain = DecoderConfig(kind="chain", state_features="contact_map", contact_reference=native, epochs=300,
                          temperature=0.75)
    assert trp_cage.lss_config() == retrieval.replace(decoder=chain)
    assert trp_cage.lss_config(encoder={"epochs": 2}).encoder == EncoderConfig(latent_dim=3, min_latent_dim=2, epochs=2)
    # another kind starts from its own defaults (the chain's contact maps would be refused by it), the same kind from
    # the protocol's
    assert trp_cage.lss_config(decoder={"kind": "knn"}) == retrieval
    assert trp_cage.lss_config(decoder={"kind": "flow", "epochs": 5}).decoder == DecoderConfig(epochs=5)
    assert trp_cage.lss_config(decoder={"epochs": 5}).decoder == dataclasses.replace(chain, epochs=5)
    assert trp_cage.lss_config(decoder={"state_features": "distances"}).decoder == dataclasses.replace(
        chain, state_features="distances", contact_reference="")  # the native map only for contact-map states


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


# ---------------------------------------------------------------- lss-jax train --protocol
TINY_TOML = "[encoder]\nepochs = 2\n[propagator]\nepochs = 2\n"


@pytest.fixture(scope="module")
def trp_cage_files_in_tmp(tmp_path_factory):
    """300 frames of the shipped Trp-cage run as .xtc with its Cα topology PDB, and a --config of tiny epochs."""
    where = tmp_path_factory.mktemp("trp")
    traj = trp_cage.load_trp_cage("train", stride=90)[:300]
    traj.save_xtc(str(where / "md.xtc"))
    (where / "tiny.toml").write_text(TINY_TOML)
    return where


def test_train_chooses_prints_and_records_the_protocol(trp_cage_files_in_tmp, capsys):
    from lss_jax.cli import main
    from lss_jax.model.io import load_model

    where = trp_cage_files_in_tmp
    assert main(["train", "--traj", str(where / "md.xtc"), "--top", str(trp_cage.trp_cage_files()["ca_pdb"]),
                 "--lag", "2", "--config", str(where / "tiny.toml"), "--out", str(where / "model"),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    reason = "Cα-only topology: 20 atoms, all named CA"
    assert f"lss-jax train: protocol ca ({reason}); --protocol NAME to override" in out
    assert f"protocol            ca (chosen from the topology: {reason})" in out
    model = load_model(where / "model")
    assert model.info["protocol"] == {"name": "ca", "reason": reason, "chosen": True}
    # the protocol's fields, with --config's on top
    assert model.config.data.distances == "ca" and model.config.decoder.kind == "knn"
    assert model.config.encoder.epochs == 2 and model.config.data.encoder_fraction == 0.3


def test_train_refuses_an_unknown_protocol(trp_cage_files_in_tmp, capsys):
    from lss_jax.cli import main

    where = trp_cage_files_in_tmp
    assert main(["train", "--traj", str(where / "md.xtc"), "--top", str(trp_cage.trp_cage_files()["ca_pdb"]),
                 "--lag", "2", "--protocol", "bogus", "--out", str(where / "never")]) == 2
    err = capsys.readouterr().err
    assert "argument --protocol: invalid choice: 'bogus'" in err and "'auto', 'peptide', 'protein', 'ca'" in err
    (where / "bogus.toml").write_text('protocol = "bogus"\n')  # a --config default escapes argparse's choices
    assert main(["train", "--traj", str(where / "md.xtc"), "--top", str(trp_cage.trp_cage_files()["ca_pdb"]),
                 "--lag", "2", "--config", str(where / "bogus.toml"), "--out", str(where / "never")]) == 1
    assert "protocol must be auto or one of peptide, protein, ca, got 'bogus'" in capsys.readouterr().err
    assert not (where / "never").exists()


def test_a_given_protocol_says_what_the_topology_would_take(trp_cage_files_in_tmp, capsys):
    from lss_jax.cli.commands import _protocol

    ca_pdb = trp_cage.trp_cage_files()["ca_pdb"]
    choice, chosen = _protocol("peptide", [trp_cage_files_in_tmp / "md.xtc"], ca_pdb)
    assert (choice.name, chosen) == ("peptide", False)
    assert choice.reason.startswith("given with --protocol: small molecules and peptides")
    assert choice.reason.endswith("; the topology's would be ca (Cα-only topology: 20 atoms, all named CA)")
    assert f"lss-jax train: protocol peptide ({choice.reason})" in capsys.readouterr().out
    choice, _ = _protocol("ca", [trp_cage_files_in_tmp / "md.xtc"], ca_pdb)
    assert "would be" not in choice.reason


def test_train_chooses_the_protein_protocol_for_the_all_atom_pdb(capsys):
    from lss_jax.cli.commands import _protocol

    choice, chosen = _protocol("auto", [trp_cage.trp_cage_files()["pdb"]], None)
    assert (choice.name, chosen) == ("protein", True)
    assert capsys.readouterr().out == ("lss-jax train: protocol protein (20 amino acids, 154 heavy atoms: 11 781 "
                                       "heavy-atom pair distances; Cα features instead: 224); --protocol NAME to "
                                       "override\n")


def test_decoded_heavy_atoms_of_a_protein_per_decoder_kind(all_atom_trp_cage):
    """knn and flow take the heavy atoms of all-atom Trp-cage (flow's Z-matrix from the PDB's bonds); chain, one bead
    per residue, refuses them; internal coordinates refuse a topology without bonds (cartesian ones take it)."""
    from lss_jax.data.checks import check_decoded_atoms

    heavy, ca = all_atom_trp_cage.select("not element H"), all_atom_trp_cage.select("name CA")
    config = lambda **decoder: protocol_config("protein", 5, {"decoder": decoder})  # noqa: E731
    for kind in ("knn", "flow", "wgan"):
        check_decoded_atoms(all_atom_trp_cage, heavy, config(kind=kind))
    check_decoded_atoms(all_atom_trp_cage, ca, config(kind="chain"))
    with pytest.raises(ValueError, match="one bead per residue.*154 atoms in 20 residues"):
        check_decoded_atoms(all_atom_trp_cage, heavy, config(kind="chain"))
    bondless = bondless_topology(all_atom_trp_cage)  # the same atoms, no bond (a format that carries none)
    with pytest.raises(ValueError, match="no bond among the 154 decoded atoms"):
        check_decoded_atoms(bondless, heavy, config(kind="flow"))
    check_decoded_atoms(bondless, heavy, config(kind="flow", coordinates="cartesian"))
    check_decoded_atoms(bondless, heavy, config(kind="knn"))
