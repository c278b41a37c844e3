"""Shared fixtures live in tests/fixtures/*; listed here so every test module can use them."""

pytest_plugins = [
    "tests.fixtures.model",
    "tests.fixtures.broker",
    "tests.fixtures.store",
    "tests.fixtures.worker",
]
