// SPDX-License-Identifier: MIT
/*
 * .go.buildinfo: a 32-byte header ("\xff Go buildinf:", pointer size, flags)
 * followed, from Go 1.18, by two uvarint-prefixed strings (version, modinfo);
 * up to Go 1.17 the header instead holds the addresses of the Go string
 * headers of runtime.buildVersion and runtime.modinfo.
 * Format: Go's src/debug/buildinfo and cmd/link buildinfo() (go-runtime-facts §7.4).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gosym/buildinfo.h"
#include "util/log.h"

#define BI_MAGIC "\xff Go buildinf:"
#define BI_MAGIC_LEN 14
#define BI_HDR_LEN 32
#define BI_FLAG_BIG_ENDIAN 0x1
#define BI_FLAG_INLINE 0x2
/* Sentinels the go command puts around modinfo: 16 bytes each side. */
#define MODINFO_SENTINEL 16
#define MAX_VERSION_LEN 1024
#define MAX_MODINFO_LEN (16u << 20)

int buildinfo__parse_version(const char *s, int *major, int *minor, int *patch)
{
	long v[3] = { 0, 0, 0 };
	int n = 0;

	if (!s)
		return -EINVAL;
	/* Development toolchains say "devel go1.23-abcdef ...". */
	if (!strncmp(s, "devel ", 6))
		s += 6;
	if (strncmp(s, "go", 2))
		return -EINVAL;
	s += 2;
	while (n < 3) {
		char *end;

		if (*s < '0' || *s > '9')
			break;
		v[n] = strtol(s, &end, 10);
		if (v[n] > 100000)
			return -EINVAL;
		n++;
		s = end;
		if (*s != '.')
			break;
		s++;
	}
	if (n < 2)
		return -EINVAL;
	*major = (int)v[0];
	*minor = (int)v[1];
	*patch = (int)v[2];
	return 0;
}

/* Read a uvarint from [*p, end); false when it does not fit or is too long. */
static bool read_uvarint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t x = 0;

	for (int shift = 0; shift < 64 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;

		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return true;
		}
	}
	return false;
}

/* Unquote a Go string literal ("..." or `...`) of LEN bytes at S into a new string. */
static char *go_unquote(const char *s, size_t len)
{
	char *out, *o;

	if (len < 2 || s[len - 1] != s[0])
		return NULL;
	out = o = malloc(len);
	if (!out)
		return NULL;
	if (s[0] == '`') {
		memcpy(out, s + 1, len - 2);
		out[len - 2] = '\0';
		return out;
	}
	for (size_t i = 1; i < len - 1; i++) {
		unsigned long cp;
		int ndig, base;

		if (s[i] != '\\') {
			*o++ = s[i];
			continue;
		}
		if (++i >= len - 1)
			goto bad;
		switch (s[i]) {
		case 'a': *o++ = '\a'; continue;
		case 'b': *o++ = '\b'; continue;
		case 'f': *o++ = '\f'; continue;
		case 'n': *o++ = '\n'; continue;
		case 'r': *o++ = '\r'; continue;
		case 't': *o++ = '\t'; continue;
		case 'v': *o++ = '\v'; continue;
		case '\\': case '"': case '\'': *o++ = s[i]; continue;
		case 'x': ndig = 2; base = 16; i++; break;
		case 'u': ndig = 4; base = 16; i++; break;
		case 'U': ndig = 8; base = 16; i++; break;
		case '0' ... '7': ndig = 3; base = 8; break;
		default: goto bad;
		}
		cp = 0;
		for (int d = 0; d < ndig; d++, i++) {
			int c = i < len - 1 ? (unsigned char)s[i] : -1, dv;

			if (c >= '0' && c <= '9')
				dv = c - '0';
			else if (base == 16 && c >= 'a' && c <= 'f')
				dv = c - 'a' + 10;
			else if (base == 16 && c >= 'A' && c <= 'F')
				dv = c - 'A' + 10;
			else
				goto bad;
			if (dv >= base)
				goto bad;
			cp = cp * base + dv;
		}
		i--;
		/* \x and octal are bytes; \u and \U are code points, written as UTF-8. */
		if (ndig == 2 || base == 8) {
			if (cp > 0xff)
				goto bad;
			*o++ = (char)cp;
		} else if (cp < 0x80) {
			*o++ = (char)cp;
		} else if (cp < 0x800) {
			*o++ = (char)(0xc0 | cp >> 6);
			*o++ = (char)(0x80 | (cp & 0x3f));
		} else if (cp < 0x10000) {
			*o++ = (char)(0xe0 | cp >> 12);
			*o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
			*o++ = (char)(0x80 | (cp & 0x3f));
		} else if (cp <= 0x10ffff) {
			*o++ = (char)(0xf0 | cp >> 18);
			*o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
			*o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
			*o++ = (char)(0x80 | (cp & 0x3f));
		} else {
			goto bad;
		}
	}
	*o = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

/* Length of the Go quoted literal at the start of S (N bytes), or 0 if none. */
static size_t quoted_prefix(const char *s, size_t n)
{
	if (n < 2 || (s[0] != '"' && s[0] != '`'))
		return 0;
	for (size_t i = 1; i < n; i++) {
		if (s[0] == '"' && s[i] == '\\') {
			i++;
			continue;
		}
		if (s[i] == s[0])
			return i + 1;
	}
	return 0;
}

static char *dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/* "key=value" of a build line, both possibly quoted. 0, -EINVAL or -ENOMEM. */
static int parse_setting(struct go_buildinfo *bi, const char *kv, size_t n)
{
	size_t klen, qlen;
	const char *val;
	char *key, *value;
	size_t vlen;

	if (bi->nsettings >= GO_MAX_SETTINGS)
		return 0;
	qlen = quoted_prefix(kv, n);
	if (qlen) {
		key = go_unquote(kv, qlen);
		klen = qlen;
	} else {
		const char *eq = memchr(kv, '=', n);

		if (!eq || eq == kv)
			return -EINVAL;
		klen = eq - kv;
		key = dup_n(kv, klen);
	}
	if (!key)
		return -ENOMEM;
	if (klen >= n || kv[klen] != '=') {
		free(key);
		return -EINVAL;
	}
	val = kv + klen + 1;
	vlen = n - klen - 1;
	if (vlen && (val[0] == '"' || val[0] == '`'))
		value = go_unquote(val, vlen);
	else
		value = dup_n(val, vlen);
	if (!value) {
		free(key);
		return -EINVAL;
	}
	bi->settings[bi->nsettings].key = key;
	bi->settings[bi->nsettings].value = value;
	bi->nsettings++;
	return 0;
}

/* Split a line on tabs into at most MAX fields; returns the count. */
static int split_tabs(const char *line, size_t n, const char **f, size_t *flen, int max)
{
	int cnt = 0;
	size_t start = 0;

	for (size_t i = 0; i <= n && cnt < max; i++) {
		if (i == n || line[i] == '\t') {
			f[cnt] = line + start;
			flen[cnt] = i - start;
			cnt++;
			start = i + 1;
		}
	}
	return cnt;
}

/* Fill path, main module and build settings from bi->modinfo (lines malformed are skipped). */
static int parse_modinfo(struct go_buildinfo *bi)
{
	const char *s = bi->modinfo;

	while (s && *s) {
		const char *nl = strchr(s, '\n');
		size_t n = nl ? (size_t)(nl - s) : strlen(s);
		const char *f[4];
		size_t fl[4];
		int cnt = split_tabs(s, n, f, fl, 4);

		if (cnt >= 2 && fl[0] == 4 && !memcmp(f[0], "path", 4) && !bi->path) {
			bi->path = dup_n(f[1], n - (f[1] - s));
			if (!bi->path)
				return -ENOMEM;
		} else if (cnt >= 3 && fl[0] == 3 && !memcmp(f[0], "mod", 3) && !bi->main_module) {
			bi->main_module = dup_n(f[1], fl[1]);
			bi->main_version = dup_n(f[2], fl[2]);
			if (!bi->main_module || !bi->main_version)
				return -ENOMEM;
		} else if (cnt >= 2 && fl[0] == 5 && !memcmp(f[0], "build", 5)) {
			const char *kv = f[1];

			if (parse_setting(bi, kv, n - (kv - s)) == -ENOMEM)
				return -ENOMEM;
		}
		s = nl ? nl + 1 : NULL;
	}
	return 0;
}

/* Strip the 16-byte sentinels around modinfo, as Go's debug/buildinfo does. */
static int set_modinfo(struct go_buildinfo *bi, const uint8_t *mod, uint64_t len)
{
	if (len < 2 * MODINFO_SENTINEL + 1 || mod[len - MODINFO_SENTINEL - 1] != '\n')
		return 0;
	bi->modinfo = dup_n((const char *)mod + MODINFO_SENTINEL, len - 2 * MODINFO_SENTINEL);
	if (!bi->modinfo)
		return -ENOMEM;
	/* Embedded NULs would cut the text short; that is harmless. */
	return parse_modinfo(bi);
}

static void set_version(struct go_buildinfo *bi, const uint8_t *s, uint64_t len)
{
	size_t n = len < sizeof(bi->version) - 1 ? len : sizeof(bi->version) - 1;

	memcpy(bi->version, s, n);
	bi->version[n] = '\0';
	bi->version[strcspn(bi->version, "\n")] = '\0';
	if (buildinfo__parse_version(bi->version, &bi->major, &bi->minor, &bi->patch))
		bi->major = bi->minor = bi->patch = -1;
}

/* 1.18+: two uvarint-prefixed strings right after the header. */
static int read_inline(struct go_buildinfo *bi, const uint8_t *p, const uint8_t *end,
		       const char *path)
{
	uint64_t vlen, mlen;
	const uint8_t *v;

	if (!read_uvarint(&p, end, &vlen) || vlen > MAX_VERSION_LEN || vlen > (uint64_t)(end - p))
		goto corrupt;
	v = p;
	p += vlen;
	if (!read_uvarint(&p, end, &mlen) || mlen > MAX_MODINFO_LEN || mlen > (uint64_t)(end - p))
		goto corrupt;
	set_version(bi, v, vlen);
	return set_modinfo(bi, p, mlen);
corrupt:
	gt_seterr("corrupt Go build info in %s: string runs past the end of the data", path);
	return -EINVAL;
}

/* Read a Go string header {ptr, len} at VADDR and return its bytes. */
static const uint8_t *read_gostring(const struct elf_file *ef, uint64_t vaddr, uint64_t maxlen,
				    uint64_t *len)
{
	uint64_t ptr;

	if (elf_file__read_addr(ef, vaddr, &ptr) ||
	    elf_file__read_ptr(ef, vaddr + elf_file__ptr_size(ef), len) || *len > maxlen)
		return NULL;
	if (*len == 0)
		return (const uint8_t *)"";
	return elf_file__vaddr_ptr(ef, ptr, *len);
}

/* <=1.17: the header points at the string headers of runtime.buildVersion/modinfo. */
static int read_pointers(const struct elf_file *ef, struct go_buildinfo *bi, uint64_t hdr_vaddr,
			 const uint8_t *hdr, const char *path)
{
	int psz = hdr[BI_MAGIC_LEN];
	bool be = hdr[BI_MAGIC_LEN + 1] & BI_FLAG_BIG_ENDIAN;
	uint64_t vhdr, mhdr, vlen, mlen;
	const uint8_t *v, *m;

	if (psz != elf_file__ptr_size(ef) || be != elf_file__big_endian(ef)) {
		gt_seterr("corrupt Go build info in %s: pointer size %d does not match the ELF file",
			  path, psz);
		return -EINVAL;
	}
	if (elf_file__read_addr(ef, hdr_vaddr + 16, &vhdr) ||
	    elf_file__read_addr(ef, hdr_vaddr + 16 + psz, &mhdr) || !vhdr) {
		gt_seterr("cannot read the Go build info of %s: its pointers are only set when the "
			  "program is loaded (PIE built by Go 1.17 or older without relocations)",
			  path);
		return -EINVAL;
	}
	v = read_gostring(ef, vhdr, MAX_VERSION_LEN, &vlen);
	if (!v) {
		gt_seterr("corrupt Go build info in %s: the version string is not in the file", path);
		return -EINVAL;
	}
	set_version(bi, v, vlen);
	m = mhdr ? read_gostring(ef, mhdr, MAX_MODINFO_LEN, &mlen) : NULL;
	if (m)
		return set_modinfo(bi, m, mlen);
	return 0;
}

/* The header's file bytes, vaddr and how many bytes follow it, from the section or a scan. */
static const uint8_t *find_header(const struct elf_file *ef, uint64_t *vaddr, size_t *avail)
{
	const struct elf_section *s = elf_file__section(ef, ".go.buildinfo");

	if (s && s->data && s->size >= BI_HDR_LEN && !memcmp(s->data, BI_MAGIC, BI_MAGIC_LEN)) {
		*vaddr = s->addr;
		*avail = s->size;
		return s->data;
	}
	/* No section headers (or an odd section): scan writable segments, 16-byte aligned. */
	for (size_t i = 0; i < elf_file__segment_cnt(ef); i++) {
		const struct elf_segment *seg = elf_file__segment_at(ef, i);
		const uint8_t *base, *p;
		size_t len;

		if (!(seg->flags & 2 /* PF_W */))
			continue;
		base = elf_file__vaddr_span(ef, seg->vaddr, &len);
		if (!base)
			continue;
		for (p = base; (size_t)(p - base) + BI_HDR_LEN <= len; p++) {
			p = memmem(p, len - (p - base), BI_MAGIC, BI_MAGIC_LEN);
			if (!p || (size_t)(p - base) + BI_HDR_LEN > len)
				break;
			if (((seg->vaddr + (p - base)) & 15) == 0) {
				*vaddr = seg->vaddr + (p - base);
				*avail = len - (p - base);
				return p;
			}
		}
	}
	return NULL;
}

int buildinfo__read(const struct elf_file *ef, struct go_buildinfo *bi)
{
	const char *path = elf_file__path(ef);
	const uint8_t *hdr;
	uint64_t vaddr;
	size_t avail;
	int err;

	memset(bi, 0, sizeof(*bi));
	bi->major = bi->minor = bi->patch = -1;
	hdr = find_header(ef, &vaddr, &avail);
	if (!hdr) {
		gt_seterr("no Go build info in %s (not a Go program, or built by Go older than 1.13)",
			  path);
		return -ENOENT;
	}
	bi->inline_strings = hdr[BI_MAGIC_LEN + 1] & BI_FLAG_INLINE;
	if (bi->inline_strings)
		err = read_inline(bi, hdr + BI_HDR_LEN, hdr + avail, path);
	else
		err = read_pointers(ef, bi, vaddr, hdr, path);
	if (err == -ENOMEM)
		gt_seterr("out of memory reading the Go build info of %s", path);
	if (err) {
		buildinfo__free(bi);
		return err;
	}
	if (!bi->version[0]) {
		gt_seterr("corrupt Go build info in %s: empty Go version", path);
		buildinfo__free(bi);
		return -EINVAL;
	}
	bi->source = ".go.buildinfo";
	return 0;
}

/* A release version string as runtime.buildVersion holds it: "go1.N", "go1.N.P", "go1.NrcK". */
static bool version_like(const uint8_t *p, uint64_t len)
{
	uint64_t i = 4;

	if (len < 5 || len > 48 || memcmp(p, "go1.", 4) || !isdigit(p[4]))
		return false;
	while (i < len && (isalnum(p[i]) || p[i] == '.' || p[i] == '-' || p[i] == ' ' ||
			   p[i] == ':' || p[i] == ',' || p[i] == '=' || p[i] == '+'))
		i++;
	return i == len;
}

int buildinfo__read_version_string(const struct elf_file *ef, struct go_buildinfo *bi)
{
	const char *path = elf_file__path(ef);
	char found[sizeof(bi->version)] = "";
	int ptr = elf_file__ptr_size(ef);
	bool ambiguous = false;

	if (ptr != 8) {
		gt_seterr("no Go build info in %s (not a Go program, or built by Go older than 1.13)",
			  path);
		return -ENOENT;
	}
	for (size_t i = 0; i < elf_file__section_cnt(ef) && !ambiguous; i++) {
		const struct elf_section *sec = elf_file__section_at(ef, i);

		/* String headers of initialised variables live in the writable data sections. */
		if (!sec->data || sec->type != SHT_PROGBITS || !(sec->flags & SHF_WRITE) ||
		    (sec->flags & SHF_EXECINSTR))
			continue;
		for (uint64_t off = 0; off + 16 <= sec->size; off += 8) {
			uint64_t sptr, slen = elf_file__u64(ef, sec->data + off + 8);
			const uint8_t *s;

			if (slen < 5 || slen > 48)
				continue;
			if (elf_file__read_addr(ef, sec->addr + off, &sptr) || !sptr)
				continue;
			s = elf_file__vaddr_ptr(ef, sptr, slen);
			if (!s || !version_like(s, slen))
				continue;
			if (found[0] && (strlen(found) != slen || memcmp(found, s, slen))) {
				ambiguous = true;
				break;
			}
			memcpy(found, s, slen);
			found[slen] = '\0';
		}
	}
	if (!found[0] || ambiguous) {
		gt_seterr("no Go build info in %s (not a Go program, or built by Go older than 1.13%s)",
			  path, ambiguous ? "; several Go version strings, none certain" : "");
		return -ENOENT;
	}
	memset(bi, 0, sizeof(*bi));
	snprintf(bi->version, sizeof(bi->version), "%s", found);
	/* "go1.26.5 X:nodwarf5": the experiment suffix is not part of the version. */
	bi->version[strcspn(bi->version, " ")] = '\0';
	if (buildinfo__parse_version(bi->version, &bi->major, &bi->minor, &bi->patch))
		bi->major = bi->minor = bi->patch = -1;
	bi->source = "runtime.buildVersion";
	return 0;
}

const char *buildinfo__setting(const struct go_buildinfo *bi, const char *key)
{
	for (int i = 0; i < bi->nsettings; i++)
		if (!strcmp(bi->settings[i].key, key))
			return bi->settings[i].value;
	return NULL;
}

void buildinfo__free(struct go_buildinfo *bi)
{
	if (!bi)
		return;
	for (int i = 0; i < bi->nsettings && i < GO_MAX_SETTINGS; i++) {
		free(bi->settings[i].key);
		free(bi->settings[i].value);
	}
	free(bi->modinfo);
	free(bi->path);
	free(bi->main_module);
	free(bi->main_version);
	bi->modinfo = bi->path = bi->main_module = bi->main_version = NULL;
	bi->nsettings = 0;
}
