/* SPDX-License-Identifier: MIT */
/*
 * A read-only view of an ELF file: sections, program headers, symbols and
 * virtual-address reads, backed by one mmap of the file (or a caller's buffer).
 * Built on libelf; pointers handed out stay valid until elf_file__free().
 */
#ifndef GOTRACE_ELF_FILE_H
#define GOTRACE_ELF_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct elf_file;

struct elf_section {
	const char *name;
	uint64_t addr;	 /* sh_addr (link-time vaddr) */
	uint64_t offset; /* sh_offset in the file */
	uint64_t size;
	uint32_t type;	 /* SHT_* */
	uint64_t flags;	 /* SHF_* */
	uint32_t link;	 /* sh_link */
	uint64_t entsize; /* sh_entsize */
	/* Raw file bytes, NULL for SHT_NOBITS or when any byte lies beyond the end of the file. */
	const uint8_t *data;
};

struct elf_segment {
	uint64_t vaddr, memsz, offset, filesz;
	uint32_t flags; /* PF_R|PF_W|PF_X */
};

/*
 * Open and map PATH. Returns NULL with errno set and gt_lasterr() describing why:
 * ENOEXEC "not an ELF file: PATH", EINVAL "truncated or corrupt ELF file: PATH",
 * or the open/mmap errno ("cannot read PATH: Permission denied").
 */
struct elf_file *elf_file__open(const char *path);
/* Parse an in-memory image (not copied; must outlive the handle). For fuzzing and tests. */
struct elf_file *elf_file__open_mem(const void *buf, size_t size, const char *name);
void elf_file__free(struct elf_file *ef);

const char *elf_file__path(const struct elf_file *ef);
int elf_file__fd(const struct elf_file *ef); /* -1 for in-memory images */
const uint8_t *elf_file__data(const struct elf_file *ef, size_t *size);
uint16_t elf_file__machine(const struct elf_file *ef); /* EM_X86_64, EM_AARCH64, ... */
int elf_file__ptr_size(const struct elf_file *ef);     /* 4 or 8 */
bool elf_file__big_endian(const struct elf_file *ef);
bool elf_file__is_dyn(const struct elf_file *ef); /* ET_DYN: PIE or shared object */
bool elf_file__has_interp(const struct elf_file *ef);
bool elf_file__has_symtab(const struct elf_file *ef); /* .symtab present (not stripped) */
bool elf_file__has_debug_info(const struct elf_file *ef);

size_t elf_file__section_cnt(const struct elf_file *ef);
const struct elf_section *elf_file__section_at(const struct elf_file *ef, size_t idx);
const struct elf_section *elf_file__section(const struct elf_file *ef, const char *name);
/* PT_LOAD segments only, in program-header order. */
size_t elf_file__segment_cnt(const struct elf_file *ef);
const struct elf_segment *elf_file__segment_at(const struct elf_file *ef, size_t idx);

/* Translate a link-time vaddr to a file offset through PT_LOAD. 0 or -ENOENT. */
int elf_file__vaddr_to_offset(const struct elf_file *ef, uint64_t vaddr, uint64_t *off);
/*
 * Pointer to LEN file-backed bytes at link-time VADDR (section data), or NULL
 * if any of them lies outside the file (bss, out of range).
 */
const uint8_t *elf_file__vaddr_ptr(const struct elf_file *ef, uint64_t vaddr, size_t len);
/*
 * Pointer to the file-backed bytes at VADDR and, in *AVAIL, how many follow it in
 * the same PT_LOAD segment (and in the file). NULL (and *AVAIL = 0) when none.
 */
const uint8_t *elf_file__vaddr_span(const struct elf_file *ef, uint64_t vaddr, size_t *avail);
/* Read a pointer-sized little/big-endian word at vaddr. 0 or -ENOENT. */
int elf_file__read_ptr(const struct elf_file *ef, uint64_t vaddr, uint64_t *val);
/*
 * Like elf_file__read_ptr(), but for an address slot of a PIE/shared object whose
 * word is 0 in the file, return the link-time value its RELATIVE relocation stores.
 */
int elf_file__read_addr(const struct elf_file *ef, uint64_t vaddr, uint64_t *val);

/* A RELATIVE dynamic relocation: at load, *(bias + offset) = bias + addend. */
struct elf_reloc {
	uint64_t offset, addend;
};
/*
 * Every RELATIVE relocation of the file (from SHT_RELA/SHT_REL sections), sorted by
 * offset; built on the first call (thread-safe), owned by EF. 0 or -ENOMEM.
 */
int elf_file__relative_relocs(const struct elf_file *ef, const struct elf_reloc **relocs,
			      size_t *cnt);

/* Look a symbol up in .symtab, then .dynsym. 0 or -ENOENT. */
int elf_file__symbol(const struct elf_file *ef, const char *name, uint64_t *addr, uint64_t *size);
/* Iterate .symtab: calls CB for each symbol; stops when CB returns non-zero. */
int elf_file__for_each_symbol(const struct elf_file *ef,
			      int (*cb)(const char *name, uint64_t addr, uint64_t size, int type,
					void *ctx),
			      void *ctx);
/* DT_NEEDED entries; returns count written (at most MAX). */
int elf_file__needed(const struct elf_file *ef, const char **names, int max);

/* Little-endian (or the file's endianness) helpers for parsers. */
uint16_t elf_file__u16(const struct elf_file *ef, const uint8_t *p);
uint32_t elf_file__u32(const struct elf_file *ef, const uint8_t *p);
uint64_t elf_file__u64(const struct elf_file *ef, const uint8_t *p);
uint64_t elf_file__uptr(const struct elf_file *ef, const uint8_t *p);

#endif
