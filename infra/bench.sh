#!/usr/bin/env bash
# Runs Herald's benchmarks (shared/core/benches/operations.rs, release build, memory ports)
# and prints a table of criterion's medians, with notifications per second per core for one
# intake plus one dispatch. Needs only cargo and python3 (the standard library).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

cargo bench -p herald-core --bench operations

# criterion writes under $CRITERION_HOME, else under cargo's target directory
# (which CARGO_TARGET_DIR or .cargo/config may move)
if [[ -z "${CRITERION_HOME:-}" ]]; then
    target="$(cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    CRITERION_HOME="$target/criterion"
fi

python3 - "$CRITERION_HOME" <<'EOF'
import json
import os
import sys

home = sys.argv[1]
# criterion's id (group/function) and what it measures, in the order the table shows them
rows = [
    ("event/parse", "event parse: OrderCreated JSON to a validated event"),
    ("template/order_email", "render: order confirmation email (subject, text, HTML)"),
    ("template/refund_sms", "render: refund SMS (fr-CA, segments counted)"),
    ("service/intake", "intake: OrderCreated to one stored, queued email"),
    ("service/dispatch", "dispatch: one queued email claimed, sent, recorded"),
    ("webhook/sendgrid_ecdsa", "webhook: SendGrid ECDSA P-256 signature"),
    ("webhook/twilio_hmac", "webhook: Twilio HMAC-SHA1 signature"),
    ("webhook/ses_sns_rsa", "webhook: SES over SNS, RSA signature and certificate"),
]


def median_us(bench_id):
    path = os.path.join(home, *bench_id.split("/"), "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["median"]["point_estimate"] / 1000.0
    except FileNotFoundError:
        return None


def per_second(us):
    return f"{1e6 / us:,.0f}"


print()
print("| operation | µs per operation (median) | per second per core |")
print("|---|---:|---:|")
measured = {}
for bench_id, label in rows:
    us = median_us(bench_id)
    measured[bench_id] = us
    if us is None:
        print(f"| {label} | not run | |")
    else:
        print(f"| {label} | {us:.1f} | {per_second(us)} |")
intake, dispatch = measured["service/intake"], measured["service/dispatch"]
if intake is not None and dispatch is not None:
    total = intake + dispatch
    print(f"| **one notification: intake + dispatch** | **{total:.1f}** | **{per_second(total)}** |")
print()
print(f"(criterion's estimates in {home}; memory ports, so no network time is included)")
EOF
