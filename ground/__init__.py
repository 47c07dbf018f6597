"""The ground floor: what every room of the platform may import (``schemas``, ``connectors``,
``warehouse``, ``tasks``, ``flows``, ``massar``); it imports nothing of the project itself."""
