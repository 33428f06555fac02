"""The `eventi` command and the app's commands."""
