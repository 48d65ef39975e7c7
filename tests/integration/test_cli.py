"""The command line itself: help, version, dispatch, and usage errors."""
import json
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOTRACE = os.path.join(ROOT, "gotrace")


def run(*args, timeout=10):
    return subprocess.run([GOTRACE, *args], capture_output=True, text=True, timeout=timeout)


def test_version():
    r = run("--version")
    assert r.returncode == 0
    assert r.stdout.startswith("gotrace ")


@pytest.mark.parametrize("cmd", ["inspect", "symbolize", "count"])
def test_command_help(cmd):
    r = run(cmd, "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Usage: gotrace " + cmd)


def test_help_lists_every_command():
    r = run("--help")
    assert r.returncode == 0
    for cmd in ("inspect", "symbolize", "count"):
        assert "\n  " + cmd in r.stdout


def test_unique_prefix_dispatches():
    r = run("insp", "--help")
    assert r.returncode == 0
    assert r.stdout.startswith("Usage: gotrace inspect")


@pytest.mark.parametrize("args", [["frobnicate"], ["inspect"], ["symbolize", "/bin/true"],
                                  ["inspect", "-p", "notapid"], ["symbolize", "/bin/true", "xyz"]])
def test_usage_errors_are_one_line(args):
    r = run(*args)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gotrace: "), r.stderr


def test_json_error_document():
    r = run("--json", "frobnicate")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert "frobnicate" in doc["error"]
