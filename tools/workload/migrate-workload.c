/*
 * migrate-workload: page migration in memory cgroups, for capturing real traces (tools/vm-capture).
 *
 *   migrate-workload -f FILE -A CGROUP_A [-B CGROUP_B] [-n FILE_PAGES] [-a ANON_PAGES] [-p PIN_PAGES]
 *                    [-H PIDFILE] [-w SECONDS] [-m TRACE_MARKER]
 *
 * Phases (each announced on the trace marker as "### workload: <phase> begin|end", each followed by a
 * report of the cgroups' memory.stat/memory.numa_stat file_mapped, anon and file after waiting -w seconds,
 * because memcg statistics are flushed lazily, at least every 2 s):
 *   1. the process joins CGROUP_A and runs on CPU 0 (node 0 in a two-node guest);
 *   2. creates FILE with FILE_PAGES pages, fsyncs it and drops it from the page cache, so that the
 *      faults of the mapping read it back charged to CGROUP_A;
 *   3. maps FILE shared and reads every page (file-mapped pages), maps ANON_PAGES private anonymous
 *      pages and writes every page;
 *   4. with -B: a child joins CGROUP_B, maps the same file and reads every page (mapcount 2, the pages
 *      stay charged to A);
 *   5. move_pages(2) of all file and anon pages to node 1 (MPOL_MF_MOVE_ALL: shared pages too);
 *   6. with -p: PIN_PAGES file pages and PIN_PAGES anon pages are referenced by a pipe (vmsplice, never
 *      drained); move_pages back to node 0: the referenced pages FAIL to migrate (-EAGAIN inside the
 *      kernel, reported as not migrated), the others move; then the pipe is closed;
 *   7. move_pages of everything to node 0 again (now succeeds);
 *   8. the parent unmaps everything; with -H the child keeps its mapping of the first half of the file,
 *      writes its pid to PIDFILE and waits for SIGTERM (so FILE_MAPPED of A differs between before and
 *      after the capture); without -H the child unmaps and exits.
 * The exit status is 0 when every step did what it should (the failing migration must fail for exactly
 * the pinned pages), 1 otherwise; mismatches are printed as "CHECK FAILED: ...".
 *
 * Build: gcc -O2 -Wall -static -o migrate-workload migrate-workload.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_move_pages
#define SYS_move_pages 279
#endif
#define WL_MPOL_MF_MOVE_ALL (1 << 2)

static long page_size;
static const char *cg_a, *cg_b, *marker_path = "/sys/kernel/tracing/trace_marker";
static int marker_fd = -1, wait_s = 3, failures;

static void marker(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0) return;
	if (n >= (int)sizeof buf) n = sizeof buf - 1;
	printf("%s\n", buf);
	fflush(stdout);
	if (marker_fd >= 0 && write(marker_fd, buf, n) < 0) perror("trace_marker");
}

static void check(int ok, const char *fmt, ...)
{
	if (ok) return;
	va_list ap;
	va_start(ap, fmt);
	printf("CHECK FAILED: ");
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	va_end(ap);
	failures++;
}

static void die(const char *what)
{
	perror(what);
	exit(2);
}

static void join_cgroup(const char *cg)
{
	char path[512];
	snprintf(path, sizeof path, "%s/cgroup.procs", cg);
	FILE *f = fopen(path, "w");
	if (!f) die(path);
	fprintf(f, "%d\n", (int)getpid());
	if (fclose(f) != 0) die(path);
}

/* "[phase] memcgX memory.stat KEY VALUE" and "[phase] memcgX memory.numa_stat KEY N0=.. N1=.." lines */
static void report_cgroup(const char *phase, const char *label, const char *cg)
{
	static const char *keys[] = { "anon", "file", "file_mapped", "shmem" };
	char path[512], line[1024];
	for (int which = 0; which < 2; which++) {
		const char *fname = which ? "memory.numa_stat" : "memory.stat";
		snprintf(path, sizeof path, "%s/%s", cg, fname);
		FILE *f = fopen(path, "r");
		if (!f) {
			printf("[%s] %s %s unreadable: %s\n", phase, label, fname, strerror(errno));
			continue;
		}
		while (fgets(line, sizeof line, f)) {
			size_t kl = strcspn(line, " ");
			for (unsigned k = 0; k < sizeof keys / sizeof keys[0]; k++)
				if (kl == strlen(keys[k]) && strncmp(line, keys[k], kl) == 0)
					printf("[%s] %s %s %s", phase, label, fname, line);
		}
		fclose(f);
	}
}

static void report(const char *phase)
{
	if (wait_s > 0) sleep(wait_s);
	printf("=== stats %s (after sleep %d s)\n", phase, wait_s);
	report_cgroup(phase, "memcgA", cg_a);
	if (cg_b) report_cgroup(phase, "memcgB", cg_b);
	FILE *f = fopen("/proc/vmstat", "r");
	char line[256];
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, "nr_mapped ", 10) || !strncmp(line, "pgmigrate_success ", 18) ||
		    !strncmp(line, "pgmigrate_fail ", 15))
			printf("[%s] /proc/vmstat %s", phase, line);
	if (f) fclose(f);
	fflush(stdout);
}

static void touch_read(volatile const char *p, long pages)
{
	unsigned long sum = 0;
	for (long i = 0; i < pages; i++) sum += p[i * page_size];
	if (sum == (unsigned long)-1) printf("unlikely\n");
}

/* move_pages of pages[0..n) to node; returns the syscall's result, prints and counts the statuses */
static long move_all(const char *tag, void **pages, int *status, long n, int node, long *on_node, long *failed)
{
	int *nodes = malloc(n * sizeof *nodes);
	if (!nodes) die("malloc");
	for (long i = 0; i < n; i++) nodes[i] = node, status[i] = -1000;
	long ret = syscall(SYS_move_pages, 0, n, pages, nodes, status, WL_MPOL_MF_MOVE_ALL);
	int err = errno;
	long ok = 0, bad = 0;
	for (long i = 0; i < n; i++) {
		if (status[i] == node) ok++;
		else bad++;
	}
	printf("%s: move_pages -> node%d ret=%ld%s%s n=%ld on-target=%ld not-moved=%ld\n", tag, node, ret,
	       ret < 0 ? " errno=" : "", ret < 0 ? strerror(err) : "", n, ok, bad);
	fflush(stdout);
	free(nodes);
	*on_node = ok;
	*failed = bad;
	return ret;
}

static void query(const char *tag, void **pages, int *status, long n)
{
	long cnt[3] = { 0, 0, 0 };
	long ret = syscall(SYS_move_pages, 0, n, pages, NULL, status, 0);
	for (long i = 0; i < n; i++) cnt[status[i] == 0 ? 0 : status[i] == 1 ? 1 : 2]++;
	printf("%s: query ret=%ld node0=%ld node1=%ld other=%ld\n", tag, ret, cnt[0], cnt[1], cnt[2]);
	fflush(stdout);
}

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv)
{
	const char *file = NULL, *pidfile = NULL;
	long nfile = 512, nanon = 128, npin = 0;
	int c;
	while ((c = getopt(argc, argv, "f:A:B:n:a:p:H:w:m:")) != -1) {
		switch (c) {
		case 'f': file = optarg; break;
		case 'A': cg_a = optarg; break;
		case 'B': cg_b = optarg; break;
		case 'n': nfile = atol(optarg); break;
		case 'a': nanon = atol(optarg); break;
		case 'p': npin = atol(optarg); break;
		case 'H': pidfile = optarg; break;
		case 'w': wait_s = atoi(optarg); break;
		case 'm': marker_path = optarg; break;
		default:
			fprintf(stderr, "usage: %s -f FILE -A CGROUP_A [-B CGROUP_B] [-n FILE_PAGES] [-a ANON_PAGES] "
					"[-p PIN_PAGES] [-H PIDFILE] [-w SECONDS] [-m TRACE_MARKER]\n", argv[0]);
			return 2;
		}
	}
	if (!file || !cg_a || nfile < 2 || nanon < 1 || npin < 0 || npin > nfile / 2 || npin > nanon / 2) {
		fprintf(stderr, "%s: need -f FILE -A CGROUP_A, FILE_PAGES >= 2, ANON_PAGES >= 1, "
				"PIN_PAGES <= half of each\n", argv[0]);
		return 2;
	}
	page_size = sysconf(_SC_PAGESIZE);
	marker_fd = open(marker_path, O_WRONLY);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("migrate-workload: pid=%d file=%s nfile=%ld nanon=%ld pin=%ld cgA=%s cgB=%s hold=%s\n", (int)getpid(),
	       file, nfile, nanon, npin, cg_a, cg_b ? cg_b : "-", pidfile ? pidfile : "-");

	join_cgroup(cg_a);
	cpu_set_t cpus;
	CPU_ZERO(&cpus);
	CPU_SET(0, &cpus);
	printf("pinned to cpu 0 ret=%d\n", sched_setaffinity(0, sizeof cpus, &cpus));

	/* 2. the file */
	marker("### workload: create begin");
	int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) die(file);
	char *buf = malloc(page_size);
	if (!buf) die("malloc");
	for (long i = 0; i < nfile; i++) {
		memset(buf, (int)(i & 0x7f) + 1, page_size);
		if (write(fd, buf, page_size) != page_size) die("write");
	}
	if (fsync(fd) != 0) die("fsync");
	printf("fadvise DONTNEED ret=%d\n", posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED));
	marker("### workload: create end");
	report("after-create");

	/* 3. the mappings */
	marker("### workload: map begin");
	char *fmap = mmap(NULL, nfile * page_size, PROT_READ, MAP_SHARED, fd, 0);
	if (fmap == MAP_FAILED) die("mmap file");
	touch_read(fmap, nfile);
	char *amap = mmap(NULL, nanon * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (amap == MAP_FAILED) die("mmap anon");
	for (long i = 0; i < nanon; i++) amap[i * page_size] = (char)(i + 1);
	printf("mapped file at %p (%ld pages), anon at %p (%ld pages)\n", (void *)fmap, nfile, (void *)amap, nanon);

	/* 4. the second cgroup's mapping of the same pages */
	int go[2], ready[2];
	pid_t child = -1;
	if (cg_b) {
		if (pipe(go) || pipe(ready)) die("pipe");
		child = fork();
		if (child < 0) die("fork");
		if (child == 0) {
			close(go[1]);
			close(ready[0]);
			join_cgroup(cg_b);
			char *m = mmap(NULL, nfile * page_size, PROT_READ, MAP_SHARED, fd, 0);
			if (m == MAP_FAILED) die("child mmap");
			touch_read(m, nfile);
			printf("child pid=%d in %s mapped and read %ld file pages\n", (int)getpid(), cg_b, nfile);
			if (write(ready[1], "r", 1) != 1) die("child ready");
			char x;
			if (read(go[0], &x, 1) < 0) die("child wait");
			if (!pidfile) {
				munmap(m, nfile * page_size);
				_exit(0);
			}
			/* keep the first half mapped until SIGTERM */
			munmap(m + (nfile / 2) * page_size, (nfile - nfile / 2) * page_size);
			signal(SIGTERM, on_term);
			FILE *pf = fopen(pidfile, "w");
			if (!pf) die(pidfile);
			fprintf(pf, "%d\n", (int)getpid());
			fclose(pf);
			printf("child pid=%d holds %ld file pages mapped until SIGTERM\n", (int)getpid(), nfile / 2);
			fflush(stdout);
			close(1);
			close(2);
			while (!stop) pause();
			_exit(0);
		}
		close(go[0]);
		close(ready[1]);
		char x;
		if (read(ready[0], &x, 1) != 1) die("wait for child");
	}
	marker("### workload: map end");
	report("before-migration");

	long n = nfile + nanon;
	void **pages = malloc(n * sizeof *pages);
	int *status = malloc(n * sizeof *status);
	if (!pages || !status) die("malloc");
	for (long i = 0; i < nfile; i++) pages[i] = fmap + i * page_size;
	for (long i = 0; i < nanon; i++) pages[nfile + i] = amap + i * page_size;
	query("initial", pages, status, n);

	/* 5. everything to node 1 */
	long on, bad, ret;
	marker("### workload: move-to-node1 begin");
	ret = move_all("move-to-node1", pages, status, n, 1, &on, &bad);
	marker("### workload: move-to-node1 end ret=%ld", ret);
	check(ret == 0 && bad == 0, "move to node1: ret=%ld, %ld pages not moved", ret, bad);
	report("after-move-to-node1");

	/* 6. failing migration: pipe references on the last npin file and anon pages */
	if (npin > 0) {
		int pp[2];
		if (pipe(pp)) die("pipe");
		fcntl(pp[1], F_SETPIPE_SZ, (int)(2 * npin * page_size));
		struct iovec *iov = malloc(2 * npin * sizeof *iov);
		if (!iov) die("malloc");
		for (long i = 0; i < npin; i++) {
			iov[i].iov_base = fmap + (nfile - npin + i) * page_size;
			iov[i].iov_len = page_size;
			iov[npin + i].iov_base = amap + (nanon - npin + i) * page_size;
			iov[npin + i].iov_len = page_size;
		}
		long spliced = 0;
		for (long i = 0; i < 2 * npin;) {
			ssize_t r = vmsplice(pp[1], iov + i, 2 * npin - i < 1024 ? 2 * npin - i : 1024, SPLICE_F_NONBLOCK);
			if (r <= 0) {
				perror("vmsplice");
				break;
			}
			spliced += r;
			while (i < 2 * npin && r >= (ssize_t)iov[i].iov_len) r -= iov[i++].iov_len;
			if (r > 0) break; /* partial page: stop */
		}
		printf("pipe references %ld bytes (%ld file pages + %ld anon pages requested)\n", spliced, npin, npin);
		marker("### workload: failing-move-to-node0 begin pinned=%ld", 2 * npin);
		ret = move_all("failing-move-to-node0", pages, status, n, 0, &on, &bad);
		marker("### workload: failing-move-to-node0 end ret=%ld", ret);
		/* The kernel reports how many pages were not migrated (move_pages may then leave the status array
		 * unwritten), so ask where every page is now: exactly the referenced pages must still be on node 1. */
		long pinned_pages = spliced / page_size;
		query("after-failing-move", pages, status, n);
		long left = 0, left_pinned = 0;
		for (long i = 0; i < n; i++) {
			int is_pinned = (i >= nfile - npin && i < nfile) || i >= n - npin;
			if (status[i] != 0) {
				left++;
				left_pinned += is_pinned;
			}
		}
		check(pinned_pages > 0 && ret == pinned_pages && left == pinned_pages && left_pinned == pinned_pages,
		      "failing move: ret=%ld referenced=%ld still-not-on-node0=%ld of which referenced %ld", ret,
		      pinned_pages, left, left_pinned);
		close(pp[0]);
		close(pp[1]);
		free(iov);
		report("after-failing-move");
	}

	/* 7. everything to node 0 */
	marker("### workload: move-to-node0 begin");
	ret = move_all("move-to-node0", pages, status, n, 0, &on, &bad);
	marker("### workload: move-to-node0 end ret=%ld", ret);
	check(ret == 0 && bad == 0, "move to node0: ret=%ld, %ld pages not moved", ret, bad);
	query("final", pages, status, n);
	report("after-move-to-node0");

	/* 8. unmap */
	marker("### workload: unmap begin");
	munmap(fmap, nfile * page_size);
	munmap(amap, nanon * page_size);
	if (child > 0) {
		if (write(go[1], "g", 1) != 1) die("release child");
		if (!pidfile) waitpid(child, NULL, 0);
		else
			for (int i = 0; i < 100; i++) { /* the holder writes its pidfile once it holds */
				struct stat st;
				if (stat(pidfile, &st) == 0 && st.st_size > 0) break;
				usleep(100000);
			}
	}
	close(fd);
	marker("### workload: unmap end");
	report("after-unmap");
	printf("migrate-workload: %s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
