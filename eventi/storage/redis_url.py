"""EVENTI_REDIS_URL: one Redis server, a Redis Cluster or a Sentinel-monitored master (standard library only).

- ``redis://``, ``rediss://`` (TLS), ``unix://``: one server, as redis-py's ``from_url`` reads them;
- ``redis+cluster://[user:password@]host:port,host:port/``: a Redis Cluster (7 or later), found from any
  of the seed nodes listed; ``rediss+cluster://`` for TLS;
- ``redis+sentinel://[user:password@]host:port,host:port/<master-name>[/<db>]``: the master the
  sentinels listed name, followed across failovers; ``rediss+sentinel://`` reaches the sentinels and
  the data nodes over TLS. The user and password are the data nodes', not the sentinels'.

parse() checks and splits the URL; eventi/storage/redis_clients.py builds the clients from what it returns.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

STANDALONE_SCHEMES = ("redis", "rediss", "unix")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
DEFAULT_PORT = {"cluster": 6379, "sentinel": 26379}
_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^\s:\[\]/,]+))(?::(?P<port>[0-9]{1,5}))?$")
_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


class RedisUrlError(ValueError):
    """EVENTI_REDIS_URL is malformed; the message says how."""


@dataclass(frozen=True)
class RedisTopology:
    """What EVENTI_REDIS_URL names. url is the URL itself (for a single server, what from_url reads)."""

    kind: Literal["standalone", "cluster", "sentinel"]
    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    """The cluster's seed nodes or the sentinels."""
    master_name: str | None = None
    db: int = 0
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @property
    def sharded(self) -> bool:
        """True on a cluster: status messages go by SPUBLISH and are read by SSUBSCRIBE."""
        return self.kind == "cluster"


def parse(url: str) -> RedisTopology:
    """The topology EVENTI_REDIS_URL names; RedisUrlError (one line, starting with the variable) if malformed."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise _error(f"is not a URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme in STANDALONE_SCHEMES:
        if scheme != "unix" and not parts.netloc:
            raise _error("must name a host, e.g. redis://127.0.0.1:6379/0")
        return RedisTopology("standalone", url, tls=scheme == "rediss")
    if scheme not in CLUSTER_SCHEMES + SENTINEL_SCHEMES:
        raise _error("must be a redis://, rediss://, unix://, redis+cluster:// or redis+sentinel:// URL")
    kind: Literal["cluster", "sentinel"] = "cluster" if scheme in CLUSTER_SCHEMES else "sentinel"
    if parts.query or parts.fragment:
        raise _error(f"takes no ?query or #fragment in a {scheme}:// URL")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, password = _credentials(userinfo)
    nodes = tuple(_node(item, DEFAULT_PORT[kind], scheme) for item in hosts.split(","))
    segments = [unquote(s) for s in parts.path.split("/")[1:]]
    if segments and segments[-1] == "":
        segments.pop()  # a trailing slash
    if kind == "cluster":
        if segments not in ([], ["0"]):
            raise _error("must end in / (a cluster has database 0 only), e.g. redis+cluster://a:6379,b:6379/")
        return RedisTopology("cluster", url, nodes, tls=scheme.startswith("rediss"),
                             username=username, password=password)
    if not 1 <= len(segments) <= 2 or not _NAME.match(segments[0]):
        raise _error("must name the master after the sentinels, e.g. redis+sentinel://s1:26379,s2:26379/mymaster/0")
    if len(segments) == 2 and not segments[1].isdigit():
        raise _error(f"database must be a number, got {segments[1]!r}")
    return RedisTopology("sentinel", url, nodes, master_name=segments[0],
                         db=int(segments[1]) if len(segments) == 2 else 0, tls=scheme.startswith("rediss"),
                         username=username, password=password)


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None), (unquote(password) if colon else None)


def _node(item: str, default_port: int, scheme: str) -> tuple[str, int]:
    match = _HOST_PORT.match(item.strip())
    if not match:
        raise _error(f"must list host:port,host:port after {scheme}://, got {item!r}")
    port = int(match["port"] or default_port)
    if not 1 <= port <= 65535:
        raise _error(f"has an invalid port in {item!r}")
    return match["v6"] or match["host"], port


def _error(message: str) -> RedisUrlError:
    return RedisUrlError(f"EVENTI_REDIS_URL {message}")
