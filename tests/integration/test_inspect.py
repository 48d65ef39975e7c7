"""`gotrace inspect` on real binaries: every toolchain of the matrix x every build variant.

Ground truth comes from tools independent of gotrace: the same toolchain's `go version [-m]`,
`go tool nm`, `go tool objdump`, `go tool addr2line`, gdb's `ptype /o` on the DWARF, the ELF
headers, /proc, and the fixture process itself.

Stripped binaries have no symbols, so symbol-based truth (nm, objdump) for a stripped build is
read from its unstripped twin: the same source, toolchain and flags without -s -w.
test_twins_have_identical_code_layout proves the twins have identical .gopclntab contents and
.text placement (so the same functions at the same addresses, the same instruction
boundaries), which is what makes that valid.
"""
import os
import re
import shlex

import pytest

import gobuild
from gobuild import MINORS, TEST_VARIANTS, ident

CASES = [pytest.param(m, v, id=ident(m, v)) for m in MINORS for v in TEST_VARIANTS]
UNSTRIPPED = [v for v in TEST_VARIANTS if not gobuild.is_stripped(v)]
TWIN_CASES = [pytest.param(m, v, id=ident(m, v)) for m in MINORS for v in UNSTRIPPED]

_json_cache = {}


def inspect_json(path, *flags):
    key = (path, flags)
    if key not in _json_cache:
        _json_cache[key] = gobuild.gotrace_json("inspect", *flags, path)
    return _json_cache[key]


@pytest.fixture
def binpath(inspectme_builds, gotrace_bin):
    def get(minor, variant):
        return inspectme_builds[(minor, variant)]
    return get


# ---------------------------------------------------------------- twins

@pytest.mark.parametrize("minor,variant", TWIN_CASES)
def test_twins_have_identical_code_layout(binpath, minor, variant):
    """The stripped twin has .text at the same address with the same size and a byte-identical
    .gopclntab (function entries, pc-value tables, inline trees: so every function and every
    instruction boundary is where it is in the unstripped build). The .text bytes themselves
    differ: -ldflags="-s -w" is recorded in .go.buildinfo, which shifts data, which changes
    RIP-relative displacements; and .gopclntab itself may move."""
    a, b = binpath(minor, variant), binpath(minor, gobuild.stripped_twin(variant))
    sa, sb = gobuild.elf_sections(a), gobuild.elf_sections(b)
    assert (sa[".text"].addr, sa[".text"].size) == (sb[".text"].addr, sb[".text"].size)
    pa, pb = gobuild.pclntab_section(sa), gobuild.pclntab_section(sb)
    assert pa.size == pb.size
    with open(a, "rb") as fa, open(b, "rb") as fb:
        fa.seek(pa.offset)
        fb.seek(pb.offset)
        assert fa.read(pa.size) == fb.read(pb.size), ".gopclntab differs between twins"


# ---------------------------------------------------------------- identity and flags

@pytest.mark.parametrize("minor,variant", CASES)
def test_version_and_flags(binpath, minor, variant):
    path = binpath(minor, variant)
    doc = inspect_json(path)
    out = gobuild.go(minor, "version", path).strip()
    m = re.fullmatch(re.escape(path) + r": (go1\.\d+(?:\.\d+)?\S*)", out)
    assert m, "cannot parse `go version` output %r" % out
    assert doc["go_version"] == m.group(1) == gobuild.go_version(minor)
    assert doc["go_minor"] == minor
    assert doc["supported"] is True and doc["unsupported_reason"] is None
    assert doc["goarch"] == "amd64"
    assert doc["abi"] == "ABIInternal (register)"

    secs = gobuild.elf_sections(path)
    e_type, _ = gobuild.elf_header(path)
    stripped, pie = gobuild.is_stripped(variant), gobuild.is_pie(variant)
    # The fixture builds are what their names say (checks the test's own premises).
    assert (".symtab" not in secs) == stripped
    assert (e_type == 3) == pie  # ET_DYN
    has_dwarf = ".debug_info" in secs or ".zdebug_info" in secs
    assert has_dwarf == (not stripped)

    got = {k: doc[k] for k in ("stripped", "pie", "cgo", "trimpath", "dwarf")}
    assert got == {"stripped": stripped, "pie": pie, "cgo": gobuild.is_cgo(variant),
                   "trimpath": gobuild.is_trimpath(variant), "dwarf": has_dwarf}


def go_version_m(minor, path):
    """(module path, main module, main version, {build setting: value}) by `go version -m`."""
    out = gobuild.go(minor, "version", "-m", path)
    path_, main, ver, settings = None, None, None, {}
    for line in out.splitlines()[1:]:
        f = line.strip("\n").split("\t")
        if len(f) < 3 or f[0] != "":
            raise gobuild.GroundTruthError("go version -m: cannot parse %r" % line)
        if f[1] == "path":
            path_ = f[2]
        elif f[1] == "mod":
            main, ver = f[2], f[3]
        elif f[1] == "build":
            k, sep, v = f[2].partition("=")
            if not sep:
                raise gobuild.GroundTruthError("go version -m: bad build line %r" % line)
            if v.startswith('"'):
                v = shlex.split(v)[0]
            settings[k] = v
        elif f[1] == "dep":
            pass
        else:
            raise gobuild.GroundTruthError("go version -m: unknown line %r" % line)
    return path_, main, ver, settings


@pytest.mark.parametrize("minor,variant", CASES)
def test_buildinfo_matches_go_version_m(binpath, minor, variant):
    path = binpath(minor, variant)
    doc = inspect_json(path)
    mpath, main, ver, settings = go_version_m(minor, path)
    assert doc["module"] == {"path": mpath, "main": main, "version": ver}
    got = {k: (shlex.split(v)[0] if v.startswith('"') else v)
           for k, v in doc["build_settings"].items()}
    assert got == settings


@pytest.mark.parametrize("minor,variant", CASES)
def test_pclntab_summary(binpath, minor, variant):
    import struct
    path = binpath(minor, variant)
    twin = binpath(minor, gobuild.unstripped_twin(variant))
    doc = inspect_json(path, "--functions")
    pc = doc["pclntab"]
    sec = gobuild.pclntab_section(gobuild.elf_sections(path))
    want = {
        "address": sec.addr,
        "size": sec.size,
        "format": "1.18" if minor < 20 else "1.20",
        "magic": 0xfffffff0 if minor < 20 else 0xfffffff1,
        # .text has the same place in both twins (test_twins_have_identical_code_layout)
        "text_start": gobuild.nm_text(minor, twin)["runtime.text"].addr,
        "functions": len(doc["function_list"]),
    }
    errors = ["pclntab.%s = %r, want %r" % (k, pc.get(k, "<missing>"), v)
              for k, v in want.items() if pc.get(k, "<missing>") != v]
    if doc["functions"] != len(doc["function_list"]):
        errors.append("functions %d != %d listed" % (doc["functions"], len(doc["function_list"])))
    if not pc.get("files", 0) > 0:
        errors.append("pclntab.files = %r" % pc.get("files"))
    if not gobuild.is_stripped(variant):
        data = {s.name: s for s in gobuild.nm(minor, path)}
        if pc.get("moduledata") != data["runtime.firstmoduledata"].addr:
            errors.append("pclntab.moduledata %#x, nm runtime.firstmoduledata %#x"
                          % (pc.get("moduledata", 0), data["runtime.firstmoduledata"].addr))
    else:
        # Data moves between twins: check what the address holds instead. moduledata starts
        # with the pcHeader pointer and has text at +176 (go-runtime-facts 7.1); a PIE's file
        # may hold 0 there (filled by a relocation at load time).
        words = gobuild.elf_read_vaddr(path, pc["moduledata"], 184)
        if struct.unpack_from("<Q", words, 0)[0] not in (sec.addr, 0):
            errors.append("moduledata %#x does not start with the pcHeader address"
                          % pc["moduledata"])
        if not gobuild.is_pie(variant) and \
                struct.unpack_from("<Q", words, 176)[0] != want["text_start"]:
            errors.append("moduledata %#x: text at +176 is not %#x" % (pc["moduledata"],
                                                                      want["text_start"]))
    assert not errors, "\n".join(errors)


# ---------------------------------------------------------------- the function list

@pytest.mark.parametrize("minor,variant", CASES)
def test_every_symbol_in_stripped_function_list(binpath, minor, variant):
    """Every Go function of the unstripped twin's symbol table is in gotrace's function list
    of the stripped twin, by name, at the same address (100%)."""
    unstripped = binpath(minor, gobuild.unstripped_twin(variant))
    stripped = binpath(minor, gobuild.stripped_twin(variant))
    truth = gobuild.go_functions(minor, unstripped)
    got = {(f["name"], f["entry"]) for f in inspect_json(stripped, "--functions")["function_list"]}
    by_name = {}
    for n, e in got:
        by_name.setdefault(n, []).append(e)
    missing = ["%s@%#x (gotrace has it at %s)" % (n, s.addr, [hex(e) for e in by_name.get(n, [])])
               for n, s in truth if (n, s.addr) not in got]
    assert not missing, "%d of %d functions not found at their address: %s" % (
        len(missing), len(truth), missing[:20])


@pytest.mark.parametrize("minor,variant", CASES)
def test_function_list_has_only_real_functions(binpath, minor, variant):
    """The other direction: each listed function is a Go function of the symbol table, its
    [entry, end) covers the symbol's size and ends at or before the next function."""
    path = binpath(minor, variant)
    truth = {(n, s.addr): s for n, s in
             gobuild.go_functions(minor, binpath(minor, gobuild.unstripped_twin(variant)))}
    fl = inspect_json(path, "--functions")["function_list"]
    bad = []
    for i, f in enumerate(fl):
        s = truth.get((f["name"], f["entry"]))
        if s is None:
            bad.append("%s@%#x not a Go function symbol there" % (f["name"], f["entry"]))
            continue
        nxt = fl[i + 1]["entry"] if i + 1 < len(fl) else None
        if not (f["entry"] + s.size <= f["end"] and (nxt is None or f["end"] <= nxt)):
            bad.append("%s [%#x,%#x) size %d next %s" % (f["name"], f["entry"], f["end"],
                                                          s.size, nxt and hex(nxt)))
    assert [f["entry"] for f in fl] == sorted(f["entry"] for f in fl), "not sorted by entry"
    assert not bad, "%d bad entries: %s" % (len(bad), bad[:20])


# ---------------------------------------------------------------- struct offsets

STRUCTS = {"g": "runtime.g", "m": "runtime.m", "gobuf": "runtime.gobuf",
           "moduledata": "runtime.moduledata", "stack": "runtime.stack"}


def dwarf_place(name):
    """('runtime.g', 'sched.sp') for an offsets key such as 'g.sched.sp'; a size key
    ('g.size', 'sizeof(g)', 'g.sizeof') gives ('runtime.g', '')."""
    m = re.fullmatch(r"sizeof\((\w+)\)", name)
    if m and m.group(1) in STRUCTS:
        return STRUCTS[m.group(1)], ""
    head, _, rest = name.partition(".")
    if head not in STRUCTS or not rest:
        raise gobuild.GroundTruthError("offsets key %r: cannot map it to a DWARF struct" % name)
    if rest in ("size", "sizeof", "_size"):
        return STRUCTS[head], ""
    return STRUCTS[head], rest


@pytest.mark.parametrize("minor,variant", CASES)
def test_offsets_table_equals_dwarf_and_gdb(binpath, minor, variant):
    """Built-in table (--no-dwarf) == gotrace's DWARF reading == gdb `ptype /o` (100%)."""
    path = binpath(minor, variant)
    dwarf_bin = binpath(minor, gobuild.unstripped_twin(variant))
    table = inspect_json(path, "--no-dwarf")["offsets"]
    assert len(table) >= 20, "offsets has %d entries" % len(table)
    for k, v in table.items():
        assert v["source"] in ("table", "none"), (k, v)
        assert (v["source"] == "none") == (v["offset"] == -1), (k, v)

    errors = []
    if not gobuild.is_stripped(variant):
        from_dwarf = inspect_json(path)["offsets"]
        assert from_dwarf.keys() == table.keys()
        for k, v in table.items():
            d = from_dwarf[k]
            if v["offset"] == -1:
                if d["offset"] != -1:
                    errors.append("%s: table none, DWARF %d" % (k, d["offset"]))
                continue
            if d["source"] != "dwarf":
                errors.append("%s: not read from DWARF (source %s)" % (k, d["source"]))
            if d["offset"] != v["offset"]:
                errors.append("%s: table %d != gotrace DWARF %d" % (k, v["offset"], d["offset"]))
    else:
        for k, v in inspect_json(path)["offsets"].items():
            if v["source"] == "dwarf":
                errors.append("%s: source dwarf in a stripped binary" % k)

    for k, v in table.items():
        typ, fpath = dwarf_place(k)
        want = gobuild.gdb_offset(dwarf_bin, typ, fpath)
        got = None if v["offset"] == -1 else v["offset"]
        if want != got:
            errors.append("%s: gotrace table %s != gdb ptype /o %s %s" % (k, got, typ, want))
    assert not errors, "\n".join(errors)


def wait_reason_strings(minor, path):
    """runtime.waitReasonStrings read from the (non-PIE, unstripped) binary's data."""
    import struct
    sym = {s.name: s for s in gobuild.nm(minor, path)}.get("runtime.waitReasonStrings")
    if sym is None or sym.size % 16:
        raise gobuild.GroundTruthError("no usable runtime.waitReasonStrings symbol: %r" % sym)
    raw = gobuild.elf_read_vaddr(path, sym.addr, sym.size)
    out = []
    for i in range(0, sym.size, 16):
        ptr, n = struct.unpack_from("<QQ", raw, i)
        out.append(gobuild.elf_read_vaddr(path, ptr, n).decode() if n else "")
    return out


@pytest.mark.parametrize("minor", [pytest.param(m, id="go1.%d" % m) for m in MINORS])
def test_wait_reasons(binpath, minor):
    path = binpath(minor, "default")
    assert inspect_json(path)["wait_reasons"] == wait_reason_strings(minor, path)


# ---------------------------------------------------------------- probes

# SP (or SP - framesize in R12) against g.stackguard0 (0x10(R14)), or g.stackguard1
# (0x18(R14)) in runtime functions that may run on the system stack; Go objdump spells the
# compare either way round depending on the version.
STACK_CHECK = re.compile(r"^CMPQ ((SP|R12), 0x1[08]\(R14\)|0x1[08]\(R14\), (SP|R12))$")


def prologue(insns):
    """(has stack check, offset of the first instruction after its conditional jump)."""
    entry = insns[0].addr
    for i, ins in enumerate(insns[:4]):
        if STACK_CHECK.match(ins.text):
            for j in range(i + 1, min(i + 3, len(insns) - 1)):
                if re.match(r"^J(BE|LS|CS|CC|LO|HI|LS)\b", insns[j].text):
                    return True, insns[j + 1].addr - entry
            raise gobuild.GroundTruthError("stack check without a conditional jump: %s"
                                           % insns[:6])
    return False, 0


@pytest.mark.parametrize("minor,variant", CASES)
def test_probes_match_objdump(binpath, minor, variant):
    path = binpath(minor, variant)
    twin = binpath(minor, gobuild.unstripped_twin(variant))
    probes = inspect_json(path)["probes"]
    assert probes, "no probes listed"
    funcs = gobuild.nm_text(minor, twin)
    present = [p for p in probes if p["present"]]
    dis = gobuild.objdump(minor, twin, [p["name"] for p in present])
    errors = []
    for p in probes:
        name = p["name"]
        if not p["present"]:
            if name in funcs:
                errors.append("%s listed absent but the symbol exists" % name)
            continue
        s = funcs.get(name)
        if s is None:
            errors.append("%s listed present but no such symbol" % name)
            continue
        insns = dis[name]
        entry = insns[0].addr
        if p["address"] != s.addr or entry != s.addr:
            errors.append("%s address %#x, nm %#x, objdump %#x" % (name, p["address"], s.addr,
                                                                   entry))
            continue
        if not s.size <= p["size"]:
            errors.append("%s size %d < symbol size %d" % (name, p["size"], s.size))
        rets = [i.addr - entry for i in insns if i.text == "RET"]
        got = p["ret_offsets"]
        if p.get("rets_truncated"):
            ok = len(got) == 64 and got == rets[:64] and len(rets) > 64
        else:
            ok = got == rets
        if not ok:
            errors.append("%s ret_offsets %s != objdump RETs %s" % (name, got, rets))
        has_check, after = prologue(insns)
        offs = {i.addr - entry for i in insns}
        a = p["attach_offset"]
        if not (0 <= a < p["size"] and a in offs):
            errors.append("%s attach_offset %d not an instruction inside it" % (name, a))
        if p["stack_check"] != has_check:
            errors.append("%s stack_check %s, objdump prologue says %s"
                          % (name, p["stack_check"], has_check))
        if has_check and a != after:
            errors.append("%s attach_offset %d, first instruction after the stack check is %d"
                          % (name, a, after))
        if not has_check and a != 0:
            errors.append("%s has no stack check but attach_offset %d" % (name, a))
    # Location in the file: file_offset maps back to the same bytes as the vaddr.
    for p in present:
        with open(path, "rb") as f:
            f.seek(p["file_offset"])
            code = f.read(16)
        if code != gobuild.elf_read_vaddr(path, p["address"], 16):
            errors.append("%s file_offset %#x does not hold its code" % (p["name"],
                                                                        p["file_offset"]))
    assert not errors, "\n".join(errors)


# ---------------------------------------------------------------- -p PID

@pytest.mark.parametrize("minor,variant", CASES)
def test_inspect_pid(binpath, minor, variant):
    path = binpath(minor, variant)
    twin = binpath(minor, gobuild.unstripped_twin(variant))
    link_main = gobuild.nm_text(minor, twin)["main.main"].addr
    file_doc = inspect_json(path)
    with gobuild.run_fixture_server(path) as (proc, ready):
        pid, rt_main = int(ready[1]), int(ready[2], 16)
        assert pid == proc.pid
        doc = gobuild.gotrace_json("inspect", "-p", str(pid))
        exe = os.readlink("/proc/%d/exe" % pid)
        maps = open("/proc/%d/maps" % pid).read()
    pr = doc["process"]
    assert pr["pid"] == pid
    assert pr["exe"] == exe == os.path.realpath(path)
    assert pr["opened"] == "/proc/%d/exe" % pid
    bias = rt_main - link_main
    if gobuild.is_pie(variant):
        assert bias != 0
    else:
        assert bias == 0
    assert pr["load_bias"] == bias
    assert pr["maps"], "no mappings"
    for mp in pr["maps"]:
        line = "%08x-%08x %s %08x" % (mp["start"], mp["end"], mp["perms"], mp["offset"])
        assert line in maps, "mapping %s not in /proc/PID/maps" % line
    assert any(mp["start"] <= rt_main < mp["end"] and "x" in mp["perms"] for mp in pr["maps"])
    for k in ("go_version", "functions", "pclntab", "stripped", "pie", "cgo", "probes"):
        assert doc[k] == file_doc[k], k


def test_text_output(binpath):
    """The human-readable form: exit 0, names the version and each probe."""
    minor = MINORS[-1]
    path = binpath(minor, "default")
    r = gobuild.gotrace("inspect", path)
    assert r.returncode == 0, r.stderr
    assert gobuild.go_version(minor) in r.stdout
    for p in inspect_json(path)["probes"]:
        assert p["name"] in r.stdout
