"""Kept so that `from iru_pipeline_tests.leaks import ...` still works: import from
`iru_pipeline_tests.helpers`."""

from iru_pipeline_tests.helpers import *  # noqa: F403
from iru_pipeline_tests.helpers import __all__  # noqa: F401
