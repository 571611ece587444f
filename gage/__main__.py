"""Entry point for the `gage` command."""

import sys


def main() -> None:
    from gage._internal.cli import main as cli

    sys.exit(cli.main())


if __name__ == "__main__":
    main()
