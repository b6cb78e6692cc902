#!/usr/bin/env bash
# Refresh the JavaScript that wsidist ships (the viewer's OpenSeadragon) from the npm registry.
# The files are committed, so installing or running wsidist never needs a network.
set -euo pipefail
VERSION=6.1.1
INTEGRITY='sha512-g4iKe2q8B642SaBT3+x4ZF3/8b1TxPPydyjmtrOLgDrlYWMKd9ZXM+1Cb/xa9DVySkvs/7l6HR1nHKfD5F3Tsw=='
cd "$(dirname "$0")/.."
DEST=wsidist/view/static/openseadragon
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && npm pack "openseadragon@$VERSION" --json > pack.json)
python - "$TMP/pack.json" "$INTEGRITY" <<'PY'
import json, sys
got = json.load(open(sys.argv[1]))[0]["integrity"]
assert got == sys.argv[2], f"integrity changed: {got}"
PY
tar xzf "$TMP"/openseadragon-$VERSION.tgz -C "$TMP"
rm -rf "$DEST" && mkdir -p "$DEST/images"
cp "$TMP/package/build/openseadragon/openseadragon.min.js" "$DEST/"
cp "$TMP/package/build/openseadragon/images/"*.png "$DEST/images/"
cp "$TMP/package/LICENSE.txt" "$DEST/LICENSE.txt"
echo "openseadragon $VERSION ($INTEGRITY)" > "$DEST/VERSION"
echo "vendored OpenSeadragon $VERSION into $DEST"
