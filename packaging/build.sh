#!/usr/bin/env bash
# Build the self-contained desktop folder dist/forensic_face/ (PyInstaller, one folder, two executables:
# forensic-face-gui and forensic-face). Needs Python 3.11 and the wheels of packaging/requirements-cpu.txt;
# the result needs no Python, no network and no GPU on the investigator's workstation.
#
#   packaging/build.sh              CPU build (torch 2.13.0+cpu, about 1 GB)
#   packaging/build.sh --archive    also pack dist/forensic_face-<version>-linux-x86_64-cpu.tar.gz
#   FORENSIC_FACE_BUILD_VARIANT=cuda packaging/build.sh
#                                   CUDA build (torch 2.14.1 with its nvidia-* libraries, about 5 GB) into
#                                   dist/forensic_face-cuda/ from its own venv build/venv-package-cuda
#
# The build venv is build/venv-package[-cuda] (git-ignored; override with FORENSIC_FACE_BUILD_VENV). It must not
# contain torchvision: the frozen app uses forensic_face.engine.mtcnn, which does not need it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VARIANT="${FORENSIC_FACE_BUILD_VARIANT:-cpu}"
PYTHON="${PYTHON:-python3.11}"
ARCHIVE=0
for arg in "$@"; do
    case "$arg" in
        --archive) ARCHIVE=1 ;;
        *) echo "usage: packaging/build.sh [--archive]" >&2; exit 2 ;;
    esac
done
case "$VARIANT" in
    cpu) SUFFIX=""; TORCH_PIN="" ;;
    cuda) SUFFIX="-cuda"; TORCH_PIN="torch==2.14.1" ;;
    *) echo "FORENSIC_FACE_BUILD_VARIANT must be cpu or cuda, got $VARIANT" >&2; exit 2 ;;
esac
VENV="${FORENSIC_FACE_BUILD_VENV:-$ROOT/build/venv-package$SUFFIX}"
FOLDER="forensic_face$SUFFIX"
export FORENSIC_FACE_BUILD_VARIANT="$VARIANT"

start=$(date +%s)

# 1. Build venv: runtime dependencies (no torchvision), PyInstaller, and facenet-pytorch only for its weight files.
stamp="$VENV/.installed-$(cat packaging/requirements-cpu.txt "$0" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "== preparing the build venv $VENV"
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    if [ -n "$TORCH_PIN" ]; then
        grep -v '^torch==' packaging/requirements-cpu.txt > "$VENV/requirements.txt"
        echo "$TORCH_PIN" >> "$VENV/requirements.txt"
    else
        cp packaging/requirements-cpu.txt "$VENV/requirements.txt"
    fi
    "$VENV/bin/pip" install -q -r "$VENV/requirements.txt" pyinstaller==6.22.3
    "$VENV/bin/pip" install -q --no-deps facenet-pytorch==2.6.0
    rm -f "$VENV"/.installed-*
    touch "$stamp"
fi
if "$VENV/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torchvision') is None)"; then
    echo "torchvision is installed in $VENV; remove it (pip uninstall torchvision): the bundle must not need it" >&2
    exit 1
fi
torch_version="$("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
echo "== torch $torch_version in $VENV"

# 2. Freeze.
rm -rf "dist/$FOLDER"
"$VENV/bin/pyinstaller" --noconfirm --clean --log-level WARN \
    --distpath "$ROOT/dist" --workpath "$ROOT/build/pyinstaller$SUFFIX" packaging/forensic_face.spec

# 3. Desktop entry and icon beside the executables (the .desktop file is installed by docs/packaging.md's steps).
cp packaging/linux/forensic-face.desktop "dist/$FOLDER/"
cp resources/icons/forensic_face.png "dist/$FOLDER/"
version="$("$VENV/bin/python" -c 'import sys; sys.path.insert(0, "."); import forensic_face; print(forensic_face.__version__)')"
{
    echo "forensic_face $version ($VARIANT build)"
    echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) from commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "torch $torch_version"
} > "dist/$FOLDER/BUILD.txt"

# 4. Check that it starts without this venv or the source tree.
env -i HOME="$(mktemp -d)" PATH=/usr/bin:/bin QT_QPA_PLATFORM=offscreen "dist/$FOLDER/forensic-face" --version

end=$(date +%s)
size="$(du -sh "dist/$FOLDER" | cut -f1)"
echo "== built dist/$FOLDER: $size in $((end - start)) s"

if [ "$ARCHIVE" = 1 ]; then
    archive="dist/forensic_face-$version-linux-$(uname -m)-$VARIANT.tar.gz"
    tar -C dist -czf "$archive" "$FOLDER"
    echo "== archive $archive: $(du -sh "$archive" | cut -f1)"
fi
