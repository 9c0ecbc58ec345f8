#!/bin/sh
# Installs the built project into a temporary prefix, builds this consumer
# project against it, and runs the seed example in a temporary HOME.
#   run.sh <build dir> <this dir>
set -eu
build=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$src" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/build" >/dev/null
mkdir -p "$work/home"
out=$(env -u TFIMM_REGISTRY -u XDG_STATE_HOME -u TFIMM_HOME -u XDG_CACHE_HOME \
      HOME="$work/home" "$work/build/consumer")
expected="$work/home/resnet18_saved"
if [ "$out" != "$expected" ]; then
  echo "expected '$expected', got '$out'" >&2
  exit 1
fi
test -f "$work/home/.local/state/tfimm/registry.db" || {
  echo "the default registry was not created at ~/.local/state/tfimm/registry.db" >&2
  exit 1
}
test -x "$work/prefix/bin/tfimm-cache" || { echo "tfimm-cache was not installed" >&2; exit 1; }
echo "consumer printed $out"
