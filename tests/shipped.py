"""The configuration folder the tests read: the project's own ``conf/``, the one the default
settings name."""

from lakehouse.catalog.conf import conf_at
from lakehouse.config.settings import CONF_DIR

SHIPPED = conf_at(CONF_DIR)
