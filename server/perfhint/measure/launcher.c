/* perfhint-launcher: fork, confine, exec, wait4, sweep, report the child's peak RSS.

   Why a C program: ru_maxrss survives exec. A child forked from a Python process starts life with
   Python's resident pages, so every program it execs would report at least ~14 MB. Forked from this
   ~1 MB launcher instead, the measured program's peak is its own. This is also why the launcher
   allocates nothing large before fork and keeps no buffers beyond a few kilobytes.

   The child, before exec (order matters):
     1. joins the pids cgroup (--cgroup DIR), while it is still allowed to write there, and starts
        its own process group (the launcher must survive killing it);
     2. leaves the network (--netns: a new network namespace holds only a downed loopback) and the
        mount namespace: with --readonly every mount becomes read-only; each --hide directory gets
        an empty tmpfs over it; each --expose path (opened with O_PATH *before* hiding) is
        bind-mounted back at the same path, so an interpreter under /root (0700) stays reachable for
        an unprivileged user without showing the rest of /root, and /tmp becomes private to the run;
        --writable is an --expose that stays writable (the run's own directory). Without root, a user
        namespace (mapping our uid to itself) makes the network and mount namespaces possible where
        the kernel allows unprivileged user namespaces;
     3. applies the rlimits (--as --cpu --fsize --nproc --stack; no core files);
     4. drops to --uid/--gid with no supplementary groups and sets no_new_privs (Linux does not
        enforce RLIMIT_NPROC for root, and root could write anywhere);
     5. turns address-space randomisation off (--no-aslr), so the peak RSS is reproducible;
     6. redirects stdin from /dev/null and stdout/stderr to the files named, then execs.
   A step that fails is written to a close-on-exec pipe; the parent reports it as setup_failed.
   A step that may fail without making the run unsafe (a network namespace where unshare is not
   permitted) is reported as a warning and the run goes on.

   The launcher, meanwhile, is a child subreaper: every orphan of the run is reparented to it. It
   waits for the child at most --timeout seconds, then kills the child's process group. Either way it
   then sweeps: it kills the rest of the group, everything under --uid (a helper that becomes that
   uid and calls kill(-1), which reaches exactly that uid's processes, setsid escapees included),
   everything in the cgroup, and, round after round, every process that has been reparented to it,
   reaping as it goes. So when it reports, nothing of the run is left, not even a zombie for a slow
   init to collect.

   Report (stdout, one item per line; the caller parses key=value words):
     warning <text>
     result kind=exited code=N signal=0 maxrss_kib=N utime_s=F stime_s=F wall_s=F
     result kind=signaled code=0 signal=N maxrss_kib=N ...
     result kind=timeout code=0 signal=9 maxrss_kib=N ...
     result kind=setup_failed stage=WORD errno=N

   --kill-uid N: become uid N and kill(-1, SIGKILL), then exit (a backstop for the caller). */

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PATHS 32

struct options {
    const char *dir, *stdout_path, *stderr_path, *cgroup;
    long long as_bytes, fsize_bytes, tmpfs_bytes, stack_bytes;
    long cpu_seconds, nproc;
    double timeout_s;
    long uid, gid;
    int netns, no_aslr;
    const char *hide[MAX_PATHS];
    int n_hide;
    const char *expose[MAX_PATHS];
    int writable[MAX_PATHS];  /* expose[i] stays writable even under --readonly */
    int n_expose;
    int readonly;
    char **argv;
};

static int report_fd = -1; /* the child's end of the setup pipe */

static void child_fail(const char *stage) {
    char line[256];
    int n = snprintf(line, sizeof line, "fail %s %d\n", stage, errno);
    if (write(report_fd, line, (size_t)n) < 0) { /* nothing more we can do */ }
    _exit(127);
}

static void child_warn(const char *text) {
    char line[512];
    int n = snprintf(line, sizeof line, "warn %s (errno %d: %s)\n", text, errno, strerror(errno));
    if (write(report_fd, line, (size_t)n) < 0) { /* the warning is lost, the run is still safe */ }
}

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, strlen(text));
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

static int mkdir_p(const char *path) {
    char buffer[4096];
    if (strlen(path) >= sizeof buffer) { errno = ENAMETOOLONG; return -1; }
    strcpy(buffer, path);
    for (char *p = buffer + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buffer, 0755) < 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buffer, 0755) < 0 && errno != EEXIST) return -1;
    return 0;
}

/* mount_setattr(2) (Linux 5.12) is not wrapped by glibc 2.36; its number is 442 on every architecture. */
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
struct mount_attributes { uint64_t attr_set, attr_clr, propagation, userns_fd; };
#define READONLY_ATTRIBUTE 0x1ULL /* MOUNT_ATTR_RDONLY */
#define RECURSIVE_FLAG 0x8000     /* AT_RECURSIVE */

static int set_readonly(const char *path, int readonly, int recursive) {
    struct mount_attributes attributes = {readonly ? READONLY_ATTRIBUTE : 0, readonly ? 0 : READONLY_ATTRIBUTE, 0, 0};
    return (int)syscall(SYS_mount_setattr, AT_FDCWD, path, recursive ? RECURSIVE_FLAG : 0, &attributes,
                        sizeof attributes);
}

static void confine_mounts(const struct options *o) {
    int fds[MAX_PATHS];
    struct stat st[MAX_PATHS];
    /* Private propagation first, or the tmpfs mounts below would appear in the host's namespace. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) child_fail("mount_private");
    for (int i = 0; i < o->n_expose; i++) {
        fds[i] = open(o->expose[i], O_PATH | O_CLOEXEC);
        if (fds[i] < 0 || fstat(fds[i], &st[i]) < 0) child_fail("expose_open");
    }
    /* Everything read-only first (the private tmpfs mounts below stay writable), so a run that is not
       root-owned or not under a fresh uid still cannot change the machine. */
    int readonly = o->readonly;
    if (readonly && set_readonly("/", 1, 1) < 0) {
        child_warn("filesystem left writable: mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY) failed (needs Linux 5.12+)");
        readonly = 0;
    }
    for (int i = 0; i < o->n_hide; i++) {
        struct stat hidden;
        if (stat(o->hide[i], &hidden) < 0) continue; /* nothing there to hide */
        char data[128];
        int sticky = (hidden.st_mode & 01777) == 01777;
        snprintf(data, sizeof data, "mode=%s,size=%lld", sticky ? "1777" : "0755", o->tmpfs_bytes);
        if (mount("tmpfs", o->hide[i], "tmpfs", MS_NOSUID | MS_NODEV, data) < 0) child_fail("hide_tmpfs");
    }
    for (int i = 0; i < o->n_expose; i++) {
        char source[64];
        if (S_ISDIR(st[i].st_mode)) {
            if (mkdir_p(o->expose[i]) < 0) child_fail("expose_mkdir");
        } else {
            char parent[4096];
            snprintf(parent, sizeof parent, "%s", o->expose[i]);
            char *slash = strrchr(parent, '/');
            if (slash && slash != parent) { *slash = '\0'; if (mkdir_p(parent) < 0) child_fail("expose_mkdir"); }
            int fd = open(o->expose[i], O_CREAT | O_RDONLY | O_CLOEXEC, 0644);
            if (fd < 0) child_fail("expose_create");
            close(fd);
        }
        snprintf(source, sizeof source, "/proc/self/fd/%d", fds[i]);
        if (mount(source, o->expose[i], NULL, MS_BIND | MS_REC, NULL) < 0) child_fail("expose_bind");
        if (readonly && o->writable[i] && set_readonly(o->expose[i], 0, 0) < 0) child_fail("writable_bind");
        close(fds[i]);
    }
}

static void set_limit(int resource, rlim_t soft, rlim_t hard, const char *stage) {
    struct rlimit limit = {soft, hard};
    if (setrlimit(resource, &limit) < 0) child_fail(stage);
}

static void run_child(const struct options *o, pid_t launcher_pid, int out_fd, int err_fd) {
    if (setpgid(0, 0) < 0) child_fail("setpgid");
    if (o->cgroup) {
        char path[4096], pid[32];
        snprintf(path, sizeof path, "%s/cgroup.procs", o->cgroup);
        snprintf(pid, sizeof pid, "%d\n", (int)getpid());
        if (write_file(path, pid) < 0) child_fail("cgroup_join");
    }
    int am_root = geteuid() == 0;
    int want_mounts = o->n_hide > 0 || o->n_expose > 0 || o->readonly;
    int privileged = am_root;
    if (!am_root && (o->netns || want_mounts)) {
        /* An unprivileged user may still own a user namespace, and with it network and mount
           namespaces. Map our own ids to themselves so files keep their owner. */
        uid_t uid = getuid();
        gid_t gid = getgid();
        if (unshare(CLONE_NEWUSER) < 0) {
            child_warn("no user namespace, so neither the network nor the filesystem is isolated: "
                       "unshare(CLONE_NEWUSER) failed");
        } else {
            char map[64];
            snprintf(map, sizeof map, "%u %u 1\n", (unsigned)uid, (unsigned)uid);
            if (write_file("/proc/self/uid_map", map) < 0) child_fail("userns_uid_map");
            if (write_file("/proc/self/setgroups", "deny\n") < 0 && errno != ENOENT) child_fail("userns_setgroups");
            snprintf(map, sizeof map, "%u %u 1\n", (unsigned)gid, (unsigned)gid);
            if (write_file("/proc/self/gid_map", map) < 0) child_fail("userns_gid_map");
            privileged = 1;
        }
    }
    if (o->netns && privileged && unshare(CLONE_NEWNET) < 0)
        child_warn("network not isolated: unshare(CLONE_NEWNET) failed");
    if (want_mounts && privileged) {
        if (unshare(CLONE_NEWNS) < 0) {
            if (am_root) child_fail("mount_namespace");  /* root needs it to reach the interpreter */
            child_warn("filesystem not isolated: unshare(CLONE_NEWNS) failed");
        } else {
            confine_mounts(o);
        }
    }
    set_limit(RLIMIT_CORE, 0, 0, "rlimit_core");
    if (o->as_bytes > 0) set_limit(RLIMIT_AS, (rlim_t)o->as_bytes, (rlim_t)o->as_bytes, "rlimit_as");
    if (o->cpu_seconds > 0) set_limit(RLIMIT_CPU, (rlim_t)o->cpu_seconds, (rlim_t)o->cpu_seconds + 1, "rlimit_cpu");
    if (o->fsize_bytes > 0) set_limit(RLIMIT_FSIZE, (rlim_t)o->fsize_bytes, (rlim_t)o->fsize_bytes, "rlimit_fsize");
    if (o->nproc > 0) set_limit(RLIMIT_NPROC, (rlim_t)o->nproc, (rlim_t)o->nproc, "rlimit_nproc");
    if (o->stack_bytes > 0) set_limit(RLIMIT_STACK, (rlim_t)o->stack_bytes, (rlim_t)o->stack_bytes, "rlimit_stack");
    if (o->uid >= 0) {
        if (setgroups(0, NULL) < 0) child_fail("setgroups");
        if (setresgid((gid_t)o->gid, (gid_t)o->gid, (gid_t)o->gid) < 0) child_fail("setgid");
        if (setresuid((uid_t)o->uid, (uid_t)o->uid, (uid_t)o->uid) < 0) child_fail("setuid");
        if (getuid() != (uid_t)o->uid || geteuid() != (uid_t)o->uid) { errno = EPERM; child_fail("setuid_check"); }
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) child_fail("no_new_privs");
    /* Set after the uid change, which clears it; die with the launcher rather than outlive it. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) child_fail("pdeathsig");
    if (getppid() != launcher_pid) _exit(127);
    /* Same binary, same layout, same pages touched: without this a 1 MB program's peak varies by 10%. */
    if (o->no_aslr && personality((unsigned long)personality(0xffffffff) | ADDR_NO_RANDOMIZE) < 0)
        child_warn("address-space randomisation left on: personality() failed");
    if (o->dir && chdir(o->dir) < 0) child_fail("chdir");
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd < 0) child_fail("open_devnull");
    if (dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0) child_fail("dup2");
    close(null_fd);
    close(out_fd);
    close(err_fd);
    execvp(o->argv[0], o->argv);
    child_fail("exec");
}

static int become_uid(long uid) {
    return setgroups(0, NULL) == 0 && setresgid((gid_t)uid, (gid_t)uid, (gid_t)uid) == 0 &&
           setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) == 0 ? 0 : -1;
}

static int kill_uid(long uid) {
    if (become_uid(uid) < 0) {
        printf("result kind=setup_failed stage=kill_uid errno=%d\n", errno);
        return 1;
    }
    /* kill(-1) as this uid reaches exactly the processes whose real or saved uid is this uid. */
    kill(-1, SIGKILL);
    printf("result kind=killed\n");
    return 0;
}

static void kill_uid_from_helper(long uid) {
    pid_t helper = fork();
    if (helper == 0) {
        if (become_uid(uid) == 0) kill(-1, SIGKILL);
        _exit(0);
    }
    if (helper > 0) while (waitpid(helper, NULL, 0) < 0 && errno == EINTR) { }
}

static void kill_cgroup(const char *cgroup) {
    char path[4096], buffer[4096];
    snprintf(path, sizeof path, "%s/cgroup.procs", cgroup);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, buffer, sizeof buffer - 1);
    close(fd);
    if (n <= 0) return;
    buffer[n] = '\0';
    for (char *word = strtok(buffer, " \n"); word; word = strtok(NULL, " \n")) kill((pid_t)atoi(word), SIGKILL);
}

/* Kill every process whose parent is this launcher (orphans of the run land here as we are a subreaper);
   returns how many there were. Reads /proc/PID/task/PID/children, or scans /proc where that is missing. */
static int kill_own_children(void) {
    char path[320], buffer[8192];
    int count = 0;
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)getpid(), (int)getpid());
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, buffer, sizeof buffer - 1);
        close(fd);
        if (n < 0) n = 0;
        buffer[n] = '\0';
        for (char *word = strtok(buffer, " \n"); word; word = strtok(NULL, " \n")) {
            kill((pid_t)atoi(word), SIGKILL);
            count++;
        }
        return count;
    }
    DIR *proc = opendir("/proc");
    if (!proc) return 0;
    struct dirent *entry;
    while ((entry = readdir(proc)) != NULL) {
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
        snprintf(path, sizeof path, "/proc/%s/stat", entry->d_name);
        int stat_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (stat_fd < 0) continue;
        ssize_t n = read(stat_fd, buffer, sizeof buffer - 1);
        close(stat_fd);
        if (n <= 0) continue;
        buffer[n] = '\0';
        char *after_name = strrchr(buffer, ')');
        int parent = 0;
        if (after_name && sscanf(after_name + 1, " %*c %d", &parent) == 1 && parent == (int)getpid()) {
            kill((pid_t)atoi(entry->d_name), SIGKILL);
            count++;
        }
    }
    closedir(proc);
    return count;
}

static void sweep(const struct options *o, pid_t group) {
    kill(-group, SIGKILL);
    if (o->uid >= 0) kill_uid_from_helper(o->uid);
    if (o->cgroup) kill_cgroup(o->cgroup);
    for (int round = 0; round < 2000; round++) {
        while (waitpid(-1, NULL, WNOHANG) > 0) { }
        if (kill_own_children() == 0) break;
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
    }
    while (waitpid(-1, NULL, WNOHANG) > 0) { }
}

static volatile sig_atomic_t stop_requested = 0;
static void on_stop(int signal_number) { (void)signal_number; stop_requested = 1; }

static int usage(const char *why) {
    fprintf(stderr, "perfhint-launcher: %s\n"
            "usage: perfhint-launcher [--dir D] [--stdout F] [--stderr F] [--as B] [--cpu S] [--fsize B] [--stack B]\n"
            "       [--nproc N] [--uid U --gid G] [--netns] [--no-aslr] [--readonly] [--cgroup DIR]\n"
            "       [--hide DIR]... [--expose PATH]... [--writable PATH]...\n"
            "       [--tmpfs-size B] [--timeout S] -- PROGRAM ARGS...\n"
            "   or: perfhint-launcher --kill-uid U\n", why);
    return 2;
}

static double seconds(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec / 1e6; }

int main(int argc, char **argv) {
    struct options o;
    memset(&o, 0, sizeof o);
    o.uid = o.gid = -1;
    o.tmpfs_bytes = 64LL << 20;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--") == 0) { i++; break; }
        if (strcmp(a, "--netns") == 0) { o.netns = 1; continue; }
        if (strcmp(a, "--no-aslr") == 0) { o.no_aslr = 1; continue; }
        if (strcmp(a, "--readonly") == 0) { o.readonly = 1; continue; }
        if (!v) return usage("option needs a value");
        if (strcmp(a, "--kill-uid") == 0) return kill_uid(atol(v));
        else if (strcmp(a, "--dir") == 0) o.dir = v;
        else if (strcmp(a, "--stdout") == 0) o.stdout_path = v;
        else if (strcmp(a, "--stderr") == 0) o.stderr_path = v;
        else if (strcmp(a, "--cgroup") == 0) o.cgroup = v;
        else if (strcmp(a, "--as") == 0) o.as_bytes = atoll(v);
        else if (strcmp(a, "--fsize") == 0) o.fsize_bytes = atoll(v);
        else if (strcmp(a, "--stack") == 0) o.stack_bytes = atoll(v);
        else if (strcmp(a, "--tmpfs-size") == 0) o.tmpfs_bytes = atoll(v);
        else if (strcmp(a, "--cpu") == 0) o.cpu_seconds = atol(v);
        else if (strcmp(a, "--nproc") == 0) o.nproc = atol(v);
        else if (strcmp(a, "--timeout") == 0) o.timeout_s = atof(v);
        else if (strcmp(a, "--uid") == 0) o.uid = atol(v);
        else if (strcmp(a, "--gid") == 0) o.gid = atol(v);
        else if (strcmp(a, "--hide") == 0) { if (o.n_hide == MAX_PATHS) return usage("too many --hide"); o.hide[o.n_hide++] = v; }
        else if (strcmp(a, "--expose") == 0 || strcmp(a, "--writable") == 0) {
            if (o.n_expose == MAX_PATHS) return usage("too many --expose/--writable");
            o.writable[o.n_expose] = strcmp(a, "--writable") == 0;
            o.expose[o.n_expose++] = v;
        }
        else return usage("unknown option");
        i++;
    }
    if (i >= argc) return usage("no program given after --");
    if ((o.uid >= 0) != (o.gid >= 0)) return usage("--uid and --gid go together");
    o.argv = argv + i;

    int out_fd = open(o.stdout_path ? o.stdout_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int err_fd = open(o.stderr_path ? o.stderr_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out_fd < 0 || err_fd < 0) { printf("result kind=setup_failed stage=open_output errno=%d\n", errno); return 1; }
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) < 0) { printf("result kind=setup_failed stage=pipe errno=%d\n", errno); return 1; }
    fflush(stdout);

    /* Orphans of the run are reparented to us, so the sweep can find and reap them. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) printf("warning no child subreaper (errno %d)\n", errno);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_stop;  /* no SA_RESTART: wait4 returns EINTR and we look at the flags */
    sigaction(SIGALRM, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    fflush(stdout);

    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    pid_t launcher_pid = getpid();
    pid_t pid = fork();
    if (pid < 0) { printf("result kind=setup_failed stage=fork errno=%d\n", errno); return 1; }
    if (pid == 0) {
        close(pipe_fds[0]);
        report_fd = pipe_fds[1];
        /* dup2 onto 0..2 clears close-on-exec for the child's copies of the output files. */
        run_child(&o, launcher_pid, out_fd, err_fd);
    }
    setpgid(pid, pid);  /* also done by the child; whichever runs first wins the race harmlessly */
    close(pipe_fds[1]);
    close(out_fd);
    close(err_fd);
    if (o.timeout_s > 0) {
        struct itimerval timer;
        memset(&timer, 0, sizeof timer);
        timer.it_value.tv_sec = (time_t)o.timeout_s;
        timer.it_value.tv_usec = (suseconds_t)((o.timeout_s - (double)(time_t)o.timeout_s) * 1e6);
        if (timer.it_value.tv_sec == 0 && timer.it_value.tv_usec == 0) timer.it_value.tv_usec = 1;
        setitimer(ITIMER_REAL, &timer, NULL);
    }

    char buffer[4096];
    size_t used = 0;
    for (;;) {
        ssize_t n = read(pipe_fds[0], buffer + used, sizeof buffer - 1 - used);
        if (n < 0 && errno == EINTR) {
            if (stop_requested) { kill(-pid, SIGKILL); kill(pid, SIGKILL); }
            continue;
        }
        if (n <= 0) break;
        used += (size_t)n;
        if (used >= sizeof buffer - 1) break;
    }
    buffer[used] = '\0';
    close(pipe_fds[0]);

    int status = 0, timed_out = 0;
    struct rusage usage_info;
    memset(&usage_info, 0, sizeof usage_info);
    while (wait4(pid, &status, 0, &usage_info) < 0) {
        if (errno != EINTR) { printf("result kind=setup_failed stage=wait4 errno=%d\n", errno); sweep(&o, pid); return 1; }
        if (stop_requested && !timed_out) {
            timed_out = 1;
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    struct itimerval off;
    memset(&off, 0, sizeof off);
    setitimer(ITIMER_REAL, &off, NULL);
    if (stop_requested) timed_out = 1;  /* the clock ran out while the child was already dying */
    sweep(&o, pid);
    double wall = (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;

    char stage[64] = "";
    int stage_errno = 0;
    for (char *line = strtok(buffer, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "warn ", 5) == 0) printf("warning %s\n", line + 5);
        else if (sscanf(line, "fail %63s %d", stage, &stage_errno) != 2) stage[0] = '\0';
    }
    if (stage[0]) {
        printf("result kind=setup_failed stage=%s errno=%d\n", stage, stage_errno);
        return 1;
    }
    const char *kind = timed_out ? "timeout" : WIFEXITED(status) ? "exited" : "signaled";
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
    int signal_number = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    printf("result kind=%s code=%d signal=%d maxrss_kib=%ld utime_s=%.6f stime_s=%.6f wall_s=%.6f\n",
           kind, code, signal_number, usage_info.ru_maxrss, seconds(usage_info.ru_utime),
           seconds(usage_info.ru_stime), wall);
    return 0;
}
