#!/usr/bin/env bash
# Vendors the Swagger UI assets that `GET /docs` serves (issue #14) into shared/assets/swagger-ui/:
# downloads the pinned `swagger-ui-dist` tarball from the npm registry, checks it against the
# pinned sha512 (the registry's `dist.integrity`), and keeps only what the page loads and the
# licences, gzip-compressed (`gzip -9n`: no name or time stamp, so a re-run writes the same
# bytes). The binaries embed them with include_bytes! and serve them with
# `Content-Encoding: gzip`; nothing is fetched at build or run time, so the page works offline.
#
# Run it only to change the version: set SWAGGER_UI_VERSION and SWAGGER_UI_SHA512 below (from
# `npm view swagger-ui-dist@<version> dist.integrity`), run it, update SWAGGER_UI_VERSION in
# shared/src/handlers/docs/mod.rs (a unit test compares it with assets/swagger-ui/VERSION), and
# commit the folder.
set -euo pipefail

SWAGGER_UI_VERSION="5.36.0"
SWAGGER_UI_SHA512="Lt6/Kb0gXmLdiabLhvso4VdJP9V7qJWB0zh0gzeXUV3+CMOTzMmvpJRSXN7EAjfwixwmoi9ezDbLHiexC7lA9A=="
# What index.html loads, and the licences that must travel with it.
FILES=(swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE swagger-ui-bundle.js.LICENSE.txt)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/shared/assets/swagger-ui"
URL="https://registry.npmjs.org/swagger-ui-dist/-/swagger-ui-dist-$SWAGGER_UI_VERSION.tgz"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

echo "downloading $URL"
curl -fsSL --retry 3 -o "$WORK/package.tgz" "$URL"
actual="$(openssl dgst -sha512 -binary "$WORK/package.tgz" | base64 -w0)"
if [[ "$actual" != "$SWAGGER_UI_SHA512" ]]; then
  echo "error: sha512 of $URL is $actual, expected $SWAGGER_UI_SHA512" >&2
  exit 1
fi
tar -xzf "$WORK/package.tgz" -C "$WORK"

rm -rf "$OUT"
mkdir -p "$OUT"
for file in "${FILES[@]}"; do
  gzip -9n -c "$WORK/package/$file" >"$OUT/$file.gz"
done
echo "$SWAGGER_UI_VERSION" >"$OUT/VERSION"
cat >"$OUT/README.md" <<EOF
# Swagger UI $SWAGGER_UI_VERSION (vendored)

The files \`GET /docs\` serves, from the npm package \`swagger-ui-dist@$SWAGGER_UI_VERSION\`
(sha512 \`$SWAGGER_UI_SHA512\`), gzip-compressed. Written by \`scripts/vendor-swagger-ui.sh\`:
do not edit; re-run the script to change the version. Licence: Apache-2.0 (LICENSE.gz, NOTICE.gz;
the bundled third-party licences in swagger-ui-bundle.js.LICENSE.txt.gz).
EOF

printf '%-40s %10s %10s\n' file bytes gzipped
for file in "${FILES[@]}"; do
  printf '%-40s %10d %10d\n' "$file" "$(stat -c %s "$WORK/package/$file")" "$(stat -c %s "$OUT/$file.gz")"
done
