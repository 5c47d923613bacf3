#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs (pinned) and starts the
# local stack, checks formatting and lints, runs every test, stops the stack.
# Exits non-zero when anything fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component"
  fi
done

infra/local-stack.sh start
trap 'infra/local-stack.sh stop' EXIT
eval "$(infra/local-stack.sh env)"
# Integration tests fail, rather than skip, when the stack is missing.
export CASEBRIDGE_REQUIRE_STACK=1

echo "== template: cfn-lint, sam validate --lint, wiring check"
infra/template-check.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== browser for the console's tests: chromium, chromium-driver, axe-core (pinned, in target/)"
AXE_CORE_VERSION=4.10.3
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends chromium chromium-driver \
    || { apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver; }
fi
if [ "$(node -p 'require("./target/axe-core/node_modules/axe-core/package.json").version' 2>/dev/null)" != "$AXE_CORE_VERSION" ]; then
  npm install --prefix target/axe-core --no-save --no-audit --no-fund "axe-core@$AXE_CORE_VERSION"
fi
# The console's browser test fails, rather than skips, without them.
export CASEBRIDGE_REQUIRE_BROWSER=1
echo "== cargo test"
cargo test --workspace --locked
echo "== load and faults (small): real handlers on the local stack, invariants checked"
cargo test -p casebridge-tests --bench load --locked -- --mails 300
