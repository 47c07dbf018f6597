"""The CMR exchange profile: ``PROFILE`` (layouts, namespaces, schemas of version 1.0)."""

from connectors.cmr.profile import PROFILE

__all__ = ["PROFILE"]
