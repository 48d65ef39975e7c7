// SPDX-License-Identifier: MIT
/*
 * Target process resolution. The executable is opened through /proc/PID/exe,
 * which reaches the right file even when the target lives in another mount
 * namespace (a container) or its file was deleted or replaced on disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <elf.h>

#include "proc/proc.h"
#include "util/log.h"

#define PF_KTHREAD 0x00200000

/* Flags word (field 9) of /proc/PID/stat; -errno on failure. */
static long proc_stat_flags(pid_t pid, char *comm, size_t comm_len)
{
	char path[64], buf[1024], *p, *end;
	unsigned long flags;
	FILE *f;
	size_t n;
	int i;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* comm is in parentheses and may contain spaces or ')': use the last ')'. */
	p = strchr(buf, '(');
	end = strrchr(buf, ')');
	if (!p || !end || end < p)
		return -EINVAL;
	if (comm) {
		size_t len = (size_t)(end - p - 1);

		if (len >= comm_len)
			len = comm_len - 1;
		memcpy(comm, p + 1, len);
		comm[len] = '\0';
	}
	/* After ") " come: state(3) ppid pgrp session tty_nr tpgid flags(9). */
	p = end + 2;
	for (i = 3; i < 9 && p; i++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (!p)
		return -EINVAL;
	flags = strtoul(p, NULL, 10);
	return (long)flags;
}

int proc__open(pid_t pid, struct proc_target *t)
{
	char path[64], line[4096 + 256];
	struct stat st;
	long flags;
	ssize_t n;
	FILE *f;
	int err;

	memset(t, 0, sizeof(*t));
	t->pid = pid;
	if (pid <= 0) {
		gt_seterr("invalid PID %d: expected a positive process ID", pid);
		return -EINVAL;
	}
	flags = proc_stat_flags(pid, t->comm, sizeof(t->comm));
	if (flags == -ENOENT) {
		gt_seterr("no such process: PID %d (check the PID with 'ps -p %d')", pid, pid);
		return -ESRCH;
	}
	if (flags < 0) {
		gt_seterr("cannot read /proc/%d/stat: %s", pid, strerror((int)-flags));
		return (int)flags;
	}
	if (flags & PF_KTHREAD) {
		gt_seterr("PID %d (%s) is a kernel thread, not a Go program", pid, t->comm);
		return -EINVAL;
	}

	snprintf(t->open_path, sizeof(t->open_path), "/proc/%d/exe", pid);
	n = readlink(t->open_path, t->exe_path, sizeof(t->exe_path) - 1);
	if (n < 0) {
		err = -errno;
		if (err == -EACCES || err == -EPERM)
			gt_seterr("cannot access process %d (%s): permission denied: run gotrace as root "
				  "(sudo)", pid, t->comm);
		else if (err == -ENOENT)
			gt_seterr("process %d (%s) has no executable (exited, or a kernel thread)", pid,
				  t->comm);
		else
			gt_seterr("cannot resolve /proc/%d/exe: %s", pid, strerror(-err));
		return err;
	}
	t->exe_path[n] = '\0';
	if (stat(t->open_path, &st)) {
		err = -errno;
		gt_seterr("cannot open the executable of process %d (%s): %s", pid, t->exe_path,
			  strerror(-err));
		return err;
	}

	/* Mappings of the executable: match on device and inode, not on the path text. */
	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "r");
	if (!f) {
		err = -errno;
		gt_seterr("cannot read %s: %s", path, strerror(-err));
		return err;
	}
	while (fgets(line, sizeof(line), f) && t->nmaps < PROC_MAX_MAPS) {
		unsigned long long start, end, off, ino;
		unsigned int dmaj, dmin;
		char perms[8];

		if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu", &start, &end, perms, &off, &dmaj,
			   &dmin, &ino) != 7)
			continue;
		if (ino != (unsigned long long)st.st_ino)
			continue;
		t->maps[t->nmaps].start = start;
		t->maps[t->nmaps].end = end;
		t->maps[t->nmaps].offset = off;
		snprintf(t->maps[t->nmaps].perms, sizeof(t->maps[0].perms), "%.4s", perms);
		t->nmaps++;
	}
	fclose(f);
	if (t->nmaps == 0) {
		gt_seterr("process %d (%s): its executable %s is not mapped (exited or exec'ing?)",
			  pid, t->comm, t->exe_path);
		return -ESRCH;
	}
	return 0;
}

struct elf_file *proc__open_elf(struct proc_target *t)
{
	struct elf_file *ef;
	const struct proc_map *m = NULL;

	ef = elf_file__open(t->open_path);
	if (!ef) {
		if (errno == EACCES || errno == EPERM)
			gt_seterr("cannot read the executable of process %d (%s): permission denied: "
				  "run gotrace as root (sudo)", t->pid, t->exe_path);
		return NULL;
	}
	t->load_bias = 0;
	if (!elf_file__is_dyn(ef))
		return ef;

	/*
	 * PIE: find the executable mapping and the PT_LOAD that covers its file
	 * offset; bias = runtime address - link-time address of the same byte.
	 */
	for (int i = 0; i < t->nmaps; i++) {
		if (t->maps[i].perms[2] == 'x') {
			m = &t->maps[i];
			break;
		}
	}
	if (!m)
		m = &t->maps[0];
	for (size_t i = 0; i < elf_file__segment_cnt(ef); i++) {
		const struct elf_segment *s = elf_file__segment_at(ef, i);

		if (m->offset >= s->offset && m->offset < s->offset + s->filesz) {
			t->load_bias = m->start - (s->vaddr - s->offset + m->offset);
			return ef;
		}
	}
	/* Mapped at offset 0 with no matching segment: assume the first PT_LOAD. */
	if (elf_file__segment_cnt(ef))
		t->load_bias = m->start - (elf_file__segment_at(ef, 0)->vaddr - m->offset);
	return ef;
}
