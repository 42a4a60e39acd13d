/* Runs a command and writes its peak RSS (ru_maxrss of the child, in KiB) and
 * its CPU time (user and system, in microseconds, with the children it
 * waited for) to a file: `rusage OUT CMD ARGS...`. bench/compare.py spawns every tool through it because
 * Linux carries ru_maxrss across execve: a child forked straight from the
 * Python harness would report Python's own RSS (~23 MB) as its peak. This
 * process is tiny, so its children start from ~1 MB. */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    pid_t pid = fork();
    if (pid < 0) return 2;
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) return 2;
    FILE *out = fopen(argv[1], "w");
    if (!out) return 2;
    fprintf(out, "%ld %ld %ld\n", ru.ru_maxrss,
            (long)ru.ru_utime.tv_sec * 1000000L + (long)ru.ru_utime.tv_usec,
            (long)ru.ru_stime.tv_sec * 1000000L + (long)ru.ru_stime.tv_usec);
    fclose(out);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
