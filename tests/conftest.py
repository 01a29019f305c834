"""Shared pytest wiring: each fixture module is owned by the area that needs it."""

pytest_plugins = [
    "tests.fixtures.armsim",
    "tests.fixtures.azurite",
    "tests.fixtures.world",
]
