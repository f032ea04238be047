"""The world's DNS: real authoritative servers (NSD) and a real recursive resolver (Unbound) on loopback.

A referral carries names and addresses, never ports, so for Unbound to follow the world's delegations
every authoritative server answers on port 53 of an address of its own in 127/8 (all of it is on `lo`
under Linux). That needs the right to bind port 53: root (as here and in CI), or root inside a
user+network namespace. Unbound itself listens on a free high port; that address:port is what clients
(the check command's --resolver) are told.

NSD and Unbound come from Debian's packages (tools/install installs both). Their absence fails the
tests that need them: they never skip.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import IO

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rdatatype
import dns.resolver
import dns.zone

_sleep = time.sleep  # bound at import: tests may stub time.sleep for clients

START_TIMEOUT = 10.0  # seconds a server gets to answer after it is started
CHANGE_TIMEOUT = 10.0  # seconds NSD gets to serve what set_zones gave it
CONTROL_TIMEOUT = 10.0  # seconds one nsd-control / unbound-control call may take

PORT_53_NEEDED = (
    "The DNS world needs to bind port 53 on loopback addresses (127.x.y.z:53) and cannot here: run it as root, "
    "or inside a user+network namespace (`unshare --user --map-root-user --net`, then `ip link set lo up`)."
)

# The SOA this module writes for a zone whose lines carry none. Low timers, so that even a resolver that
# is not flushed forgets quickly: 60 s for the SOA itself, 5 s for negative answers (RFC 2308: the
# lesser of the SOA's TTL and its MINIMUM field).
_SOA_TTL = 60
_NEGATIVE_TTL = 5
_DEFAULT_TTL = 60
_PATTERN = "world"  # the one NSD pattern every zone is added with
# A UDP query to a port nobody listens on yet gets no error back (an unconnected socket ignores the ICMP),
# only silence: while a server starts, each poll waits this long, not a full query timeout.
_READY_TIMEOUT = 0.05


# Every server not yet closed, closed at interpreter exit: a script that dies of an exception (or a test
# run cut short by Ctrl-C) would otherwise leave NSD and Unbound bound to their addresses. (Not a
# parent-death signal: Linux sends that when the starting *thread* ends, and a world may be started from
# a worker thread.)
_open_servers: weakref.WeakSet[AuthoritativeServer | RecursiveResolver] = weakref.WeakSet()


@atexit.register
def _close_open_servers() -> None:
    for server in list(_open_servers):
        server.close()


def _tool(name: str) -> str:
    found = shutil.which(name) or f"/usr/sbin/{name}"
    if not Path(found).exists():
        raise RuntimeError(f"{name} is not installed: `bash tools/install` installs it (Debian's package)")
    return found


def _port_free(address: str, port: int) -> bool:
    """Whether a UDP socket can bind address:port now; RuntimeError, saying why, if it never could."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((address, port))
        except PermissionError as error:
            raise RuntimeError(PORT_53_NEEDED) from error
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return False
            raise RuntimeError(f"cannot bind {address}:{port} ({error}): {PORT_53_NEEDED}") from error
    return True


# Blocks this process has claimed (block -> the descriptor holding its lock). A claim is an flock on
# a file in _CLAIMS, held until the process exits (the kernel then drops it, whatever killed it), so
# that two processes that each drew the same free block do not both start a world there: a probe alone
# leaves the time between the probe and NSD's bind open.
_CLAIMS = Path(tempfile.gettempdir()) / "world-dns-blocks"
_claimed: dict[int, int] = {}
_claims_lock = threading.Lock()


def _claim(block: int) -> bool:
    """Claim the block for this process; False if another live process holds it. Where the claims
    cannot be kept (no writable temp dir), True: the probe alone decides."""
    try:
        if not _CLAIMS.exists():
            _CLAIMS.mkdir(exist_ok=True)
            _CLAIMS.chmod(0o1777)  # like /tmp: any user (or namespace) may claim, none may take another's file
        lock = os.open(_CLAIMS / f"127.{block}", os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError:
        return True
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(lock)
        return False
    _claimed[block] = lock
    return True


def free_loopback_block() -> str:
    """A prefix like "127.203." whose 127.<b>.53.1:53 is free, b drawn at random in 100..250, so that two
    worlds running at once pick different addresses. Each block handed out stays claimed by this process
    (see _CLAIMS); blocks it claimed before are handed out again only once all others are taken."""
    blocks = random.SystemRandom().sample(range(100, 251), 151)
    with _claims_lock:
        fresh = [block for block in blocks if block not in _claimed]
        for block in [*fresh, *(block for block in blocks if block in _claimed)]:
            if (block in _claimed or _claim(block)) and _port_free(f"127.{block}.53.1", 53):
                return f"127.{block}."
    raise RuntimeError("every 127.<100..250>.53.1:53 is in use or claimed: too many worlds at once")


def _free_high_port(address: str) -> int:
    """A port free for both UDP and TCP on address now (Unbound binds both)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind((address, 0))
        port = int(udp.getsockname()[1])
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            try:
                tcp.bind((address, port))
            except OSError:
                return _free_high_port(address)
    return port


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    """The process exists and has not exited (a zombie has closed its sockets already)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _log_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-500:] if path.exists() else ""


def _wait_until(ready: Callable[[], bool], process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Poll `ready` until it holds (True) or the time is up or the process exited (False)."""
    deadline = time.monotonic() + timeout
    pause = 0.002
    while time.monotonic() < deadline:
        if ready():
            return True
        if process.poll() is not None:
            return False
        _sleep(pause)
        pause = min(pause * 2, 0.05)
    return ready()


def _ask(query: dns.message.Message, address: str, port: int, timeout: float = 0.25) -> dns.message.Message | None:
    """One UDP exchange, or None if nothing (valid) came back in time."""
    try:
        return dns.query.udp(query, address, port=port, timeout=timeout)
    except (dns.exception.DNSException, OSError):
        return None


def _control(socket_path: Path, magic: str, words: list[str], lines: list[str] | None = None) -> str:
    """One command to NSD's or Unbound's remote control over its unix socket, as nsd-control and
    unbound-control send it there (no TLS on a unix socket): the magic ("NSDCT1", "UBCT1"), each word
    after a space, a newline, then for a command that reads a list (addzones, delzones) its lines and an
    end marker (0x04, newline). The server answers text and closes the connection."""
    request = magic + "".join(f" {word}" for word in words) + "\n"
    if lines is not None:
        request += "".join(f"{line}\n" for line in lines) + "\x04\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(CONTROL_TIMEOUT)
        connection.connect(str(socket_path))
        connection.sendall(request.encode())
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer.decode(errors="replace")


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _zone_key(zone: str) -> str:
    """The zone's name as NSD is told it: lower case, no trailing dot, "." for the root."""
    return zone.strip().rstrip(".").lower() or "."


def _origin(key: str) -> str:
    return "." if key == "." else f"{key}."


class AuthoritativeServer:
    """One NSD process answering on <address>:53 for the zones it is given."""

    def __init__(self, label: str, address: str, zones: dict[str, list[str]] | None = None, *, port: int = 53) -> None:
        """zones: zone name (no trailing dot, "." for the root) -> resource-record lines in zone-file syntax,
        relative to the zone ("@ IN NS ada.ns.cloudflare.com.", "track 60 IN A 127.5.80.1") or absolute.
        Each zone gets an SOA written here (see _SOA_TTL) unless its lines carry one."""
        self.label = label
        self.address = address
        self.port = port
        self._nsd = _tool("nsd")
        self._lock = threading.Lock()
        self._served: dict[str, tuple[str, ...]] = {}  # zone key -> the lines it was given
        self._serials: dict[str, int] = {}  # zone key -> the serial NSD must answer with
        self._serial = 0  # this server's last serial written: every change takes the next one
        self._last_mtime_ns = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._closed = False
        self.start_seconds = 0.0  # how long NSD took to answer, once started
        if not _port_free(address, port):
            raise RuntimeError(f"{address}:{port} is already in use (another world, or a DNS server)")
        self.dir = Path(tempfile.mkdtemp(prefix=f"nsd-{label}-"))
        _open_servers.add(self)
        try:
            self._start()
            if zones:
                self.set_zones(zones)
        except BaseException:
            self.close()
            raise

    # -- starting -------------------------------------------------------------------------------------

    def _config(self) -> str:
        d = self.dir
        return "\n".join(
            [
                "server:",
                f"  ip-address: {self.address}",
                f"  port: {self.port}",
                "  do-ip6: no",
                '  username: ""',
                '  chroot: ""',
                f'  zonesdir: "{d}"',
                f'  pidfile: "{d}/nsd.pid"',
                '  database: ""',
                f'  xfrdfile: "{d}/xfrd.state"',
                f'  xfrdir: "{d}"',
                f'  zonelistfile: "{d}/zone.list"',
                f'  logfile: "{d}/nsd.log"',
                f'  identity: "{self.label}"',  # what `dig CH TXT id.server` answers: which server this is
                "  server-count: 1",
                "  verbosity: 1",
                # NSD throttles reloads to one a second by default; the world changes zones in bursts.
                "  xfrd-reload-timeout: 0",
                "remote-control:",
                "  control-enable: yes",
                # A unix socket: no TLS keys to make (nsd-control-setup), access is the directory's.
                f'  control-interface: "{d}/nsd.sock"',
                "pattern:",
                f"  name: {_PATTERN}",
                '  zonefile: "%s.zone"',
                "",
            ]
        )

    def _start(self) -> None:
        started = time.monotonic()
        (self.dir / "nsd.conf").write_text(self._config())
        self._log = (self.dir / "nsd.log").open("ab")
        self.process = subprocess.Popen(
            [self._nsd, "-d", "-c", str(self.dir / "nsd.conf")], stdout=self._log, stderr=subprocess.STDOUT
        )
        if not _wait_until(self._answers, self.process, START_TIMEOUT):
            raise RuntimeError(
                f"NSD ({self.label}) did not answer on {self.address}:{self.port} within {START_TIMEOUT:.0f} s: "
                f"it logged {_log_tail(self.dir / 'nsd.log')!r}"
            )
        self.start_seconds = time.monotonic() - started

    def _answers(self) -> bool:
        """NSD answers at all (REFUSED counts: it serves no zone yet), and its control socket is there."""
        query = dns.message.make_query(".", "SOA")
        return (self.dir / "nsd.sock").exists() and _ask(query, self.address, self.port, _READY_TIMEOUT) is not None

    # -- zones ------------------------------------------------------------------------------------------

    def set_zones(self, zones: dict[str, list[str]]) -> None:
        """Serve exactly these zones from now on (added, changed and removed ones alike). Returns once NSD
        answers the new data: each changed zone's SOA with its new serial, no SOA for a removed one."""
        wanted = {_zone_key(zone): tuple(lines) for zone, lines in zones.items()}
        with self._lock:
            if self._closed:
                raise RuntimeError(f"NSD ({self.label}) is closed")
            old_servers = self._serving_processes()
            removed = [key for key in self._served if key not in wanted]
            added = [key for key in wanted if key not in self._served]
            changed = [key for key in wanted if key in self._served and self._served[key] != wanted[key]]
            # Every zone is read before any is written: bad lines change nothing that is served.
            texts = {key: self._zone_text(key, wanted[key]) for key in (*added, *changed)}
            for key, (text, serial) in texts.items():
                self._write_zone(key, text)
                self._serials[key] = serial
            if removed:
                self._nsd_control("delzones", removed)
            if added:
                self._nsd_control("addzones", [f"{key} {_PATTERN}" for key in added])
            if changed:
                self._nsd_control("reload")  # rereads the zone files whose mtime changed
            for key in removed:
                del self._served[key], self._serials[key]
                (self.dir / f"{key}.zone").unlink(missing_ok=True)
            self._served.update({key: wanted[key] for key in (*added, *changed)})
            if added or changed or removed:
                self._wait_served([*added, *changed], removed, old_servers)

    def _zone_text(self, key: str, lines: tuple[str, ...]) -> tuple[str, int]:
        """The zone's file (with an SOA of ours unless the lines carry one) and the serial it carries.
        Lines dnspython cannot read raise ValueError here, before NSD would log them and serve nothing.
        A zone whose lines carry an SOA must raise its serial with each change: the serial is how
        set_zones knows NSD serves the new version."""
        origin = _origin(key)
        head = [f"$ORIGIN {origin}", f"$TTL {_DEFAULT_TTL}"]
        text = "\n".join([*head, *lines]) + "\n"
        try:
            parsed = dns.zone.from_text(text, origin=origin, relativize=False, check_origin=False)
        except dns.exception.DNSException as error:
            raise ValueError(f"zone {origin} for {self.label}: {error}") from error
        soa = parsed.get_rdataset(origin, "SOA")
        if soa:
            return text, int(soa[0].serial)
        self._serial += 1
        rname = "hostmaster." if key == "." else f"hostmaster.{origin}"
        timers = f"{self._serial} 60 30 600 {_NEGATIVE_TTL}"  # refresh, retry, expire: no secondaries here
        soa_line = f"@ {_SOA_TTL} IN SOA {self.label}.ns.world. {rname} {timers}"
        return "\n".join([*head, soa_line, *lines]) + "\n", self._serial

    def _write_zone(self, key: str, text: str) -> None:
        path = self.dir / f"{key}.zone"
        path.write_text(text)
        # NSD rereads a file only when its mtime differs from the one it read; two writes within the
        # kernel's coarse clock tick would share one, so each write gets a later one than the last.
        self._last_mtime_ns = max(time.time_ns(), self._last_mtime_ns + 1_000)
        os.utime(path, ns=(self._last_mtime_ns, self._last_mtime_ns))

    def _nsd_control(self, command: str, lines: list[str] | None = None) -> None:
        said = _control(self.dir / "nsd.sock", "NSDCT1", [command], lines)
        # An addzones line that is refused says "error ..." on a line of its own, not only the first.
        if "error" in said.lower():
            raise RuntimeError(f"nsd-control {command} ({self.label}) failed: {said[-500:]!r}")

    def _serves(self, key: str) -> int | None:
        """The serial NSD answers for the zone's SOA, or None if it does not answer with that zone's SOA."""
        reply = _ask(dns.message.make_query(_origin(key), "SOA"), self.address, self.port)
        if reply is None:
            return None
        for rrset in reply.answer:
            if rrset.rdtype == dns.rdatatype.SOA and rrset.name == dns.name.from_text(_origin(key)):
                return int(rrset[0].serial)
        return None

    def _serving_processes(self) -> set[int]:
        """NSD's server processes now: the children of its main process, itself the one child of the
        process started (which becomes xfrd). Empty where /proc does not list children."""
        assert self.process is not None
        return {child for main in _children(self.process.pid) for child in _children(main)}

    def _wait_served(self, present: list[str], absent: list[str], old_servers: set[int]) -> None:
        """Every change is a reload: NSD forks new server processes with the new data, and the old ones
        go on reading the same sockets until they have had their quit and exited. An answer with the new
        serial alone would not mean the next query gets the new data; the old servers gone does."""

        def done() -> bool:
            return (
                not any(_alive(pid) for pid in old_servers)
                and all(self._serves(key) == self._serials[key] for key in present)
                and all(self._serves(key) is None for key in absent)
            )

        assert self.process is not None
        if not _wait_until(done, self.process, CHANGE_TIMEOUT):
            raise RuntimeError(
                f"NSD ({self.label}) did not serve the new zones within {CHANGE_TIMEOUT:.0f} s: "
                f"it logged {_log_tail(self.dir / 'nsd.log')!r}"
            )

    @property
    def zones(self) -> dict[str, list[str]]:
        """What this server serves now: zone key -> the lines it was given."""
        with self._lock:
            return {key: list(lines) for key, lines in self._served.items()}

    def close(self) -> None:
        """Stop NSD and remove its directory; idempotent."""
        with self._lock:
            self._closed = True
            _stop(self.process)
            if self._log is not None:
                self._log.close()
                self._log = None
            if hasattr(self, "dir"):
                shutil.rmtree(self.dir, ignore_errors=True)
            _open_servers.discard(self)


class RecursiveResolver:
    """Unbound, recursing from the world's root server(s), on a high port.

    Unbound answers some names itself, never asking the world (its default local zones, listed by
    `unbound-control list_local_zones`): test., onion., invalid., localhost., home.arpa. and the reverse
    zones of private and loopback addresses. The world's names must stay out of those."""

    def __init__(self, root_hints: dict[str, str], *, address: str = "127.0.0.1") -> None:
        """root_hints: name of a root server -> its address, e.g. {"a.root.world.": "127.5.53.1"}."""
        self.address = address
        self.port = 0
        self._unbound = _tool("unbound")
        self._root_hints = root_hints
        self.start_seconds = 0.0  # how long Unbound took to answer, once started
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.dir = Path(tempfile.mkdtemp(prefix="unbound-"))
        _open_servers.add(self)
        try:
            self._start_on_a_free_port()
        except BaseException:
            self.close()
            raise

    @property
    def nameserver(self) -> str:
        """ "127.0.0.1:PORT": the form the check command's --resolver takes."""
        return f"{self.address}:{self.port}"

    def _start_on_a_free_port(self) -> None:
        started = time.monotonic()
        # A port free a moment ago may be taken before Unbound binds it (a client's ephemeral port):
        # Unbound then exits at once, and another port is tried.
        for attempt in range(5):
            self.port = _free_high_port(self.address)
            self._start()
            assert self.process is not None
            if _wait_until(self._answers, self.process, START_TIMEOUT):
                self.start_seconds = time.monotonic() - started
                return
            if self.process.poll() is None or attempt == 4:
                break
        raise RuntimeError(
            f"Unbound did not answer on {self.nameserver} within {START_TIMEOUT:.0f} s: "
            f"it logged {_log_tail(self.dir / 'unbound.log')!r}"
        )

    def _config(self) -> str:
        d = self.dir
        return "\n".join(
            [
                "server:",
                f"  interface: {self.address}",
                f"  port: {self.port}",
                "  outgoing-interface: 127.0.0.1",  # its queries leave from loopback too
                "  do-ip6: no",
                "  do-daemonize: no",
                '  chroot: ""',
                '  username: ""',
                f'  directory: "{d}"',
                f'  pidfile: "{d}/unbound.pid"',
                "  use-syslog: no",
                f'  logfile: "{d}/unbound.log"',
                "  verbosity: 1",
                "  num-threads: 1",
                # The world's servers are all in 127/8, which Unbound will not query by default.
                "  do-not-query-localhost: no",
                # Plain iteration: the world signs nothing, and no trust anchor is configured.
                '  module-config: "iterator"',
                f'  root-hints: "{d}/root.hints"',
                "  qname-minimisation: no",  # the full name to every server: fewer queries, plainer logs
                # private-address is empty by default (checked with unbound-checkconf -o private-address),
                # so answers in 127/8 pass; nothing here sets it. Its default access-control allows
                # 127.0.0.0/8 only, which is where every client is.
                "  infra-keep-probing: yes",  # a server that was down is tried again, not shunned for 15 min
                "remote-control:",
                "  control-enable: yes",
                f'  control-interface: "{d}/unbound.sock"',  # a unix socket: no keys, access by directory
                "  control-use-cert: no",
                "",
            ]
        )

    def _start(self) -> None:
        hints = [f". 3600000 IN NS {name}" for name in self._root_hints]
        hints += [f"{name} 3600000 IN A {address}" for name, address in self._root_hints.items()]
        (self.dir / "root.hints").write_text("\n".join(hints) + "\n")
        (self.dir / "unbound.conf").write_text(self._config())
        if self._log is None:
            self._log = (self.dir / "unbound.log").open("ab")
        self.process = subprocess.Popen(
            [self._unbound, "-d", "-c", str(self.dir / "unbound.conf")], stdout=self._log, stderr=subprocess.STDOUT
        )

    def _answers(self) -> bool:
        """Unbound answers (localhost comes from its built-in local zone: no recursion needed)."""
        if not (self.dir / "unbound.sock").exists():
            return False
        return _ask(dns.message.make_query("localhost.", "A"), self.address, self.port, _READY_TIMEOUT) is not None

    def _unbound_control(self, *command: str) -> None:
        said = _control(self.dir / "unbound.sock", "UBCT1", list(command))
        if said.startswith("error"):
            raise RuntimeError(f"unbound-control {' '.join(command)} failed: {said[-500:]!r}")

    def flush(self) -> None:
        """Forget every cached answer, delegation and server state, so the next query sees what the
        servers serve now."""
        self._unbound_control("flush_zone", ".")  # every rrset and message at or below the root
        self._unbound_control("flush_infra", "all")  # server timeouts, lameness, EDNS and RTT
        self._unbound_control("flush_bogus")
        self._unbound_control("flush_negative")
        self._unbound_control("flush_requestlist")  # queries still in flight would answer with old data

    def resolve(self, name: str, rdtype: str = "A") -> list[str]:
        """Ask this resolver; the answer's rdata as text after following CNAMEs (empty for NXDOMAIN or
        NODATA). Raises dns.exception.DNSException on failure (SERVFAIL, timeout)."""
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [self.address]
        resolver.port = self.port
        resolver.lifetime = 5.0
        try:
            answer = resolver.resolve(name, rdtype, search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return []
        return [rdata.to_text() for rdata in answer.rrset] if answer.rrset is not None else []

    def close(self) -> None:
        """Stop Unbound and remove its directory; idempotent."""
        _stop(self.process)
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.dir, ignore_errors=True)
        _open_servers.discard(self)
