#!/bin/sh
# A short real demo of the registry and the admin tool on the default
# registry (or $TFIMM_REGISTRY when set). It registers a demo model, resolves
# it, audits, shows what prune would forget, and clears the demo entry again;
# it never prunes or changes anyone else's entries.
#   tools/demo.sh path/to/tfimm-cache
set -eu
tool=${1:?usage: demo.sh path/to/tfimm-cache}
demo_dir=$(mktemp -d)
trap 'rm -rf "$demo_dir"' EXIT
name=tfimm-demo-resnet18
run() { printf '\n$ tfimm-cache %s\n' "$*"; "$tool" "$@"; }

run where
mkdir -p "$demo_dir/weights/$name"
run set "$name" "$demo_dir/weights/$name"
run path "$name" --explain
run list
run audit || true
rm -rf "$demo_dir/weights/$name"
printf '\n(the weights directory of %s was removed)\n' "$name"
run audit || true
run prune --dry-run
run clear "$name"
run path "$name" || echo "(exit $?: $name is no longer cached)"
run history "$name" --limit 4
run doctor
