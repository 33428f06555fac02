"""The development stack: real server processes (redis-server, PostgreSQL, FerretDB, gunicorn, the PayHero
simulator) on free ports, PayHero's reference payloads and the polling wait, shared by tests/ and bench/.

It imports neither tests nor bench (tests/test_layout.py checks), and is not part of the eventi wheel.
"""
