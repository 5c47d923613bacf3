#!/usr/bin/env bash
# Checks template.yaml: cfn-lint, `sam validate --lint` (offline, region set)
# and the wiring check in infra/check_template.py. Installs the pinned tools
# in .local-stack/tools on first use. Fails on any finding.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS="$ROOT/.local-stack/tools"
CFN_LINT_VERSION=1.58.0
SAM_VERSION=1.170.0
VERSIONS="cfn-lint $CFN_LINT_VERSION, aws-sam-cli $SAM_VERSION"

if [ ! -x "$TOOLS/bin/sam" ] || [ "$(cat "$TOOLS/.versions" 2>/dev/null)" != "$VERSIONS" ]; then
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install --quiet --disable-pip-version-check "cfn-lint==$CFN_LINT_VERSION" "aws-sam-cli==$SAM_VERSION"
  echo "$VERSIONS" > "$TOOLS/.versions"
fi

cd "$ROOT"
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 SAM_CLI_TELEMETRY=0
"$TOOLS/bin/cfn-lint" template.yaml
"$TOOLS/bin/sam" validate --lint --template template.yaml --region us-east-1
"$TOOLS/bin/python" infra/check_template.py template.yaml
