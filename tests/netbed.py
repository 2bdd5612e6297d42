"""A test bed of hosts: Linux network namespaces joined by veth links to one bridge,
so that a test can cut one host's link, or only its route to one address, while the
processes on every host keep running.

The bridge's own address (``.1``) is the test's vantage point: the pytest process
reaches each host through it, and a host's link can be cut without cutting the test
off from the others. Files are shared: a Unix socket (the ledger's, kept outside the
network under test) reaches every host whatever its links.

Needs root, iproute2's ``ip`` and ``iptables``; :func:`unavailable` says why a machine cannot run
it (a test then skips, or fails under ``CI=true``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from async_orders.embedded import EmbeddedRedis
from tests.faultstack import PrivatePostgres

#: The bridges' subnets: 10.213.<bed>.0/24, one per bed running at once.
SUBNET = "10.213"
POSTGRES_PORT = 5432
REDIS_PORT = 6379


def unavailable() -> str | None:
    """Why network namespaces cannot be made here, or ``None`` when they can."""
    if os.geteuid() != 0:
        return "the multi-host test bed needs root (ip netns, veth, a bridge)"
    if shutil.which("ip") is None:
        return "the multi-host test bed needs iproute2's ip"
    if shutil.which("iptables") is None:
        return "the multi-host test bed needs iptables (make test-hosts installs it)"
    probe = f"ao-probe-{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    _ip("netns", "del", probe)
    return None


def require() -> None:
    """Skip the calling test where the bed cannot be made; fail under ``CI=true``."""
    reason = unavailable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


def _ip(*arguments: str) -> None:
    subprocess.run(["ip", *arguments], check=True, capture_output=True)


@dataclass
class Host:
    """One namespace: its name, address on the bridge, and its end of the link."""

    name: str
    namespace: str
    address: str
    link: str  # the bridge's end of its veth pair

    @property
    def launcher(self) -> tuple[str, ...]:
        """Run a program on this host: ``ip netns exec <namespace>``."""
        return ("ip", "netns", "exec", self.namespace)


class NetBed:
    """Hosts on one bridge; :meth:`destroy` removes every namespace and link."""

    def __init__(self) -> None:
        self.index, self.bridge = self._new_bridge()
        self.gateway = f"{SUBNET}.{self.index}.1"
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        self.hosts: dict[str, Host] = {}
        self.relay: DelayRelay | None = None

    @staticmethod
    def _new_bridge() -> tuple[int, str]:
        """A bridge of a number no other bed uses (``ip link add`` refuses a taken name)."""
        start = os.getpid() % 250
        for offset in range(250):
            index = 2 + (start + offset) % 250
            bridge = f"aob{index}"
            made = subprocess.run(
                ["ip", "link", "add", bridge, "type", "bridge"], capture_output=True
            )
            if made.returncode == 0:
                return index, bridge
        raise RuntimeError("no free test-bed bridge number (aob2..aob251)")

    def add(self, name: str, number: int, *more_numbers: int) -> Host:
        """A host ``name`` at ``<subnet>.<number>`` (and the other numbers too)."""
        namespace = f"ao{self.index}-{name}"
        link = f"ao{self.index}{name}"[:15]
        address = f"{SUBNET}.{self.index}.{number}"
        _ip("netns", "add", namespace)
        _ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        _ip("link", "set", link, "master", self.bridge, "up")
        for each in (number, *more_numbers):
            _ip("-n", namespace, "addr", "add", f"{SUBNET}.{self.index}.{each}/24", "dev", "eth0")
        _ip("-n", namespace, "link", "set", "eth0", "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        host = Host(name, namespace, address, link)
        self.hosts[name] = host
        return host

    def address(self, number: int) -> str:
        return f"{SUBNET}.{self.index}.{number}"

    def cut(self, host: Host) -> None:
        """Pull the host's cable: every packet to or from it is dropped, silently (no
        reset, no error), as in a partition; its connections stall until :meth:`heal`."""
        _ip("link", "set", host.link, "down")

    def heal(self, host: Host) -> None:
        _ip("link", "set", host.link, "up")

    @contextlib.contextmanager
    def unreachable(self, host: Host, address: str) -> Iterator[None]:
        """Within the block, ``host``'s packets to ``address`` go to a hardware address
        nobody has: dropped silently, as by a firewall between the two, while the
        host's other routes work."""
        nowhere = ("lladdr", "02:00:00:00:de:ad", "dev", "eth0", "nud", "permanent")
        _ip("-n", host.namespace, "neigh", "replace", address, *nowhere)
        try:
            yield
        finally:
            _ip("-n", host.namespace, "neigh", "del", address, "dev", "eth0")

    def slow(self, host: Host, servers: list[tuple[str, int]], delay: float, loss: float) -> None:
        """Make ``host``'s TCP to ``servers`` (address, port) take ``delay`` seconds
        more per round trip, and lose ``loss`` (0-1) of its TCP packets, each way.

        Not ``tc qdisc ... netem``: kernels built without ``sch_netem`` (this
        project's test machine's: CONFIG_NET_SCH_NETEM unset) have none. The delay is
        a relay on the bridge's address that holds every chunk ``delay / 2`` each way
        (the host's connections to the servers are DNATed to it), the loss
        ``iptables``' ``statistic`` match dropping the host's TCP packets at random.
        """
        relay = self.relay or DelayRelay(self.gateway)
        self.relay = relay
        iptables = ("ip", "netns", "exec", host.namespace, "iptables")
        for address, port in servers:
            relayed = relay.forward(address, port, delay / 2)
            dnat = ("-d", address, "-p", "tcp", "--dport", str(port), "-j", "DNAT")
            target = ("--to-destination", f"{self.gateway}:{relayed}")
            subprocess.run([*iptables, "-t", "nat", "-A", "OUTPUT", *dnat, *target], check=True)
        dropped = ("-m", "statistic", "--mode", "random", "--probability", str(loss), "-j", "DROP")
        for chain, way in (("OUTPUT", "-o"), ("INPUT", "-i")):
            subprocess.run([*iptables, "-A", chain, way, "eth0", "-p", "tcp", *dropped], check=True)

    def destroy(self) -> None:
        if self.relay is not None:
            self.relay.stop()
        for host in self.hosts.values():
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "del", host.namespace)  # takes its veth pair with it
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", self.bridge)


class HostPostgres(PrivatePostgres):
    """A private PostgreSQL cluster run on a bed's host, reachable from the bed's
    subnet on the host's address."""

    def __init__(self, host: Host, network: str) -> None:
        super().__init__()
        self.host = host
        self.network = network
        self.port = POSTGRES_PORT

    def create(self) -> HostPostgres:
        super().create()
        with open(self.data / "pg_hba.conf", "a") as rules:
            rules.write(f"host all all {self.network} trust\n")
        self._run("pg_ctl", "-D", str(self.data), "reload")
        return self

    def start(self) -> None:
        listen = f"127.0.0.1,{self.host.address}"
        options = f"-p {self.port} -k {self.directory} -c listen_addresses={listen} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")

    def _run(self, program: str, *arguments: str) -> None:
        command = [str(self.programs / program), *arguments]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(
            [*self.host.launcher, *command], check=True, capture_output=True, cwd=self.directory
        )


class HostRedis(EmbeddedRedis):
    """A redis-server on a bed's host, on TCP at ``address`` (the broker the other
    hosts reach over their links) and on a Unix socket (the test's own way in)."""

    def __init__(self, directory: Path, host: Host, address: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        super().__init__(directory)
        self.host = host
        self.address = address

    @property
    def url(self) -> str:
        return f"redis://{self.address}:{REDIS_PORT}/0"

    def start(self) -> HostRedis:
        server = shutil.which("redis-server")
        if server is None:
            pytest.fail("the multi-host test bed needs redis-server (Debian's redis-server)")
        self.process = subprocess.Popen(
            [
                *self.host.launcher,
                server,
                *("--bind", self.address, "--port", str(REDIS_PORT), "--protected-mode", "no"),
                *("--unixsocket", str(self.socket_path), "--unixsocketperm", "700"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.socket_path.parent)),
            ],
            stdout=subprocess.DEVNULL,
            process_group=0,
        )
        self._wait_until_ready()
        return self


class DelayRelay:
    """TCP relays on ``address`` that pass every chunk on after a delay, in order, on
    an asyncio loop of their own thread."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def forward(self, host: str, port: int, delay: float) -> int:
        """Relay a new port of ours to ``host:port``, ``delay`` seconds each way."""

        async def serve() -> asyncio.Server:
            async def connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
                await asyncio.gather(
                    _delayed(reader, upstream_writer, delay),
                    _delayed(upstream_reader, writer, delay),
                    return_exceptions=True,
                )

            return await asyncio.start_server(connect, self.address, 0)

        server = asyncio.run_coroutine_threadsafe(serve(), self.loop).result(timeout=10)
        return int(server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


async def _delayed(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float
) -> None:
    """Copy ``reader`` to ``writer``, each chunk ``delay`` seconds after it came."""
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def receive() -> None:
        while data := await reader.read(65536):
            chunks.put_nowait((loop.time() + delay, data))
        chunks.put_nowait((loop.time() + delay, b""))

    async def send() -> None:
        while True:
            due, data = await chunks.get()
            await asyncio.sleep(max(0.0, due - loop.time()))
            if not data:
                writer.close()
                return
            writer.write(data)
            await writer.drain()

    await asyncio.gather(receive(), send())
