"""Builds the tfimm_cache Python package with scikit-build from the same
CMakeLists.txt as everything else: only the library, the tfimm-cache
program and the module are built (no tests, no benchmarks), and only the
package is installed (the "python" component: _native and tfimm-cache next
to the Python files)."""

import re
from pathlib import Path

from skbuild import setup

version = re.search(
    r"project\(tfimm_cache VERSION ([0-9.]+)", Path(__file__).with_name("CMakeLists.txt").read_text()
).group(1)

setup(
    name="tfimm_cache",
    version=version,
    description="tfimm's model cache, persistent and shared by every process",
    packages=["tfimm_cache"],
    package_dir={"": "python"},
    package_data={"tfimm_cache": ["py.typed", "*.pyi"]},
    python_requires=">=3.8",
    cmake_install_dir="python",
    cmake_install_target="install-python",
    cmake_args=[
        "-DCMAKE_BUILD_TYPE=Release",
        "-DTFIMM_BUILD_PYTHON=ON",
        "-DTFIMM_BUILD_TOOLS=ON",
        "-DTFIMM_BUILD_TESTS=OFF",
        "-DTFIMM_BUILD_BENCH=OFF",
    ],
    zip_safe=False,
)
