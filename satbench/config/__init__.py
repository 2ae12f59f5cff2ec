"""Protocols and settings as data: typed settings, protocol files, strict YAML, command-line argument types."""
