/* Helpers shared by the replica tests (see replica_test_util.h). */
#include "replica_test_util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef RT_PYTHON3
#error "RT_PYTHON3 must be defined by the build"
#endif
#ifndef RT_MAKE_MODEL
#error "RT_MAKE_MODEL must be defined by the build"
#endif

pid_t rt_spawn(char *const argv[])
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        /* The child must not inherit the test's blocked signals. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

int rt_wait_exit(pid_t pid, int timeout_ms)
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
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return -1;
}

void rt_kill(pid_t pid)
{
    if (pid <= 0)
        return;
    if (waitpid(pid, NULL, WNOHANG) == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

void *rt_make_model(const char *name, size_t *len)
{
    char path[] = "/tmp/replica-test-model-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    close(fd);
    char *argv[] = {(char *)RT_PYTHON3, (char *)RT_MAKE_MODEL, (char *)name, path, NULL};
    pid_t pid = rt_spawn(argv);
    int rc = pid > 0 ? rt_wait_exit(pid, 30000) : -1;
    if (rc != 0) {
        rt_kill(pid);
        unlink(path);
        fprintf(stderr, "make_model.py %s failed (%d)\n", name, rc);
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    void *data = NULL;
    if (f) {
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fseek(f, 0, SEEK_SET);
        data = malloc(size > 0 ? (size_t)size : 1);
        if (data && fread(data, 1, (size_t)size, f) != (size_t)size) {
            free(data);
            data = NULL;
        }
        *len = (size_t)size;
        fclose(f);
    }
    unlink(path);
    return data;
}
