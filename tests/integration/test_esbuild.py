"""A real-world stripped Go binary nobody here built: esbuild, from the npm registry.

gotrace must read it (inspect) and its uprobes, at offsets gotrace resolved, must fire
(count) while esbuild bundles a generated JavaScript project, without changing esbuild's
output. Two pinned releases: 0.26.0 (go1.23.12, with .go.buildinfo) and 0.28.2 (go1.26.5;
esbuild 0.27+ ships without a .go.buildinfo section, so the Go version is only in the
runtime's data). Tarballs are cached in $GOTRACE_CACHE/npm (default ~/.cache/gotrace/npm).
Counting needs root: without it those tests skip (a failure under CI=true).
"""
import json
import os
import platform
import shutil
import subprocess
import tarfile

import pytest

import gobuild

# esbuild release -> the Go release that built it (read from the binary's runtime.buildVersion
# string and, where .go.buildinfo exists, confirmed by `go version`).
ESBUILD_GO = {"0.26.0": "go1.23.12", "0.28.2": "go1.26.5"}
VERSIONS = os.environ.get("GOTRACE_ESBUILD_VERSIONS", "").split() or sorted(ESBUILD_GO)
NPM_CACHE = os.path.join(gobuild.CACHE, "npm")

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64",
                                reason="the @esbuild/linux-x64 package is an x86-64 binary")
needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="gotrace count loads BPF programs: run the tests as root")


def fetch_esbuild(version, dest):
    """package/bin/esbuild of @esbuild/linux-x64@VERSION, extracted under DEST."""
    tgz = os.path.join(NPM_CACHE, "esbuild-linux-x64-%s.tgz" % version)
    if not os.path.exists(tgz):
        npm = shutil.which("npm")
        if not npm:
            pytest.fail("npm is not installed: cannot fetch @esbuild/linux-x64@%s (or put "
                        "the tarball at %s)" % (version, tgz), pytrace=False)
        os.makedirs(NPM_CACHE, exist_ok=True)
        tmp = os.path.join(NPM_CACHE, ".dl-%d" % os.getpid())
        os.makedirs(tmp, exist_ok=True)
        try:
            r = subprocess.run([npm, "pack", "@esbuild/linux-x64@%s" % version,
                                "--pack-destination", tmp], capture_output=True, text=True,
                               timeout=300, cwd=tmp)
            got = os.path.join(tmp, os.path.basename(tgz))
            if r.returncode != 0 or not os.path.exists(got):
                pytest.fail("npm pack @esbuild/linux-x64@%s failed (exit %d): %s"
                            % (version, r.returncode, r.stderr.strip()[-1000:]), pytrace=False)
            os.rename(got, tgz)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    out = os.path.join(dest, "esbuild-" + version)
    with tarfile.open(tgz) as tf:
        member = tf.getmember("package/bin/esbuild")
        assert member.isfile()
        with tf.extractfile(member) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
    os.chmod(out, 0o755)
    return out


@pytest.fixture(scope="module", params=VERSIONS)
def esbuild(request, tmp_path_factory):
    """(release, path of its esbuild binary)."""
    d = tmp_path_factory.mktemp("esbuild")
    return request.param, fetch_esbuild(request.param, str(d))


@pytest.fixture(scope="module")
def js_project(tmp_path_factory):
    """A generated project: 120 modules with classes, closures and strings, one entry."""
    d = tmp_path_factory.mktemp("jsproj")
    names = []
    for i in range(120):
        name = "mod%03d" % i
        names.append(name)
        with open(d / (name + ".js"), "w") as f:
            dep = "mod%03d" % (i - 1) if i else None
            if dep:
                f.write('import { f_%s } from "./%s.js";\n' % (dep, dep))
            f.write("export class C%d {\n  constructor(x) { this.x = x; this.tag = %r; }\n"
                    "  get twice() { return this.x * 2; }\n}\n" % (i, "module-%d" % i))
            f.write("export function f_%s(n) {\n  const parts = [];\n"
                    "  for (let k = 0; k < n; k++) parts.push(`%s:${k}`);\n"
                    "  return %s + parts.join(',').length + new C%d(n).twice;\n}\n"
                    % (name, name, "f_%s(n - 1 > 0 ? n - 1 : 0)" % dep if dep else "0", i))
    with open(d / "entry.js", "w") as f:
        for n in names:
            f.write('import { f_%s } from "./%s.js";\n' % (n, n))
        f.write("console.log([%s].reduce((a, b) => a + b, 0));\n"
                % ", ".join("f_%s(3)" % n for n in names))
    return str(d)


def bundle_args(js_project):
    return [os.path.join(js_project, "entry.js"), "--bundle", "--minify", "--format=iife"]


def test_inspect_esbuild(esbuild, gotrace_bin):
    release, path = esbuild
    doc = gobuild.gotrace_json("inspect", path)
    assert doc["go_version"] == ESBUILD_GO[release]
    assert doc["stripped"] is True
    assert doc["pie"] is False
    assert doc["functions"] > 1000
    probes = {p["name"]: p for p in doc["probes"] if p["present"]}
    for name in ("runtime.newproc1", "runtime.mallocgc", "runtime.gcStart"):
        assert name in probes, "inspect found no %s in esbuild %s" % (name, release)
        p = probes[name]
        assert p["stack_check"] and p["attach_offset"] > 0, p
        assert p["ret_offsets"], p


def test_go_version_matches_the_toolchain(esbuild, toolchain_map):
    """Ground truth for the pinned table: `go version` where esbuild kept .go.buildinfo."""
    release, path = esbuild
    newest = max(toolchain_map)
    try:
        out = gobuild.go(newest, "version", path).split()
    except gobuild.GoError:
        out = []
    if not out:  # `go version` says "could not read Go build info" (exit 0 on some releases)
        secs = gobuild.elf_sections(path)
        assert ".go.buildinfo" not in secs, "go version cannot read %s" % path
        with open(path, "rb") as f:
            assert ESBUILD_GO[release].encode() in f.read()
        return
    assert out[-1] == ESBUILD_GO[release]


@needs_root
def test_count_on_esbuild(esbuild, js_project, tmp_path, gotrace_bin):
    release, path = esbuild
    # A small GOGC makes the bundling run garbage collections too.
    env = dict(os.environ, GOGC="5")
    plain = subprocess.run([path, *bundle_args(js_project)], capture_output=True, text=True,
                           env=env, timeout=120)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.startswith("(()=>{")

    report = str(tmp_path / "count.json")
    funcs = ["runtime.newproc1", "runtime.mallocgc*", "runtime.gcStart"]
    traced = subprocess.run([gotrace_bin, "count", "--json", "-o", report, "--at", "all", "-e",
                             path, *funcs, "--", path, *bundle_args(js_project)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert traced.returncode == 0, traced.stderr
    assert traced.stdout == plain.stdout, "esbuild's output changed under tracing"
    with open(report) as f:
        doc = json.load(f)
    assert doc["exit_code"] == 0
    assert doc["go_version"] == ESBUILD_GO[release]
    assert "unmatched_hits" not in doc

    by = {}
    for s in doc["sites"]:
        by.setdefault(s["function"], {}).setdefault(s["kind"], []).append(s["hits"])
    for fn in ("runtime.newproc1", "runtime.mallocgc", "runtime.gcStart"):
        kinds = by[fn]
        calls = kinds["after-prologue"][0]
        assert calls > 0, "%s never hit in esbuild %s: %s" % (fn, release, kinds)
        # Every call passes the entry first; every return went through the prologue.
        assert kinds["entry"][0] >= calls
        assert 0 < sum(kinds["ret"]) <= calls
    assert doc["total_hits"] > 1000

    # The probes sit where inspect says (one resolver for both commands).
    probes = {p["name"]: p for p in gobuild.gotrace_json("inspect", path)["probes"]
              if p["present"]}
    for s in doc["sites"]:
        p = probes.get(s["function"])
        if p and s["kind"] == "after-prologue":
            assert s["file_offset"] == p["file_offset"] + p["attach_offset"], (s, p)
        if p and s["kind"] == "ret":
            assert s["offset"] in p["ret_offsets"], (s, p)
