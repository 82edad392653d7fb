#!/usr/bin/env bash
# What the browser and SIP tests need (tests/tests/browser/): Debian's chromium, kamailio
# with its WebSocket module and SIPp, plus the npm packages pinned in tests/browser. Checks
# that the committed SIP.js bundle is the one package-lock.json gives.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v chromium >/dev/null || need+=(chromium)
command -v kamailio >/dev/null || need+=(kamailio)
[ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/websocket.so ] || need+=(kamailio-websocket-modules)
command -v sipp >/dev/null || need+=(sip-tester)
command -v npm >/dev/null || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
chromium --version
kamailio -v | head -1
sipp -v 2>&1 | grep -m1 SIPp || true

(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
bash tests/browser/bundle-sipjs.sh --check
