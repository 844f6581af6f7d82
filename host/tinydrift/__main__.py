"""`python -m tinydrift` is the `tinydrift` command."""

from tinydrift.cli import main

main(prog_name="tinydrift")
