"""`python -m eventi`: the `eventi` command."""
from .command import main

main()
