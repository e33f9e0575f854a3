"""pgweave: in-database AI for PostgreSQL."""

__version__ = "0.1.0"
