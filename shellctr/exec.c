/*
 * shellctr-exec: the last step of a container's process, between shellctr's init and
 * the user's command.
 *
 *   shellctr-exec STATUS_FD PROGRAM ARGV0 [ARG...]
 *
 * init.py (the host's Python, run inside the container's namespaces) confines the
 * process, then execs this program from a sealed memfd copy of it; this program execs
 * PROGRAM with ARGV0 ARG... and the environment it was given. So when image code first
 * runs, /proc/self/exe (and /proc/1/exe, /proc/N/exe) is the sealed memfd, which
 * nobody can write, and not the host's interpreter (the CVE-2019-5736 class, issue 13
 * defect 1). It is static: no ELF interpreter, so an image's /lib64/ld-linux*.so never
 * loads a host executable, even when the command is /proc/self/exe.
 *
 * STATUS_FD (-1: none) is shellctr's status socket: closed by a successful exec, and
 * given the error, as init.py's JSON message, when the exec fails (126, or 127 for a
 * program that is not there).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

int main(int argc, char **argv) {
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
