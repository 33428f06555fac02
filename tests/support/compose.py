"""`docker compose` where installed, else Debian's docker-compose: they read the compose files (no engine needed)."""
import shutil
import subprocess


def compose_command() -> list[str]:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    tool = shutil.which("docker-compose")
    assert tool, "neither `docker compose` nor docker-compose: `make deps` installs Debian's docker-compose"
    return [tool]
