/*
 * GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 * hyper-exec: start a process in a container of a hyper pod at the cost of a fork, not of a crun exec.
 * docs/exec.md describes the design. One static binary, five roles:
 *
 *   hyper-exec launch NAME
 *       guest root, run by the host when a command found no server (then through crun exec). Returns at
 *       once; in the background, unless a server answers already, binds the unix socket
 *       /run/hyper/containers/NAME/exec.sock (mode 0600, in the guest root: no container sees it) and
 *       starts the server in the container with `crun exec -d --preserve-fds 2 NAME /proc/self/fd/4 serve`:
 *       fd 3 is the listening socket, fd 4 a private copy of this binary (exec-helper beside the socket:
 *       no file that the guest root runs is ever executed inside a container, so a container cannot
 *       write through /proc/PID/exe to one).
 *       crun exec runs niced; the server gets the launcher's priority back before the socket is renamed
 *       from exec.sock.new to exec.sock, so no command runs niced.
 *       crun sets the server up exactly as it sets up every `crun exec` process: namespaces, user and
 *       groups, the five capability sets, no_new_privs, rlimits, cgroup, environment, cwd, seccomp.
 *
 *   hyper-exec serve
 *       in the container (started by launch). One process: accepts connections and forks each
 *       command itself, so the command inherits everything crun gave the server.
 *
 *   hyper-exec run TOKEN NAME STDIN OUT ERR [-e K=V]... [-C DIR] [-u UID[:GID]] -- ARGV...
 *       guest root, run by the host through qemu-ga's guest-exec. Hands ARGV, the extra environment, the
 *       working directory and three file descriptors (stdin: STDIN or its own; stdout/stderr: OUT/ERR
 *       or its own) to the server, waits for the command and ends like it: the same exit code, or the
 *       same signal. With OUT/ERR of at most INLINE_LIMIT bytes each it copies them to its own stdout
 *       and stderr, appends INLINE_MARKER and removes them (as the crun exec wrapper does).
 *       When the request never reached a server (no socket, nobody listening, no greeting within
 *       HELLO_TIMEOUT_MS) it prints "hyper-exec: TOKEN unavailable: REASON" and exits UNAVAILABLE_RC:
 *       the command did not run and the host may use crun exec instead. When contact is lost after the
 *       request was sent it prints "hyper-exec: TOKEN lost: REASON" and exits UNAVAILABLE_RC: the
 *       command may have run. TOKEN is chosen by the host per call; the command never sees it.
 *       When the client is killed (the host's timeout), the server SIGKILLs the command's process
 *       group and the command itself.
 *
 *   hyper-exec log FILE MAX_BYTES
 *       guest root: a container's log writer, lines stamped, the file rotated (cmd_log below).
 *
 *   hyper-exec mcli NAME SOCKET LINE
 *       guest root: LINE to a unix socket of the container's own process (haproxy's master CLI), the
 *       answer on stdout (cmd_mcli below).
 *
 * The server runs in the container: a hostile container can kill, stop or replace them;
 * the client trusts nothing it reads from them (fixed-size messages, no file descriptors accepted).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <grp.h>
#include <time.h>
#include <unistd.h>

#ifndef CONTAINERS_DIR /* the unit tests build it with a directory of their own */
#define CONTAINERS_DIR "/run/hyper/containers"
#endif
#define SOCKET_NAME "exec.sock"
#define HELPER_NAME "exec-helper"
#define MAGIC 0x43455848u /* "HXEC" */
#define VERSION 1u
#define UNAVAILABLE_RC 125
#define HELLO_TIMEOUT_MS 3000
#define REQUEST_TIMEOUT_MS 10000
#define MAX_PAYLOAD (8u << 20)
#define MAX_STRINGS 65536u
#define INLINE_LIMIT (1024 * 1024)
#define INLINE_MARKER "@@hyper-inline-output@@"
#define LISTEN_FD 3
#define IMAGE_FD 4

/* capget/capset (linux/capability.h, which musl-gcc does not see). */
#define CAP_VERSION_3 0x20080522u
struct cap_header {
	uint32_t version;
	int pid;
};
struct cap_data {
	uint32_t effective, permitted, inheritable;
};
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_IS_SET 1
#define PR_CAP_AMBIENT_RAISE 2
#endif

enum { MSG_HELLO = 1, MSG_STARTED = 2, MSG_EXEC_FAILED = 3, MSG_EXIT = 4 };
enum { STAGE_CHDIR = 1, STAGE_EXEC = 2, STAGE_SETUP = 3 };

struct msg {
	uint32_t type;
	int32_t value;
	int32_t extra;
	uint32_t magic;
};

struct request {
	uint32_t magic;
	uint32_t version;
	uint32_t argc;
	uint32_t envc;
	uint32_t has_cwd;
	uint32_t has_user;
	uint32_t uid;
	uint32_t gid;
	uint32_t payload;
};

static const char *program = "hyper-exec";

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n = snprintf(buf, sizeof buf, "%s: ", program);
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof buf - 2)
		n = (int)sizeof buf - 2;
	buf[n++] = '\n';
	if (write(2, buf, (size_t)n) < 0) {
		/* nothing left to report to */
	}
}

static int valid_name(const char *name)
{
	size_t i, n = strlen(name);
	if (n == 0 || n > 200)
		return 0;
	if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9')))
		return 0;
	for (i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
			return 0;
	}
	return 1;
}

static int socket_path(const char *name, struct sockaddr_un *addr)
{
	memset(addr, 0, sizeof *addr);
	addr->sun_family = AF_UNIX;
	int n = snprintf(addr->sun_path, sizeof addr->sun_path, "%s/%s/%s", CONTAINERS_DIR, name, SOCKET_NAME);
	return n > 0 && (size_t)n < sizeof addr->sun_path;
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read exactly len bytes; 0 on success, -1 on error or EOF (errno 0 for EOF). */
static int read_all(int fd, void *data, size_t len)
{
	char *p = data;
	while (len) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			errno = 0;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int wait_readable(int fd, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	for (;;) {
		int r = poll(&p, 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		return r;
	}
}

static int send_msg(int fd, uint32_t type, int32_t value, int32_t extra)
{
	struct msg m = {.type = type, .value = value, .extra = extra, .magic = MAGIC};
	return write_all(fd, &m, sizeof m);
}

/* -- serve: in the container ------------------------------------------------------------------ */

/* Undo the server's own change (SIGPIPE ignored); the rest is what crun gave the server, as crun gives it
 * to its exec processes: dispositions, blocked signals. */
static void reset_signals(void)
{
	signal(SIGPIPE, SIG_DFL);
}

static void child_fail(int errfd, int stage, int err)
{
	struct msg m = {.type = MSG_EXEC_FAILED, .value = err, .extra = stage, .magic = MAGIC};
	if (write(errfd, &m, sizeof m) < 0) {
		/* the session sees EOF and reports exit 127 */
	}
	_exit(127);
}

/* crun exec --user UID[:GID], as crun does it: no supplementary groups, keep-caps across the uid change,
 * then the capability sets put back (crun sets the spec's; the server has them from crun) and the ambient
 * ones raised again. The exec then gives a non-root command what crun's gives it: its ambient set. */
static int switch_user(uid_t uid, gid_t gid)
{
	struct cap_header header = {.version = CAP_VERSION_3, .pid = 0};
	struct cap_data data[2];
	uint64_t ambient = 0;
	int cap;
	if (syscall(SYS_capget, &header, data) < 0)
		return -1;
	for (cap = 0; cap < 64; cap++) {
		int set = prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0);
		if (set < 0)
			break; /* past the kernel's last capability */
		if (set)
			ambient |= 1ull << cap;
	}
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 || setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
		return -1;
	if (syscall(SYS_capset, &header, data) < 0)
		return -1;
	for (cap = 0; cap < 64; cap++)
		if ((ambient >> cap) & 1 && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
			return -1;
	return prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
}

/* The forked command: its own process group, stdio from the client, nothing else open. */
static void run_child(int fds[3], int errfd, char **argv, char **env, const struct request *req, const char *cwd)
{
	uint32_t i, envc = req->envc;
	reset_signals();
	if (setsid() < 0)
		child_fail(errfd, STAGE_SETUP, errno);
	for (i = 0; i < 3; i++)
		if (dup2(fds[i], (int)i) < 0)
			child_fail(errfd, STAGE_SETUP, errno);
	if (errfd != 3) {
		if (dup3(errfd, 3, O_CLOEXEC) < 0)
			child_fail(errfd, STAGE_SETUP, errno);
		errfd = 3;
	}
	if (syscall(SYS_close_range, 4u, ~0u, 0u) < 0) {
		int fd;
		for (fd = 4; fd < 65536; fd++)
			close(fd);
	}
	for (i = 0; i < envc; i++) {
		char *eq = strchr(env[i], '=');
		if (eq == NULL || eq == env[i])
			continue;
		*eq = '\0';
		if (setenv(env[i], eq + 1, 1) < 0)
			child_fail(errfd, STAGE_SETUP, errno);
	}
	if (req->has_user && switch_user((uid_t)req->uid, (gid_t)req->gid) < 0)
		child_fail(errfd, STAGE_SETUP, errno);
	if (cwd != NULL && chdir(cwd) < 0)
		child_fail(errfd, STAGE_CHDIR, errno);
	execvp(argv[0], argv);
	child_fail(errfd, STAGE_EXEC, errno);
}

/* One running command: the client's connection and the command's pidfd. */
struct job {
	int conn;
	int pidfd;
	pid_t pid;
	int gone; /* the client went away: the command was killed, only its reaping is left */
};

#define MAX_JOBS 256
static struct job jobs[MAX_JOBS];
static int njobs;

/* Read the request of a new connection and fork its command; 0 and *job filled when it runs. */
static int start_job(int conn, struct job *job)
{
	struct request req;
	struct msghdr mh;
	struct iovec iov = {.iov_base = &req, .iov_len = sizeof req};
	union {
		char buf[CMSG_SPACE(3 * sizeof(int))];
		struct cmsghdr align;
	} control;
	struct cmsghdr *cm;
	int fds[3] = {-1, -1, -1}, errpipe[2], status, got = 0, rc = -1, pidfd;
	char *payload = NULL, **argv = NULL, **env = NULL, *p, *end, *cwd = NULL;
	uint32_t i, count;
	pid_t pid;
	ssize_t n;
	struct msg fail;

	struct timeval limit = {.tv_sec = REQUEST_TIMEOUT_MS / 1000};
	/* Only the guest root can connect; still, a client that stalls must not hold the server for long. */
	if (setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit) < 0 || send_msg(conn, MSG_HELLO, VERSION, 0) < 0)
		return -1;
	memset(&mh, 0, sizeof mh);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = control.buf;
	mh.msg_controllen = sizeof control.buf;
	do
		n = recvmsg(conn, &mh, MSG_CMSG_CLOEXEC | MSG_WAITALL);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof req || (mh.msg_flags & MSG_CTRUNC))
		goto out;
	for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS && cm->cmsg_len == CMSG_LEN(3 * sizeof(int))) {
			memcpy(fds, CMSG_DATA(cm), sizeof fds);
			got = 1;
		}
	if (!got || req.magic != MAGIC || req.version != VERSION || req.argc == 0 || req.argc > MAX_STRINGS || req.envc > MAX_STRINGS ||
	    req.payload > MAX_PAYLOAD)
		goto out;
	payload = malloc((size_t)req.payload + 1);
	argv = calloc((size_t)req.argc + 1, sizeof *argv);
	env = calloc((size_t)req.envc + 1, sizeof *env);
	if (payload == NULL || argv == NULL || env == NULL || read_all(conn, payload, req.payload) < 0)
		goto out;
	payload[req.payload] = '\0';
	/* NUL-terminated strings: argc argv entries, envc env entries, then the cwd when has_cwd. */
	p = payload;
	end = payload + req.payload;
	count = req.argc + req.envc + (req.has_cwd ? 1u : 0u);
	for (i = 0; i < count; i++) {
		char *nul = p < end ? memchr(p, '\0', (size_t)(end - p)) : NULL;
		if (nul == NULL)
			goto out;
		if (i < req.argc)
			argv[i] = p;
		else if (i < req.argc + req.envc)
			env[i - req.argc] = p;
		else
			cwd = p;
		p = nul + 1;
	}
	if (argv[0][0] == '\0' || pipe2(errpipe, O_CLOEXEC) < 0)
		goto out;
	pid = fork();
	if (pid == 0) {
		close(conn);
		close(errpipe[0]);
		run_child(fds, errpipe[1], argv, env, &req, cwd);
	}
	close(errpipe[1]);
	if (pid < 0) {
		send_msg(conn, MSG_EXEC_FAILED, errno, STAGE_SETUP);
		close(errpipe[0]);
		goto out;
	}
	/* The pipe closes at the exec (O_CLOEXEC): no bytes mean the command runs. */
	if (read_all(errpipe[0], &fail, sizeof fail) == 0 && fail.magic == MAGIC) {
		close(errpipe[0]);
		waitpid(pid, &status, 0);
		send_msg(conn, MSG_EXEC_FAILED, fail.value, fail.extra);
		goto out;
	}
	close(errpipe[0]);
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0 || send_msg(conn, MSG_STARTED, pid, 0) < 0) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		if (pidfd >= 0)
			close(pidfd);
		goto out;
	}
	fcntl(pidfd, F_SETFD, FD_CLOEXEC);
	job->conn = conn;
	job->pidfd = pidfd;
	job->pid = pid;
	job->gone = 0;
	rc = 0;
out:
	for (i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(payload);
	free(argv);
	free(env);
	return rc;
}

/* The server: one process, no fork but the command's. Polls the listening socket, each client's
 * connection (any event: the client is gone, so its command is killed) and each command's pidfd. */
static int cmd_serve(void)
{
	struct pollfd fds[1 + 2 * MAX_JOBS];
	int accepting = 0, i, status;
	socklen_t len = sizeof accepting;
	program = "hyper-exec serve";
	close(IMAGE_FD);
	if (getsockopt(LISTEN_FD, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) < 0 || !accepting) {
		say("fd %d is not a listening socket (started by hyper-exec launch only)", LISTEN_FD);
		return 2;
	}
	if (fcntl(LISTEN_FD, F_SETFD, FD_CLOEXEC) < 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	for (;;) {
		fds[0].fd = njobs < MAX_JOBS ? LISTEN_FD : -1;
		fds[0].events = POLLIN;
		for (i = 0; i < njobs; i++) {
			fds[1 + 2 * i].fd = jobs[i].gone ? -1 : jobs[i].conn;
			fds[1 + 2 * i].events = POLLIN;
			fds[2 + 2 * i].fd = jobs[i].pidfd;
			fds[2 + 2 * i].events = POLLIN;
		}
		if (poll(fds, (nfds_t)(1 + 2 * njobs), -1) < 0) {
			if (errno == EINTR)
				continue;
			say("poll: %s", strerror(errno));
			return 1;
		}
		for (i = njobs - 1; i >= 0; i--) {
			struct job *job = &jobs[i];
			if (fds[2 + 2 * i].revents) {
				if (waitpid(job->pid, &status, WNOHANG) != job->pid)
					continue;
				if (!job->gone)
					send_msg(job->conn, MSG_EXIT, status, 0);
				close(job->conn);
				close(job->pidfd);
				jobs[i] = jobs[--njobs];
			} else if (fds[1 + 2 * i].revents) {
				/* The client sends nothing after its request: an event means it is gone (the host's timeout). */
				kill(-job->pid, SIGKILL);
				kill(job->pid, SIGKILL);
				job->gone = 1;
			}
		}
		if (fds[0].revents & POLLIN) {
			int conn = accept4(LISTEN_FD, NULL, NULL, SOCK_CLOEXEC);
			if (conn < 0) {
				if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
					continue;
				say("accept: %s", strerror(errno));
				return 1;
			}
			if (start_job(conn, &jobs[njobs]) == 0)
				njobs++;
			else
				close(conn);
		}
	}
}

/* -- launch: guest root --------------------------------------------------------------------- */

/* A private copy of this binary for one container, in the guest root: what the server executes. A
 * container that writes to it through /proc/PID/exe changes only its own copy, which no process of the
 * guest root ever runs. (crun 1.8 refuses to exec a memfd: "open executable: Permission denied".) */
static int private_copy_of_self(const char *name)
{
	char path[PATH_MAX], buf[65536];
	int fd, self;
	ssize_t n;
	if (snprintf(path, sizeof path, "%s/%s/%s", CONTAINERS_DIR, name, HELPER_NAME) >= (int)sizeof path)
		return -1;
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0555);
	self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || self < 0 || fchmod(fd, 0555) < 0)
		return -1;
	while ((n = read(self, buf, sizeof buf)) > 0)
		if (write_all(fd, buf, (size_t)n) < 0)
			return -1;
	close(self);
	if (n < 0 || close(fd) < 0)
		return -1;
	return open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
}

/* The server's pid, from crun's --pid-file; 0 when unreadable. */
static pid_t read_pid(const char *path)
{
	char buf[32];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	long value;
	char *end;
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	value = strtol(buf, &end, 10);
	return value > 1 && value < INT_MAX && (*end == '\0' || *end == '\n') ? (pid_t)value : 0;
}

/* A server answers on the socket already. */
static int already_served(const struct sockaddr_un *addr)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int ok = fd >= 0 && connect(fd, (const struct sockaddr *)addr, sizeof *addr) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* crun exec of the server runs at the lowest priority, so that starting helpers never slows the start of
 * the pod's other containers; the server then gets the launcher's own priority back (what crun exec
 * would have given it) before its socket gets its name: no command ever runs niced. */
static int cmd_launch(int argc, char **argv)
{
	struct sockaddr_un addr, bound;
	char pid_path[PATH_MAX];
	int lfd, image, devnull, status, priority, lock;
	mode_t mask;
	pid_t pid, server;
	program = "hyper-exec launch";
	if (argc != 3 || !valid_name(argv[2]) || !socket_path(argv[2], &addr) ||
	    snprintf(pid_path, sizeof pid_path, "%s/%s/exec.pid", CONTAINERS_DIR, argv[2]) >= (int)sizeof pid_path) {
		say("usage: hyper-exec launch NAME (a container name)");
		return 2;
	}
	bound = addr;
	if (strlen(bound.sun_path) + 4 >= sizeof bound.sun_path)
		return 2;
	strcat(bound.sun_path, ".new");
	if (already_served(&addr))
		return 0;
	/* Detached: the host's guest-exec returns at once, qemu-ga's pipes are not held. Messages go to the
	 * container's log. One launch at a time per container (the lock); one that finds a server is done. */
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid > 0)
		return 0;
	setsid();
	if (snprintf(pid_path, sizeof pid_path, "%s/%s/log", CONTAINERS_DIR, argv[2]) < (int)sizeof pid_path) {
		int log = open(pid_path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
		devnull = open("/dev/null", O_RDWR);
		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(log >= 0 ? log : devnull, 1);
			dup2(log >= 0 ? log : devnull, 2);
		}
	}
	snprintf(pid_path, sizeof pid_path, "%s/%s/exec.lock", CONTAINERS_DIR, argv[2]);
	lock = open(pid_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) < 0 || already_served(&addr))
		return 0;
	snprintf(pid_path, sizeof pid_path, "%s/%s/exec.pid", CONTAINERS_DIR, argv[2]);
	unlink(addr.sun_path);
	unlink(bound.sun_path);
	unlink(pid_path);
	errno = 0;
	priority = getpriority(PRIO_PROCESS, 0);
	if (errno)
		priority = 0;
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return 1;
	mask = umask(077); /* the socket 0600; crun and the server get the caller's umask back */
	if (bind(lfd, (struct sockaddr *)&bound, sizeof bound) < 0 || listen(lfd, 64) < 0) {
		say("%s: %s", bound.sun_path, strerror(errno));
		return 1;
	}
	image = private_copy_of_self(argv[2]);
	if (image < 0) {
		say("cannot copy itself for the container: %s", strerror(errno));
		unlink(bound.sun_path);
		return 1;
	}
	pid = fork();
	if (pid == 0) {
		char *crun[] = {"crun", "exec", "-d", "--pid-file", pid_path, "--preserve-fds", "2", argv[2], "/proc/self/fd/4", "serve", NULL};
		devnull = open("/dev/null", O_RDONLY);
		/* dup2 onto the same number keeps O_CLOEXEC: clear it explicitly. */
		if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(lfd, LISTEN_FD) < 0 || dup2(image, IMAGE_FD) < 0 ||
		    fcntl(LISTEN_FD, F_SETFD, 0) < 0 || fcntl(IMAGE_FD, F_SETFD, 0) < 0)
			_exit(127);
		umask(mask);
		setpriority(PRIO_PROCESS, 0, 19);
		execvp(crun[0], crun);
		say("crun: %s", strerror(errno));
		_exit(127);
	}
	close(lfd);
	close(image);
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		unlink(bound.sun_path);
		say("crun exec of the server in container %s failed; commands use crun exec", argv[2]);
		return 1;
	}
	server = read_pid(pid_path);
	unlink(pid_path);
	if (server == 0 || setpriority(PRIO_PROCESS, (id_t)server, priority) < 0 || rename(bound.sun_path, addr.sun_path) < 0) {
		if (server > 0)
			kill(server, SIGKILL);
		unlink(bound.sun_path);
		say("the server of container %s could not be given its priority back; commands use crun exec", argv[2]);
		return 1;
	}
	return 0;
}

/* -- run: guest root, started by the host ------------------------------------------------------ */

static const char *token = "-";

static int unavailable(const char *what, int err)
{
	say("%s unavailable: %s%s%s", token, what, err ? ": " : "", err ? strerror(err) : "");
	return UNAVAILABLE_RC;
}

static int lost(const char *what, int err)
{
	say("%s lost: %s%s%s", token, what, err ? ": " : "", err ? strerror(err) : "");
	return UNAVAILABLE_RC;
}

static int open_output(const char *path)
{
	return open(path, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
}

/* The wrapper's inline rule: both files small enough → copy them to our own stdout/stderr and remove them. */
static void inline_output(int out, int err, const char *out_path, const char *err_path)
{
	struct stat so, se;
	char buf[65536];
	int fd, dst;
	ssize_t n;
	if (fstat(out, &so) < 0 || fstat(err, &se) < 0 || so.st_size > INLINE_LIMIT || se.st_size > INLINE_LIMIT)
		return;
	for (fd = out, dst = 1; fd >= 0; fd = (fd == out ? err : -1), dst = 2) {
		off_t off = 0;
		while ((n = pread(fd, buf, sizeof buf, off)) > 0) {
			if (write_all(dst, buf, (size_t)n) < 0)
				return;
			off += n;
		}
		if (n < 0)
			return;
	}
	if (write_all(2, INLINE_MARKER, strlen(INLINE_MARKER)) < 0)
		return;
	unlink(out_path);
	unlink(err_path);
}

/* End like the command did: its exit code, or death by its signal (a core never lands in the guest root). */
static int end_like(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		switch (sig) {
		case SIGCHLD:
		case SIGCONT:
		case SIGSTOP:
		case SIGTSTP:
		case SIGTTIN:
		case SIGTTOU:
		case SIGURG:
		case SIGWINCH:
			break;
		default:
			if (sig > 0 && sig < NSIG) {
				struct rlimit none = {0, 0};
				sigset_t set;
				setrlimit(RLIMIT_CORE, &none);
				signal(sig, SIG_DFL);
				sigemptyset(&set);
				sigaddset(&set, sig);
				sigprocmask(SIG_UNBLOCK, &set, NULL);
				raise(sig);
			}
		}
		return 128 + (sig & 0x7f);
	}
	return lost("the server reported an impossible wait status", 0);
}

/* crun's words for an exec that failed, so both paths fail alike. */
static int report_exec_failure(int fd, const char *arg0, const char *cwd, int err, int stage)
{
	if (stage == STAGE_CHDIR) {
		dprintf(fd, "chdir `%s`: %s\n", cwd, strerror(err));
		return 255;
	}
	if (stage == STAGE_EXEC && err == ENOENT) {
		dprintf(fd, "executable file `%s` not found in $PATH: %s\n", arg0, strerror(ENOENT));
		return 255;
	}
	dprintf(fd, "exec `%s`: %s\n", arg0, strerror(err));
	return 255;
}

/* UID or UID:GID, decimal (crun exec --user; a missing GID is 0). */
static int parse_user(const char *text, struct request *req)
{
	char *end;
	unsigned long uid, gid = 0;
	errno = 0;
	uid = strtoul(text, &end, 10);
	if (end == text || errno || uid > 0xfffffffeul || (*end != '\0' && *end != ':'))
		return 0;
	if (*end == ':') {
		const char *g = end + 1;
		gid = strtoul(g, &end, 10);
		if (end == g || errno || gid > 0xfffffffeul || *end != '\0')
			return 0;
	}
	req->has_user = 1;
	req->uid = (uint32_t)uid;
	req->gid = (uint32_t)gid;
	return 1;
}

static int cmd_run(int argc, char **argv)
{
	struct sockaddr_un addr;
	struct request req;
	struct msg m;
	struct msghdr mh;
	struct iovec iov = {.iov_base = &req, .iov_len = sizeof req};
	union {
		char buf[CMSG_SPACE(3 * sizeof(int))];
		struct cmsghdr align;
	} control;
	struct cmsghdr *cm;
	const char *name, *in_path, *out_path, *err_path, *cwd = NULL;
	int i, sock, fds[3] = {0, 1, 2}, first_env, envc = 0, first_arg = -1;
	size_t payload = 0;
	char *buf, *p;
	ssize_t n;

	program = "hyper-exec";
	memset(&req, 0, sizeof req);
	if (argc < 8) {
		say("usage: hyper-exec run TOKEN NAME STDIN OUT ERR [-e K=V]... [-C DIR] [-u UID[:GID]] -- ARGV...");
		return 2;
	}
	token = argv[2];
	name = argv[3];
	in_path = argv[4];
	out_path = argv[5];
	err_path = argv[6];
	first_env = 7;
	for (i = 7; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			first_arg = i + 1;
			break;
		}
		if (strcmp(argv[i], "-e") == 0 && i + 1 < argc && strchr(argv[i + 1], '=') != NULL && argv[i + 1][0] != '=') {
			envc++;
			i++;
		} else if (strcmp(argv[i], "-C") == 0 && i + 1 < argc && argv[i + 1][0] == '/') {
			cwd = argv[++i];
		} else if (strcmp(argv[i], "-u") == 0 && i + 1 < argc && parse_user(argv[i + 1], &req)) {
			i++;
		} else {
			say("invalid argument '%s'", argv[i]);
			return 2;
		}
	}
	if (first_arg < 0 || first_arg >= argc || argv[first_arg][0] == '\0' || !valid_name(name) || !socket_path(name, &addr)) {
		say("usage: hyper-exec run TOKEN NAME STDIN OUT ERR [-e K=V]... [-C DIR] [-u UID[:GID]] -- ARGV...");
		return 2;
	}
	/* A request the server may never have seen is "unavailable": the host can fall back safely. */
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return unavailable("socket", errno);
	if (connect(sock, (struct sockaddr *)&addr, sizeof addr) < 0)
		return unavailable(addr.sun_path, errno);
	if (wait_readable(sock, HELLO_TIMEOUT_MS) <= 0)
		return unavailable("no greeting from the server", 0);
	if (read_all(sock, &m, sizeof m) < 0)
		return unavailable("the server closed the connection", errno);
	if (m.magic != MAGIC || m.type != MSG_HELLO || m.value != (int32_t)VERSION)
		return unavailable("the server speaks another protocol", 0);

	if (*in_path && (fds[0] = open(in_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		say("cannot open %s: %s", in_path, strerror(errno));
		return UNAVAILABLE_RC;
	}
	if (*out_path && (fds[1] = open_output(out_path)) < 0) {
		say("cannot create %s: %s", out_path, strerror(errno));
		return UNAVAILABLE_RC;
	}
	if (*err_path && (fds[2] = open_output(err_path)) < 0) {
		say("cannot create %s: %s", err_path, strerror(errno));
		return UNAVAILABLE_RC;
	}
	for (i = first_arg; i < argc; i++)
		payload += strlen(argv[i]) + 1;
	for (i = first_env; i < first_arg - 1; i++)
		if (strcmp(argv[i], "-e") == 0)
			payload += strlen(argv[++i]) + 1;
		else
			i++;
	if (cwd)
		payload += strlen(cwd) + 1;
	if (payload > MAX_PAYLOAD || argc - first_arg > (int)MAX_STRINGS || envc > (int)MAX_STRINGS) {
		say("the command line is too long (at most %u bytes)", MAX_PAYLOAD);
		return 2;
	}
	buf = malloc(payload ? payload : 1);
	if (buf == NULL)
		return unavailable("out of memory", ENOMEM);
	p = buf;
	for (i = first_arg; i < argc; i++)
		p = stpcpy(p, argv[i]) + 1;
	for (i = first_env; i < first_arg - 1; i++)
		if (strcmp(argv[i], "-e") == 0)
			p = stpcpy(p, argv[++i]) + 1;
		else
			i++;
	if (cwd)
		p = stpcpy(p, cwd) + 1;

	req.magic = MAGIC;
	req.version = VERSION;
	req.argc = (uint32_t)(argc - first_arg);
	req.envc = (uint32_t)envc;
	req.has_cwd = cwd != NULL;
	req.payload = (uint32_t)payload;
	memset(&mh, 0, sizeof mh);
	memset(&control, 0, sizeof control);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = control.buf;
	mh.msg_controllen = sizeof control.buf;
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(3 * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, sizeof fds);
	signal(SIGPIPE, SIG_IGN);
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof req)
		return unavailable("sending the request", errno);
	if (write_all(sock, buf, payload) < 0)
		return lost("sending the command line", errno);
	if (fds[0] != 0)
		close(fds[0]);
	free(buf);

	/* Fixed-size messages only; recv without a control buffer drops any descriptor a server sends. */
	for (;;) {
		if (read_all(sock, &m, sizeof m) < 0)
			return lost("the server went away before the command ended (was the container stopped?)", errno);
		if (m.magic != MAGIC)
			return lost("garbled reply from the server", 0);
		if (m.type == MSG_STARTED)
			continue;
		if (m.type == MSG_EXEC_FAILED) {
			/* crun's message goes where the command's stderr went. */
			int rc = report_exec_failure(fds[2], argv[first_arg], cwd, m.value, m.extra);
			if (fds[1] != 1)
				inline_output(fds[1], fds[2], out_path, err_path);
			return rc;
		}
		if (m.type == MSG_EXIT) {
			if (fds[1] != 1)
				inline_output(fds[1], fds[2], out_path, err_path);
			return end_like(m.value);
		}
		return lost("unknown reply from the server", 0);
	}
}

/* -- mcli: guest root, a line to a unix socket of the container's own process ------------------ */

/* hyper-exec mcli NAME SOCKET LINE: connect to SOCKET, a path inside container NAME (haproxy's master
 * CLI, docs/services.md), send LINE and a newline, copy the answer to stdout until the peer closes.
 * The peer must be the container's process itself (SO_PEERCRED against the supervisor's pid file, which
 * the container cannot write): a socket or link the container planted elsewhere is never written to.
 * Exit codes: 0 answered; MCLI_NO_SOCKET (nothing sent: no such socket, or the container has no
 * process); MCLI_NOT_SENT (nothing sent: refused, as while haproxy's master re-executes itself);
 * MCLI_OTHER_PEER (nothing sent: the peer is not the container's process); MCLI_CUT (sent, but the
 * answer was too long or too slow, or the connection failed). */
#define MCLI_NOT_SENT 3
#define MCLI_CUT 4
#define MCLI_NO_SOCKET 6
#define MCLI_OTHER_PEER 7
#define MCLI_ANSWER_LIMIT (1024 * 1024)
#define MCLI_TIMEOUT_MS 10000
#define MCLI_LINE_LIMIT 4096

static int cmd_mcli(int argc, char **argv)
{
	struct sockaddr_un addr;
	struct ucred peer;
	socklen_t len = sizeof peer;
	char path[PATH_MAX], buf[65536];
	size_t total = 0, line;
	pid_t pid;
	int root, sock;
	ssize_t n;
	program = "hyper-exec mcli";
	if (argc != 5 || !valid_name(argv[2]) || argv[3][0] != '/' || strlen(argv[3]) > 200 || (line = strlen(argv[4])) == 0 ||
	    line > MCLI_LINE_LIMIT || strchr(argv[4], '\n') != NULL) {
		say("usage: hyper-exec mcli NAME /SOCKET/IN/THE/CONTAINER LINE");
		return 2;
	}
	if (snprintf(path, sizeof path, "%s/%s/pid", CONTAINERS_DIR, argv[2]) >= (int)sizeof path || (pid = read_pid(path)) == 0) {
		say("container %s has no process", argv[2]);
		return MCLI_NO_SOCKET;
	}
	if (snprintf(path, sizeof path, "%s/%s/rootfs", CONTAINERS_DIR, argv[2]) >= (int)sizeof path ||
	    (root = open(path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		say("%s: %s", path, strerror(errno));
		return MCLI_NO_SOCKET;
	}
	memset(&addr, 0, sizeof addr);
	addr.sun_family = AF_UNIX;
	if (snprintf(addr.sun_path, sizeof addr.sun_path, "/proc/self/fd/%d%s", root, argv[3]) >= (int)sizeof addr.sun_path) {
		say("socket path too long");
		return 2;
	}
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || connect(sock, (struct sockaddr *)&addr, sizeof addr) < 0) {
		int err = errno;
		say("%s in container %s: %s", argv[3], argv[2], strerror(err));
		return err == ENOENT || err == ENOTDIR ? MCLI_NO_SOCKET : MCLI_NOT_SENT;
	}
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0 || peer.pid != pid) {
		say("%s in container %s: the peer is pid %d, not the container's process %d; nothing sent", argv[3], argv[2], (int)peer.pid, (int)pid);
		return MCLI_OTHER_PEER;
	}
	signal(SIGPIPE, SIG_IGN);
	if (write_all(sock, argv[4], line) < 0 || write_all(sock, "\n", 1) < 0 || shutdown(sock, SHUT_WR) < 0) {
		say("sending to %s: %s", argv[3], strerror(errno));
		return MCLI_CUT;
	}
	for (;;) {
		if (wait_readable(sock, MCLI_TIMEOUT_MS) <= 0) {
			say("no end of the answer within %d ms", MCLI_TIMEOUT_MS);
			return MCLI_CUT;
		}
		n = read(sock, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			say("reading the answer: %s", strerror(errno));
			return MCLI_CUT;
		}
		if (n == 0)
			return 0;
		total += (size_t)n;
		if (total > MCLI_ANSWER_LIMIT) {
			say("the answer is longer than %d bytes", MCLI_ANSWER_LIMIT);
			return MCLI_CUT;
		}
		if (write_all(1, buf, (size_t)n) < 0)
			return MCLI_CUT;
	}
}

/*
 * hyper-exec log FILE MAX_BYTES
 *     guest root, the end of a container supervisor's pipe (hyper-container start): every line read on
 *     stdin goes to FILE with the guest's clock before it ("SECONDS.MICROSECONDS "); a line longer than
 *     LOG_LINE_LIMIT is cut into several. Once FILE holds MAX_BYTES or more, it becomes FILE.1 (the one
 *     before is dropped) and a new FILE starts: a container's log never takes more than about twice
 *     MAX_BYTES, whatever it prints. Ends at the end of its input.
 */
#define LOG_LINE_LIMIT 16384
#define LOG_READ_SIZE 65536

static int log_open(const char *path, off_t *size)
{
	struct stat st;
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	*size = fstat(fd, &st) == 0 ? st.st_size : 0;
	return fd;
}

/* A full disk loses lines, never the container: its writes must not block on a log. */
static void log_flush(int fd, const char *out, size_t *used, off_t *size)
{
	if (*used && write_all(fd, out, *used) == 0)
		*size += (off_t)*used;
	*used = 0;
}

static int cmd_log(int argc, char **argv)
{
	static char in[LOG_READ_SIZE];
	/* Worst case: every input byte a newline, each with a stamp before it. */
	static char out[LOG_READ_SIZE * 24 + 64];
	char rotated[PATH_MAX];
	char *end;
	unsigned long long max;
	size_t column = 0, used = 0;
	off_t size = 0;
	int fd, at_start = 1;

	if (argc != 4 || argv[2][0] == '\0' || argv[3][0] == '\0')
		goto usage;
	errno = 0;
	max = strtoull(argv[3], &end, 10);
	if (errno || *end || max == 0)
		goto usage;
	if (snprintf(rotated, sizeof rotated, "%s.1", argv[2]) >= (int)sizeof rotated) {
		say("log: %s: the name is too long", argv[2]);
		return 2;
	}
	fd = log_open(argv[2], &size);
	if (fd < 0) {
		say("log: %s: %s", argv[2], strerror(errno));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		ssize_t n = read(0, in, sizeof in);
		struct timespec now;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		clock_gettime(CLOCK_REALTIME, &now);
		for (ssize_t i = 0; i < n; i++) {
			if (at_start) {
				/* Rotation between two lines only: no line is split over two files. */
				if ((unsigned long long)(size + (off_t)used) >= max) {
					log_flush(fd, out, &used, &size);
					close(fd);
					if (rename(argv[2], rotated) < 0)
						say("log: rotating %s: %s", argv[2], strerror(errno));
					fd = log_open(argv[2], &size);
					if (fd < 0) {
						say("log: %s: %s", argv[2], strerror(errno));
						return 1;
					}
				}
				used += (size_t)snprintf(out + used, 32, "%lld.%06ld ", (long long)now.tv_sec, now.tv_nsec / 1000);
				at_start = 0;
				column = 0;
			}
			out[used++] = in[i];
			column++;
			if (in[i] == '\n') {
				at_start = 1;
			} else if (column >= LOG_LINE_LIMIT) {
				out[used++] = '\n';
				at_start = 1;
			}
		}
		log_flush(fd, out, &used, &size);
	}
	if (!at_start)
		out[used++] = '\n';
	log_flush(fd, out, &used, &size);
	close(fd);
	return 0;
usage:
	say("usage: hyper-exec log FILE MAX_BYTES");
	return 2;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "run") == 0)
		return cmd_run(argc, argv);
	if (argc == 2 && strcmp(argv[1], "serve") == 0)
		return cmd_serve();
	if (argc >= 2 && strcmp(argv[1], "launch") == 0)
		return cmd_launch(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "mcli") == 0)
		return cmd_mcli(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "log") == 0)
		return cmd_log(argc, argv);
	say("usage: hyper-exec run TOKEN NAME STDIN OUT ERR [-e K=V]... [-C DIR] -- ARGV... | launch NAME | serve | mcli NAME SOCKET LINE | log FILE MAX_BYTES");
	return 2;
}
