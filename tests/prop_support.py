"""Shared pieces of the hypothesis suites (``test_prop_*.py``): example counts that follow the
active profile, and an RFC 1071 checksum written independently of ``afxdp.packet``.

The profiles are registered in ``conftest.py``: ``ci`` (the default; derandomized, so every run
tries the same examples), ``dev`` (random, for local runs) and ``soak`` (ten times the examples).
Privileged suites pin small per-test counts, since each example costs a round trip through a
veth; :func:`examples` scales them with the profile, so ``--hypothesis-profile=soak`` makes
every suite ten times longer.
"""

from __future__ import annotations

from hypothesis import settings

#: Examples of hypothesis's default profile, the unit :func:`examples` scales by.
_BASE_EXAMPLES = 100


def examples(count: int) -> int:
    """``count`` examples under the ci/dev profiles, scaled up under ``soak``."""
    return max(1, count * settings.default.max_examples // _BASE_EXAMPLES)


def internet_sum(data: bytes) -> int:
    """The 16-bit ones' complement sum of ``data`` (odd length padded with a zero byte), word
    by word, as RFC 1071 describes it: the oracle the codecs are checked against."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for i in range(0, len(data), 2):
        total += data[i] << 8 | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


def checksum(data: bytes) -> int:
    """The RFC 1071 checksum to store in a header whose checksum field is zero."""
    return ~internet_sum(data) & 0xFFFF
