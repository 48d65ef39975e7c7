"""Shared setup of gotrace's integration tests.

- Makes tests/integration importable (``import gobuild``).
- Session fixtures: ``toolchain_map`` ({minor: GOROOT}, fetched once by tools/go-toolchains.sh)
  and ``inspectme_builds`` (every variant of tests/fixtures/inspectme for every toolchain,
  built in parallel once per session; {(minor, variant): path}).
- Under CI=true a skipped test is reported as a failure: the suite must never pass by not
  running.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gobuild  # noqa: E402

CI = os.environ.get("CI") == "true"


@pytest.fixture(scope="session")
def toolchain_map():
    """{minor: GOROOT} of the Go matrix; fails (never skips) when a toolchain is missing."""
    try:
        return gobuild.toolchains()
    except Exception as e:
        pytest.fail("Go toolchains unavailable: %s" % e, pytrace=False)


@pytest.fixture(scope="session")
def inspectme_builds(toolchain_map):
    """All variants of the inspectme fixture for every toolchain: {(minor, variant): path}."""
    specs = [("inspectme", m, v) for m in gobuild.MINORS for v in gobuild.VARIANTS]
    try:
        built = gobuild.build_many(specs, jobs=2)
    except Exception as e:
        pytest.fail("building the inspectme fixture failed: %s" % e, pytrace=False)
    return {(m, v): p for (_, m, v), p in built.items()}


@pytest.fixture(scope="session")
def gotrace_bin():
    """Path of ./gotrace; fails when it has not been built."""
    if not os.access(gobuild.GOTRACE_BIN, os.X_OK):
        pytest.fail("%s is missing: run `make gotrace` first" % gobuild.GOTRACE_BIN,
                    pytrace=False)
    return gobuild.GOTRACE_BIN


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if CI and rep.skipped and not hasattr(rep, "wasxfail"):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = "skipped under CI=true (a skip is a failure in CI): %s" % reason
