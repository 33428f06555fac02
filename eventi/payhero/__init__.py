"""PayHero's three roles: our client of its API, its callbacks to us, and a local simulator of it."""
