#!/usr/bin/env bash
# Copies the live page's browser libraries from npm into the Python package, so the service
# serves them itself (no CDN; the page works on a network without internet).
#
#   cd web && npm ci && ./vendor.sh      # then commit src/urbanpulse/web/static/vendor
#
# package.json pins the versions and package-lock.json their integrity hashes; to upgrade,
# change package.json, run `npm install`, run this script, and commit all three.
set -euo pipefail
cd "$(dirname "$0")"
out=../src/urbanpulse/web/static/vendor
[ -d node_modules/leaflet ] || { echo "run 'npm ci' in web/ first" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out/leaflet/images"
# the source-map comment is dropped: the map is not shipped, and a browser would ask for it
sed '/^\/\/# sourceMappingURL=/d' node_modules/leaflet/dist/leaflet.js > "$out/leaflet/leaflet.js"
cp node_modules/leaflet/dist/leaflet.css "$out/leaflet/leaflet.css"
cp node_modules/leaflet/dist/images/*.png "$out/leaflet/images/"
cp node_modules/leaflet/LICENSE "$out/leaflet/LICENSE"
version=$(node -p 'require("./node_modules/leaflet/package.json").version')
echo "leaflet $version (BSD-2-Clause) from npm; copied by web/vendor.sh" > "$out/VERSIONS"
echo "vendored into $out:"; find "$out" -type f | sort
