"""Structured config schemas (Hydra ConfigStore) and validation before any work starts."""

from robolearn.config.schema import register_schemas

__all__ = ["register_schemas"]
