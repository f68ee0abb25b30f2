"""Loopback DDS domain ids handed out among processes on one machine (robolearn.deploy.dds)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from robolearn.deploy.dds import LOCAL_DOMAINS, claim_local_domain

_HOLD = """
import sys, time
from robolearn.deploy.dds import claim_local_domain
domain, fh = claim_local_domain(exclude=set(range(2, 99)) - {int(sys.argv[1])})
print(domain, flush=True)
time.sleep(60)
"""


def test_a_domain_held_by_another_process_is_never_handed_out_and_a_closed_one_is() -> None:
    first, fh = claim_local_domain()
    assert first in LOCAL_DOMAINS and first not in (0, 1)  # 0 and 1 stay free for a user's robot and sim
    second, fh2 = claim_local_domain()
    assert second != first  # the same process's own lock counts as held
    fh2.close()
    # Another process holds `second` now: with every other domain excluded there is none left for us.
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(second)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and int(holder.stdout.readline()) == second
        others = set(LOCAL_DOMAINS) - {second}
        with pytest.raises(RuntimeError, match="no free DDS domain id in 2-98"):
            claim_local_domain(exclude=others)
    finally:
        holder.kill()
        holder.wait()
    # Its lock died with it: the domain is free again.
    again, fh3 = claim_local_domain(exclude=set(LOCAL_DOMAINS) - {second})
    assert again == second
    fh3.close()
    fh.close()
