#!/usr/bin/env bash
# Re-fetch the vendored vis-network standalone UMD build (inlined into `kg export --format html`)
# from npm and check its md5. To upgrade: change VERSION, run with MD5= (empty) to see the
# new sum, review it, then set MD5 and update ie_service/kg/static/README.md.
set -euo pipefail
VERSION="${VERSION:-10.1.5}"
MD5="${MD5-95262ff774c7dee3e264b56121196764}"
cd "$(dirname "$0")/.."
dest=ie_service/kg/static
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "vis-network@$VERSION" >/dev/null && tar xzf "vis-network-$VERSION.tgz")
js="$tmp/package/standalone/umd/vis-network.min.js"
sum=$(md5sum "$js" | cut -d' ' -f1)
if [ -n "$MD5" ] && [ "$sum" != "$MD5" ]; then
    echo "md5 mismatch for vis-network@$VERSION: got $sum, expected $MD5" >&2
    exit 1
fi
cp "$js" "$dest/vis-network.min.js"
cp "$tmp/package/LICENSE-APACHE-2.0" "$dest/vis-network.LICENSE-APACHE-2.0"
cp "$tmp/package/LICENSE-MIT" "$dest/vis-network.LICENSE-MIT"
echo "vendored vis-network@$VERSION ($sum, $(wc -c <"$dest/vis-network.min.js") bytes) into $dest"
