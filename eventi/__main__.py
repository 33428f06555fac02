"""`python -m eventi`: the `eventi` command."""
from .cli.main import main

main()
