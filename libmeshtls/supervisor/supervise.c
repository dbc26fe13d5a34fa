/*
 * mt_supervise: starts the program under the filter (filter.c), answers its notifications
 * (notify.c) until it exits, and returns the status to exit with. Signals a service manager or
 * a user sends the supervisor (INT, TERM, HUP, QUIT) are passed to the program, which decides
 * when to end; the supervisor ends with it. Should the supervisor die first, the kernel
 * kills the program (PR_SET_PDEATHSIG) and fails whatever its descendants still ask (ENOSYS).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../core/runtime.h"
#include "../util/log.h"
#include "internal.h"
#include "supervisor.h"

#define RELAYS_DRAIN_MS 5000

static volatile sig_atomic_t program_pid;

/* A signal from the terminal (SI_KERNEL: Ctrl-C, a hang-up) reached the program too,
 * in the same process group: passing it on would deliver it twice. Others were sent to us. */
static void pass_on(int number, siginfo_t *info, void *context)
{
    (void)context;
    if (program_pid > 0 && info->si_code != SI_KERNEL)
        kill((pid_t)program_pid, number);
}

static void handle_signals(void)
{
    struct sigaction passing = {.sa_sigaction = pass_on};
    sigemptyset(&passing.sa_mask);
    passing.sa_flags = SA_RESTART | SA_SIGINFO;
    int numbers[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++)
        sigaction(numbers[i], &passing, NULL);
    /* A relay writing to a program that closed its end gets EPIPE, not a signal. */
    signal(SIGPIPE, SIG_IGN);
}

/*
 * The supervisor meshes the program and everything it starts (the filter is inherited). A
 * dynamically linked descendant that also loaded the preload would be meshed twice, TLS inside
 * TLS, so the preload leaves LD_PRELOAD here (a `meshtls run` from a meshed shell inherits it);
 * other entries, a sanitizer runtime say, stay.
 */
static void drop_preload_from_environment(void)
{
    const char *value = getenv("LD_PRELOAD");
    if (value == NULL || strstr(value, "libmeshtls-preload") == NULL)
        return;
    char kept[4096] = "";
    size_t used = 0;
    const char *entry = value;
    while (*entry != '\0') {
        size_t length = strcspn(entry, ": ");
        bool ours = memmem(entry, length, "libmeshtls-preload", 18) != NULL;
        if (!ours && length > 0 && used + length + 2 < sizeof(kept)) {
            if (used > 0)
                kept[used++] = ':';
            memcpy(kept + used, entry, length);
            used += length;
            kept[used] = '\0';
        }
        entry += length;
        entry += strspn(entry, ": ");
    }
    if (used > 0)
        setenv("LD_PRELOAD", kept, 1);
    else
        unsetenv("LD_PRELOAD");
}

static int exit_status(const siginfo_t *info)
{
    if (info->si_code == CLD_EXITED)
        return info->si_status;
    return 128 + info->si_status;
}

int mt_supervise(char **program, const struct mt_config *config)
{
    struct mt_supervisor supervisor = {.config = config, .listener = -1, .child_pidfd = -1};
    int status = mt_supervisor_check_program(program[0]);
    if (status != 0)
        return status;
    drop_preload_from_environment();
    status = mt_supervisor_start(program, &supervisor.listener, &supervisor.child,
                                 &supervisor.child_pidfd);
    if (status != 0)
        return status;
    program_pid = supervisor.child;
    handle_signals();
    (void)mt_runtime_config(); /* the engine's configuration and log level, before any line */
    mt_log_info("supervisor: %s runs as pid %d, its sockets supervised", program[0],
                (int)supervisor.child);
    bool listening = true;
    for (;;) {
        struct pollfd fds[2] = {{.fd = listening ? supervisor.listener : -1, .events = POLLIN},
                                {.fd = supervisor.child_pidfd, .events = POLLIN}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        /* POLLHUP: no process uses the filter any more; only the program's exit is left. */
        if ((fds[0].revents & POLLIN) != 0)
            listening = mt_supervisor_handle_next(&supervisor);
        else if ((fds[0].revents & (POLLHUP | POLLERR)) != 0)
            listening = false;
        if ((fds[1].revents & POLLIN) != 0)
            break;
    }
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    while (waitid(P_PIDFD, (id_t)supervisor.child_pidfd, &info, WEXITED) != 0 && errno == EINTR)
        ;
    /* Its last replies may still be in the relays (its ends closed, ours flushing): let them
     * reach the peers, as they would have without us. */
    mt_supervisor_wait_relays(RELAYS_DRAIN_MS);
    return exit_status(&info);
}
