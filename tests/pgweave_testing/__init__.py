"""The test suite's own toolkit: fixtures (loaded as pytest plugins by tests/conftest.py) and
helpers that tests import by name (``from pgweave_testing.helpers import role_dsn``)."""
