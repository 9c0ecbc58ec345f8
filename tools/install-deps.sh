#!/bin/sh
# Installs what tfimm-cache needs to build and test on Debian 12.
set -eu
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
  ca-certificates cmake make g++ pkg-config \
  libsqlite3-dev libsqlitecpp-dev libboost-filesystem-dev \
  catch2 libcli11-dev nlohmann-json3-dev sqlite3 libfuse3-dev fuse3 \
  python3-dev pybind11-dev python3-pybind11 python3-pytest python3-mypy python3-venv \
  python3-setuptools python3-skbuild python3-diskcache libpq-dev postgresql "$@"
