"""Moved to ground/settings.py (the ground floor every room may import); this name stays while
files being edited elsewhere still import it (docs/architecture.md, "Shims")."""

from ground.settings import *  # noqa: F403
from ground.settings import (  # the names star-import leaves out or mypy must see
    DEFAULT_HOME,
    HOME_FOLDERS,
    SETTINGS_FILE,
    AlertSettings,
    HousekeepingSettings,
    PartnerSettings,
    Settings,
    SftpEndpoint,
    apply_prefect_environment,
    load_settings,
    prefect_environment,
    resolve_home,
)

__all__ = [
    "DEFAULT_HOME",
    "HOME_FOLDERS",
    "SETTINGS_FILE",
    "AlertSettings",
    "HousekeepingSettings",
    "PartnerSettings",
    "Settings",
    "SftpEndpoint",
    "apply_prefect_environment",
    "load_settings",
    "prefect_environment",
    "resolve_home",
]
