"""Molecular and model systems an LSS is validated on: their physics, simulation and shipped data."""
