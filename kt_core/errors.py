"""The errors a user caused (bad config, module, data) as opposed to our bugs."""

from kt_core.config import ConfigError
from kt_core.data import DataError
from kt_core.modules import ModuleError
from kt_core.search import SearchError

USER_ERRORS = (ConfigError, DataError, ModuleError, SearchError)
