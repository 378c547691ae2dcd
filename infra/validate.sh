#!/usr/bin/env bash
# Validates infra/template.yaml offline with the SAM CLI and cfn-lint from the
# venv that infra/bootstrap.sh keeps. Exits non-zero on any finding.
#
# Offline: `sam validate --lint` only runs cfn-lint (its schemas ship in the
# package), which transforms the SAM template locally. Plain `sam validate`,
# without --lint, calls IAM to resolve managed policies and needs credentials
# and the network, so it is not used. The SAM CLI's weekly "newer version"
# check is its one network call; it fails silently when offline.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${HERALD_VENV:-$repo_root/.venv}"
template="infra/template.yaml"
region="us-east-1"

"$repo_root/infra/bootstrap.sh"
cd "$repo_root"

export SAM_CLI_TELEMETRY=0
# Nothing here may reach for credentials or instance metadata.
unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
export AWS_EC2_METADATA_DISABLED=true

status=0

echo "validate: sam validate --lint" >&2
"$venv/bin/sam" validate --lint --template "$template" --region "$region" || status=1

# Informational checks too (stateful resources, retention): the template has none.
echo "validate: cfn-lint" >&2
"$venv/bin/cfn-lint" --regions "$region" --include-checks I -- "$template" || status=1

# cfn-lint checks the SAM schema but not what the transform makes of it (routes, permissions,
# dependencies): expand it offline and lint the result, which catches circular dependencies.
echo "validate: the expanded template" >&2
expanded="$(mktemp --suffix=.json)"
trap 'rm -f "$expanded"' EXIT
if AWS_DEFAULT_REGION="$region" "$venv/bin/python" "$repo_root/infra/transform.py" "$template" "$expanded"; then
    "$venv/bin/cfn-lint" --regions "$region" -- "$expanded" || status=1
else
    status=1
fi

if [[ $status -ne 0 ]]; then
    echo "validate: $template has findings" >&2
else
    echo "validate: $template is clean" >&2
fi
exit "$status"
