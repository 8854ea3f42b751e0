#!/usr/bin/env python3
"""Prints the medians criterion measured for benches/keys.rs as a Markdown
table with each target and whether it is met; read by hand into RESULTS.md."""

import json
import pathlib

CRITERION = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"

# name -> (what, absolute target in ns or None)
BENCHES = {
    "key_validate": ("API key validate (checksum)", 500),
    "key_hash": ("API key SHA-256 lookup hash", None),
    "jwt_mint_fresh": ("JWT mint, fresh", 2_000),
    "jwt_mint_cached": ("JWT mint, cached (MintCache)", 100),
    "jwt_verify": ("JWT verify", 3_000),
    "sigv4_supa_cached_key": ("SigV4 sign, supa-keys, cached signing key", None),
    "sigv4_supa_uncached_key": ("SigV4 sign, supa-keys, key derived per call", None),
    "sigv4_aws_sigv4": ("SigV4 sign, aws-sigv4 (baseline)", None),
}


def median_ns(name: str) -> float:
    estimates = json.loads((CRITERION / name / "new" / "estimates.json").read_text())
    return estimates["median"]["point_estimate"]


def fmt(ns: float) -> str:
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.1f} ns"


def main() -> None:
    medians = {name: median_ns(name) for name in BENCHES}
    baseline = medians["sigv4_aws_sigv4"]
    print("| benchmark | median | target | met |")
    print("|---|---|---|---|")
    for name, (what, target) in BENCHES.items():
        ns = medians[name]
        if target is not None:
            print(f"| {what} | {fmt(ns)} | < {fmt(target)} | {'yes' if ns < target else 'NO'} |")
        elif name == "sigv4_supa_cached_key":
            ratio = ns / baseline
            print(f"| {what} | {fmt(ns)} | ≤ 0.5 × aws-sigv4 (measured {ratio:.2f}×) | {'yes' if ratio <= 0.5 else 'NO'} |")
        else:
            print(f"| {what} | {fmt(ns)} | | |")


if __name__ == "__main__":
    main()
