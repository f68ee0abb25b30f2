"""CycloneDDS transport for Unitree's rt/lowcmd and rt/lowstate, with the interface and domain explicit.

unitree_sdk2py's ChannelFactoryInitialize(domain, interface) does the same job, but as a process-wide
singleton, with a listener thread per reader and the slow per-field IDL serialisation. Here each
DdsSession owns one participant on one domain, readers are polled from the control loop, and samples
travel as raw CDR bytes that robolearn.deploy.messages encodes and decodes (the topics are still
registered with the SDK's IdlStruct types, so type names and keys match the robot's exactly).

On the loopback interface `lo` (the sim bridge, tests, unitree_mujoco) participants discover each
other both ways a loopback peer may expect: SPDP multicast to 239.255.0.1 on `lo`, which is what a
stock unitree_sdk2py participant (`ChannelFactoryInitialize(domain, "lo")`) sends and listens to, and
unicast to the participant ports on 127.0.0.1, which works even where `lo` carries no multicast.
Samples themselves go unicast. Everything stays on `lo`, so no packet leaves the machine; on a robot's
NIC CycloneDDS uses its defaults (SPDP multicast on that interface), as the SDK does. deploy/interop.md
explains the choice and how it is tested.
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any
from xml.sax.saxutils import quoteattr

from robolearn.errors import UserError, require

LOWCMD_TOPIC = "rt/lowcmd"
LOWSTATE_TOPIC = "rt/lowstate"

# CycloneDDS maps domain d to UDP ports 7400 + 250 d + ...; above 232 they pass 65535.
MAX_DOMAIN_ID = 232
LOOPBACK = "lo"

# Loopback domains that processes on one machine (tests, benchmarks, a sim bridge beside them) hand out
# among themselves. Below 99 every port of a domain (7400 + 250 x id + offsets) lies under Linux's
# ephemeral range (32768-60999): a domain in that range can fail to start when another process's random
# UDP port (a stock SDK participant's, a resolver's) holds its discovery port, as CI once saw with
# domain 203. 0 and 1 stay free for a user's robot and sim.
LOCAL_DOMAINS = range(2, 99)
DOMAIN_LOCK_DIR = Path(tempfile.gettempdir()) / "robolearn-dds-domains"

_domains: dict[int, tuple[Any, str]] = {}
_domains_lock = threading.Lock()


def claim_local_domain(exclude: set[int] | None = None) -> tuple[int, IO[str]]:
    """A loopback DDS domain id in LOCAL_DOMAINS that no other process on this machine holds, and its
    lock file (an exclusive flock in DOMAIN_LOCK_DIR): the domain is the caller's until it closes the
    file or exits. Domains in `exclude` are skipped. RuntimeError when every one is held."""
    DOMAIN_LOCK_DIR.mkdir(exist_ok=True)
    candidates = [d for d in LOCAL_DOMAINS if d not in (exclude or set())]
    random.Random(os.getpid() ^ time.time_ns()).shuffle(candidates)
    for domain in candidates:
        fh = open(DOMAIN_LOCK_DIR / f"{domain}.lock", "w")  # noqa: SIM115 - the caller holds it
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            continue
        return domain, fh
    raise RuntimeError(
        f"no free DDS domain id in {LOCAL_DOMAINS.start}-{LOCAL_DOMAINS.stop - 1}: every lock in "
        f"{DOMAIN_LOCK_DIR} is held"
    )


def check_domain_id(domain_id: int) -> int:
    """The domain id, or a UserError when CycloneDDS cannot use it."""
    if not isinstance(domain_id, int) or isinstance(domain_id, bool) or not 0 <= domain_id <= MAX_DOMAIN_ID:
        raise UserError(
            f"domain_id={domain_id} is out of range; DDS domain ids are integers 0..{MAX_DOMAIN_ID}"
        )
    return domain_id


def interface_names() -> list[str]:
    """Names of this machine's network interfaces."""
    return [name for _, name in socket.if_nameindex()]


def check_interface(interface: str) -> str:
    """The interface name, or a UserError listing the ones that exist."""
    names = interface_names()
    if interface not in names:
        raise UserError(
            f"network interface '{interface}' does not exist on this machine; interfaces: {', '.join(names)}"
            " (the robot's cable is usually on an enpXsY / ethX interface)"
        )
    return interface


def cyclone_config(interface: str, max_participants: int = 32) -> str:
    """CycloneDDS XML pinned to one interface; on loopback, discovery by lo multicast and 127.0.0.1 unicast."""
    name = quoteattr(interface)
    if interface == LOOPBACK:
        # A stock unitree_sdk2py participant on lo (multicast='default') finds peers only by SPDP
        # multicast: its unicast ports are random, so unicast peers cannot reach it, and a participant
        # that never joins the multicast group never hears it. Linux's lo lacks the MULTICAST flag,
        # yet IPv4 multicast works on it, and CycloneDDS finds that out with a trial send
        # (multicast='default', as the SDK sets it). AllowMulticast 'spdp' keeps samples unicast; the
        # 127.0.0.1 peers keep our own processes discovering each other where lo multicast fails.
        return (
            "<CycloneDDS><Domain Id='any'><General>"
            f"<Interfaces><NetworkInterface name={name} multicast='default'/></Interfaces>"
            "<AllowMulticast>spdp</AllowMulticast></General>"
            "<Discovery><ParticipantIndex>auto</ParticipantIndex>"
            f"<MaxAutoParticipantIndex>{max_participants}</MaxAutoParticipantIndex>"
            "<Peers><Peer address='127.0.0.1'/></Peers></Discovery>"
            "</Domain></CycloneDDS>"
        )
    return (
        "<CycloneDDS><Domain Id='any'><General>"
        f"<Interfaces><NetworkInterface name={name} priority='default' multicast='default'/></Interfaces>"
        "</General></Domain></CycloneDDS>"
    )


SPDP_MULTICAST_GROUP = "239.255.0.1"


def loopback_multicast_works(timeout_s: float = 0.2) -> bool:
    """Whether IPv4 multicast sent on lo comes back on lo (what a stock SDK tool on lo needs).

    The same trial CycloneDDS makes: join the SPDP group on 127.0.0.1, send one datagram with TTL 0
    (it cannot leave the machine) to our own port, and look for it.
    """
    import os
    import select

    payload = os.urandom(16)
    loopback = socket.inet_aton("127.0.0.1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP) as sock:
        try:
            sock.bind(("0.0.0.0", 0))
            mreq = socket.inet_aton(SPDP_MULTICAST_GROUP) + loopback
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, loopback)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            sock.sendto(payload, (SPDP_MULTICAST_GROUP, sock.getsockname()[1]))
        except OSError:
            return False
        sock.setblocking(False)
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([sock], [], [], left)[0]:
                break
            try:
                if sock.recv(64) == payload:
                    return True
            except OSError:
                return False
    return False


def _domain(domain_id: int, interface: str) -> Any:
    from cyclonedds.domain import Domain

    with _domains_lock:
        known = _domains.get(domain_id)
        if known is not None:
            if known[1] != interface:
                raise UserError(
                    f"DDS domain {domain_id} is already open on interface {known[1]} in this process;"
                    f" cannot reopen it on {interface}"
                )
            return known[0]
        domain = Domain(domain_id, cyclone_config(interface))
        _domains[domain_id] = (domain, interface)
        return domain


class RawWriter:
    """Publishes CDR bytes on a topic (bytes from robolearn.deploy.messages.MessageCodec.encode)."""

    def __init__(self, writer: Any) -> None:
        from cyclonedds._clayer import ddspy_write

        self._writer = writer
        self._ref = writer._ref
        self._write = ddspy_write

    def write(self, data: bytes) -> None:
        """Send one sample; raises DDSException on a transport error."""
        ret = self._write(self._ref, data)
        if ret < 0:
            from cyclonedds.core import DDSException

            raise DDSException(ret, "while writing a raw sample")

    def matched(self) -> int:
        """Number of readers currently matched (0 until discovery completes)."""
        return len(self._writer.get_matched_subscriptions())


class RawReader:
    """Takes CDR bytes from a topic without building IdlStruct objects."""

    def __init__(self, reader: Any) -> None:
        from cyclonedds._clayer import ddspy_take
        from cyclonedds.core import InstanceState, SampleState, ViewState

        self._reader = reader
        self._ref = reader._ref
        self._take = ddspy_take
        self._mask = SampleState.Any | ViewState.Any | InstanceState.Any

    def take(self, max_samples: int = 64) -> list[bytes]:
        """Every valid sample waiting, oldest first (disposals and unregistrations are skipped)."""
        ret = self._take(self._ref, self._mask, max_samples)
        if isinstance(ret, int):
            from cyclonedds.core import DDSException

            raise DDSException(ret, "while taking raw samples")
        return [data for data, info in ret if info.valid_data]

    def matched(self) -> int:
        """Number of writers currently matched."""
        return len(self._reader.get_matched_publications())


class DdsSession:
    """One DomainParticipant on an explicit domain and interface, making raw readers and writers."""

    def __init__(self, domain_id: int, interface: str) -> None:
        require("cyclonedds", "DDS deploy", "deploy", "cyclonedds")
        from cyclonedds.domain import DomainParticipant

        self.domain_id = check_domain_id(domain_id)
        self.interface = check_interface(interface)
        self._domain = _domain(self.domain_id, self.interface)
        self.participant: Any = DomainParticipant(self.domain_id)
        self._topics: dict[str, Any] = {}

    def _topic(self, name: str, data_type: Any) -> Any:
        from cyclonedds.topic import Topic

        if name not in self._topics:
            self._topics[name] = Topic(self.participant, name, data_type)
        return self._topics[name]

    def writer(self, name: str, data_type: Any, depth: int = 1) -> RawWriter:
        """A reliable writer keeping the last `depth` samples (depth > 1 lets a slow reader catch up)."""
        from cyclonedds.core import Policy, Qos
        from cyclonedds.pub import DataWriter

        qos = Qos(Policy.Reliability.Reliable(max_blocking_time=0), Policy.History.KeepLast(depth))
        return RawWriter(DataWriter(self.participant, self._topic(name, data_type), qos=qos))

    def reader(self, name: str, data_type: Any, depth: int = 1, reliable: bool = False) -> RawReader:
        """A reader keeping the newest `depth` samples; best effort unless reliable (never blocks a writer)."""
        from cyclonedds.core import Policy, Qos
        from cyclonedds.sub import DataReader

        reliability = (
            Policy.Reliability.Reliable(max_blocking_time=0) if reliable else Policy.Reliability.BestEffort
        )
        qos = Qos(reliability, Policy.History.KeepLast(depth))
        return RawReader(DataReader(self.participant, self._topic(name, data_type), qos=qos))

    def close(self) -> None:
        """Delete the participant and everything it made (the domain stays for reuse in this process)."""
        self._topics.clear()
        participant, self.participant = self.participant, None
        if participant is not None:
            del participant
