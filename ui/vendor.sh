#!/usr/bin/env bash
# Copy the browser libraries the web UI uses into the package, from the versions package-lock.json pins.
# The output is committed: `pip install` needs neither Node nor npm. Rerun after changing package.json.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
out=../src/plinth/ui/static/vendor
mkdir -p "$out"
cp node_modules/htm/preact/standalone.module.js "$out/standalone.module.js"
cp node_modules/uplot/dist/uPlot.esm.js "$out/uPlot.esm.js"
cp node_modules/uplot/dist/uPlot.min.css "$out/uPlot.min.css"
cp node_modules/htm/LICENSE "$out/LICENSE.htm-preact" 2>/dev/null || cp node_modules/htm/package.json "$out/htm.package.json"
cp node_modules/uplot/LICENSE "$out/LICENSE.uplot"
# $out/README.md names each file, its version and license: update it with the versions above
