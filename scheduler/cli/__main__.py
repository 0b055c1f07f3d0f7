"""`python -m scheduler.cli`: the same entry point as the `seqq` console script."""

from scheduler.cli import main

main()
