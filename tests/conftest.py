"""Shared pytest setup: offline hubs, offline wandb, one torch thread per test process."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_addoption(parser):
    parser.addoption("--run-long", action="store_true", help="also run tests marked long (whole runs on a real model)")


def pytest_collection_modifyitems(config, items):
    """Tests marked `long` stay out of `make test` (the suite's time budget); `pytest --run-long` runs them."""
    if config.getoption("--run-long"):
        return
    skip = pytest.mark.skip(reason="long (a whole run on a real model): run with pytest --run-long")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)
