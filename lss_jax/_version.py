"""The package version, in a module of its own so that every layer can read it (``lss_jax.__version__``).

Example:
    >>> len(__version__.split(".")) >= 2
    True
"""

__version__ = "0.1.0"
