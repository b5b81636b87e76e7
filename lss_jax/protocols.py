"""Protocols: the configuration of an LSS chosen from the topology, so that any protein trains without hand-tuning.

A protocol is a named :class:`lss_jax.LSSConfig` for a kind of system (:data:`PROTOCOLS`):

==========  ===========================================  ==========================  ===============  =======  =============
name        chosen for                                   encoder features            decoded atoms    decoder  cross-fitting
==========  ===========================================  ==========================  ===============  =======  =============
``peptide`` small molecules and peptides (the default)   φ, ψ, χ torsions and        heavy atoms      flow     no
                                                         heavy-atom pair distances
``protein`` >= 10 amino acids, or heavy-atom distances   Cα pair distances and Cα    Cα atoms         knn      0.3
            > 10 000 features with >= 4 amino acids      pseudo-torsions
``ca``      Cα-only topologies (every atom named CA)     as ``protein``              Cα atoms (all)   knn      0.3
==========  ===========================================  ==========================  ===============  =======  =============

No protocol fixes the latent dimension: the encoder's implied timescales choose it at their largest gap
(``encoder.latent_dim = None``), at least two dimensions for proteins (``encoder.min_latent_dim = 2``). :func:`choose_protocol` is the rule, :func:`protocol_config` the configuration with
the user's fields on top (any configuration field overrides the protocol's). ``lss-jax train`` applies both
(``--protocol NAME`` overrides the choice) and records the protocol in the model (``model.info["protocol"]``).

The Cα protocol's features grow as the square of the residues (``n_res (n_res - 1) / 2`` distances), not of the
heavy atoms: 224 features for the 20 residues of Trp-cage (1L2Y), against the peptide protocol's 11 929 for its
154 heavy atoms (11 781 of them distances).

This module reads a topology and builds configurations; it imports no network code.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

from lss_jax.config import DataConfig, DecoderConfig, EncoderConfig, LSSConfig, _nested

__all__ = ["PROTOCOLS", "Protocol", "Choice", "choose_protocol", "protocol_config", "topology_facts",
           "MIN_PROTEIN_RESIDUES", "MAX_HEAVY_DISTANCES"]

MIN_PROTEIN_RESIDUES = 10  # amino acids from which a chain is a protein (the Cα protocol)
# heavy-atom pair distances above which the peptide protocol's features are too many for the encoder (> 142 heavy
# atoms); a topology past it with at least MIN_CA_RESIDUES amino acids takes the Cα protocol even if it is shorter
MAX_HEAVY_DISTANCES = 10_000
MIN_CA_RESIDUES = 4  # the fewest Cα atoms that give a Cα pseudo-torsion


def peptide_protocol(lag: int) -> LSSConfig:
    """Small molecules and peptides: lss_jax's defaults, ``LSSConfig(lag)`` (φ, ψ, χ torsions and heavy-atom pair
    distances; the flow decoder on the heavy atoms; encoder and propagator on the same frames).

    Example:
        >>> peptide_protocol(5) == LSSConfig(lag=5)
        True
    """
    return LSSConfig(lag=lag)


def protein_protocol(lag: int) -> LSSConfig:
    """Proteins: Cα pair distances and Cα pseudo-torsions as features (their number grows with the residues squared,
    never with the heavy atoms squared), the decoder on the Cα atoms, cross-fitting, the latent dimension at the
    largest gap of the encoder's implied timescales.

    It is the protocol measured on Trp-cage (:func:`lss_jax.systems.trp_cage.lss_config`, ``docs/trp_cage.md``) but
    for the decoder:

    * cross-fitting (``data.encoder_fraction = 0.3``): the encoder trains on the leading 30 % of every trajectory,
      the propagator on the rest. Fitted on all frames, the SRV's slowest process is slower on its own training
      frames than out of sample, and the propagator reproduces that bias; cross-fitted, the LSS's slowest
      timescale was within 3 % of an independent run's.
    * the retrieval decoder (``decoder.kind = "knn"``): it generates no new structures, but it needs nothing this
      rule cannot know. The generative decoder that folds Trp-cage (its protocol's: ``decoder.kind = "chain"``,
      ``state_features = "contact_map"``) draws each frame's map of the protein's *native* contacts first and needs
      the native structure (``decoder.contact_reference``, a PDB); with the generic maps a topology alone gives, it did
      not pin the fraction of native contacts (``docs/trp_cage.md``). With a native structure, set those fields (and
      ``epochs = 300``, ``temperature = 0.75``, as :data:`lss_jax.systems.trp_cage.DECODER`); the flow decoder on
      internal coordinates (``"flow"``) unfolded Trp-cage (folded fraction 0.36 against MD's 0.63).
    * a latent space of at least two dimensions (``encoder.min_latent_dim = 2``; the dimension is the largest gap
      of the SRV's timescales from there on): on the villin headpiece the gap chose one dimension, in which the
      propagator failed the Chapman-Kolmogorov test and t1 came out 27-50 % short in three seeds; with two or three
      dimensions the test passed and t1 was within 2-14 % (``docs/trp_cage.md``). Trp-cage is unaffected (its
      protocol fixes three).
    * the Cα atoms decoded: ``data.atom_selection = "not element H"`` decodes every heavy atom of an all-atom protein
      instead, with the same features (``knn``, ``flow`` and ``wgan`` take them; ``chain`` is for one bead per
      residue: :func:`lss_jax.data.checks.check_decoded_atoms`).

    Example:
        >>> config = protein_protocol(10)
        >>> config.data.distances, config.data.torsions, config.data.atom_selection, config.data.encoder_fraction
        ('ca', ('ca',), 'name CA', 0.3)
        >>> config.decoder.kind, config.encoder.latent_dim, config.encoder.min_latent_dim
        ('knn', None, 2)
    """
    return LSSConfig(lag=lag, data=DataConfig(torsions=("ca",), distances="ca", atom_selection="name CA",
                                              encoder_fraction=0.3),
                     encoder=EncoderConfig(min_latent_dim=2), decoder=DecoderConfig(kind="knn"))


def ca_protocol(lag: int) -> LSSConfig:
    """Cα-only topologies (a Cα or Gō model): the protein protocol, whose features and decoded atoms are the Cα atoms.

    Example:
        >>> ca_protocol(10) == protein_protocol(10)
        True
    """
    return protein_protocol(lag)


class Protocol(NamedTuple):
    """A named protocol: ``build(lag) -> LSSConfig`` and the one line that says what it is for."""

    name: str
    summary: str
    build: Callable[[int], LSSConfig]


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol("peptide", "small molecules and peptides: torsions and heavy-atom distances, flow decoder on the heavy "
             "atoms (lss_jax's defaults)", peptide_protocol),
    Protocol("protein", "proteins: Cα distances and Cα pseudo-torsions, knn decoder on the Cα atoms, cross-fitting",
             protein_protocol),
    Protocol("ca", "Cα-only topologies: Cα distances and Cα pseudo-torsions, knn decoder, cross-fitting", ca_protocol),
)}


class Choice(NamedTuple):
    """What :func:`choose_protocol` chose: the protocol's ``name``, the ``reason`` in words with its numbers, and the
    ``facts`` of the topology it read (:func:`topology_facts`)."""

    name: str
    reason: str
    facts: dict

    def as_info(self, chosen: bool) -> dict:
        """What a model records (``info["protocol"]``): ``name``, ``reason``, ``chosen`` (true: by the rule, false:
        given by the user).

        Example:
            >>> Choice("peptide", "given", {}).as_info(chosen=False)
            {'name': 'peptide', 'reason': 'given', 'chosen': False}
        """
        return {"name": self.name, "reason": self.reason, "chosen": bool(chosen)}


def _topology(topology):
    return getattr(topology, "topology", topology)  # an mdtraj.Trajectory gives its topology


def topology_facts(topology) -> dict:
    """The numbers :func:`choose_protocol` decides on: ``atoms``, ``residues``, ``amino_acids`` (protein residues
    with a Cα atom: caps such as ACE and NME are not counted), ``heavy_atoms``, ``heavy_distances`` (the heavy-atom
    pair distances of the peptide protocol), ``ca_features`` (the Cα protocol's features: Cα pair distances, sin and
    cos of the Cα pseudo-torsions), ``ca_only`` (every atom is named CA).

    Args:
        topology: an ``mdtraj.Topology`` (or a trajectory, whose topology is read).

    Example:
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> topology_facts(load_alanine_dipeptide("train", stride=25000).topology)
        {'atoms': 22, 'residues': 3, 'amino_acids': 1, 'heavy_atoms': 10, 'heavy_distances': 45, 'ca_features': 0,
         'ca_only': False}
    """
    top = _topology(topology)
    heavy = sum(1 for a in top.atoms if a.element is None or a.element.symbol != "H")
    amino = sum(1 for r in top.residues if r.is_protein and any(a.name == "CA" for a in r.atoms))
    ca = [sum(1 for r in chain.residues for a in r.atoms if a.name == "CA") for chain in top.chains]
    return {"atoms": top.n_atoms, "residues": top.n_residues, "amino_acids": amino, "heavy_atoms": heavy,
            "heavy_distances": heavy * (heavy - 1) // 2,
            # the Cα protocol's features: Cα pair distances, sin and cos of the pseudo-torsions of every chain
            "ca_features": sum(ca) * (sum(ca) - 1) // 2 + sum(2 * max(n - 3, 0) for n in ca),
            "ca_only": top.n_atoms > 0 and all(a.name == "CA" for a in top.atoms)}


def _n(value: int) -> str:
    return f"{value:,}".replace(",", " ")


def choose_protocol(topology) -> Choice:
    """The protocol for a topology, by this rule (first match):

    1. every atom named CA (a Cα or Gō model): ``"ca"``;
    2. at least :data:`MIN_PROTEIN_RESIDUES` (10) amino acids, or more than :data:`MAX_HEAVY_DISTANCES` (10 000)
       heavy-atom pair distances (more than 142 heavy atoms) with at least 4 amino acids: ``"protein"``;
    3. otherwise: ``"peptide"``, lss_jax's defaults.

    The reason gives the numbers (:func:`topology_facts`).

    Args:
        topology: an ``mdtraj.Topology`` (or a trajectory, whose topology is read).

    Example:
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> choice = choose_protocol(load_alanine_dipeptide("train", stride=25000).topology)
        >>> choice.name
        'peptide'
        >>> print(choice.reason)
        1 amino acid, 10 heavy atoms: 45 heavy-atom pair distances; below 10 amino acids and 10 000 distances
        >>> from lss_jax.systems.trp_cage import native_structure
        >>> choose_protocol(native_structure()).reason
        'Cα-only topology: 20 atoms, all named CA'
    """
    facts = topology_facts(topology)
    if facts["ca_only"]:
        return Choice("ca", f"Cα-only topology: {_n(facts['atoms'])} atoms, all named CA", facts)
    amino, heavy, distances = facts["amino_acids"], facts["heavy_atoms"], facts["heavy_distances"]
    counted = (f"{_n(amino)} amino acid{'s' * (amino != 1)}, {_n(heavy)} heavy atoms: "
               f"{_n(distances)} heavy-atom pair distances")
    if amino >= MIN_PROTEIN_RESIDUES or (distances > MAX_HEAVY_DISTANCES and amino >= MIN_CA_RESIDUES):
        return Choice("protein", f"{counted}; Cα features instead: {_n(facts['ca_features'])}", facts)
    return Choice("peptide", f"{counted}; below {MIN_PROTEIN_RESIDUES} amino acids and {_n(MAX_HEAVY_DISTANCES)} "
                             "distances", facts)


def protocol_config(name: str, lag: int, overrides: Mapping[str, Any] | None = None, *,
                    source: str | None = None) -> LSSConfig:
    """The configuration of protocol ``name`` at ``lag`` with ``overrides`` on top: any configuration field overrides
    the protocol's (a mapping as :meth:`lss_jax.LSSConfig.replace` and ``--config`` files take: ``seed``, ``lag``, and
    each section as a mapping of the fields to change, the protocol's other fields kept).

    Args:
        name: a protocol of :data:`PROTOCOLS` (``"auto"`` is not one: ``choose_protocol(topology).name`` is).
        lag: the lag in frames.
        overrides: configuration fields to change.
        source: names where ``overrides`` come from in a warning about flat keys of earlier lss_jax (a file name).

    Example:
        >>> protocol_config("protein", 5, {"decoder": {"kind": "flow"}}).decoder.kind
        'flow'
        >>> protocol_config("protein", 5, {"encoder": {"latent_dim": 2}}).data.distances
        'ca'
        >>> try:
        ...     protocol_config("proteins", 5)
        ... except ValueError as err:
        ...     print(err)  # doctest: +ELLIPSIS
        unknown protocol 'proteins' (did you mean 'protein'?); choose one of peptide, protein, ca, or let ...
    """
    if name not in PROTOCOLS:
        import difflib

        close = difflib.get_close_matches(str(name), list(PROTOCOLS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown protocol {name!r}{hint}; choose one of {', '.join(PROTOCOLS)}, or let "
                         f"choose_protocol(topology) pick it.")
    config = PROTOCOLS[name].build(lag)
    return config._with(_nested(overrides, source=source)) if overrides else config
