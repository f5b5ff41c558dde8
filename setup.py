"""Build of the compiled tree kernel; the project's metadata stays in pyproject.toml.

setuptools reads ``[project]`` from pyproject.toml and only the C extension from here, so
``pip install -e '.[dev]'`` (what ``make install`` runs) compiles
``engine/inference/_tree_kernel.c`` with the machine's gcc and the interpreter's headers:
the install stays one command. ``-ffp-contract=off`` keeps every floating-point operation
separately rounded, as LightGBM's (baseline x86-64) build computes them: predictions must
be bit-identical.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "engine.inference._tree_kernel",
            sources=["engine/inference/_tree_kernel.c"],
            extra_compile_args=["-O3", "-std=c11", "-ffp-contract=off", "-fno-fast-math"],
        )
    ]
)
