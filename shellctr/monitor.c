/*
 * shellctr-monitor: the small process that stays with a container while it runs.
 *
 *   shellctr-monitor [--attach] [--keep-stdin] [--console-fd FD] [--then N HOOK ARG...]
 *                    EXIT_FILE LOG_FILE -- COMMAND [ARG...]
 *   shellctr-monitor --reap -- COMMAND [ARG...]
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
 * the container writes to its terminal as stdout. When the container has ended and its output is drained, it writes
 * EXIT_FILE atomically (temp file, fsync, rename):
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 16384 /* Docker splits longer lines into several records */

struct stream {
    const char *name; /* "stdout" or "stderr" */
    int fd;           /* read end of the container's pipe, -1 once closed */
    int echo_fd;      /* where --attach copies it, or -1 */
    char buf[LINE_MAX_BYTES];
    size_t len;
};

static int log_fd = -1;

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
    write_all(log_fd, out, n);
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

static int usage(void) {
    fprintf(stderr, "usage: shellctr-monitor [--attach] [--keep-stdin] [--console-fd FD] "
                    "[--then N HOOK ARG...] EXIT_FILE LOG_FILE -- COMMAND [ARG...]\n");
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

int main(int argc, char **argv) {
    if (argc > 3 && strcmp(argv[1], "--reap") == 0 && strcmp(argv[2], "--") == 0)
        return reap(argv + 3);
    int attach = 0, keep_stdin = 0, console = -1, arg = 1;
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

    log_fd = open(log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (log_fd < 0)
        die("open log file");
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
    if (keep_stdin)
        close(in[0]);

    static struct stream streams[3] = {
        {.name = "stdout"}, {.name = "stderr"}, {.name = "stdout", .fd = -1, .echo_fd = -1},
    };
    streams[0].fd = out[0];
    streams[0].echo_fd = attach ? 1 : -1;
    streams[1].fd = err[0];
    streams[1].echo_fd = attach ? 2 : -1;
    while (streams[0].fd >= 0 || streams[1].fd >= 0 || streams[2].fd >= 0) {
        struct pollfd fds[4] = {{.fd = streams[0].fd, .events = POLLIN},
                                {.fd = streams[1].fd, .events = POLLIN},
                                {.fd = streams[2].fd, .events = POLLIN},
                                {.fd = console, .events = POLLIN}};
        if (poll(fds, 4, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        for (int i = 0; i < 3; i++)
            if (streams[i].fd >= 0 && fds[i].revents)
                drain(&streams[i]); /* a pty master reads EIO once the container ended */
        if (console >= 0 && fds[3].revents) {
            streams[2].fd = receive_fd(console);
            close(console);
            console = -1;
        }
    }
    int status;
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR)
            die("waitpid");
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    fsync(log_fd);
    write_exit_file(exit_file, code);
    if (hook != NULL) {
        close(log_fd);
        execvp(hook[0], hook);
        die("exec hook");
    }
    return code;
}
