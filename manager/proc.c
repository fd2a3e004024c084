/* Spawning, reaping and stopping child processes (see cl_proc.h).
 *
 * Between fork and exec the child runs only async-signal-safe calls: the
 * parent may have other threads holding locks (cnats, the allocator). */
#include "cl_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cl_clock.h"

/* The child reports a failed exec by writing errno to a close-on-exec pipe;
 * the parent reading EOF means the exec succeeded. */
static void child_fail(int fd, int e)
{
    ssize_t w = write(fd, &e, sizeof(e));
    (void)w;
    _exit(127);
}

static void run_child(char *const argv[], const cl_proc_opts *opts, pid_t parent, int err_fd)
{
    if (opts->new_pgroup)
        setpgid(0, 0);
    if (!opts->outlive_parent) {
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
            child_fail(err_fd, errno);
        if (getppid() != parent) /* the parent died before prctl took effect */
            _exit(1);
    }
    if (opts->stdout_fd >= 0 && dup2(opts->stdout_fd, STDOUT_FILENO) < 0)
        child_fail(err_fd, errno);
    if (opts->stderr_fd >= 0 && dup2(opts->stderr_fd, STDERR_FILENO) < 0)
        child_fail(err_fd, errno);
    /* Everything else the parent had open (bus sockets, other logs) must
     * not leak into the child; err_fd is already close-on-exec. */
    close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &sa, NULL);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execvp(argv[0], argv);
    child_fail(err_fd, errno);
}

cl_status cl_proc_spawn(pid_t *out, char *const argv[], const cl_proc_opts *opts, cl_err *err)
{
    static const cl_proc_opts defaults = {.stdout_fd = -1, .stderr_fd = -1};
    if (opts == NULL)
        opts = &defaults;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return cl_err_set(err, CL_ERR_IO, "cannot start %s: pipe: %s", argv[0], strerror(errno));
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        return cl_err_set(err, CL_ERR_IO, "cannot start %s: fork: %s", argv[0], strerror(e));
    }
    if (pid == 0) {
        close(fds[0]);
        run_child(argv, opts, parent, fds[1]);
    }
    if (opts->new_pgroup)
        setpgid(pid, pid); /* also here, so a kill(-pid) right after cannot miss */
    close(fds[1]);
    int child_errno = 0;
    ssize_t n;
    do {
        n = read(fds[0], &child_errno, sizeof(child_errno));
    } while (n < 0 && errno == EINTR);
    close(fds[0]);
    if (n == (ssize_t)sizeof(child_errno)) {
        int code;
        cl_proc_wait(pid, -1, &code);
        return cl_err_set(err, child_errno == ENOENT ? CL_ERR_NOT_FOUND : CL_ERR_IO,
                          "cannot run %s: %s", argv[0], strerror(child_errno));
    }
    *out = pid;
    return CL_OK;
}

cl_status cl_proc_self_exe(char *buf, size_t size, cl_err *err)
{
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    if (n < 0 || (size_t)n >= size - 1)
        return cl_err_set(err, CL_ERR_IO, "cannot find this program's path in /proc/self/exe: %s",
                          n < 0 ? strerror(errno) : "path too long");
    buf[n] = '\0';
    return CL_OK;
}

static int decode_status(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return -WTERMSIG(st);
    return -1000;
}

bool cl_proc_reaped(pid_t pid, int *code)
{
    int st;
    pid_t r;
    do {
        r = waitpid(pid, &st, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == 0)
        return false;
    *code = r < 0 ? -1000 : decode_status(st);
    return true;
}

bool cl_proc_wait(pid_t pid, int timeout_ms, int *code)
{
    if (timeout_ms < 0) {
        int st;
        pid_t r;
        do {
            r = waitpid(pid, &st, 0);
        } while (r < 0 && errno == EINTR);
        *code = r < 0 ? -1000 : decode_status(st);
        return true;
    }
    uint64_t until = cl_mono_us() + (uint64_t)timeout_ms * 1000u;
    for (;;) {
        if (cl_proc_reaped(pid, code))
            return true;
        if (cl_mono_us() >= until)
            return false;
        cl_sleep_ms(20);
    }
}

int cl_proc_stop(pid_t pid, int grace_ms)
{
    int code;
    if (cl_proc_reaped(pid, &code))
        return code;
    kill(pid, SIGTERM);
    if (cl_proc_wait(pid, grace_ms, &code))
        return code;
    kill(pid, SIGKILL);
    cl_proc_wait(pid, -1, &code);
    return code;
}

void cl_proc_describe(int code, char *buf, size_t size)
{
    if (code == -1000)
        snprintf(buf, size, "ended (status unknown)");
    else if (code >= 0)
        snprintf(buf, size, "exit code %d", code);
    else
        snprintf(buf, size, "killed by signal %d (%s)", -code, strsignal(-code));
}

static bool is_executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

bool cl_proc_find_program(const char *name, const char *const extra_dirs[], char *buf,
                          size_t size)
{
    if (strchr(name, '/') != NULL) {
        if (!is_executable(name))
            return false;
        snprintf(buf, size, "%s", name);
        return true;
    }
    const char *path = getenv("PATH");
    if (path != NULL) {
        const char *p = path;
        while (*p != '\0') {
            size_t len = strcspn(p, ":");
            int n = snprintf(buf, size, "%.*s/%s", (int)len, len ? p : ".", name);
            if (n > 0 && (size_t)n < size && is_executable(buf))
                return true;
            p += len;
            if (*p == ':')
                p++;
        }
    }
    for (size_t i = 0; extra_dirs != NULL && extra_dirs[i] != NULL; i++) {
        int n = snprintf(buf, size, "%s/%s", extra_dirs[i], name);
        if (n > 0 && (size_t)n < size && is_executable(buf))
            return true;
    }
    return false;
}

cl_status cl_proc_mkdirs(const char *path, cl_err *err)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
        return cl_err_set(err, CL_ERR_INVALID, "directory path too long: %s", path);
    for (char *p = tmp + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return cl_err_set(err, CL_ERR_IO, "cannot create directory %s: %s", tmp,
                                  strerror(errno));
            *p = c;
            if (c == '\0')
                break;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return cl_err_set(err, CL_ERR_IO, "%s is not a directory", path);
    return CL_OK;
}
