/* The floor for bench/compare.py: the same 8 requests as
 * bench/runbooks/http-8-steps.yaml, in the same order, from a C program that
 * does nothing else: one keep-alive connection, each request written with
 * one send(), each answer read to its Content-Length, nothing parsed,
 * journaled or printed. No tool can be faster on this machine; what a tool
 * takes beyond this is its own overhead (process start included, since the
 * harness spawns this exactly as it spawns the tools).
 *
 * With a store directory (the `floor-durable` column), it also keeps the
 * least write-ahead journal that survives a power cut: a new directory in
 * the store with a journal file in it, one line written and fdatasync'ed
 * before each request (the first flush also syncs the directory, as
 * quench's does) and one after the last answer: 9 flushes for 8 requests,
 * as quench makes. This is the floor under a tool that promises what
 * quench's journal promises: no effect before its record is on disk.
 *
 * Built by compare.py with `cc -O2` into bench/.venv.
 * Usage: floor http://127.0.0.1:PORT [STORE]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int fd;
static char buf[65536];
static int journal = -1, journal_dir = -1;
static int seq;

static void die(const char *what) {
    perror(what);
    exit(1);
}

/* Appends one journal line and flushes it (and, the first time, the
 * directory that names the journal) to disk. */
static void record(const char *what) {
    if (journal < 0) return;
    char line[256];
    int n = snprintf(line, sizeof line, "{\"v\":1,\"seq\":%d,\"event\":\"%s\"}\n", ++seq, what);
    if (write(journal, line, n) != n) die("write");
    if (fdatasync(journal) != 0) die("fdatasync");
    if (journal_dir >= 0) {
        if (fsync(journal_dir) != 0) die("fsync");
        close(journal_dir);
        journal_dir = -1;
    }
}

/* Sends one request and reads its whole answer; exits on a non-2xx. */
static void request(const char *method, const char *path, const char *body) {
    record(path);
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     method, path, strlen(body), body);
    if (send(fd, req, n, 0) != n) die("send");
    size_t have = 0;
    char *end = NULL;
    while (!(end = strstr(buf, "\r\n\r\n"))) {
        ssize_t got = recv(fd, buf + have, sizeof buf - 1 - have, 0);
        if (got <= 0) die("recv");
        have += got;
        buf[have] = 0;
    }
    if (strncmp(buf + 9, "2", 1) != 0) {
        fprintf(stderr, "%s %s answered %.3s\n", method, path, buf + 9);
        exit(1);
    }
    char *cl = strcasestr(buf, "Content-Length:");
    size_t want = (end - buf) + 4 + (cl ? strtoul(cl + 15, NULL, 10) : 0);
    while (have < want) {
        ssize_t got = recv(fd, buf + have, sizeof buf - 1 - have, 0);
        if (got <= 0) die("recv");
        have += got;
    }
    buf[0] = 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || strncmp(argv[1], "http://127.0.0.1:", 17) != 0) {
        fprintf(stderr, "usage: floor http://127.0.0.1:PORT [STORE]\n");
        return 2;
    }
    if (argc > 2) {
        char dir[4096], path[4200];
        snprintf(dir, sizeof dir, "%s/incident", argv[2]);
        if (mkdir(dir, 0777) != 0) die("mkdir");
        snprintf(path, sizeof path, "%s/journal.jsonl", dir);
        journal = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0666);
        if (journal < 0) die("open");
        journal_dir = open(dir, O_RDONLY | O_CLOEXEC);
        if (journal_dir < 0) die("open");
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1] + 17))};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) die("connect");
    request("POST", "/keys/key-0001/revoke", "");
    request("POST", "/keys", "{\"owner\":\"bench\",\"replaces\":\"key-0001\"}");
    request("GET", "/keys/key-0001/events", "");
    request("POST", "/notify",
            "{\"channel\":\"#sec-incidents\",\"text\":\"INC: key key-0001 revoked and replaced by key-new; 3 events from 203.0.113.7\"}");
    request("PUT", "/config/credential", "{\"key_id\":\"key-new\",\"secret\":\"s3cr3t-new-value\"}");
    request("GET", "/whoami", "");
    request("POST", "/tickets",
            "{\"title\":\"INC: leaked API key key-0001\",\"body\":\"Revoked key-0001; replacement key-new verified.\"}");
    request("POST", "/tickets",
            "{\"title\":\"Enable secret scanning on the repository that leaked key-0001\",\"parent\":1}");
    record("finished");
    close(fd);
    return 0;
}
