"""The `scalelab` console script: `train` goes to the Hydra app, the rest to the analysis."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        # Hydra parses sys.argv itself, so hand it the rest of the command line untouched.
        from scalelab.platform.train import main as train_main

        sys.argv = ["scalelab train", *argv[1:]]
        return train_main() or 0
    print("usage: scalelab train [HYDRA OVERRIDES...]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
