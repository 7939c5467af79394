"""Makes the repository root importable for every test, and registers the `data` marker."""

import os

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "data: needs the real datasets; runs when DLLAB_DATA_DIR points at them")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("DLLAB_DATA_DIR"):
        return
    skip = pytest.mark.skip(reason="DLLAB_DATA_DIR is not set: the real datasets are not available")
    for item in items:
        if "data" in item.keywords:
            item.add_marker(skip)
