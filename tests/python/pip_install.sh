#!/bin/sh
# The README's Python install, as a user runs it: a virtual environment made
# by the given interpreter with --system-site-packages, then
# `pip install --no-build-isolation --no-index .` in a copy of the source
# tree (no network, nothing written to the checkout), then the Python tests
# against the installed package instead of the build tree.
# Usage: pip_install.sh SOURCE_DIR PYTHON
set -eu
src=$1
python=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir "$work/src"
(cd "$src" && tar -cf - --exclude='./build*' --exclude=./_skbuild --exclude=./.git \
  --exclude='*.egg-info' --exclude=./venv .) | tar -xf - -C "$work/src"

# The command the README gives (the line after "<!-- python-install -->"),
# with the interpreter this build uses in place of /usr/bin/python3.
command=$(awk '/<!-- python-install -->/ {getline; getline; print; exit}' "$src/README.md")
case $command in
  */usr/bin/python3\ -m\ venv*) ;;
  *) echo "README.md has no install command after <!-- python-install -->" >&2; exit 1 ;;
esac
command=$(printf '%s' "$command" | sed "s|/usr/bin/python3|$python|")
# Reuse compiled objects between runs when ccache is there; it does not
# change what is built.
if command -v ccache >/dev/null 2>&1 && [ -z "${SKBUILD_CONFIGURE_OPTIONS:-}" ]; then
  export SKBUILD_CONFIGURE_OPTIONS="-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"
  export CCACHE_BASEDIR="$work/src" CCACHE_NOHASHDIR=true
fi
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
echo "+ $command"
(cd "$work/src" && sh -euc "$command" >"$work/pip.log" 2>&1) || { cat "$work/pip.log"; exit 1; }
venv="$work/src/venv"

# The installed package, not the build tree or the source tree.
unset PYTHONPATH
cd "$work"
"$venv/bin/python" -c "
import sys, tfimm_cache
assert tfimm_cache.__file__.startswith(sys.argv[1]), tfimm_cache.__file__
print('installed', tfimm_cache.__version__, 'at', tfimm_cache.__file__)
" "$venv/"
"$venv/bin/python" -m pytest -q -p no:cacheprovider \
  "$src/tests/python/test_functions.py" "$src/tests/python/test_tool.py" \
  "$src/tests/python/test_package.py"
