#!/usr/bin/env bash
# Build FerretDB v1.24.2 into .tools/bin/ferretdb (make deps calls it when the binary is missing or
# older than this script or its patch).
# `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2` builds a binary that panics at start
# ("Invalid build/version/version.txt file content"): the module zip lacks the generated version.txt.
# So we fetch the same module from the Go proxy, add that one file, apply one patch, and build it.
# The patch (scripts/ferretdb-id-lookup.patch): the postgresql handler pushes `{_id: x}` down as
# `_jsonb->$1 @> $2`, which its own _id_ index cannot serve, so every find or update by _id scanned
# the collection (docs/benchmarks.md, "the store"); patched, it is `_jsonb->'_id' = $1`, an index scan.
set -euo pipefail
VERSION=v1.24.2
DEST=$(realpath -m "${1:-.tools/bin/ferretdb}")
PATCH=$(realpath "$(dirname "$0")/ferretdb-id-lookup.patch")
command -v go >/dev/null || { echo "install-ferretdb: Go is needed (https://go.dev/dl/)" >&2; exit 1; }
src=$(go mod download -json "github.com/FerretDB/FerretDB@$VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
cp -r "$src/." "$work/"
chmod -R u+w "$work"
echo "$VERSION" > "$work/build/version/version.txt"
(cd "$work" && git apply "$PATCH")
mkdir -p "$(dirname "$DEST")"
(cd "$work" && go build -trimpath -o "$DEST.tmp" ./cmd/ferretdb)
mv "$DEST.tmp" "$DEST"
echo "install-ferretdb: built $("$DEST" --version | head -1) at $DEST"
