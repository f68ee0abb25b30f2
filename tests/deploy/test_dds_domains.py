"""Loopback DDS domain ids handed out among processes on one machine (robolearn.deploy.dds)."""

from __future__ import annotations

import select
import subprocess
import sys

import pytest

from robolearn.deploy.dds import LOCAL_DOMAINS, claim_local_domain

_HOLD = """
import time
from robolearn.deploy.dds import claim_local_domain
domain, fh = claim_local_domain()
print(domain, flush=True)
time.sleep(60)
"""


def test_a_domain_held_by_another_process_is_never_handed_out_and_a_dead_holders_is() -> None:
    first, fh = claim_local_domain()
    assert range(2, 99) == LOCAL_DOMAINS  # 0 and 1 stay free for a user's robot and sim
    second, fh2 = claim_local_domain()
    assert second != first  # the same process's own lock counts as held
    fh2.close()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        ready, _, _ = select.select([holder.stdout], [], [], 30.0)
        line = holder.stdout.readline() if ready else ""
        assert line.strip(), f"the holder process claimed nothing: {holder.stderr and holder.stderr.read()}"
        held = int(line)
        assert held != first  # ours is held by us
        # With every other domain excluded, the one the other process holds is not handed out.
        with pytest.raises(RuntimeError, match="no free DDS domain id in 2-98"):
            claim_local_domain(exclude=set(LOCAL_DOMAINS) - {held})
    finally:
        holder.kill()
        holder.wait()
    # Its lock died with it: the domain is free again.
    again, fh3 = claim_local_domain(exclude=set(LOCAL_DOMAINS) - {held})
    assert again == held
    fh3.close()
    fh.close()
