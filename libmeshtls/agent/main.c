/*
 * meshtls-agent: the node-local identity issuer.
 *
 *   meshtls-agent --socket PATH --state-dir DIR [--trust-domain TD] [--config FILE]
 *                 [--lifetime SECONDS] [--log-level LEVEL]
 *
 * Owns the process: arguments, configuration, signals and the order of start-up and shutdown.
 * Runs in the foreground and logs to stderr. Every reason not to start is one line on stderr and
 * a nonzero exit; SIGTERM and SIGINT end it cleanly (exit 0, socket removed, CA key wiped). This
 * file must never start serving with a half-valid configuration or a CA it could not check.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "../util/log.h"
#include "agent_config.h"
#include "ca.h"
#include "server.h"

#define DEFAULT_SOCKET "/run/meshtls/agent.sock"
#define DEFAULT_STATE_DIR "/var/lib/meshtls-agent"
#define EXIT_USAGE 2

struct arguments {
    const char *socket_path;
    const char *state_dir;
    const char *trust_domain;
    const char *config_path;
    const char *lifetime;
    const char *log_level;
};

static void usage(FILE *stream)
{
    fprintf(stream,
            "usage: meshtls-agent [--socket PATH] [--state-dir DIR] [--trust-domain TD]\n"
            "                     [--config FILE] [--lifetime SECONDS] [--log-level LEVEL]\n"
            "\n"
            "  --socket PATH         Unix socket to serve (default " DEFAULT_SOCKET ")\n"
            "  --state-dir DIR       where the CA lives: DIR/ca.crt, DIR/ca.key\n"
            "                        (default " DEFAULT_STATE_DIR ")\n"
            "  --trust-domain TD     trust domain of issued SPIFFE IDs (default meshtls.local)\n"
            "  --config FILE         rules, trust_domain and lifetime (libconfig)\n"
            "  --lifetime SECONDS    leaf lifetime, 60 .. 2592000 (default 86400)\n"
            "  --log-level LEVEL     error, warn, info (default) or debug\n");
}

/* Returns -1 to continue, else the exit status. */
static int parse_arguments(int argc, char **argv, struct arguments *arguments)
{
    static const struct option options[] = {
        {"socket", required_argument, NULL, 's'},
        {"state-dir", required_argument, NULL, 'd'},
        {"trust-domain", required_argument, NULL, 't'},
        {"config", required_argument, NULL, 'c'},
        {"lifetime", required_argument, NULL, 'l'},
        {"log-level", required_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *arguments = (struct arguments){.socket_path = DEFAULT_SOCKET, .state_dir = DEFAULT_STATE_DIR};
    int option;
    while ((option = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (option) {
        case 's':
            arguments->socket_path = optarg;
            break;
        case 'd':
            arguments->state_dir = optarg;
            break;
        case 't':
            arguments->trust_domain = optarg;
            break;
        case 'c':
            arguments->config_path = optarg;
            break;
        case 'l':
            arguments->lifetime = optarg;
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
        fprintf(stderr, "meshtls-agent: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }
    if (arguments->state_dir[0] == '\0') {
        fprintf(stderr, "meshtls-agent: --state-dir must not be empty\n");
        return EXIT_USAGE;
    }
    return -1;
}

/* The file first, then the flags over it: a flag always wins. */
static MT_RESULT load_configuration(const struct arguments *arguments,
                                    struct mt_agent_config *config, char *message,
                                    size_t message_size)
{
    if (arguments->config_path != NULL)
        MT_GUARD(mt_agent_config_load_file(arguments->config_path, config, message, message_size));
    if (arguments->trust_domain != NULL)
        MT_GUARD(mt_agent_config_set_trust_domain(config, arguments->trust_domain, message,
                                                  message_size));
    if (arguments->lifetime != NULL)
        MT_GUARD(mt_agent_config_set_lifetime(config, arguments->lifetime, message, message_size));
    return MT_OK_RESULT;
}

/*
 * SIGTERM and SIGINT are blocked and read from a signalfd by the event loop, so they end it at a
 * point where cleanup is safe; SIGPIPE is ignored because a client may vanish mid-reply.
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
    mt_log_set_tag("meshtls-agent");
    mt_log_set_level(MT_LOG_INFO);

    struct arguments arguments;
    int status = parse_arguments(argc, argv, &arguments);
    if (status >= 0)
        return status;
    if (arguments.log_level != NULL) {
        enum mt_log_level level;
        if (!mt_log_level_parse(arguments.log_level, &level)) {
            fprintf(stderr,
                    "meshtls-agent: --log-level: \"%s\" is not one of error, warn, "
                    "info, debug\n",
                    arguments.log_level);
            return EXIT_USAGE;
        }
        mt_log_set_level(level);
    }

    char message[MT_AGENT_CONFIG_MESSAGE_MAX];
    struct mt_agent_config config;
    struct mt_ca ca;
    struct mt_server server;
    bool have_server = false;
    bool created = false;
    int signal_fd = -1;
    int signal_number = 0;
    mt_agent_config_init(&config);
    memset(&ca, 0, sizeof(ca));
    status = EXIT_FAILURE;

    if (!mt_result_is_ok(load_configuration(&arguments, &config, message, sizeof(message)))) {
        mt_log_error("%s", message);
        goto out;
    }
    signal_fd = open_signal_fd();
    if (signal_fd < 0) {
        mt_log_error("cannot set up signal handling: %s", strerror(errno));
        goto out;
    }
    /* The socket first: a second agent must refuse before it touches any CA. */
    if (!mt_result_is_ok(mt_server_open(&server, arguments.socket_path, &config, &ca, message,
                                        sizeof(message)))) {
        mt_log_error("%s", message);
        goto out;
    }
    have_server = true;
    if (!mt_result_is_ok(mt_ca_load_or_create(arguments.state_dir, config.trust_domain, time(NULL),
                                              &ca, &created, message, sizeof(message)))) {
        mt_log_error("%s", message);
        goto out;
    }
    mt_log_info("%s CA for trust domain %s at %s", created ? "created" : "loaded", ca.trust_domain,
                ca.cert_path);
    mt_log_info("serving %s: leaf lifetime %u s, %zu rule(s)%s%s", arguments.socket_path,
                (unsigned)config.lifetime_seconds, config.rule_count,
                config.source[0] != '\0' ? " from " : "", config.source);

    if (!mt_result_is_ok(mt_server_run(&server, signal_fd, &signal_number))) {
        mt_log_error("event loop failed: %s", strerror(errno));
        goto out;
    }
    mt_log_info("received %s, shutting down", strsignal(signal_number));
    status = EXIT_SUCCESS;

out:
    if (have_server)
        mt_server_close(&server);
    mt_ca_cleanup(&ca);
    mt_agent_config_cleanup(&config);
    if (signal_fd >= 0)
        close(signal_fd);
    return status;
}
