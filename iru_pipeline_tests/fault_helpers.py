"""Kept so that `from iru_pipeline_tests.fault_helpers import ...` still works: every name now
lives in `iru_pipeline_tests.helpers`; import from there."""

from iru_pipeline_tests.helpers import *  # noqa: F403
from iru_pipeline_tests.helpers import __all__  # noqa: F401
