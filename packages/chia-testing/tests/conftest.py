"""chia-testing's own tests: the plugin (loaded through its entry point) provides ``tagged``; ``pytester`` runs pytest inside tests."""

pytest_plugins = ["pytester"]
