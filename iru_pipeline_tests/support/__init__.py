"""The implementation of `iru_pipeline_tests.helpers`, by topic. Tests import from `helpers`."""
