/*
 * shellctr-exec: the last step of a container's process, between shellctr and the
 * user's command. Two modes:
 *
 *   shellctr-exec STATUS_FD PROGRAM ARGV0 [ARG...]
 *   shellctr-exec --join PID [OPTION...] -- COMMAND [ARG...]
 *
 * The first: init.py (the host's Python, run inside the container's namespaces) confines
 * PID 1, then execs this program from a sealed memfd copy of it; this program execs
 * PROGRAM with ARGV0 ARG... and the environment it was given. So when image code first
 * runs, /proc/self/exe (and /proc/1/exe, /proc/N/exe) is the sealed memfd, which
 * nobody can write, and not the host's interpreter (the CVE-2019-5736 class, issue 13
 * defect 1). It is static: no ELF interpreter, so an image's /lib64/ld-linux*.so never
 * loads a host executable, even when the command is /proc/self/exe.
 *
 * STATUS_FD (-1: none) is shellctr's status socket: closed by a successful exec, and
 * given the error, as init.py's JSON message, when the exec fails (126, or 127 for a
 * program that is not there).
 *
 * The second (`--join`) is `shellctr exec`: no second interpreter. Made undumpable and
 * holding a sealed memfd copy of itself before it touches the container, it joins the
 * cgroups (--cgroup DIR...) and the ipc, uts, net, pid and mnt namespaces of PID, forks
 * (the pid namespace holds for children only) and waits, forwarding INT TERM HUP QUIT
 * USR1 USR2, to hand on the exit code. The child takes init.py's final step, reading the
 * container's own /etc/passwd and /etc/group: a pseudo-terminal of the container's
 * devpts (--tty, --winsize R,C), --user USER[:GROUP], HOME, --cwd (made when missing),
 * the command found on PATH;
 * then the bounding set bound to --caps NAME,... (numbers 0..--last-cap, read on the
 * host), ambient caps cleared, groups, gid, uid, capset, --no-new-privs, the stdio on the
 * pty, every other fd closed, `ready` (with the pty master) on --status-fd, the seccomp
 * filter (--seccomp-filter FILE: the program shellctr compiled, struct sock_filter[]),
 * and the exec through the sealed copy (the first mode). The command's environment is
 * this program's own. Errors are init.py's, as JSON on the status socket (else stderr).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

extern char **environ;

/* `text` as the inside of a JSON string, into `out` (truncated, always terminated) */
static void json_escape(const char *text, char *out, size_t size) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p && n + 7 < size; p++) {
        if (*p == '"' || *p == '\\') {
            out[n++] = '\\';
            out[n++] = (char)*p;
        } else if (*p < 0x20) {
            n += (size_t)snprintf(out + n, size - n, "\\u%04x", *p);
        } else {
            out[n++] = (char)*p;
        }
    }
    out[n] = '\0';
}

/* ---- join mode: `exec`, a process in a running container ------------------------------ */

#define MAX_LIST 64

struct join {
    pid_t pid;                        /* the container's PID 1, as the host sees it */
    int status_fd;                    /* shellctr's status socket, -1: none */
    const char *cgroups[MAX_LIST];    /* cgroup dirs to join (their cgroup.procs) */
    int ncgroups;
    const char *user;                 /* USER[:GROUP], "" for the image's default */
    const char *cwd;
    unsigned long long keep;          /* capability numbers kept, as a mask */
    int last_cap;
    int no_new_privs;
    const char *seccomp;              /* the compiled filter (struct sock_filter[]) */
    int tty;
    unsigned short rows, cols;
    char **argv;                      /* the command */
};

static int status_fd = -1;

/* A JSON message to shellctr on the status socket (and fds with it), as init.py sends. */
static void send_status(const char *json, const int *fds, int nfds) {
    if (status_fd < 0)
        return;
    struct iovec iov = {(void *)json, strlen(json)};
    struct msghdr msg = {0};
    char control[CMSG_SPACE(sizeof(int) * 4)];
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (nfds > 0) {
        memset(control, 0, sizeof control);
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * (size_t)nfds);
    }
    sendmsg(status_fd, &msg, MSG_NOSIGNAL);
}

/* The setup failed: say why (on the status socket, else stderr) and end with `code`. */
__attribute__((format(printf, 2, 3), noreturn))
static void fail(int code, const char *format, ...) {
    char text[2048], escaped[4096], message[4200];
    va_list args;
    va_start(args, format);
    vsnprintf(text, sizeof text, format, args);
    va_end(args);
    if (status_fd >= 0) {
        json_escape(text, escaped, sizeof escaped);
        snprintf(message, sizeof message, "{\"message\": \"%s\", \"code\": %d}", escaped, code);
        send_status(message, NULL, 0);
    } else {
        fprintf(stderr, "shellctr-exec: %s\n", text);
    }
    _exit(code);
}

/* A system call that failed, as init.py words it: "WHAT: strerror". */
#define CHECK(call, ...) do { if ((call) != 0) { int e_ = errno; \
    char what_[512]; snprintf(what_, sizeof what_, __VA_ARGS__); \
    fail(125, "%s: %s", what_, strerror(e_)); } } while (0)

static const char *const CAPABILITIES[] = {
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid",
    "setuid", "setpcap", "linux_immutable", "net_bind_service", "net_broadcast",
    "net_admin", "net_raw", "ipc_lock", "ipc_owner", "sys_module", "sys_rawio",
    "sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice",
    "sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write",
    "audit_control", "setfcap", "mac_override", "mac_admin", "syslog", "wake_alarm",
    "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
};
#define NCAPS (int)(sizeof CAPABILITIES / sizeof CAPABILITIES[0])

static unsigned long long parse_number(const char *text, const char *option) {
    char *end;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno || end == text || *end)
        fail(125, "shellctr-exec: %s: not a number: %s", option, text);
    return value;
}

/* --caps NAME,NAME,...: the names (without CAP_, lower case) as a mask */
static unsigned long long parse_caps(char *list) {
    unsigned long long mask = 0;
    for (char *name = strtok(list, ","); name; name = strtok(NULL, ",")) {
        int found = -1;
        for (int n = 0; n < NCAPS; n++)
            if (strcmp(CAPABILITIES[n], name) == 0)
                found = n;
        if (found < 0)
            fail(125, "shellctr-exec: --caps: unknown capability %s", name);
        mask |= 1ULL << found;
    }
    return mask;
}

static void parse_join(int argc, char **argv, struct join *job) {
    memset(job, 0, sizeof *job);
    job->status_fd = -1;
    job->user = "";
    job->cwd = "/";
    job->last_cap = NCAPS - 1;
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        const char *option = argv[i];
        if (strcmp(option, "--no-new-privs") == 0) { job->no_new_privs = 1; continue; }
        if (strcmp(option, "--tty") == 0) { job->tty = 1; continue; }
        if (i + 1 >= argc)
            fail(125, "shellctr-exec: %s needs a value", option);
        char *value = argv[++i];
        if (strcmp(option, "--join") == 0) {
            job->pid = (pid_t)parse_number(value, option);
        } else if (strcmp(option, "--status-fd") == 0) {
            job->status_fd = (int)parse_number(value, option);
            status_fd = job->status_fd;
        } else if (strcmp(option, "--cgroup") == 0 && job->ncgroups < MAX_LIST) {
            job->cgroups[job->ncgroups++] = value;
        } else if (strcmp(option, "--user") == 0) {
            job->user = value;
        } else if (strcmp(option, "--cwd") == 0) {
            job->cwd = value;
        } else if (strcmp(option, "--caps") == 0) {
            job->keep = parse_caps(value);
        } else if (strcmp(option, "--last-cap") == 0) {
            job->last_cap = (int)parse_number(value, option);
        } else if (strcmp(option, "--seccomp-filter") == 0) {
            job->seccomp = value;
        } else if (strcmp(option, "--winsize") == 0) {
            if (sscanf(value, "%hu,%hu", &job->rows, &job->cols) != 2)
                fail(125, "shellctr-exec: --winsize wants ROWS,COLS: %s", value);
        } else {
            fail(125, "shellctr-exec: unknown option %s", option);
        }
    }
    if (job->pid <= 0 || i + 1 >= argc)
        fail(125, "usage: shellctr-exec --join PID [OPTION...] -- COMMAND [ARG...]");
    job->argv = argv + i + 1;
}

/* -- the container's own files (read after joining its mount namespace) ---------------- */

/* The next line of an /etc/passwd or /etc/group file split at ':' into `fields`;
 * the number of fields, 0 at the end. */
static int next_row(FILE *file, char *line, size_t size, char **fields, int most) {
    while (fgets(line, (int)size, file)) {
        line[strcspn(line, "\n")] = '\0';
        if (strspn(line, " \t\r") == strlen(line))
            continue;  /* init.py skips blank lines */
        int n = 0;
        char *p = line;
        fields[n++] = p;
        while (n < most && (p = strchr(p, ':'))) {
            *p++ = '\0';
            fields[n++] = p;
        }
        return n;
    }
    return 0;
}

static int is_digits(const char *text) {
    if (!*text)
        return 0;
    for (; *text; text++)
        if (!isdigit((unsigned char)*text))
            return 0;
    return 1;
}

/* The gid of group `name` (a name or a number found in /etc/group), -1: none */
static long find_group(const char *name) {
    FILE *file = fopen("/etc/group", "re");
    long gid = -1;
    if (file) {
        char line[4096], *f[4];
        int n;
        while ((n = next_row(file, line, sizeof line, f, 4)))
            if (n >= 3 && (strcmp(f[0], name) == 0 || strcmp(f[2], name) == 0)) {
                gid = atol(f[2]);
                break;
            }
        fclose(file);
    }
    return gid;
}

struct identity {
    uid_t uid;
    gid_t gid;
    gid_t groups[NGROUPS_MAX > 256 ? 256 : NGROUPS_MAX];
    int ngroups;
    char home[1024];
};

static void add_group(struct identity *who, gid_t gid) {
    for (int i = 0; i < who->ngroups; i++)
        if (who->groups[i] == gid)
            return;
    if (who->ngroups < (int)(sizeof who->groups / sizeof who->groups[0]))
        who->groups[who->ngroups++] = gid;
}

static int compare_ints(const void *a, const void *b) {
    return *(const int *)a - *(const int *)b;
}

static int compare_gids(const void *a, const void *b) {
    gid_t x = *(const gid_t *)a, y = *(const gid_t *)b;
    return x < y ? -1 : x > y;
}

/* USER[:GROUP] as uid, gid, groups and home: what init.py's resolve_user gives. */
static void resolve_user(const char *spec, struct identity *who) {
    char user[256], name[256] = "root";
    const char *colon = strchr(spec, ':');
    const char *group = colon ? colon + 1 : "";
    snprintf(user, sizeof user, "%.*s", (int)(colon ? (size_t)(colon - spec) : strlen(spec)), spec);
    who->uid = 0;
    who->gid = 0;
    who->ngroups = 0;
    snprintf(who->home, sizeof who->home, "/root");
    int found = 0, seen_root = 0;
    FILE *file = fopen("/etc/passwd", "re");
    if (file) {
        char line[4096], *f[7];
        int n;
        while ((n = next_row(file, line, sizeof line, f, 7))) {
            if (n < 7)
                continue;
            if (user[0] && !found && (strcmp(f[0], user) == 0 || strcmp(f[2], user) == 0)) {
                found = 1;
                snprintf(name, sizeof name, "%s", f[0]);
                who->uid = (uid_t)atol(f[2]);
                who->gid = (gid_t)atol(f[3]);
                snprintf(who->home, sizeof who->home, "%s", f[5][0] ? f[5] : "/");
            } else if (!user[0] && !seen_root && strcmp(f[2], "0") == 0) {
                seen_root = 1;
                if (f[5][0])
                    snprintf(who->home, sizeof who->home, "%s", f[5]);
            }
        }
        fclose(file);
    }
    if (user[0] && !found) {
        if (!is_digits(user))
            fail(125, "unable to find user %s: no matching entries in passwd file", user);
        name[0] = '\0';
        who->uid = (uid_t)atol(user);
        who->gid = 0;
        snprintf(who->home, sizeof who->home, "/");
    }
    if (group[0]) {
        long gid = find_group(group);
        if (gid < 0 && !is_digits(group))
            fail(125, "unable to find group %s: no matching entries in group file", group);
        who->gid = (gid_t)(gid >= 0 ? gid : atol(group));
    }
    /* like runc: the primary group plus every group that lists the user as a member;
     * with an explicit group, that group alone */
    add_group(who, who->gid);
    if (!group[0] && name[0] && (file = fopen("/etc/group", "re"))) {
        char line[4096], *f[4];
        int n;
        while ((n = next_row(file, line, sizeof line, f, 4))) {
            if (n < 4)
                continue;
            for (char *member = strtok(f[3], ","); member; member = strtok(NULL, ","))
                if (strcmp(member, name) == 0)
                    add_group(who, (gid_t)atol(f[2]));
        }
        fclose(file);
    }
}

/* The file execve should run: `name` on PATH, with Docker's errors (127, 126). */
static void find_program(const char *name, const char *path, char *out, size_t size) {
    struct stat st;
    if (strchr(name, '/')) {
        if (stat(name, &st) != 0)
            fail(127, "exec: \"%s\": stat %s: no such file or directory", name, name);
        if (S_ISREG(st.st_mode) && access(name, X_OK) == 0) {
            snprintf(out, size, "%s", name);
            return;
        }
        fail(126, "exec: \"%s\": %s", name, S_ISDIR(st.st_mode) ? "is a directory"
                                                                   : "permission denied");
    }
    const char *dir = path;
    for (;;) {
        const char *end = strchr(dir, ':');
        size_t length = end ? (size_t)(end - dir) : strlen(dir);
        snprintf(out, size, "%.*s/%s", (int)(length ? length : 1), length ? dir : ".", name);
        if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
            return;
        if (!end)
            break;
        dir = end + 1;
    }
    fail(127, "exec: \"%s\": executable file not found in $PATH", name);
}

/* mkdir -p, each new directory 0755 */
static int make_dirs(char *path) {
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int failed = mkdir(path, 0755) != 0 && errno != EEXIST;
        *p = '/';
        if (failed)
            return -1;
    }
    return mkdir(path, 0755);  /* there already: not a directory (the caller looked) */
}

/* Close every fd from 3 up but the `keep` ones (sorted, -1 for none). */
static void close_others(int *keep, int nkeep) {
    int low = 3;
    for (int i = 0; i <= nkeep; i++) {
        int high = i < nkeep ? keep[i] - 1 : INT_MAX;
        if (i < nkeep && keep[i] < low)
            continue;
        if (high >= low && syscall(SYS_close_range, low, high, 0) != 0) {
            long most = sysconf(_SC_OPEN_MAX);  /* a kernel before 5.9 */
            for (long fd = low; fd <= high && fd < most; fd++)
                close((int)fd);
        }
        if (i < nkeep)
            low = keep[i] + 1;
    }
}

static void install_seccomp(const char *program, size_t size) {
    struct sock_fprog fprog = {(unsigned short)(size / sizeof(struct sock_filter)),
                               (struct sock_filter *)program};
    CHECK(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0), "prctl(PR_SET_SECCOMP)");
}

/* A sealed memfd copy of this very binary: what the command is exec'd through, so that
 * the container never reaches a host file as /proc/N/exe (issue 13, defect 1). */
static int seal_self(void) {
    int memfd = (int)syscall(SYS_memfd_create, "shellctr-exec", MFD_ALLOW_SEALING | MFD_CLOEXEC);
    int source = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (memfd < 0 || source < 0 || fstat(source, &st) != 0)
        fail(125, "exec setup failed: cannot copy shellctr-exec: %s", strerror(errno));
    for (off_t copied = 0; copied < st.st_size;) {
        ssize_t sent = sendfile(memfd, source, &copied, (size_t)(st.st_size - copied));
        if (sent <= 0)
            fail(125, "exec setup failed: cannot copy shellctr-exec: %s", strerror(errno));
    }
    close(source);
    CHECK(fcntl(memfd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE),
          "seal shellctr-exec");
    return memfd;
}

static char *read_filter(const char *path, size_t *size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size <= 0 || st.st_size % 8 ||
        st.st_size > 4096 * 8)
        fail(125, "seccomp: cannot read the filter %s: %s", path,
             errno ? strerror(errno) : "not a filter");
    char *program = malloc((size_t)st.st_size);
    if (!program || read(fd, program, (size_t)st.st_size) != st.st_size)
        fail(125, "seccomp: cannot read the filter %s", path);
    close(fd);
    *size = (size_t)st.st_size;
    return program;
}

static pid_t child_pid;

static void forward(int signum) {
    kill(child_pid, signum);
}

/* In the joined namespaces, as the new process: init.py's final step, then the exec. */
__attribute__((noreturn))
static void final_step(struct join *job, int helper, const char *filter, size_t filter_size) {
    int master = -1;
    char slave[64] = "";
    if (job->tty) {  /* the container's own pseudo-terminal, from its devpts instance */
        master = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
        int unlock = 0;
        unsigned int number = 0;
        if (master < 0 || ioctl(master, TIOCSPTLCK, &unlock) != 0 ||
            ioctl(master, TIOCGPTN, &number) != 0)
            fail(125, "exec setup failed: /dev/pts/ptmx: %s", strerror(errno));
        snprintf(slave, sizeof slave, "/dev/pts/%u", number);
        if (job->rows || job->cols) {
            struct winsize size = {job->rows, job->cols, 0, 0};
            ioctl(master, TIOCSWINSZ, &size);
        }
    }
    struct identity who;
    resolve_user(job->user, &who);
    if (!getenv("HOME"))
        setenv("HOME", who.home, 1);
    qsort(who.groups, (size_t)who.ngroups, sizeof who.groups[0], compare_gids);
    struct stat st;
    if (stat(job->cwd, &st) != 0 || !S_ISDIR(st.st_mode)) {
        char path[4096];
        snprintf(path, sizeof path, "%s", job->cwd);
        if (make_dirs(path) != 0) {
            if (errno == EEXIST || errno == ENOTDIR)
                fail(125, "the working directory %s is not a directory in the image", job->cwd);
            fail(125, "exec setup failed: mkdir %s: %s", job->cwd, strerror(errno));
        }
    }
    CHECK(chdir(job->cwd), "chdir %s", job->cwd);
    const char *path = getenv("PATH");
    char program[4096];
    find_program(job->argv[0], path ? path : DEFAULT_PATH, program, sizeof program);
    if (filter && !job->no_new_privs)  /* without no_new_privs it needs CAP_SYS_ADMIN */
        install_seccomp(filter, filter_size);
    for (int cap = 0; cap <= job->last_cap; cap++)
        if (cap >= 64 || !(job->keep >> cap & 1))
            CHECK(prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "drop capability %d", cap);
    CHECK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient caps");
    /* still with every capability: CAP_SETUID/SETGID may be among the dropped ones */
    CHECK(setgroups((size_t)who.ngroups, who.groups), "setgroups");
    CHECK(setgid(who.gid), "setgid");
    CHECK(setuid(who.uid), "setuid");  /* to a user: the kernel clears the remaining caps */
    if (who.uid == 0) {
        struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
        unsigned int low = (unsigned int)job->keep, high = (unsigned int)(job->keep >> 32);
        struct __user_cap_data_struct data[2] = {{low, low, 0}, {high, high, 0}};
        CHECK((int)syscall(SYS_capset, &header, data), "capset");
    }
    if (job->no_new_privs)
        CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)");
    if (master >= 0) {
        setsid();
        int fd = open(slave, O_RDWR);
        if (fd < 0 || ioctl(fd, TIOCSCTTY, 0) != 0)
            fail(125, "exec setup failed: %s: %s", slave, strerror(errno));
        for (int target = 0; target < 3; target++)
            dup2(fd, target);
        close(fd);
    }
    /* nothing of shellctr's stays open but the helper and the status socket */
    int keep[3] = {helper, job->status_fd, master};
    qsort(keep, 3, sizeof keep[0], compare_ints);
    close_others(keep, 3);
    umask(022);
    send_status("{\"ready\": true}", &master, master >= 0 ? 1 : 0);
    if (master >= 0)
        close(master);
    if (filter && job->no_new_privs)
        install_seccomp(filter, filter_size);  /* last: from here on only the exec */
    char status[16];
    snprintf(status, sizeof status, "%d", job->status_fd);
    int argc = 0;
    while (job->argv[argc])
        argc++;
    char **args = calloc((size_t)argc + 4, sizeof *args);
    args[0] = "shellctr-exec";
    args[1] = status;
    args[2] = program;
    memcpy(args + 3, job->argv, sizeof *args * (size_t)argc);
    fexecve(helper, args, environ);  /* the sealed copy, which execs the command */
    fail(125, "exec %s: shellctr-exec: %s", program, strerror(errno));
}

static int join_main(int argc, char **argv) {
    struct join job;
    parse_join(argc, argv, &job);
    /* keep no directory of the caller's busy (joining the mount namespace moves us too) */
    CHECK(chdir("/"), "chdir /");
    /* before anything of the container is entered: undumpable, so its processes cannot
     * open our /proc/N/exe or fds; the sealed copy made while the host's file is in reach */
    CHECK(prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE)");
    int helper = seal_self();
    size_t filter_size = 0;
    char *filter = job.seccomp ? read_filter(job.seccomp, &filter_size) : NULL;
    /* every namespace opened first: once in the container's mount namespace, the host's
     * /proc/PID paths are out of reach; mnt last, as it moves our root */
    static const char *const kinds[] = {"ipc", "uts", "net", "pid", "mnt"};
    int handles[5];
    for (int i = 0; i < 5; i++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)job.pid, kinds[i]);
        handles[i] = open(path, O_RDONLY | O_CLOEXEC);
        if (handles[i] < 0)
            fail(125, "exec setup failed: %s: %s", path, strerror(errno));
    }
    for (int i = 0; i < job.ncgroups; i++) {  /* `0`: the writer */
        char path[4096];
        snprintf(path, sizeof path, "%s/cgroup.procs", job.cgroups[i]);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, "0", 1) != 1)
            fail(125, "exec setup failed: %s: %s", path, strerror(errno));
        close(fd);
    }
    for (int i = 0; i < 5; i++) {
        CHECK(setns(handles[i], 0), "setns %s", kinds[i]);
        close(handles[i]);
    }
    child_pid = fork();  /* joining a pid namespace takes effect for children only */
    if (child_pid < 0)
        fail(125, "exec setup failed: fork: %s", strerror(errno));
    if (child_pid == 0)
        final_step(&job, helper, filter, filter_size);
    /* This process stays outside the pid namespace: it only hands on the exit code. */
    if (job.status_fd >= 0)
        close(job.status_fd);
    struct sigaction action = {0};
    action.sa_handler = forward;
    static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        sigaction(forwarded[i], &action, NULL);
    int status;
    while (waitpid(child_pid, &status, 0) < 0)
        if (errno != EINTR)
            return 125;
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--join") == 0)
        return join_main(argc, argv);
    if (argc < 4) {
        fprintf(stderr, "usage: shellctr-exec STATUS_FD PROGRAM ARGV0 [ARG...]\n");
        return 127;
    }
    int status_fd = atoi(argv[1]);
    if (status_fd >= 0)
        fcntl(status_fd, F_SETFD, FD_CLOEXEC);
    execve(argv[2], argv + 3, environ);
    int err = errno;
    int code = err == ENOENT ? 127 : 126;
    char program[1024], reason[256], message[1536];
    json_escape(argv[2], program, sizeof program);
    json_escape(strerror(err), reason, sizeof reason);
    int len = snprintf(message, sizeof message,
                       "{\"message\": \"exec %s: %s\", \"code\": %d}", program, reason, code);
    if (status_fd >= 0 && len > 0)
        send(status_fd, message, (size_t)len, MSG_NOSIGNAL);
    else
        fprintf(stderr, "shellctr-exec: exec %s: %s\n", argv[2], strerror(err));
    return code;
}
