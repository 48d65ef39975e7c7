"""Go toolchains, fixture builds and ground-truth tools for gotrace's integration tests.

Importable by every test file in tests/integration (``import gobuild``). The API:

  MINORS                   Go minor versions of the test matrix (env GOTRACE_GO_MINORS="27 19"
                           narrows it); test ids use ``gobuild.ident(minor, variant)`` = "go1.27-pie"
  toolchains()             {minor: GOROOT}, from tools/go-toolchains.sh (run once per process)
  go_env(minor, cgo)       environment for that toolchain's go command
  go(minor, *args)         run `go ARGS` of that toolchain, return stdout (raises GoError)
  go_tool(minor, tool, *a) run `go tool TOOL ARGS`, return stdout (raises GoError)
  VARIANTS                 variant name -> build options; TEST_VARIANTS = the ones tests iterate
  build(fixture, minor, variant="default") -> path of the built binary (cached, see below)
  build_many([(fixture, minor, variant), ...], jobs=2) -> {(fixture, minor, variant): path}
  stripped_twin(v) / unstripped_twin(v)    the same build with / without -ldflags=-s -w
  gotrace(*args, ...)      run ./gotrace (CompletedProcess, text)
  gotrace_json(cmd, *args) run `gotrace CMD --json ARGS`, check exit 0, return the document
  elf_sections(path)       {name: Section(addr, offset, size, type)} from the section headers
  run_fixture_server(path) context manager: starts `FIXTURE serve`, yields (Popen, ready line
                           fields); kills that process (by its PID) on exit

Builds go to $GOTRACE_CACHE (default ~/.cache/gotrace)/fixtures/<key>/, where key hashes the
fixture's sources, their directory, the toolchain (GOROOT + `go version`), the variant's flags
and BUILD_REV; a build is reused when its key matches. Fixtures live in tests/fixtures/NAME,
each a main package with its own go.mod (`go 1.17`).
"""
import concurrent.futures
import contextlib
import fcntl
import hashlib
import os
import pwd
import select
import signal
import struct
import subprocess
import threading
import time
import json
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
SCENARIOS = os.path.join(ROOT, "tests", "scenarios")  # build() looks here second
GOTRACE_BIN = os.path.join(ROOT, "gotrace")
CACHE = os.environ.get("GOTRACE_CACHE") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "gotrace")

# Bump to invalidate every cached fixture build (e.g. when the build recipe changes).
BUILD_REV = "2"

ALL_MINORS = [19, 21, 22, 23, 24, 25, 26, 27]
MINORS = [int(m) for m in os.environ.get("GOTRACE_GO_MINORS", "").split()] or ALL_MINORS

# name -> (cgo, go build flags). Every variant has a stripped twin with the same flags.
VARIANTS = {
    "default": (False, []),
    "stripped": (False, ["-ldflags=-s -w"]),
    "pie": (False, ["-buildmode=pie"]),
    "pie-stripped": (False, ["-buildmode=pie", "-ldflags=-s -w"]),
    "cgo": (True, []),
    "cgo-stripped": (True, ["-ldflags=-s -w"]),
    "trimpath": (False, ["-trimpath"]),
    "trimpath-stripped": (False, ["-trimpath", "-ldflags=-s -w"]),
}
TEST_VARIANTS = ["default", "stripped", "pie", "cgo", "trimpath", "pie-stripped"]


class GoError(RuntimeError):
    """A go command failed; the message has the command and its stderr."""


def ident(minor, variant):
    """Test id for a toolchain x variant: 'go1.27-pie'."""
    return "go1.%d-%s" % (minor, variant)


def is_stripped(variant):
    return variant.endswith("stripped")


def is_pie(variant):
    return variant.startswith("pie")


def is_cgo(variant):
    return VARIANTS[variant][0]


def is_trimpath(variant):
    return variant.startswith("trimpath")


def stripped_twin(variant):
    """The variant built with the same flags plus -s -w (itself when already stripped)."""
    if is_stripped(variant):
        return variant
    return "stripped" if variant == "default" else variant + "-stripped"


def unstripped_twin(variant):
    """The variant built with the same flags minus -s -w (itself when not stripped)."""
    if not is_stripped(variant):
        return variant
    return "default" if variant == "stripped" else variant[: -len("-stripped")]


# ---------------------------------------------------------------- toolchains

_tc_lock = threading.Lock()
_toolchains = None


def toolchains():
    """{minor: GOROOT} for MINORS, fetched/cached by tools/go-toolchains.sh (once per process).

    Raises RuntimeError when the script fails or does not yield a working go for a minor.
    """
    global _toolchains
    with _tc_lock:
        if _toolchains is None:
            env = dict(os.environ, GOTRACE_CACHE=CACHE)
            env.setdefault("HOME", pwd.getpwuid(os.getuid()).pw_dir)
            r = subprocess.run([os.path.join(ROOT, "tools", "go-toolchains.sh"),
                                *map(str, MINORS)], capture_output=True, text=True, env=env,
                               timeout=1800)
            if r.returncode != 0:
                raise RuntimeError("tools/go-toolchains.sh failed (exit %d): %s"
                                   % (r.returncode, r.stderr.strip()[-2000:]))
            tcs = {}
            for line in r.stdout.splitlines():
                parts = line.split()
                if len(parts) != 2 or not parts[0].isdigit():
                    raise RuntimeError("tools/go-toolchains.sh: unexpected line %r" % line)
                tcs[int(parts[0])] = parts[1]
            for m in MINORS:
                if m not in tcs or not os.access(os.path.join(tcs.get(m, ""), "bin", "go"),
                                                 os.X_OK):
                    raise RuntimeError("tools/go-toolchains.sh gave no go binary for go1.%d" % m)
            _toolchains = tcs
        return _toolchains


def go_env(minor, cgo=False):
    """Environment for toolchain go1.MINOR: local toolchain only, no network, own caches."""
    goroot = toolchains()[minor]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO") and k != "CGO_ENABLED"}
    env.update(
        HOME=os.environ.get("HOME") or pwd.getpwuid(os.getuid()).pw_dir,
        GOROOT=goroot,
        PATH=os.path.join(goroot, "bin") + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
        GOTOOLCHAIN="local",
        GOFLAGS="-mod=mod",
        GOPROXY="off",
        GOSUMDB="off",
        GOTELEMETRY="off",
        GOENV="off",
        GOCACHE=os.path.join(CACHE, "gocache", "1.%d" % minor),
        GOPATH=os.path.join(CACHE, "gopath"),
        GOMODCACHE=os.path.join(CACHE, "gopath", "pkg", "mod"),
        CGO_ENABLED="1" if cgo else "0",
    )
    return env


def _run_go(minor, args, cwd=None, cgo=False, input=None, timeout=600, check=True):
    goroot = toolchains()[minor]
    cmd = [os.path.join(goroot, "bin", "go"), *args]
    r = subprocess.run(cmd, cwd=cwd, env=go_env(minor, cgo), input=input, capture_output=True,
                       text=True, timeout=timeout)
    if r.returncode != 0 and check:
        raise GoError("go1.%d: `%s` failed (exit %d): %s"
                      % (minor, " ".join(args), r.returncode, r.stderr.strip()[-3000:]))
    return r.stdout


def go(minor, *args, cwd=None, input=None, timeout=600):
    """Run `go ARGS...` of toolchain go1.MINOR; return stdout. Raises GoError on failure."""
    return _run_go(minor, list(args), cwd=cwd, input=input, timeout=timeout)


_tool_paths = {}


def _tool_path(minor, tool):
    """Path of go1.MINOR's TOOL binary (Go 1.25+ builds nm, objdump... into GOCACHE on first
    use; calling the binary directly saves the go command's ~1 s per call)."""
    p = _tool_paths.get((minor, tool))
    if p and os.access(p, os.X_OK):
        return p
    p = _run_go(minor, ["tool", "-n", tool]).strip()
    if not os.access(p, os.X_OK):
        _run_go(minor, ["tool", tool, "-h"], timeout=600, check=False)  # builds it
        p = _run_go(minor, ["tool", "-n", tool]).strip()
    if not os.access(p, os.X_OK):
        raise GoError("go1.%d: no usable `go tool %s` (%s)" % (minor, tool, p))
    _tool_paths[(minor, tool)] = p
    return p


def go_tool(minor, tool, *args, input=None, timeout=600):
    """Run `go tool TOOL ARGS...` of toolchain go1.MINOR; return stdout. Raises GoError."""
    cmd = [_tool_path(minor, tool), *args]
    r = subprocess.run(cmd, env=go_env(minor), input=input, capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise GoError("go1.%d: `go tool %s %s` failed (exit %d): %s"
                      % (minor, tool, " ".join(args), r.returncode, r.stderr.strip()[-3000:]))
    return r.stdout


_version_cache = {}


def go_version(minor):
    """Full version of the toolchain, e.g. 'go1.27.4'."""
    if minor not in _version_cache:
        out = go(minor, "env", "GOVERSION").strip()
        if not out.startswith("go1.%d" % minor):
            raise GoError("go1.%d: `go env GOVERSION` says %r" % (minor, out))
        _version_cache[minor] = out
    return _version_cache[minor]


# ---------------------------------------------------------------- fixture builds

def _fixture_files(fixture):
    d = os.path.join(FIXTURES, fixture)
    if not os.path.isdir(d):
        d = os.path.join(SCENARIOS, fixture)
    if not os.path.isfile(os.path.join(d, "go.mod")):
        raise FileNotFoundError("no fixture %s (expected %s/go.mod)" % (fixture, d))
    out = []
    for base, dirs, files in os.walk(d):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(base, f)
            out.append((os.path.relpath(p, d), p))
    return d, out


def _build_key(fixture, minor, variant):
    d, files = _fixture_files(fixture)
    h = hashlib.sha256()
    cgo, flags = VARIANTS[variant]
    for part in (BUILD_REV, d, toolchains()[minor], go_version(minor), repr(cgo), repr(flags)):
        h.update(part.encode() + b"\0")
    for rel, p in files:
        with open(p, "rb") as f:
            h.update(rel.encode() + b"\0" + hashlib.sha256(f.read()).digest())
    return h.hexdigest()[:20]


def build(fixture, minor, variant="default"):
    """Build tests/fixtures/FIXTURE with go1.MINOR as VARIANT; return the binary's path.

    Reuses a cached build with the same key; safe to call from several threads/processes.
    Raises GoError when the build fails.
    """
    if variant not in VARIANTS:
        raise ValueError("unknown variant %r (known: %s)" % (variant, ", ".join(VARIANTS)))
    cgo, flags = VARIANTS[variant]
    src, _ = _fixture_files(fixture)
    key = _build_key(fixture, minor, variant)
    outdir = os.path.join(CACHE, "fixtures", key)
    out = os.path.join(outdir, "%s-%s" % (fixture, ident(minor, variant)))
    if os.path.exists(out):
        return out
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, ".lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        if os.path.exists(out):
            return out
        tmp = out + ".tmp%d" % os.getpid()
        # -buildvcs=false: the fixture sits in gotrace's own git tree; its VCS state must not
        # leak into (or break) the build.
        _run_go(minor, ["build", "-buildvcs=false", *flags, "-o", tmp, "."], cwd=src, cgo=cgo,
                timeout=1200)
        os.rename(tmp, out)
    return out


def build_many(specs, jobs=2):
    """Build every (fixture, minor, variant) in SPECS with JOBS parallel builds.

    Returns {spec: path}; raises the first GoError after all builds finished.
    """
    specs = list(dict.fromkeys(specs))
    toolchains()
    for m in {s[1] for s in specs}:
        go_version(m)
    results, errors = {}, []
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
        futs = {ex.submit(build, *s): s for s in specs}
        for fut in concurrent.futures.as_completed(futs):
            try:
                results[futs[fut]] = fut.result()
            except Exception as e:  # collected, re-raised below with all context
                errors.append("%s: %s" % (futs[fut], e))
    if errors:
        raise GoError("%d fixture builds failed:\n%s" % (len(errors), "\n".join(errors)))
    return results


# ---------------------------------------------------------------- gotrace

def gotrace(*args, input=None, timeout=60, prefix=()):
    """Run ./gotrace ARGS (PREFIX, e.g. a setpriv command, goes before it)."""
    if not os.access(GOTRACE_BIN, os.X_OK):
        raise RuntimeError("%s is missing: run `make gotrace` first" % GOTRACE_BIN)
    return subprocess.run([*prefix, GOTRACE_BIN, *args], input=input, capture_output=True,
                          text=True, timeout=timeout)


def gotrace_json(cmd, *args, input=None, timeout=60):
    """Run `gotrace CMD --json ARGS`, assert exit 0, return the parsed document."""
    r = gotrace(cmd, "--json", *args, input=input, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError("gotrace %s --json %s: exit %d, stderr: %s"
                             % (cmd, " ".join(args), r.returncode, r.stderr.strip()))
    try:
        return json.loads(r.stdout)
    except ValueError as e:
        raise AssertionError("gotrace %s --json %s: stdout is not JSON (%s): %.500s"
                             % (cmd, " ".join(args), e, r.stdout))


# ---------------------------------------------------------------- ELF

class Section:
    def __init__(self, name, type_, addr, offset, size):
        self.name, self.type, self.addr, self.offset, self.size = name, type_, addr, offset, size

    def __repr__(self):
        return "Section(%s addr=%#x off=%#x size=%#x)" % (self.name, self.addr, self.offset,
                                                          self.size)


def elf_header(path):
    """(e_type, e_machine) of a 64-bit little-endian ELF."""
    with open(path, "rb") as f:
        h = f.read(64)
    if h[:4] != b"\x7fELF" or h[4] != 2 or h[5] != 1:
        raise ValueError("%s: not a 64-bit little-endian ELF" % path)
    return struct.unpack_from("<HH", h, 16)


def elf_sections(path):
    """{name: Section} of a 64-bit little-endian ELF, from its section headers."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("%s: not a 64-bit little-endian ELF" % path)
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3a)
    hdrs = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    stroff = hdrs[shstrndx][4]
    out = {}
    for name_off, type_, _flags, addr, off, size in hdrs:
        end = data.index(b"\0", stroff + name_off)
        name = data[stroff + name_off:end].decode()
        out[name] = Section(name, type_, addr, off, size)
    return out


def pclntab_section(secs):
    """The .gopclntab section (named .data.rel.ro.gopclntab in PIEs before Go 1.26)."""
    for n in (".gopclntab", ".data.rel.ro.gopclntab"):
        if n in secs:
            return secs[n]
    raise AssertionError("no .gopclntab section among %s" % sorted(secs))


# ---------------------------------------------------------------- running fixtures

def _read_line(proc, timeout):
    """One line of PROC's stdout within TIMEOUT seconds, or None."""
    deadline = time.monotonic() + timeout
    buf = b""
    fd = proc.stdout.fileno()
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        ch = os.read(fd, 1)
        if not ch:
            break
        buf += ch
        if ch == b"\n":
            return buf.decode()
    return None


@contextlib.contextmanager
def run_fixture_server(path, args=("serve",), ready_timeout=20):
    """Start PATH ARGS, wait for its 'ready ...' line; yield (proc, fields of that line).

    The fixture's stdin is a pipe kept open; on exit the process is killed by its own PID.
    """
    proc = subprocess.Popen([path, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        line = _read_line(proc, ready_timeout)
        if not line or not line.startswith("ready"):
            raise AssertionError("%s %s: no 'ready' line within %ds (got %r)"
                                 % (path, " ".join(args), ready_timeout, line))
        yield proc, line.split()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        for s in (proc.stdin, proc.stdout, proc.stderr):
            s.close()


# ---------------------------------------------------------------- ground truth from Go's own tools
# Each parser fails loudly (GroundTruthError) on output it does not understand: a test must
# never pass because its reference could not be read.

class GroundTruthError(AssertionError):
    """A ground-truth tool's output could not be parsed."""


_gt_lock = threading.Lock()
_gt_cache = {}


def _cached(key, fn):
    with _gt_lock:
        if key in _gt_cache:
            return _gt_cache[key]
    v = fn()
    with _gt_lock:
        _gt_cache[key] = v
    return v


class NmSym:
    __slots__ = ("addr", "size", "type", "name")

    def __init__(self, addr, size, type_, name):
        self.addr, self.size, self.type, self.name = addr, size, type_, name

    def __repr__(self):
        return "%s %#x+%d %s" % (self.type, self.addr, self.size, self.name)


def nm(minor, path):
    """Symbols of PATH from `go tool nm -size` of go1.MINOR: [NmSym]."""
    def load():
        out = go_tool(minor, "nm", "-size", path)
        syms = []
        for line in out.splitlines():
            if not line.strip():
                continue
            # "%8x %10d %c %s"; undefined symbols have no address, file symbols may be nameless
            m = re.match(r"^\s*([0-9a-f]+)?\s+(\d+) (\S) ?(.*)$", line)
            if not m:
                raise GroundTruthError("go tool nm -size %s: cannot parse %r" % (path, line))
            if m.group(1) is None or m.group(3) == "U":
                continue
            syms.append(NmSym(int(m.group(1), 16), int(m.group(2)), m.group(3), m.group(4)))
        if not syms:
            raise GroundTruthError("go tool nm -size %s: no symbols" % path)
        return syms
    return _cached(("nm", minor, path), load)


def nm_text(minor, path):
    """{name: NmSym} of the text symbols (type T/t) of PATH."""
    d = {}
    for s in nm(minor, path):
        if s.type in "Tt":
            d.setdefault(s.name, s)
    return d


def addr2line_minor(minor, path):
    """Toolchain whose addr2line reads PATH: go1.MINOR's own, except for PIEs of Go < 1.21.

    Go 1.19's cmd/internal/objfile only looks for a section named .gopclntab, but a PIE keeps
    it in .data.rel.ro.gopclntab, so its addr2line answers '?' for every address; the newest
    toolchain of the matrix reads every older pclntab format and is used instead.
    """
    if minor < 21 and elf_header(path)[0] == 3:
        return max(toolchains())
    return minor


def addr2line(minor, path, pcs):
    """`go tool addr2line` of go1.MINOR for PCS: [(function or None, file, line)].

    addr2line prints, per address, the physical function name then FILE:LINE ('?' and
    '?:0' outside Go code).
    """
    pcs = list(pcs)
    out = go_tool(addr2line_minor(minor, path), "addr2line", path,
                  input="".join("%#x\n" % p for p in pcs))
    lines = out.splitlines()
    if len(lines) != 2 * len(pcs):
        raise GroundTruthError("go tool addr2line %s: %d lines for %d addresses"
                               % (path, len(lines), len(pcs)))
    res = []
    for i in range(len(pcs)):
        fn, pos = lines[2 * i], lines[2 * i + 1]
        file, sep, line = pos.rpartition(":")
        if not sep or not line.lstrip("-").isdigit():
            raise GroundTruthError("go tool addr2line %s: bad position %r for %#x"
                                   % (path, pos, pcs[i]))
        res.append((None if fn == "?" else fn, file, int(line)))
    return res


class Insn:
    __slots__ = ("addr", "text", "pos")

    def __init__(self, addr, text, pos):
        self.addr, self.text, self.pos = addr, text, pos

    def __repr__(self):
        return "%#x %s" % (self.addr, self.text)


def objdump(minor, path, names):
    """Disassembly of the functions NAMES by `go tool objdump -s` of go1.MINOR.

    Returns {name: [Insn]} (one objdump run for all names). Raises GroundTruthError when a
    name is missing from the output or a line cannot be parsed.
    """
    import re
    names = sorted(set(names))
    if not names:
        return {}
    rx = "^(" + "|".join(re.escape(n) for n in names) + ")$"
    out = go_tool(minor, "objdump", "-s", rx, path)
    res, cur = {}, None
    for line in out.splitlines():
        if line.startswith("TEXT "):
            m = re.match(r"TEXT (.*)\(SB\)", line)
            if not m:
                raise GroundTruthError("go tool objdump: bad header %r" % line)
            cur = res.setdefault(m.group(1), [])
            continue
        if not line.strip():
            continue
        # "  file.go:12\t0x4a1b2c\t\tc3\t\tRET\t"
        f = [x for x in line.strip().split("\t") if x != ""]
        if cur is None or len(f) < 3 or not f[1].startswith("0x"):
            raise GroundTruthError("go tool objdump %s: cannot parse %r" % (path, line))
        text = f[3].strip() if len(f) > 3 else ""
        cur.append(Insn(int(f[1], 16), text, f[0]))
    missing = [n for n in names if not res.get(n)]
    if missing:
        raise GroundTruthError("go tool objdump %s: no disassembly for %s" % (path, missing))
    return res


def gdb_struct(path, typename):
    """Layout of Go struct TYPENAME from PATH's DWARF by gdb's `ptype /o`.

    Returns {"size": N, "fields": {name: (offset, size, type)}} (top-level fields; offsets
    relative to the struct). Raises GroundTruthError when gdb does not print a layout.
    """
    import re

    def load():
        r = subprocess.run(["gdb", "-nx", "-batch", "-iex", "set auto-load no",
                            "-ex", "set language c", "-ex", "ptype /o struct '%s'" % typename,
                            path], capture_output=True, text=True, timeout=120)
        fields, depth, size = {}, 0, None
        for line in r.stdout.splitlines():
            m = re.match(r"^/\*\s+(\d+)(?::\s*\d+)?\s*\|\s*(\d+)\s*\*/(\s*)(.*)$", line)
            if m and depth == 1:
                decl = m.group(4)
                if decl.endswith("{"):  # an anonymous struct (slice, string...) expanded
                    pending = (int(m.group(1)), int(m.group(2)), decl[:-1].strip())
                    depth += 1
                    continue
                dm = re.match(r"^(.*?)\s*([A-Za-z_][\w]*);$", decl)
                if not dm:
                    raise GroundTruthError("gdb ptype /o %s: cannot parse %r" % (typename, line))
                fields[dm.group(2)] = (int(m.group(1)), int(m.group(2)), dm.group(1))
                continue
            if "type = struct" in line and line.rstrip().endswith("{"):
                depth += 1
                continue
            if m and m.group(4).endswith("{"):
                depth += 1
                continue
            sm = re.match(r"^\s*}\s*([A-Za-z_]\w*)?;?$", line)
            if sm:
                depth -= 1
                if depth == 1 and sm.group(1):
                    off, sz, typ = pending
                    fields[sm.group(1)] = (off, sz, typ)
                continue
            tm = re.search(r"total size \(bytes\):\s*(\d+)", line)
            if tm and depth == 1:
                size = int(tm.group(1))
        if size is None or not fields:
            raise GroundTruthError("gdb could not print struct %s of %s: %s %s"
                                   % (typename, path, r.stdout[-500:], r.stderr[-500:]))
        return {"size": size, "fields": fields}
    return _cached(("gdb", path, typename), load)


def gdb_offset(path, typename, field_path):
    """Offset of FIELD_PATH ('sched.sp') in TYPENAME ('runtime.g'), or None when absent.
    An empty FIELD_PATH gives the struct's size."""
    lay = gdb_struct(path, typename)
    if not field_path:
        return lay["size"]
    first, _, rest = field_path.partition(".")
    if first not in lay["fields"]:
        return None
    off, _, typ = lay["fields"][first]
    if not rest:
        return off
    inner = gdb_offset(path, typ.strip(), rest)
    return None if inner is None else off + inner


def elf_read_vaddr(path, addr, n):
    """N bytes at link-time virtual address ADDR of PATH (from its PT_LOAD segments)."""
    with open(path, "rb") as f:
        data = f.read()
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        p_type, _flags, off, vaddr, _pa, filesz, _memsz, _al = struct.unpack_from(
            "<IIQQQQQQ", data, phoff + i * phentsize)
        if p_type == 1 and vaddr <= addr and addr + n <= vaddr + filesz:
            return data[off + addr - vaddr: off + addr - vaddr + n]
    raise GroundTruthError("%s: %#x+%d is not in a loaded file segment" % (path, addr, n))


def _canon(name):
    """A function name with the spellings that differ between .symtab and .gopclntab unified:
    the ".abi0" suffix of assembly symbols, "·" vs ".", and "[N]" vs "[...]" in array types."""
    if name.endswith(".abi0"):
        name = name[:-5]
    return re.sub(r"\[\d+\]", "[...]", name.replace("\u00b7", "."))


def go_functions(minor, path):
    """The Go functions among PATH's text symbols: sorted [(pclntab name, NmSym)].

    A text symbol of non-zero size is a Go function when `go tool addr2line` (which reads
    .gopclntab) maps its address to a function; the name is addr2line's (the .gopclntab
    spelling). The rest are C code of cgo builds and zero-size markers (runtime.text).
    Raises GroundTruthError when addr2line names a different function than the symbol.
    Names may repeat (an ABI wrapper has the name of the function it wraps).
    """
    def load():
        syms = sorted((s for s in nm(minor, path) if s.type in "Tt" and s.size > 0),
                      key=lambda s: s.addr)
        a2l = addr2line(minor, path, [s.addr for s in syms])
        out, odd = [], []
        for s, (fn, _, _) in zip(syms, a2l):
            if fn is None:
                continue
            if _canon(fn) != _canon(s.name):
                odd.append("%s at %#x: addr2line says %s" % (s.name, s.addr, fn))
            out.append((fn, s))
        if odd:
            raise GroundTruthError("%s: symbol and pclntab names disagree: %s" % (path, odd[:10]))
        if len(out) < 500:
            raise GroundTruthError("%s: only %d Go functions found" % (path, len(out)))
        return out
    return _cached(("gofuncs", minor, path), load)


def llvm_symbolize(path, pcs):
    """Inline chains from PATH's DWARF by llvm-symbolizer --inlining: per PC a list of
    (function, file, line), innermost first (empty when DWARF has nothing)."""
    import shutil
    tool = shutil.which("llvm-symbolizer") or shutil.which("llvm-symbolizer-14")
    if not tool:
        raise GroundTruthError("llvm-symbolizer is not installed (package llvm-14)")
    pcs = list(pcs)
    r = subprocess.run([tool, "--inlining", "--functions=linkage", "--obj=" + path],
                       input="".join("%#x\n" % p for p in pcs), capture_output=True, text=True,
                       timeout=300)
    if r.returncode != 0:
        raise GroundTruthError("llvm-symbolizer %s failed: %s" % (path, r.stderr[-500:]))
    blocks = r.stdout.split("\n\n")
    if blocks and not blocks[-1].strip():
        blocks.pop()
    if len(blocks) != len(pcs):
        raise GroundTruthError("llvm-symbolizer %s: %d answers for %d PCs"
                               % (path, len(blocks), len(pcs)))
    out = []
    for pc, b in zip(pcs, blocks):
        lines = b.strip("\n").split("\n")
        if len(lines) % 2:
            raise GroundTruthError("llvm-symbolizer: odd answer for %#x: %r" % (pc, b))
        frames = []
        for fn, loc in zip(lines[::2], lines[1::2]):
            m = re.match(r"^(.*):(\d+):(\d+)$", loc)
            if not m:
                raise GroundTruthError("llvm-symbolizer: bad location %r for %#x" % (loc, pc))
            if fn == "??":
                continue
            frames.append((fn, m.group(1), int(m.group(2))))
        out.append(frames)
    return out
