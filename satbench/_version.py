"""The package version, in one place (read by ``satbench.__version__``, records and ``satbench --version``)."""

__version__ = "0.2.0"
