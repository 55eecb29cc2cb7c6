"""`python -m orchestrator.cli`: the same as the `orchestrator` console script (child processes use it)."""

from orchestrator.cli import main

main()
