"""Root integration tests: real containers through the CLI (see conftest.py)."""
