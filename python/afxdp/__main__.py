"""`python -m afxdp lab`: the main job on its embedded default.

Builds a private veth lab (two network namespaces, one veth pair), attaches afxdp's XDP program
to one end with a receiving AF_XDP socket, floods the other end with UDP frames from a sending
AF_XDP socket, prints packets/s each second and a summary, and removes everything on exit,
Ctrl-C or error. Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF, CAP_NET_RAW).
"""

from __future__ import annotations

import argparse
import sys
import time

import afxdp
from afxdp import packet
from afxdp.lab import Lab


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m afxdp", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    lab = sub.add_parser("lab", help="run traffic through afxdp in a private veth lab")
    lab.add_argument("--duration", type=float, default=5.0, help="seconds of traffic (default 5)")
    lab.add_argument("--mode", choices=["auto", "native", "generic"], default="native",
                     help="XDP attach mode of the receiver (default native)")
    lab.add_argument("--batch", type=int, default=64, help="frames per send/recv call (default 64)")
    lab.add_argument("--size", type=int, default=64, help="frame size in bytes, >= 60 (default 64)")
    return p.parse_args(argv)


def run_lab(duration: float, mode: str, batch: int, size: int) -> dict[str, int]:
    """Runs the lab for `duration` seconds; returns the totals it printed."""
    if not 0 < duration <= 3600:
        raise ValueError(f"--duration must be in (0, 3600], not {duration}")
    if size < 60:
        raise ValueError(f"--size must be at least 60 bytes, not {size}")
    with Lab() as lab:
        print(lab.summary(), flush=True)
        with lab.enter("b"):
            prog = afxdp.Program.attach(lab.if_b, mode=mode)
            rx = afxdp.Socket(lab.if_b, 0, program=prog, tx_size=0)
        with lab.enter("a"):
            tx = afxdp.Socket(lab.if_a, 0, rx_size=0, umem=afxdp.Umem(frame_count=4096, frame_size=2048))
        frame = packet.ipv4_udp(lab.mac_a, lab.mac_b, lab.ip_a, lab.ip_b, 9000, 9000,
                                bytes(max(0, size - 42)))
        # Like the Go library's sender: write the packet into every frame of the UMEM once; then
        # sending only sets lengths.
        everything = tx.alloc(tx.umem.frame_count)
        everything.write_all(frame)
        everything.release()
        print(f"receiver: {rx!r} ({prog.mode} XDP)\nsender:   {tx!r}\n"
              f"{'time':>6} {'tx pps':>12} {'rx pps':>12} {'rx Mbit/s':>10} {'dropped':>8} "
              f"{'ring_full':>9} {'fill_empty':>10}", flush=True)
        sent = received = 0
        start = last = time.monotonic()
        last_sent = last_received = 0
        with prog, rx, tx:
            while (now := time.monotonic()) - start < duration:
                out = tx.alloc(batch)
                if len(out):
                    out.set_lengths(len(frame))
                    sent += tx.send(out)
                tx.complete()
                with rx.recv(4 * batch) as got:
                    received += len(got)
                if now - last >= 1.0:
                    s = rx.stats()
                    dt = now - last
                    rx_pps = (received - last_received) / dt
                    print(f"{now - start:6.1f} {(sent - last_sent) / dt:12,.0f} {rx_pps:12,.0f} "
                          f"{rx_pps * len(frame) * 8 / 1e6:10,.1f} {s.rx_dropped:8} "
                          f"{s.rx_ring_full:9} {s.rx_fill_ring_empty_descs:10}", flush=True)
                    last, last_sent, last_received = now, sent, received
            # Let the last frames arrive.
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline and received < sent:
                tx.complete()
                with rx.recv(4 * batch, timeout=0.05) as got:
                    received += len(got)
            elapsed = time.monotonic() - start
            s = rx.stats()
        totals = {"sent": sent, "received": received, "rx_dropped": s.rx_dropped,
                  "rx_ring_full": s.rx_ring_full, "rx_fill_ring_empty_descs": s.rx_fill_ring_empty_descs}
        print(f"summary: sent {sent:,} received {received:,} in {elapsed:.1f} s "
              f"({received / elapsed:,.0f} pps received); kernel: rx_dropped={s.rx_dropped} "
              f"rx_ring_full={s.rx_ring_full} rx_fill_ring_empty_descs={s.rx_fill_ring_empty_descs}",
              flush=True)
        return totals


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        if args.command == "lab":
            run_lab(args.duration, args.mode, args.batch, args.size)
    except KeyboardInterrupt:
        print("interrupted; lab removed", file=sys.stderr)
        return 130
    except (OSError, ValueError) as e:
        print(f"afxdp: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
