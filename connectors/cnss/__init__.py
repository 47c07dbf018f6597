"""The CNSS exchange profile: ``PROFILE`` (layouts, namespaces, schemas of version 1.0)."""

from connectors.cnss.profile import PROFILE

__all__ = ["PROFILE"]
