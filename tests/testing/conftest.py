"""The test tools are tested from the outside too: pytester runs user test files."""

pytest_plugins = ["pytester"]
