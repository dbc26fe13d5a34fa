/*
 * meshtls-injector: the mutating admission webhook that meshes pods.
 *
 *   meshtls-injector --tls-cert FILE --tls-key FILE [--listen ADDRESS:PORT]
 *                    [--inject-default enabled|disabled] [--log-level LEVEL]
 *
 * Owns the process: arguments, signals, and the loop that looks at the certificate files once a
 * second. Runs in the foreground and logs to stderr. Every reason not to start is one line on
 * stderr naming the flag or file and a nonzero exit; SIGTERM and SIGINT end it cleanly (exit 0).
 * This file must never start serving with a certificate or key it could not load.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "../util/log.h"
#include "server.h"

#define DEFAULT_LISTEN "0.0.0.0:8443"
#define EXIT_USAGE 2
/* How often the certificate files are looked at (a stat each). */
#define RELOAD_CHECK_MS 1000
#define MESSAGE_MAX 512

struct arguments {
    struct mt_injector_server_options server;
    const char *log_level;
};

static void usage(FILE *stream)
{
    fprintf(stream,
            "usage: meshtls-injector --tls-cert FILE --tls-key FILE [--listen ADDRESS:PORT]\n"
            "                        [--inject-default enabled|disabled] [--log-level LEVEL]\n"
            "\n"
            "Kubernetes mutating admission webhook: POST /mutate (AdmissionReview v1) adds the\n"
            "libmeshtls preload, the node agent's socket and the workload configuration to pods.\n"
            "\n"
            "  --tls-cert FILE        PEM certificate chain served (read again when it changes)\n"
            "  --tls-key FILE         PEM private key of the certificate (likewise)\n"
            "  --listen ADDRESS:PORT  numeric address to serve HTTPS on (default " DEFAULT_LISTEN
            ")\n"
            "  --inject-default D     for pods without the meshtls.io/inject annotation: enabled\n"
            "                         or disabled (default disabled)\n"
            "  --log-level LEVEL      error, warn, info (default) or debug\n");
}

/* Returns -1 to continue, else the exit status. */
static int parse_arguments(int argc, char **argv, struct arguments *arguments)
{
    static const struct option options[] = {
        {"listen", required_argument, NULL, 'l'},
        {"tls-cert", required_argument, NULL, 'c'},
        {"tls-key", required_argument, NULL, 'k'},
        {"inject-default", required_argument, NULL, 'd'},
        {"log-level", required_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *arguments = (struct arguments){.server = {.listen_address = DEFAULT_LISTEN}};
    int option;
    while ((option = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (option) {
        case 'l':
            arguments->server.listen_address = optarg;
            break;
        case 'c':
            arguments->server.cert_path = optarg;
            break;
        case 'k':
            arguments->server.key_path = optarg;
            break;
        case 'd':
            if (strcmp(optarg, "enabled") != 0 && strcmp(optarg, "disabled") != 0) {
                fprintf(stderr,
                        "meshtls-injector: --inject-default: \"%s\" is neither enabled nor "
                        "disabled\n",
                        optarg);
                return EXIT_USAGE;
            }
            arguments->server.inject_default = strcmp(optarg, "enabled") == 0;
            break;
        case 'v':
            arguments->log_level = optarg;
            break;
        case 'h':
            usage(stdout);
            return EXIT_SUCCESS;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "meshtls-injector: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }
    if (arguments->server.cert_path == NULL || arguments->server.key_path == NULL) {
        fprintf(stderr, "meshtls-injector: --tls-cert and --tls-key are required\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    return -1;
}

/*
 * SIGTERM and SIGINT are blocked (libmicrohttpd's thread inherits the mask) and read from a
 * signalfd by the loop; SIGPIPE is ignored because an API server may hang up mid-answer.
 */
static int open_signal_fd(void)
{
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    if (sigprocmask(SIG_BLOCK, &signals, NULL) != 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
}

int main(int argc, char **argv)
{
    mt_log_set_tag("meshtls-injector");
    mt_log_set_level(MT_LOG_INFO);
    struct arguments arguments;
    int status = parse_arguments(argc, argv, &arguments);
    if (status >= 0)
        return status;
    if (arguments.log_level != NULL) {
        enum mt_log_level level;
        if (!mt_log_level_parse(arguments.log_level, &level)) {
            fprintf(stderr,
                    "meshtls-injector: --log-level: \"%s\" is not one of error, warn, info, "
                    "debug\n",
                    arguments.log_level);
            return EXIT_USAGE;
        }
        mt_log_set_level(level);
    }

    status = EXIT_FAILURE;
    char message[MESSAGE_MAX];
    struct mt_injector_server *server = NULL;
    int signal_fd = open_signal_fd();
    if (signal_fd < 0) {
        mt_log_error("cannot set up signal handling: %s", strerror(errno));
        goto out;
    }
    if (!mt_result_is_ok(
            mt_injector_server_start(&arguments.server, &server, MT_TEXT_ON(message)))) {
        mt_log_error("%s", message);
        goto out;
    }
    mt_log_info("serving https://%s/mutate (pods without meshtls.io/inject: %s)",
                arguments.server.listen_address,
                arguments.server.inject_default ? "injected" : "not injected");
    for (;;) {
        struct pollfd waiting = {.fd = signal_fd, .events = POLLIN};
        int ready = poll(&waiting, 1, RELOAD_CHECK_MS);
        if (ready < 0 && errno != EINTR) {
            mt_log_error("poll failed: %s", strerror(errno));
            goto out;
        }
        if (ready > 0) {
            struct signalfd_siginfo received;
            if (read(signal_fd, &received, sizeof(received)) == (ssize_t)sizeof(received)) {
                mt_log_info("signal %u: stopping", received.ssi_signo);
                break;
            }
        }
        if (!mt_result_is_ok(mt_injector_server_reload(server, MT_TEXT_ON(message)))) {
            mt_log_error("%s", message);
            goto out;
        }
    }
    status = EXIT_SUCCESS;
out:
    mt_injector_server_stop(server);
    if (signal_fd >= 0)
        close(signal_fd);
    return status;
}
