"""`python -m factory.cli`: the same command as `factory`."""

from factory.cli import main

main()
