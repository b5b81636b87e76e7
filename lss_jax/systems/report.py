"""Which system's own observables the validation report adds: the hook for a topology.

A system with observables of its own (the folding of a shipped Gō-model benchmark,
:class:`lss_jax.systems.folding.FoldingSystem`) provides a function with the signature of ``system_metrics`` of
:func:`lss_jax.analysis.molecular.run_validation`; :func:`report_metrics_for` returns it for that system's topology.
The caller (``lss-jax report`` and ``demo``) chooses the hook here, so the analysis never recognizes a system itself.
"""

from __future__ import annotations

__all__ = ["folding_systems", "folding_system_for", "report_metrics_for", "native_contacts_for"]


def folding_systems() -> dict:
    """The shipped folding benchmarks by name: ``{"trp-cage": ..., "villin": ...}``
    (:class:`lss_jax.systems.folding.FoldingSystem`).

    Example:
        >>> sorted(folding_systems())
        ['trp-cage', 'villin']
    """
    from lss_jax.systems import trp_cage, villin

    return {system.name: system for system in (trp_cage.SYSTEM, villin.SYSTEM)}


def folding_system_for(topology):
    """The shipped folding benchmark whose Cα model this topology is, or ``None``.

    Example:
        >>> from lss_jax.systems import villin
        >>> folding_system_for(villin.SYSTEM.native_structure().topology).name
        'villin'
    """
    return next((s for s in folding_systems().values() if s.matches(topology)), None)


def report_metrics_for(topology):
    """The validation report's hook for the system whose (decoded) topology this is, or ``None``.

    The shipped folding benchmarks have one (:meth:`lss_jax.systems.folding.FoldingSystem.report_metrics`: folding).

    Example:
        >>> from lss_jax.systems import trp_cage
        >>> report_metrics_for(trp_cage.native_structure().topology) == trp_cage.SYSTEM.report_metrics
        True
    """
    system = folding_system_for(topology)
    return None if system is None else system.report_metrics


def native_contacts_for(topology):
    """Q, the fraction of native contacts, of frames ``[n, n_atoms, 3]`` of this (decoded) topology, or ``None``: the
    report's decoder diagnostic compares Q's conditional distributions when a system defines it
    (:func:`lss_jax.analysis.conditional.conditional_fidelity`). The shipped folding benchmarks do
    (:meth:`lss_jax.systems.folding.FoldingSystem.fraction_native_contacts`).

    Example:
        >>> from lss_jax.systems import trp_cage
        >>> q = native_contacts_for(trp_cage.native_structure().topology)
        >>> q(trp_cage.native_structure().xyz).tolist()
        [1.0]
    """
    system = folding_system_for(topology)
    return None if system is None else system.fraction_native_contacts
