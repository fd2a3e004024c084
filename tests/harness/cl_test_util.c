/* Child processes, files and waiting for tests (cl_test_util.h). */
#include "cl_test_util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cl_clock.h"

pid_t cl_test_fork(void)
{
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
    }
    return pid;
}

pid_t cl_test_spawn(char *const argv[])
{
    pid_t pid = cl_test_fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

int cl_test_wait_exit(pid_t pid, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        int status = 0;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            if (WIFEXITED(status))
                return WEXITSTATUS(status);
            if (WIFSIGNALED(status))
                return 128 + WTERMSIG(status);
            return -1;
        }
        if (r < 0)
            return -1;
        cl_sleep_ms(10);
    }
    return -1;
}

void cl_test_kill(pid_t pid)
{
    if (pid <= 0)
        return;
    if (waitpid(pid, NULL, WNOHANG) == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

char *cl_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        n += fread(buf + n, 1, cap - 1 - n, f);
        if (n < cap - 1)
            break;
        char *bigger = realloc(buf, cap * 2);
        if (bigger == NULL) {
            free(buf);
            buf = NULL;
        }
        buf = bigger;
        cap *= 2;
    }
    bool failed = ferror(f) != 0;
    fclose(f);
    if (buf == NULL || failed) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

bool cl_test_proc_stat(int pid, char *state, int *ppid, char *comm, size_t comm_size)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    char *buf = cl_test_read_file(path, NULL);
    if (buf == NULL)
        return false;
    /* "pid (comm) state ppid ...": comm may hold spaces and parentheses. */
    char *open = strchr(buf, '(');
    char *close = strrchr(buf, ')');
    bool ok = open != NULL && close != NULL && close > open &&
              sscanf(close + 1, " %c %d", state, ppid) == 2;
    if (ok && comm != NULL)
        snprintf(comm, comm_size, "%.*s", (int)(close - open - 1), open + 1);
    free(buf);
    return ok;
}

int cl_test_wait_count(pthread_mutex_t *mu, const int *count, int want, int timeout_ms)
{
    uint64_t end = cl_mono_us() + (uint64_t)timeout_ms * 1000u;
    for (;;) {
        pthread_mutex_lock(mu);
        int n = *count;
        pthread_mutex_unlock(mu);
        if (n >= want || cl_mono_us() > end)
            return n;
        cl_sleep_ms(5);
    }
}
