"""The soak's short form (`make soak` runs it 10 minutes in release, at half
of saturation; benches/soak/run.py): 20 s of the whole mix (REST reads and
writes, downloads and uploads, function calls, sign-ins, realtime
subscribers) against the debug `supa up` at a fixed 40 requests a second,
sampled every 2 s. It shows the mix and the sampling work end to end and
that nothing fails; whether memory stays flat takes the long form (20 s
is all warm-up)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("supa_soak", ROOT / "benches" / "soak" / "run.py")
_soak = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_soak)
soak = _soak.soak


def test_a_short_soak_has_no_errors_and_samples_every_gauge():
    report = soak(bin_dir=ROOT / "target" / "debug", seconds=20, interval=2, rate=40)
    kinds = report["kinds"]
    assert set(kinds) == {"rest_read", "rest_write", "object_read", "object_write", "function", "sign_in"}
    for kind, seen in kinds.items():
        assert seen["requests"] > 0, (kind, seen)
        assert seen["errors"] == 0 and seen["non_2xx"] == 0, (kind, seen)
    assert report["errors"] == 0
    samples = report["samples"]
    assert len(samples) >= 10, samples
    for s in samples:
        assert s["rss_mib"] > 0 and s["fds"] > 0, s
        # Auth, storage and the data plane each hold connections to the
        # project database, and the realtime feed its slot's.
        assert sum(s["db_connections"].values()) > 0, s
        assert s["slot_lag_bytes"] >= 0, s
    realtime = report["realtime"]
    assert realtime["sockets_closed"] == 0, realtime
    assert realtime["events_heard"] > 0, realtime
