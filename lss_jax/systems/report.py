"""Which system's own observables the validation report adds: the hook for a topology.

A system with observables of its own (folding of the Trp-cage model) provides a function with the signature of
``system_metrics`` of :func:`lss_jax.analysis.molecular.run_validation`; :func:`report_metrics_for` returns it for
that system's topology. The caller (``lss-jax report`` and ``demo``) chooses the hook here, so the analysis never
recognizes a system itself.
"""

from __future__ import annotations

__all__ = ["report_metrics_for", "native_contacts_for"]


def report_metrics_for(topology):
    """The validation report's hook for the system whose (decoded) topology this is, or ``None``.

    Only the Trp-cage Cα model has one (:func:`lss_jax.systems.trp_cage.report_metrics`: folding).

    Example:
        >>> from lss_jax.systems import trp_cage
        >>> report_metrics_for(trp_cage.native_structure().topology) is trp_cage.report_metrics
        True
    """
    from lss_jax.systems import trp_cage

    return trp_cage.report_metrics if trp_cage.is_trp_cage(topology) else None


def native_contacts_for(topology):
    """Q, the fraction of native contacts, of frames ``[n, n_atoms, 3]`` of this (decoded) topology, or ``None``: the
    report's decoder diagnostic compares Q's conditional distributions when a system defines it
    (:func:`lss_jax.analysis.conditional.conditional_fidelity`). Only the Trp-cage Cα model does
    (:func:`lss_jax.systems.trp_cage.fraction_native_contacts`).

    Example:
        >>> from lss_jax.systems import trp_cage
        >>> q = native_contacts_for(trp_cage.native_structure().topology)
        >>> q(trp_cage.native_structure().xyz).tolist()
        [1.0]
    """
    from lss_jax.systems import trp_cage

    return trp_cage.fraction_native_contacts if trp_cage.is_trp_cage(topology) else None
