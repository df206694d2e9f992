"""Tests of scalelab.platform: config, model, training, resume, cluster launchers, W&B runs."""

if __name__ == "platform":
    # Imported as the top-level `platform`: tests/ itself is on sys.path (`python -m pytest` or
    # `python -c` started inside tests/), and this package shadows the standard library's
    # platform module, which uuid, pytest and torch import. Say so, instead of failing later on
    # a missing `platform.system`.
    raise ImportError("tests/platform shadows the standard library's platform module: tests/ is on "
                      "sys.path. Run pytest from the repository root (as `make test` does).")
