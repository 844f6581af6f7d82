"""The command line: `tinydrift` (tinydrift.cli.main) and its commands, one module a role."""

from tinydrift.cli.main import main

__all__ = ["main"]
