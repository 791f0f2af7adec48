/*
 * shellctr-monitor: the small process that stays with a container while it runs.
 *
 *   shellctr-monitor [--attach] [--keep-stdin] [--console-fd FD] [--attach-socket DIR]
 *                    [--log-rotate MAX_BYTES FILES] [--no-log] [--health MS N CHECK ARG...]
 *                    [--then N HOOK ARG...] EXIT_FILE LOG_FILE -- COMMAND [ARG...]
 *   shellctr-monitor --reap -- COMMAND [ARG...]
 *   shellctr-monitor --init PROGRAM -- ARGV0 [ARG...]
 *
 * It starts COMMAND (shellctr's `unshare ... init.py` line) with stdout and stderr on
 * pipes, and writes every line the container prints to LOG_FILE in Docker's json-file
 * format, stdout and stderr kept apart:
 *
 *   {"log":"hello\n","stream":"stdout","time":"2026-11-29T19:40:00.123456789Z"}
 *
 * With --attach it also copies the output to its own stdout and stderr (a foreground
 * `run`). --keep-stdin gives the container a stdin that stays open and silent (`run -di`).
 * --console-fd: a unix socket on which shellctr hands over the master side of the
 * container's pseudo-terminal (`run -dt`); the monitor then holds it open and logs what
 * the container writes to its terminal as stdout.
 *
 * --attach-socket: a unix socket DIR/attach.sock (mode 0700) for `shellctr attach`.
 * Each client gets what the container prints from then on, in Docker's attach framing
 * (8-byte header: stream 1 or 2, three zero bytes, the length big-endian; then the
 * bytes), and may send frames of its own (1-byte type, 4-byte length, payload): type 0
 * is input for the container (its terminal, or its kept-open stdin), type 1 a window
 * size (rows and columns, 16 bits each, big-endian), type 2 (empty) closes the kept-open
 * stdin (the API's attach, when its client's input ends). Clients see end-of-file when the
 * container's output has ended.
 *
 * --log-rotate: when LOG_FILE would pass MAX_BYTES, it becomes LOG_FILE.1 (.1 becomes .2,
 * and so on; FILES files in all, the oldest dropped) and a new LOG_FILE is begun; a record
 * is never split across files. --no-log: no LOG_FILE is written (`--log-driver none`).
 *
 * --health: every MS milliseconds while the container runs, the monitor runs CHECK (N
 * words: `shellctr _health ID`, which runs the container's health check once and records
 * it), one at a time: a check still running when the next is due delays it. Daemonless:
 * the checks live and end with the container.
 *
 * When the container has ended and its output is drained, it writes EXIT_FILE
 * atomically (temp file, fsync, rename):
 *
 *   {"exit_code":0,"finished_at":"2026-11-29T19:40:01.000000000Z"}
 *
 * exit code N, or 128+N when killed by signal N; then it exits with that code, or,
 * with --then, execs the hook (N words: a program and its arguments). Everything else
 * (state, --rm, restart policies) is done by that hook, shellctr itself, in Python:
 * the monitor only has to be small and never lose an exit code. Written in C because a Python process costs ~9 MiB of memory for each
 * running container; this one costs well under 1 MiB (see bench/monitor.py).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 16384 /* Docker splits longer lines into several records */
#define MAX_CLIENTS 8         /* `shellctr attach` sessions at once */
#define FRAME_MAX 65536       /* the largest frame a client may send */

struct stream {
    const char *name; /* "stdout" or "stderr" */
    int id;           /* the same in attach frames: 1 or 2 */
    int fd;           /* read end of the container's pipe, -1 once closed */
    int echo_fd;      /* where --attach copies it, or -1 */
    char buf[LINE_MAX_BYTES];
    size_t len;
};

static int log_fd = -1;
static const char *log_path = NULL;
static long long log_max = 0; /* --log-rotate: bytes per file; 0: no rotation */
static int log_files = 1;
static long long log_size = 0;

static char **health_check = NULL; /* --health: the check's argv */
static long health_ms = 0;
static pid_t health_pid = -1;

/* an attached `shellctr attach`: its socket, and a partly received frame */
struct client {
    int fd; /* -1: a free slot */
    unsigned char buf[5 + FRAME_MAX];
    size_t len;
};
static struct client clients[MAX_CLIENTS];
static int input_fd = -1; /* where client input goes: the pty master or the stdin pipe */
static int input_is_pipe = 0; /* input_fd is the kept-open stdin pipe (a client may close it) */

static void die(const char *what) {
    fprintf(stderr, "shellctr-monitor: %s: %s\n", what, strerror(errno));
    exit(125);
}

static void write_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* a reader went away (e.g. an attached terminal): keep logging */
        }
        data += n;
        len -= (size_t)n;
    }
}

static void timestamp(char *out, size_t size) {
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, size - n, ".%09ldZ", now.tv_nsec);
}

/* LOG_FILE.(N-1) -> LOG_FILE.N ... LOG_FILE -> LOG_FILE.1, then a new LOG_FILE: the
 * reader (`logs`) reads the numbered files, oldest first, then LOG_FILE. */
static void rotate_log(void) {
    char from[4096], to[4096];
    fsync(log_fd);
    close(log_fd);
    if (log_files <= 1) {
        snprintf(to, sizeof to, "%s.1", log_path);
        unlink(to);
        if (truncate(log_path, 0) < 0 && errno != ENOENT)
            die("truncate log file");
    } else {
        snprintf(to, sizeof to, "%s.%d", log_path, log_files - 1);
        unlink(to); /* the oldest goes */
        for (int i = log_files - 2; i >= 1; i--) {
            snprintf(from, sizeof from, "%s.%d", log_path, i);
            snprintf(to, sizeof to, "%s.%d", log_path, i + 1);
            if (rename(from, to) < 0 && errno != ENOENT)
                die("rotate log file");
        }
        snprintf(to, sizeof to, "%s.1", log_path);
        if (rename(log_path, to) < 0)
            die("rotate log file");
    }
    log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (log_fd < 0)
        die("open log file");
    log_size = 0;
}

/* One log record: the bytes as a JSON string (control characters escaped). */
static void log_record(const struct stream *s, const char *data, size_t len) {
    static char out[LINE_MAX_BYTES * 6 + 128];
    char when[64];
    size_t n = 0;
    n += (size_t)sprintf(out + n, "{\"log\":\"");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
        } else if (c == '\t') {
            out[n++] = '\\';
            out[n++] = 't';
        } else if (c == '\r') {
            out[n++] = '\\';
            out[n++] = 'r';
        } else if (c < 0x20 || c == 0x7f) {
            n += (size_t)sprintf(out + n, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    timestamp(when, sizeof when);
    n += (size_t)sprintf(out + n, "\",\"stream\":\"%s\",\"time\":\"%s\"}\n", s->name, when);
    if (log_fd < 0)
        return; /* --no-log */
    if (log_max > 0 && log_size > 0 && log_size + (long long)n > log_max)
        rotate_log();
    write_all(log_fd, out, n);
    log_size += (long long)n;
}

static void drop_client(struct client *c) {
    close(c->fd);
    c->fd = -1;
    c->len = 0;
}

/* Write to a client; a client that cannot keep up (2 s send timeout) is dropped. */
static int send_all(struct client *c, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            drop_client(c);
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* What the container printed, to every attached client, in Docker's framing. */
static void broadcast(int stream, const char *data, size_t len) {
    unsigned char header[8] = {(unsigned char)stream, 0, 0, 0, (unsigned char)(len >> 24),
                               (unsigned char)(len >> 16), (unsigned char)(len >> 8),
                               (unsigned char)len};
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (clients[i].fd >= 0 && send_all(&clients[i], (const char *)header, 8) == 0)
            send_all(&clients[i], data, len);
}

/* Input for the container; waits at most a second for room, then drops the rest. */
static void write_input(const unsigned char *data, size_t len) {
    while (input_fd >= 0 && len > 0) {
        ssize_t n = write(input_fd, data, len);
        if (n < 0 && errno == EAGAIN) {
            struct pollfd room = {.fd = input_fd, .events = POLLOUT};
            if (poll(&room, 1, 1000) <= 0)
                return;
            continue;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* the container closed its stdin */
        }
        data += n;
        len -= (size_t)n;
    }
}

/* Read from a client; act on each complete frame (input, or a window size). */
static void serve_client(struct client *c) {
    ssize_t got = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (got < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (got <= 0) {
        drop_client(c);
        return;
    }
    c->len += (size_t)got;
    for (;;) {
        if (c->len < 5)
            return;
        size_t size = (size_t)c->buf[1] << 24 | (size_t)c->buf[2] << 16 |
                      (size_t)c->buf[3] << 8 | c->buf[4];
        if (size > FRAME_MAX) {
            drop_client(c);
            return;
        }
        if (c->len < 5 + size)
            return;
        const unsigned char *payload = c->buf + 5;
        if (c->buf[0] == 0) {
            write_input(payload, size);
        } else if (c->buf[0] == 1 && size == 4 && input_fd >= 0) {
            struct winsize ws = {.ws_row = (unsigned short)(payload[0] << 8 | payload[1]),
                                 .ws_col = (unsigned short)(payload[2] << 8 | payload[3])};
            ioctl(input_fd, TIOCSWINSZ, &ws); /* not a terminal (no -t): nothing to size */
        } else if (c->buf[0] == 2 && input_is_pipe && input_fd >= 0) {
            close(input_fd); /* the client's input ended: the container reads EOF */
            input_fd = -1;
        }
        memmove(c->buf, c->buf + 5 + size, c->len - 5 - size);
        c->len -= 5 + size;
    }
}

/* The listening socket DIR/attach.sock, reached through /proc/self/fd so that a long
 * DIR still fits in sun_path; only root may connect (0700). */
static int listen_attach(const char *dir) {
    int dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0)
        die("open attach socket directory");
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "/proc/self/fd/%d/attach.sock", dir_fd);
    int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (sock < 0)
        die("socket");
    unlinkat(dir_fd, "attach.sock", 0); /* one left by an earlier run of the container */
    mode_t old = umask(077);
    if (bind(sock, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(sock, 8) < 0)
        die("listen on attach socket");
    umask(old);
    close(dir_fd);
    return sock;
}

static void unlink_socket(const char *dir) {
    int dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
        unlinkat(dir_fd, "attach.sock", 0);
        close(dir_fd);
    }
}

static void accept_client(int listener) {
    int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    struct timeval timeout = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    for (int i = 0; i < MAX_CLIENTS; i++) {
        if (clients[i].fd < 0) {
            clients[i].fd = fd;
            clients[i].len = 0;
            return;
        }
    }
    close(fd); /* too many at once */
}

/* Read what is there; log each complete line (and full buffers); at EOF the rest. */
static void drain(struct stream *s) {
    ssize_t got = read(s->fd, s->buf + s->len, sizeof s->buf - s->len);
    if (got < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (got <= 0) {
        if (s->len > 0)
            log_record(s, s->buf, s->len);
        s->len = 0;
        close(s->fd);
        s->fd = -1;
        return;
    }
    if (s->echo_fd >= 0)
        write_all(s->echo_fd, s->buf + s->len, (size_t)got);
    broadcast(s->id, s->buf + s->len, (size_t)got);
    s->len += (size_t)got;
    size_t start = 0;
    for (size_t i = 0; i < s->len; i++) {
        if (s->buf[i] == '\n') {
            log_record(s, s->buf + start, i + 1 - start);
            start = i + 1;
        }
    }
    if (start == 0 && s->len == sizeof s->buf) { /* a line longer than the buffer */
        log_record(s, s->buf, s->len);
        start = s->len;
    }
    memmove(s->buf, s->buf + start, s->len - start);
    s->len -= start;
}

static void write_exit_file(const char *path, int code) {
    char tmp[4096], when[64], text[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    timestamp(when, sizeof when);
    int len = snprintf(text, sizeof text, "{\"exit_code\":%d,\"finished_at\":\"%s\"}\n",
                       code, when);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        die("open exit file");
    write_all(fd, text, (size_t)len);
    if (fsync(fd) < 0 || close(fd) < 0 || rename(tmp, path) < 0)
        die("write exit file");
}

static long long now_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static long long health_due_ms = 0;

/* --health: the poll timeout until the next check (-1: no checks), starting one if due. */
static int health_tick(void) {
    if (health_check == NULL)
        return -1;
    if (health_pid > 0 && waitpid(health_pid, NULL, WNOHANG) == health_pid)
        health_pid = -1;
    long long now = now_ms();
    if (now >= health_due_ms && health_pid < 0) {
        pid_t pid = fork();
        if (pid == 0) {
            int null = open("/dev/null", O_RDWR);
            if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
                _exit(125);
            signal(SIGHUP, SIG_DFL);
            signal(SIGINT, SIG_DFL);
            signal(SIGPIPE, SIG_DFL);
            execvp(health_check[0], health_check);
            _exit(127);
        }
        if (pid > 0)
            health_pid = pid;
        health_due_ms = now + health_ms;
    }
    if (health_pid > 0) /* look again soon: to reap it, and to start the next on time */
        return (int)(health_due_ms - now < 100 ? (health_due_ms > now ? health_due_ms - now : 0)
                                                : 100);
    return (int)(health_due_ms - now);
}

static int usage(void) {
    fprintf(stderr, "usage: shellctr-monitor [--attach] [--keep-stdin] [--console-fd FD] "
                    "[--attach-socket DIR] [--then N HOOK ARG...] EXIT_FILE LOG_FILE -- "
                    "COMMAND [ARG...]\n");
    return 125;
}

/* The pty master shellctr sends over the console socket, or -1 (it went away). */
static int receive_fd(int sock) {
    char byte;
    char control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = control, .msg_controllen = sizeof control};
    if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) <= 0)
        return -1;
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    if (cmsg == NULL || cmsg->cmsg_type != SCM_RIGHTS)
        return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(cmsg), sizeof fd);
    return fd;
}

/* --reap: the parent of the container's PID 1. `unshare --pid` makes a new pid namespace
 * for the children of the process it runs; this role forks that first child, waits for
 * it and exits as it did (128+N for signal N). (`unshare --fork` would do the same, but
 * util-linux 2.38 loses the status of a child killed by a signal and exits 1.) */
static int reap(char **command) {
    pid_t child = fork();
    if (child < 0)
        die("fork");
    if (child == 0) {
        execvp(command[0], command);
        fprintf(stderr, "shellctr-monitor: exec %s: %s\n", command[0], strerror(errno));
        _exit(127);
    }
    /* signals are for PID 1 (shellctr sends them there); this process only waits */
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    int status;
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR)
            die("waitpid");
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* --init: `run --init`'s PID 1 inside the container (this static binary, bound read-only
 * at /sbin/shellctr-init). It runs PROGRAM as its child, in a process group of its own
 * (the terminal's foreground group, with -t), forwards every signal it gets to that child,
 * reaps every orphan the kernel hands it, and exits as the child did (128+N for signal
 * N). Signals stay blocked and are taken with sigwaitinfo: a blocked signal reaches a
 * namespace's PID 1 even from outside, where a default disposition would drop it. */
static int init_role(const char *program, char **command) {
    /* run from a memfd (/proc/self/fd/N), its name would be N: ps shows this one */
    prctl(PR_SET_NAME, "shellctr-init", 0, 0, 0);
    closefrom(3); /* its own memfd copy, say: the command gets stdio only */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t child = fork();
    if (child < 0)
        die("fork");
    if (child == 0) {
        setpgid(0, 0);
        if (isatty(0))
            tcsetpgrp(0, getpid()); /* SIGTTOU is blocked: allowed from the background */
        sigprocmask(SIG_SETMASK, &old, NULL);
        execv(program, command);
        fprintf(stderr, "shellctr-init: exec %s: %s\n", program, strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&all, &info);
        if (sig < 0) {
            if (errno == EINTR)
                continue;
            die("sigwaitinfo");
        }
        if (sig != SIGCHLD) {
            kill(child, sig);
            continue;
        }
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) /* the child, and any orphan */
            if (pid == child)
                return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
}

int main(int argc, char **argv) {
    if (argc > 3 && strcmp(argv[1], "--reap") == 0 && strcmp(argv[2], "--") == 0)
        return reap(argv + 3);
    if (argc > 4 && strcmp(argv[1], "--init") == 0 && strcmp(argv[3], "--") == 0)
        return init_role(argv[2], argv + 4);
    /* shellctr starts us where its caller was: keep no directory of theirs busy */
    if (chdir("/") != 0) {
        perror("shellctr-monitor: chdir /");
        return 125;
    }
    int attach = 0, keep_stdin = 0, console = -1, arg = 1;
    const char *socket_dir = NULL;
    char **hook = NULL;
    for (;;) {
        if (arg < argc && strcmp(argv[arg], "--attach") == 0) {
            attach = 1;
            arg++;
        } else if (arg < argc && strcmp(argv[arg], "--keep-stdin") == 0) {
            keep_stdin = 1;
            arg++;
        } else if (arg + 1 < argc && strcmp(argv[arg], "--console-fd") == 0) {
            console = atoi(argv[arg + 1]);
            if (console < 3 || fcntl(console, F_SETFD, FD_CLOEXEC) < 0)
                return usage(); /* and never passed on to the container */
            arg += 2;
        } else if (arg + 1 < argc && strcmp(argv[arg], "--attach-socket") == 0) {
            socket_dir = argv[arg + 1];
            arg += 2;
        } else if (arg + 2 < argc && strcmp(argv[arg], "--log-rotate") == 0) {
            log_max = atoll(argv[arg + 1]);
            log_files = atoi(argv[arg + 2]);
            if (log_max < 0 || log_files < 1)
                return usage();
            arg += 3;
        } else if (arg < argc && strcmp(argv[arg], "--no-log") == 0) {
            log_path = "";
            arg++;
        } else if (arg + 2 < argc && strcmp(argv[arg], "--health") == 0) {
            health_ms = atol(argv[arg + 1]);
            int words = atoi(argv[arg + 2]);
            if (health_ms < 1 || words < 1 || arg + 3 + words > argc)
                return usage();
            health_check = calloc((size_t)words + 1, sizeof *health_check);
            if (health_check == NULL)
                die("calloc");
            memcpy(health_check, argv + arg + 3, (size_t)words * sizeof *health_check);
            arg += 3 + words;
        } else if (arg + 1 < argc && strcmp(argv[arg], "--then") == 0) {
            int words = atoi(argv[arg + 1]);
            if (words < 1 || arg + 2 + words > argc)
                return usage();
            hook = calloc((size_t)words + 1, sizeof *hook);
            if (hook == NULL)
                die("calloc");
            memcpy(hook, argv + arg + 2, (size_t)words * sizeof *hook);
            arg += 2 + words;
        } else {
            break;
        }
    }
    if (argc - arg < 4 || strcmp(argv[arg + 2], "--") != 0)
        return usage();
    const char *exit_file = argv[arg], *log_file = argv[arg + 1];
    char **command = argv + arg + 3;

    if (log_path == NULL) { /* not --no-log */
        log_path = log_file;
        log_fd = open(log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (log_fd < 0)
            die("open log file");
        struct stat st;
        if (fstat(log_fd, &st) == 0)
            log_size = st.st_size; /* a restarted container's log goes on */
    }
    health_due_ms = now_ms() + health_ms;
    int out[2], err[2], in[2] = {-1, -1};
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
        die("pipe");
    if (keep_stdin && pipe2(in, O_CLOEXEC) < 0) /* we hold the write end and never write */
        die("pipe");
    /* Signals are for the container, sent to its PID 1 by shellctr; a detached
     * monitor must not die of its caller's terminal going away. */
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < MAX_CLIENTS; i++)
        clients[i].fd = -1;
    int listener = socket_dir != NULL ? listen_attach(socket_dir) : -1;

    pid_t child = fork();
    if (child < 0)
        die("fork");
    if (child == 0) {
        signal(SIGHUP, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        if (dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0 || (keep_stdin && dup2(in[0], 0) < 0))
            _exit(125);
        execvp(command[0], command);
        fprintf(stderr, "shellctr-monitor: exec %s: %s\n", command[0], strerror(errno));
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    if (keep_stdin) {
        close(in[0]);
        input_fd = in[1];
        input_is_pipe = 1;
        fcntl(input_fd, F_SETFL, O_NONBLOCK); /* a container not reading must not stall us */
    }

    static struct stream streams[3] = {
        {.name = "stdout", .id = 1}, {.name = "stderr", .id = 2},
        {.name = "stdout", .id = 1, .fd = -1, .echo_fd = -1},
    };
    streams[0].fd = out[0];
    streams[0].echo_fd = attach ? 1 : -1;
    streams[1].fd = err[0];
    streams[1].echo_fd = attach ? 2 : -1;
    while (streams[0].fd >= 0 || streams[1].fd >= 0 || streams[2].fd >= 0) {
        struct pollfd fds[5 + MAX_CLIENTS] = {{.fd = streams[0].fd, .events = POLLIN},
                                              {.fd = streams[1].fd, .events = POLLIN},
                                              {.fd = streams[2].fd, .events = POLLIN},
                                              {.fd = console, .events = POLLIN},
                                              {.fd = listener, .events = POLLIN}};
        for (int i = 0; i < MAX_CLIENTS; i++)
            fds[5 + i] = (struct pollfd){.fd = clients[i].fd, .events = POLLIN};
        if (poll(fds, 5 + MAX_CLIENTS, health_tick()) < 0) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        for (int i = 0; i < 3; i++)
            if (streams[i].fd >= 0 && fds[i].revents)
                drain(&streams[i]); /* a pty master reads EIO once the container ended */
        if (console >= 0 && fds[3].revents) {
            streams[2].fd = receive_fd(console);
            input_fd = streams[2].fd; /* attached input goes to the container's terminal */
            struct stat st; /* an attached run logged its terminal until it handed it over */
            if (log_fd >= 0 && fstat(log_fd, &st) == 0)
                log_size = st.st_size;
            fcntl(input_fd, F_SETFL, O_NONBLOCK);
            close(console);
            console = -1;
        }
        if (listener >= 0 && fds[4].revents)
            accept_client(listener);
        for (int i = 0; i < MAX_CLIENTS; i++)
            if (clients[i].fd >= 0 && fds[5 + i].fd == clients[i].fd && fds[5 + i].revents)
                serve_client(&clients[i]);
    }
    if (listener >= 0) { /* the container's output has ended: so has every attach */
        close(listener);
        unlink_socket(socket_dir);
        for (int i = 0; i < MAX_CLIENTS; i++)
            if (clients[i].fd >= 0)
                drop_client(&clients[i]);
    }
    int status;
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR)
            die("waitpid");
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (health_pid > 0) { /* the container has ended: so has its health */
        kill(health_pid, SIGTERM);
        waitpid(health_pid, NULL, 0);
    }
    if (log_fd >= 0)
        fsync(log_fd);
    write_exit_file(exit_file, code);
    if (hook != NULL) {
        if (log_fd >= 0)
            close(log_fd);
        execvp(hook[0], hook);
        die("exec hook");
    }
    return code;
}
