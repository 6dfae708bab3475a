"""The device's receive metadata for real (privileged): ``Program.attach(...,
device_metadata=True)`` loads the built-in program bound to the interface and asks the driver
for each packet's receive hash and timestamp through the ``bpf_xdp_metadata_rx_*`` kfuncs.

veth implements them for packets that reach it as skbs (sent by its peer's kernel stack): the
hash is the skb's flow hash, and there is no hardware timestamp. The senders here are UDP
sockets of the peer namespace, so every packet is skb-backed.
"""

from __future__ import annotations

import errno
import json
import socket
import struct
import time
from collections import defaultdict

import pytest

afxdp = pytest.importorskip("afxdp")

from test_fork_and_caps import in_child  # noqa: E402

pytestmark = pytest.mark.privileged

PORTS = range(9100, 9108)  # one flow per destination port
PER_FLOW = 4
DEADLINE = 5.0


def attach(lab, **options) -> tuple[afxdp.Program, afxdp.Socket]:
    with lab.enter("b"):
        prog = afxdp.Program.attach(lab.if_b, device_metadata=True, **options)
        rx = afxdp.Socket(lab.if_b, 0, afxdp.Umem(1024, 4096))
        prog.register(rx)
    return prog, rx


def sender(lab) -> socket.socket:
    """A UDP socket of end a (its kernel stack): its packets reach b as skbs."""
    with lab.enter("a"):
        return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


def send_flows(lab, sock: socket.socket | None = None, per_flow: int = PER_FLOW) -> None:
    """``per_flow`` datagrams to each port of PORTS from ``sock`` (a new sender if None, closed
    afterwards),
    interleaved; the payload names the port and the round. One socket, one source port: a flow
    per destination port."""
    if sock is None:
        with sender(lab) as own:
            send_flows(lab, own, per_flow)
        return
    for i in range(per_flow):
        for port in PORTS:
            sock.sendto(struct.pack("!HH", port, i) + b"afxdp-devmeta", (lab.ip_b, port))


def udp_port(frame: bytes) -> int | None:
    """The destination port of an IPv4/UDP frame from the lab (None for anything else)."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return None
    return struct.unpack_from("!H", frame, 36)[0]


def receive(rx: afxdp.Socket, want: int) -> list[dict]:
    """``want`` UDP frames of the test ports, each with its metadata and the batch arrays'
    entries for it."""
    got: list[dict] = []
    deadline = time.monotonic() + DEADLINE
    while len(got) < want:
        assert time.monotonic() < deadline, f"received {len(got)} of {want}"
        with rx.recv(64, timeout=0.05) as batch:
            after = time.time_ns()
            hashes, hw_stamps = list(batch.rx_hashes), list(batch.rx_hw_timestamps)
            for i, frame in enumerate(batch):
                port = udp_port(bytes(frame))
                if port not in PORTS:
                    continue  # not ours (the lab keeps IPv6 off; nothing else should come)
                got.append(
                    {
                        "port": port,
                        "stamp": frame.rx_timestamp,
                        "hw": frame.rx_hw_timestamp,
                        "hash": frame.rx_hash,
                        "hash_in_array": hashes[i],
                        "hw_in_array": hw_stamps[i],
                        "after": after,
                    }
                )
    return got


def assert_flow_hashes(got: list[dict], before: int) -> None:
    """Every packet has a hash, one per flow, and the flows do not all share one; a kernel
    timestamp between ``before`` and its receipt; no device timestamp (veth has none)."""
    by_port: dict[int, set[int]] = defaultdict(set)
    for g in got:
        assert g["hash"] is not None, g
        assert g["hash_in_array"] == g["hash"], g
        assert g["hw"] is None and g["hw_in_array"] == 0, g
        assert g["stamp"] is not None and before <= g["stamp"] <= g["after"], (before, g)
        by_port[g["port"]].add(g["hash"])
    assert set(by_port) == set(PORTS), sorted(by_port)
    assert all(len(hashes) == 1 for hashes in by_port.values()), dict(by_port)
    # Eight flows with one 32-bit hash each: all equal would mean no per-flow hash at all.
    assert len({next(iter(h)) for h in by_port.values()}) > 1, dict(by_port)


def flows_arrive_hashed(lab, rx: afxdp.Socket) -> None:
    """Every flow of PORTS, sent now, arrives at ``rx`` with its hash (assert_flow_hashes)."""
    before = time.time_ns()
    send_flows(lab)
    assert_flow_hashes(receive(rx, len(PORTS) * PER_FLOW), before)


@pytest.mark.parametrize("mode", ["native", "auto"])
def test_every_packet_carries_its_flows_receive_hash(lab, mode) -> None:
    prog, rx = attach(lab, mode=mode)
    with prog, rx:
        assert prog.device_metadata and prog.timestamps
        assert prog.mode == "native"  # a device-bound program attaches natively only
        flows_arrive_hashed(lab, rx)


def test_the_hash_follows_the_flow_not_the_packet(lab) -> None:
    # The same flows (same source port) sent again later hash the same: the value is the
    # flow's, not noise.
    prog, rx = attach(lab, mode="native")
    with prog, rx:
        with sender(lab) as sock:
            sock.bind((lab.ip_a, 0))  # one source port for both rounds
            send_flows(lab, sock, per_flow=1)
            first = {g["port"]: g["hash"] for g in receive(rx, len(PORTS))}
            time.sleep(0.05)
            send_flows(lab, sock, per_flow=1)
            again = {g["port"]: g["hash"] for g in receive(rx, len(PORTS))}
        assert first == again


def test_without_device_metadata_there_is_no_hash(lab) -> None:
    with lab.enter("b"):
        prog = afxdp.Program.attach(lab.if_b, mode="native", timestamps=True)
        rx = afxdp.Socket(lab.if_b, 0, afxdp.Umem(1024, 4096))
        prog.register(rx)
    with prog, rx:
        assert not prog.device_metadata
        send_flows(lab, per_flow=1)
        got = receive(rx, len(PORTS))
        assert all(g["hash"] is None and g["hash_in_array"] == 0 for g in got), got
        assert all(g["stamp"] is not None for g in got), got


def test_generic_mode_is_refused_naming_the_mode(lab) -> None:
    with lab.enter("b"):
        with pytest.raises(ValueError, match=r"generic.*native mode only"):
            afxdp.Program.attach(lab.if_b, mode="generic", device_metadata=True)
        # Nothing was left attached: a plain program attaches in either mode.
        afxdp.Program.attach(lab.if_b, mode="generic").close()


def test_an_interface_without_device_bound_programs_is_an_oserror_not_a_verifier_error(
    lab,
) -> None:
    # lo has no native XDP: the kernel refuses the device-bound load with EOPNOTSUPP before
    # any verification, which was reported as a VerifierError with an empty log.
    with lab.enter("b"), pytest.raises(OSError) as refused:
        afxdp.Program.attach("lo", device_metadata=True)
    assert not isinstance(refused.value, afxdp.VerifierError), refused.value
    assert refused.value.errno == errno.EOPNOTSUPP
    assert "on lo" in str(refused.value) and "device metadata" in str(refused.value)


def xdp_prog_id(lab) -> int | None:
    out = lab.run("b", ["ip", "-d", "-j", "link", "show", "dev", lab.if_b]).stdout
    info = json.loads(out)[0].get("xdp")
    return None if info is None else info.get("prog", {}).get("id")


def test_closing_detaches_and_the_interface_is_free_again(lab) -> None:
    prog, rx = attach(lab, mode="native")
    with rx:
        assert xdp_prog_id(lab) is not None
        prog.close()
        assert not prog.attached
        assert xdp_prog_id(lab) is None
    # Attach again, bound again: the first one left nothing behind.
    prog, rx = attach(lab, mode="native")
    with prog, rx:
        flows_arrive_hashed(lab, rx)


def test_a_forked_child_closing_its_copy_leaves_the_parents_program(lab) -> None:
    prog, rx = attach(lab, mode="native")
    with prog, rx:
        attached_id = xdp_prog_id(lab)
        assert attached_id is not None

        def child() -> dict:
            prog.close()
            return {"closed": True}

        assert in_child(child) == {"closed": True}
        assert prog.attached
        assert xdp_prog_id(lab) == attached_id
        flows_arrive_hashed(lab, rx)
    assert xdp_prog_id(lab) is None
