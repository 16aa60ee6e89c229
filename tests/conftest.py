"""Suite-wide setup.

`jaxrl57 train` and `report` keep compiled programs in the user's cache folder
(`jaxrl57.cli.configure_compile_cache`); the suite must not write there, and a
cache warmed by earlier runs would hide compilation from the tests that time or
count it.

The suite instead compiles into one cache folder of its own, made empty for each
`pytest` run and removed after it, shared by the xdist workers and by the
`jaxrl57` processes the tests start (JAX's JAX_COMPILATION_CACHE_DIR, which the
command line leaves as set). Many tests build the same programs (a tiny CartPole
or Catch run, the default networks), and compiling dominates most tests' time on
CPU. What a test asserts never depends on the cache: a program read back from it
is the one the test would have compiled. The tests that count compilations or
cache hits run in processes with JAX's variables removed, or point JAX at a cache
of their own and restore this one after (the `compile_cache` fixtures).

The default selection (`-m 'not slow'`) also compiles with XLA's backend
optimisation level 0: its programs are small and run briefly, so LLVM's
optimisation passes cost more than they save (about a third of those tests'
time). The learning checks (`-m slow`) and any run given its own XLA_FLAGS keep
XLA's defaults. A test compares programs built under the same flags, or compares
against a reference with a tolerance that float rounding passes.
"""

import os
import shutil
import tempfile

import pytest

os.environ["JAXRL57_NO_COMPILE_CACHE"] = "1"

_CACHE_KEY = "jaxrl57_suite_xla_cache"


def _use_cache(path: str) -> None:
    # Set before JAX is imported (the workers import it when collecting), so that
    # JAX's configuration and every child process read them.
    os.environ["JAX_COMPILATION_CACHE_DIR"] = path
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"


def _fast_compile(config) -> None:
    if config.option.markexpr == "not slow" and "XLA_FLAGS" not in os.environ:
        os.environ["XLA_FLAGS"] = "--xla_backend_optimization_level=0"


def pytest_configure(config):
    _fast_compile(config)
    worker = getattr(config, "workerinput", None)
    if worker is not None:  # an xdist worker: the controller made the folder
        _use_cache(worker[_CACHE_KEY])
        return
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return  # the caller chose a cache: leave it
    config._jaxrl57_cache = tempfile.mkdtemp(prefix="jaxrl57-suite-xla-")
    _use_cache(config._jaxrl57_cache)


@pytest.hookimpl(optionalhook=True)  # an xdist hook
def pytest_configure_node(node):
    node.workerinput[_CACHE_KEY] = os.environ["JAX_COMPILATION_CACHE_DIR"]


def pytest_unconfigure(config):
    path = getattr(config, "_jaxrl57_cache", None)
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)
