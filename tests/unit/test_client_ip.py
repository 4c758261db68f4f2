"""limit_key: what a per-IP rate limit counts."""

from __future__ import annotations

import pytest

from entrypoints.http.client_ip import limit_key


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("unknown", "unknown"),
    ],
)
def test_ipv4_counts_per_address_and_ipv6_per_64(address: str, key: str) -> None:
    assert limit_key(address) == key
