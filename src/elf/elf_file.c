// SPDX-License-Identifier: MIT
/*
 * Read-only ELF access over one mmap of the file. libelf parses the ELF,
 * section and program headers; everything else (section bytes, symbols,
 * dynamic entries, relocations) is read straight from the mapping with every
 * offset and size checked against the file, because the input is untrusted
 * (a fuzzer runs over this file).
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elf/elf_file.h"
#include "util/log.h"

/* One RELATIVE-style relocation table, sorted by offset (built on first use). */
struct reloc_index {
	struct elf_reloc *v;
	size_t cnt;
};

struct elf_file {
	char *path;
	int fd;
	const uint8_t *data;
	size_t size;
	bool mapped;
	Elf *elf;

	uint16_t machine;
	uint16_t type;
	int ptr_size;
	bool big_endian;
	bool has_interp;

	struct elf_section *secs;
	size_t nsecs;
	struct elf_segment *segs;
	size_t nsegs;

	struct reloc_index *relocs; /* lazily built, published atomically */
};

static bool range_ok(uint64_t off, uint64_t len, uint64_t size)
{
	return off <= size && len <= size - off;
}

uint16_t elf_file__u16(const struct elf_file *ef, const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return ef->big_endian ? __builtin_bswap16(v) : v;
}

uint32_t elf_file__u32(const struct elf_file *ef, const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return ef->big_endian ? __builtin_bswap32(v) : v;
}

uint64_t elf_file__u64(const struct elf_file *ef, const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return ef->big_endian ? __builtin_bswap64(v) : v;
}

uint64_t elf_file__uptr(const struct elf_file *ef, const uint8_t *p)
{
	return ef->ptr_size == 8 ? elf_file__u64(ef, p) : elf_file__u32(ef, p);
}

/* A NUL-terminated string at OFF inside SEC's bytes, or NULL. */
static const char *sec_str(const struct elf_section *sec, uint64_t off)
{
	if (!sec || !sec->data || off >= sec->size)
		return NULL;
	if (!memchr(sec->data + off, '\0', sec->size - off))
		return NULL;
	return (const char *)sec->data + off;
}

static int load_sections(struct elf_file *ef)
{
	size_t shnum, shstrndx;
	const struct elf_section *strsec = NULL;

	if (elf_getshdrnum(ef->elf, &shnum))
		return -EINVAL;
	if (shnum == 0)
		return 0;
	/* Each header takes at least 40 bytes of the file: a bogus count cannot pass this. */
	if (shnum > ef->size / 40)
		return -EINVAL;
	ef->secs = calloc(shnum, sizeof(*ef->secs));
	if (!ef->secs)
		return -ENOMEM;
	for (size_t i = 0; i < shnum; i++) {
		struct elf_section *s = &ef->secs[i];
		Elf_Scn *scn = elf_getscn(ef->elf, i);
		GElf_Shdr sh;

		if (!scn || !gelf_getshdr(scn, &sh))
			return -EINVAL;
		s->name = "";
		s->addr = sh.sh_addr;
		s->offset = sh.sh_offset;
		s->size = sh.sh_size;
		s->type = sh.sh_type;
		s->flags = sh.sh_flags;
		s->link = sh.sh_link;
		s->entsize = sh.sh_entsize;
		/* Only hand out bytes that really are in the file. */
		if (sh.sh_type != SHT_NOBITS && range_ok(sh.sh_offset, sh.sh_size, ef->size))
			s->data = ef->data + sh.sh_offset;
	}
	ef->nsecs = shnum;

	if (elf_getshdrstrndx(ef->elf, &shstrndx) == 0 && shstrndx < shnum)
		strsec = &ef->secs[shstrndx];
	for (size_t i = 0; strsec && i < shnum; i++) {
		GElf_Shdr sh;
		const char *name;

		if (!gelf_getshdr(elf_getscn(ef->elf, i), &sh))
			continue;
		name = sec_str(strsec, sh.sh_name);
		if (name)
			ef->secs[i].name = name;
	}
	return 0;
}

static int load_segments(struct elf_file *ef)
{
	size_t phnum, n = 0;

	if (elf_getphdrnum(ef->elf, &phnum))
		return -EINVAL;
	if (phnum == 0)
		return 0;
	if (phnum > ef->size / 32)
		return -EINVAL;
	ef->segs = calloc(phnum, sizeof(*ef->segs));
	if (!ef->segs)
		return -ENOMEM;
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(ef->elf, i, &ph))
			return -EINVAL;
		if (ph.p_type == PT_INTERP)
			ef->has_interp = true;
		if (ph.p_type != PT_LOAD)
			continue;
		ef->segs[n].vaddr = ph.p_vaddr;
		ef->segs[n].memsz = ph.p_memsz;
		ef->segs[n].offset = ph.p_offset;
		ef->segs[n].filesz = ph.p_filesz;
		ef->segs[n].flags = ph.p_flags;
		n++;
	}
	ef->nsegs = n;
	return 0;
}

/* Parse the image in ef->data/size. 0, -ENOEXEC (not ELF) or -EINVAL (corrupt). */
static int parse_image(struct elf_file *ef)
{
	GElf_Ehdr eh;
	int err;

	if (ef->size < EI_NIDENT || memcmp(ef->data, ELFMAG, SELFMAG)) {
		gt_seterr("not an ELF file: %s", ef->path);
		return -ENOEXEC;
	}
	if ((ef->data[EI_CLASS] != ELFCLASS32 && ef->data[EI_CLASS] != ELFCLASS64) ||
	    (ef->data[EI_DATA] != ELFDATA2LSB && ef->data[EI_DATA] != ELFDATA2MSB))
		goto corrupt;
	elf_version(EV_CURRENT);
	/* libelf only reads through this pointer (we never update the image). */
	ef->elf = elf_memory((char *)ef->data, ef->size);
	if (!ef->elf || elf_kind(ef->elf) != ELF_K_ELF || !gelf_getehdr(ef->elf, &eh))
		goto corrupt;
	/* libelf quietly drops header tables that lie past the end of a truncated file. */
	if ((eh.e_shoff && (!eh.e_shentsize ||
			    !range_ok(eh.e_shoff, (uint64_t)eh.e_shentsize * (eh.e_shnum ? eh.e_shnum : 1),
				      ef->size))) ||
	    (eh.e_phnum && !range_ok(eh.e_phoff, (uint64_t)eh.e_phentsize * eh.e_phnum, ef->size)))
		goto corrupt;
	ef->machine = eh.e_machine;
	ef->type = eh.e_type;
	ef->ptr_size = ef->data[EI_CLASS] == ELFCLASS64 ? 8 : 4;
	ef->big_endian = ef->data[EI_DATA] == ELFDATA2MSB;

	err = load_sections(ef);
	if (!err)
		err = load_segments(ef);
	if (err == -ENOMEM) {
		gt_seterr("out of memory reading %s", ef->path);
		return err;
	}
	if (err)
		goto corrupt;
	/* A cut-off file: its loadable bytes or section contents run past the end. */
	for (size_t i = 0; i < ef->nsegs; i++)
		if (!range_ok(ef->segs[i].offset, ef->segs[i].filesz, ef->size))
			goto corrupt;
	for (size_t i = 0; i < ef->nsecs; i++)
		if (ef->secs[i].type != SHT_NOBITS && ef->secs[i].size && !ef->secs[i].data)
			goto corrupt;
	return 0;
corrupt:
	gt_seterr("truncated or corrupt ELF file: %s", ef->path);
	return -EINVAL;
}

struct elf_file *elf_file__open(const char *path)
{
	struct elf_file *ef;
	struct stat st;
	void *map;
	int err;

	ef = calloc(1, sizeof(*ef));
	if (!ef || !(ef->path = strdup(path))) {
		free(ef);
		errno = ENOMEM;
		return NULL;
	}
	ef->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (ef->fd < 0) {
		err = -errno;
		gt_seterr("cannot read %s: %s", path, strerror(-err));
		goto cleanup;
	}
	if (fstat(ef->fd, &st)) {
		err = -errno;
		gt_seterr("cannot read %s: %s", path, strerror(-err));
		goto cleanup;
	}
	if (S_ISDIR(st.st_mode)) {
		err = -EISDIR;
		gt_seterr("cannot read %s: %s", path, strerror(EISDIR));
		goto cleanup;
	}
	if (!S_ISREG(st.st_mode) || st.st_size < EI_NIDENT) {
		err = -ENOEXEC;
		gt_seterr("not an ELF file: %s", path);
		goto cleanup;
	}
	/* Private and writable: libelf may keep pointers into it, the file is never touched. */
	map = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, ef->fd, 0);
	if (map == MAP_FAILED) {
		err = -errno;
		gt_seterr("cannot read %s: %s", path, strerror(-err));
		goto cleanup;
	}
	ef->data = map;
	ef->size = st.st_size;
	ef->mapped = true;
	err = parse_image(ef);
	if (err)
		goto cleanup;
	return ef;
cleanup:
	elf_file__free(ef);
	errno = -err;
	return NULL;
}

struct elf_file *elf_file__open_mem(const void *buf, size_t size, const char *name)
{
	struct elf_file *ef;
	int err;

	ef = calloc(1, sizeof(*ef));
	if (!ef || !(ef->path = strdup(name ? name : "(memory)"))) {
		free(ef);
		errno = ENOMEM;
		return NULL;
	}
	ef->fd = -1;
	ef->data = buf;
	ef->size = size;
	err = buf ? parse_image(ef) : -EINVAL;
	if (err) {
		if (!buf)
			gt_seterr("not an ELF file: %s", ef->path);
		elf_file__free(ef);
		errno = -err;
		return NULL;
	}
	return ef;
}

void elf_file__free(struct elf_file *ef)
{
	if (!ef)
		return;
	if (ef->relocs) {
		free(ef->relocs->v);
		free(ef->relocs);
	}
	if (ef->elf)
		elf_end(ef->elf);
	if (ef->mapped)
		munmap((void *)ef->data, ef->size);
	if (ef->fd >= 0)
		close(ef->fd);
	free(ef->secs);
	free(ef->segs);
	free(ef->path);
	free(ef);
}

const char *elf_file__path(const struct elf_file *ef)
{
	return ef->path;
}

int elf_file__fd(const struct elf_file *ef)
{
	return ef->fd;
}

const uint8_t *elf_file__data(const struct elf_file *ef, size_t *size)
{
	if (size)
		*size = ef->size;
	return ef->data;
}

uint16_t elf_file__machine(const struct elf_file *ef)
{
	return ef->machine;
}

int elf_file__ptr_size(const struct elf_file *ef)
{
	return ef->ptr_size;
}

bool elf_file__big_endian(const struct elf_file *ef)
{
	return ef->big_endian;
}

bool elf_file__is_dyn(const struct elf_file *ef)
{
	return ef->type == ET_DYN;
}

bool elf_file__has_interp(const struct elf_file *ef)
{
	return ef->has_interp;
}

bool elf_file__has_symtab(const struct elf_file *ef)
{
	for (size_t i = 0; i < ef->nsecs; i++)
		if (ef->secs[i].type == SHT_SYMTAB)
			return true;
	return false;
}

bool elf_file__has_debug_info(const struct elf_file *ef)
{
	const struct elf_section *s = elf_file__section(ef, ".debug_info");

	if (!s)
		s = elf_file__section(ef, ".zdebug_info");
	return s && s->size > 0 && s->type != SHT_NOBITS;
}

size_t elf_file__section_cnt(const struct elf_file *ef)
{
	return ef->nsecs;
}

const struct elf_section *elf_file__section_at(const struct elf_file *ef, size_t idx)
{
	return idx < ef->nsecs ? &ef->secs[idx] : NULL;
}

const struct elf_section *elf_file__section(const struct elf_file *ef, const char *name)
{
	for (size_t i = 0; i < ef->nsecs; i++)
		if (!strcmp(ef->secs[i].name, name))
			return &ef->secs[i];
	return NULL;
}

size_t elf_file__segment_cnt(const struct elf_file *ef)
{
	return ef->nsegs;
}

const struct elf_segment *elf_file__segment_at(const struct elf_file *ef, size_t idx)
{
	return idx < ef->nsegs ? &ef->segs[idx] : NULL;
}

/* The file-backed bytes of segment S that exist in the file: [offset, offset+*len). */
static bool seg_file_range(const struct elf_file *ef, const struct elf_segment *s, uint64_t *len)
{
	if (s->offset > ef->size)
		return false;
	*len = s->filesz < ef->size - s->offset ? s->filesz : ef->size - s->offset;
	return true;
}

int elf_file__vaddr_to_offset(const struct elf_file *ef, uint64_t vaddr, uint64_t *off)
{
	for (size_t i = 0; i < ef->nsegs; i++) {
		const struct elf_segment *s = &ef->segs[i];

		if (vaddr >= s->vaddr && vaddr - s->vaddr < s->filesz) {
			*off = s->offset + (vaddr - s->vaddr);
			return 0;
		}
	}
	return -ENOENT;
}

const uint8_t *elf_file__vaddr_span(const struct elf_file *ef, uint64_t vaddr, size_t *avail)
{
	for (size_t i = 0; i < ef->nsegs; i++) {
		const struct elf_segment *s = &ef->segs[i];
		uint64_t len, d = vaddr - s->vaddr;

		if (vaddr < s->vaddr || !seg_file_range(ef, s, &len) || d >= len)
			continue;
		if (avail)
			*avail = len - d;
		return ef->data + s->offset + d;
	}
	if (avail)
		*avail = 0;
	return NULL;
}

const uint8_t *elf_file__vaddr_ptr(const struct elf_file *ef, uint64_t vaddr, size_t len)
{
	for (size_t i = 0; i < ef->nsegs; i++) {
		const struct elf_segment *s = &ef->segs[i];
		uint64_t flen, d = vaddr - s->vaddr;

		if (vaddr < s->vaddr || !seg_file_range(ef, s, &flen) || !range_ok(d, len, flen))
			continue;
		if (len == 0 && d >= flen)
			continue;
		return ef->data + s->offset + d;
	}
	return NULL;
}

int elf_file__read_ptr(const struct elf_file *ef, uint64_t vaddr, uint64_t *val)
{
	const uint8_t *p = elf_file__vaddr_ptr(ef, vaddr, ef->ptr_size);

	if (!p)
		return -ENOENT;
	*val = elf_file__uptr(ef, p);
	return 0;
}

/* The RELATIVE relocation type of this machine and whether it carries an explicit addend. */
static bool relative_type(uint16_t machine, uint32_t *type)
{
	switch (machine) {
	case EM_X86_64:
		*type = R_X86_64_RELATIVE;
		return true;
	case EM_AARCH64:
		*type = R_AARCH64_RELATIVE;
		return true;
	case EM_386:
		*type = R_386_RELATIVE;
		return true;
	case EM_ARM:
		*type = R_ARM_RELATIVE;
		return true;
	case EM_PPC64:
		*type = R_PPC64_RELATIVE;
		return true;
	case EM_RISCV:
		*type = 3; /* R_RISCV_RELATIVE */
		return true;
	case EM_S390:
		*type = R_390_RELATIVE;
		return true;
	default:
		return false;
	}
}

static int reloc_cmp(const void *a, const void *b)
{
	const struct elf_reloc *x = a, *y = b;

	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Collect the RELATIVE relocations of every SHT_RELA/SHT_REL section. */
static struct reloc_index *build_relocs(const struct elf_file *ef)
{
	struct reloc_index *ri = calloc(1, sizeof(*ri));
	size_t cap = 0;
	uint32_t want;

	if (!ri)
		return NULL;
	if (!relative_type(ef->machine, &want))
		return ri;
	for (size_t i = 0; i < ef->nsecs; i++) {
		const struct elf_section *s = &ef->secs[i];
		bool rela = s->type == SHT_RELA;
		size_t esz = (ef->ptr_size == 8 ? 16 : 8) + (rela ? ef->ptr_size : 0);

		if ((s->type != SHT_RELA && s->type != SHT_REL) || !s->data)
			continue;
		for (uint64_t off = 0; off + esz <= s->size; off += esz) {
			const uint8_t *p = s->data + off;
			uint64_t info = elf_file__uptr(ef, p + ef->ptr_size);
			uint32_t type = ef->ptr_size == 8 ? (uint32_t)info : (uint8_t)info;
			struct elf_reloc r;

			if (type != want)
				continue;
			r.offset = elf_file__uptr(ef, p);
			if (rela) {
				r.addend = elf_file__uptr(ef, p + 2 * ef->ptr_size);
			} else if (elf_file__read_ptr(ef, r.offset, &r.addend)) {
				continue; /* REL: the addend is the word in place */
			}
			if (ri->cnt == cap) {
				size_t ncap = cap ? cap * 2 : 1024;
				struct elf_reloc *nv = realloc(ri->v, ncap * sizeof(*nv));

				if (!nv) {
					free(ri->v);
					free(ri);
					return NULL;
				}
				ri->v = nv;
				cap = ncap;
			}
			ri->v[ri->cnt++] = r;
		}
	}
	if (ri->cnt)
		qsort(ri->v, ri->cnt, sizeof(*ri->v), reloc_cmp);
	return ri;
}

int elf_file__relative_relocs(const struct elf_file *ef, const struct elf_reloc **relocs,
			      size_t *cnt)
{
	struct reloc_index *ri = __atomic_load_n(&ef->relocs, __ATOMIC_ACQUIRE);

	if (!ri) {
		struct reloc_index *expected = NULL;

		ri = build_relocs(ef);
		if (!ri)
			return -ENOMEM;
		/* Another thread may have won the race: keep its index. */
		if (!__atomic_compare_exchange_n((struct reloc_index **)&ef->relocs, &expected, ri,
						 false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			free(ri->v);
			free(ri);
			ri = expected;
		}
	}
	*relocs = ri->v;
	*cnt = ri->cnt;
	return 0;
}

int elf_file__read_addr(const struct elf_file *ef, uint64_t vaddr, uint64_t *val)
{
	const struct elf_reloc *rv;
	size_t lo = 0, hi, n;
	int err;

	err = elf_file__read_ptr(ef, vaddr, val);
	if (err || *val || ef->type != ET_DYN)
		return err;
	/* Zero in a PIE or shared object: the dynamic loader may fill the slot in. */
	if (elf_file__relative_relocs(ef, &rv, &n))
		return 0;
	hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (rv[mid].offset < vaddr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < n && rv[lo].offset == vaddr)
		*val = rv[lo].addend;
	return 0;
}

/* Symbol table section of TYPE (SHT_SYMTAB/SHT_DYNSYM) and its string table. */
static const struct elf_section *sym_table(const struct elf_file *ef, uint32_t type,
					   const struct elf_section **strs)
{
	for (size_t i = 0; i < ef->nsecs; i++) {
		const struct elf_section *s = &ef->secs[i];

		if (s->type != type || !s->data || s->link >= ef->nsecs)
			continue;
		*strs = &ef->secs[s->link];
		return s;
	}
	return NULL;
}

struct sym {
	const char *name;
	uint64_t value, size;
	uint16_t shndx;
	uint8_t type;
};

/* Walk one symbol table; CB returns non-zero to stop (that value is returned). */
static int walk_syms(const struct elf_file *ef, uint32_t type,
		     int (*cb)(const struct sym *s, void *ctx), void *ctx)
{
	const struct elf_section *tab, *strs = NULL;
	size_t esz = ef->ptr_size == 8 ? sizeof(Elf64_Sym) : sizeof(Elf32_Sym);

	tab = sym_table(ef, type, &strs);
	if (!tab)
		return 0;
	if (tab->entsize > esz)
		esz = tab->entsize;
	for (uint64_t off = esz; off + esz <= tab->size; off += esz) {
		const uint8_t *p = tab->data + off;
		struct sym s;
		int ret;

		if (ef->ptr_size == 8) {
			s.type = GELF_ST_TYPE(p[4]);
			s.shndx = elf_file__u16(ef, p + 6);
			s.value = elf_file__u64(ef, p + 8);
			s.size = elf_file__u64(ef, p + 16);
		} else {
			s.value = elf_file__u32(ef, p + 4);
			s.size = elf_file__u32(ef, p + 8);
			s.type = GELF_ST_TYPE(p[12]);
			s.shndx = elf_file__u16(ef, p + 14);
		}
		s.name = sec_str(strs, elf_file__u32(ef, p));
		if (!s.name || !s.name[0])
			continue;
		ret = cb(&s, ctx);
		if (ret)
			return ret;
	}
	return 0;
}

struct sym_find {
	const char *name;
	uint64_t addr, size;
};

static int sym_find_cb(const struct sym *s, void *ctx)
{
	struct sym_find *f = ctx;

	if (s->shndx == SHN_UNDEF || strcmp(s->name, f->name))
		return 0;
	f->addr = s->value;
	f->size = s->size;
	return 1;
}

int elf_file__symbol(const struct elf_file *ef, const char *name, uint64_t *addr, uint64_t *size)
{
	struct sym_find f = { .name = name };

	if (walk_syms(ef, SHT_SYMTAB, sym_find_cb, &f) != 1 &&
	    walk_syms(ef, SHT_DYNSYM, sym_find_cb, &f) != 1)
		return -ENOENT;
	if (addr)
		*addr = f.addr;
	if (size)
		*size = f.size;
	return 0;
}

struct sym_iter {
	int (*cb)(const char *name, uint64_t addr, uint64_t size, int type, void *ctx);
	void *ctx;
};

static int sym_iter_cb(const struct sym *s, void *ctx)
{
	struct sym_iter *it = ctx;

	return it->cb(s->name, s->value, s->size, s->type, it->ctx);
}

int elf_file__for_each_symbol(const struct elf_file *ef,
			      int (*cb)(const char *name, uint64_t addr, uint64_t size, int type,
					void *ctx),
			      void *ctx)
{
	struct sym_iter it = { cb, ctx };

	walk_syms(ef, SHT_SYMTAB, sym_iter_cb, &it);
	return 0;
}

int elf_file__needed(const struct elf_file *ef, const char **names, int max)
{
	size_t esz = 2 * (size_t)ef->ptr_size;
	int n = 0;

	for (size_t i = 0; i < ef->nsecs; i++) {
		const struct elf_section *s = &ef->secs[i], *strs;

		if (s->type != SHT_DYNAMIC || !s->data || s->link >= ef->nsecs)
			continue;
		strs = &ef->secs[s->link];
		for (uint64_t off = 0; off + esz <= s->size && n < max; off += esz) {
			uint64_t tag = elf_file__uptr(ef, s->data + off);
			const char *name;

			if (tag == DT_NULL)
				break;
			if (tag != DT_NEEDED)
				continue;
			name = sec_str(strs, elf_file__uptr(ef, s->data + off + ef->ptr_size));
			if (name)
				names[n++] = name;
		}
		break;
	}
	return n;
}
