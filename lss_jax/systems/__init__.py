"""The systems an LSS is validated on: their physics, simulation and shipped data.

* :mod:`lss_jax.systems.four_well`: the paper's 1-D four-well potential and Brownian dynamics (exact
  reference: :func:`lss_jax.analysis.smoluchowski_reference`);
* :mod:`lss_jax.systems.alanine_dipeptide`: shipped OpenMM trajectories (training, independent) and their
  re-simulation;
* :mod:`lss_jax.systems.trp_cage`: a Cα structure-based (Gō) model of the Trp-cage miniprotein built from its
  NMR structure, its OpenMM simulation, folding analysis (Q) and shipped trajectories;
* :mod:`lss_jax.systems.go`: the same Gō model built from any protein structure (:func:`go_model`), its OpenMM
  system and simulation (:func:`openmm_system`, :func:`simulate_go`), a float64 NumPy energy (:func:`go_energy`)
  and a folding-temperature scan (:func:`folding_temperature_scan`): a folding benchmark with known ground truth;
* :mod:`lss_jax.systems.md`: short OpenMM runs from given structures (the ``md`` extra), for data generation
  and adaptive sampling.

A system with observables of its own gives the validation report a hook
(:func:`lss_jax.systems.report.report_metrics_for` finds it from a topology). :mod:`lss_jax.datasets` is the
index of the built-in data. Nothing is downloaded: trajectories ship with
the package, and re-simulation (the ``md`` extra, OpenMM) writes to :func:`cache_dir`.
"""

from __future__ import annotations

import os
from pathlib import Path

from lss_jax.systems.go import (
    GoEnergy,
    GoModel,
    TemperatureScan,
    folding_temperature_scan,
    go_energy,
    go_model,
    openmm_system,
    simulate_go,
)

__all__ = ["GoEnergy", "GoModel", "TemperatureScan", "cache_dir", "folding_temperature_scan", "go_energy", "go_model",
           "openmm_system", "simulate_go"]


def cache_dir() -> Path:
    """Local cache for re-simulated data: ``$LSS_JAX_CACHE`` or ``~/.cache/lss_jax``.

    Example:
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"LSS_JAX_CACHE": "/tmp/lss-cache"}):
        ...     print(cache_dir())
        /tmp/lss-cache
    """
    return Path(os.environ.get("LSS_JAX_CACHE", Path.home() / ".cache" / "lss_jax"))
