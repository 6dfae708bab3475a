#!/usr/bin/env bash
# System packages afxdp's build, lab and tests use: iproute2 (ip, namespaces, veth), ping,
# tcpdump (a third-party reader of the pcap files `afxdp dump` writes), and pip packages for
# building (maturin) and testing (pytest, numpy; scapy, the other pcap reader checked).
# Idempotent; Debian 12; root.
set -euo pipefail
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v ping >/dev/null || need+=(iputils-ping)
command -v cc >/dev/null || need+=(gcc)
command -v tcpdump >/dev/null || need+=(tcpdump)
if ((${#need[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q "${need[@]}"
fi
python3 -m pip install -q "maturin>=1.9,<2" "pytest>=7" numpy scapy
