"""Data: toy potentials and their Brownian dynamics (featurization of MD data comes with the molecular pipeline)."""

from lss_jax.data.four_well import brownian_dynamics, four_well_force, four_well_potential

__all__ = ["brownian_dynamics", "four_well_force", "four_well_potential"]
