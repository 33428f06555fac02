"""MongoDB and Redis: one module per collection or key family; the only code that talks to the store."""
