#!/usr/bin/env bash
# System packages afxdp's build, lab and tests use: iproute2 (ip, namespaces, veth), ping,
# tcpdump (a third-party reader of the pcap files `afxdp dump` writes), strace (counts the
# busy-poll syscalls in tests/test_busy_poll.py), a C compiler, pip, the system Python's venv
# module (the test venvs of scripts/check-dist.sh), a Rust
# toolchain when there is none (Debian's rustc-web/cargo-web from bookworm-security; rustup's is
# used when present), and pip packages for building (maturin) and testing (pytest, hypothesis for
# the property-based suites, numpy; scapy,
# the other pcap reader checked; mypy, whose stubtest checks python/afxdp/_native.pyi against the
# compiled module).
# Idempotent; Debian 12; root.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v ping >/dev/null || need+=(iputils-ping)
command -v cc >/dev/null || need+=(gcc)
command -v tcpdump >/dev/null || need+=(tcpdump)
command -v strace >/dev/null || need+=(strace)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
# The system interpreter's venv module (scripts/check-dist.sh makes the test venvs from it).
/usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
if ((${#need[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q "${need[@]}"
fi
if ! command -v cargo >/dev/null; then
    # No rustup: Debian 12's own Rust is too old for the project, its security archive's is not.
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q -t bookworm-security rustc-web cargo-web rustfmt-web rust-web-clippy
fi
python3 -m pip install -q "maturin>=1.9,<2" "pytest>=7" hypothesis numpy scapy ruff mypy
