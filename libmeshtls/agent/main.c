/*
 * meshtls-agent: the node-local identity issuer.
 *
 *   meshtls-agent --socket PATH --state-dir DIR [--trust-domain TD] [--config FILE]
 *                 [--lifetime SECONDS] [--log-level LEVEL] [--issuer-dir DIR]
 *                 [--extra-anchors FILE]... [--metrics-address ADDRESS|off]
 *                 [--kubelet-url URL --kubelet-token-file FILE --kubelet-ca-file FILE]
 *                 [--cgroup-root-depth N] [--membership-file FILE]
 *                 [--kube-api-url URL --kube-api-token-file FILE --kube-api-ca-file FILE]
 *
 * Owns the process: arguments, configuration, signals and the order of start-up and shutdown.
 * Runs in the foreground and logs to stderr. Every reason not to start is one line on stderr and
 * a nonzero exit; SIGTERM and SIGINT end it cleanly (exit 0, socket removed, CA key wiped). This
 * file must never start serving with a half-valid configuration or a CA it could not check.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "../util/log.h"
#include "../util/sys.h"
#include "../metrics/metrics.h"
#include "../tls/tls.h"
#include "agent_config.h"
#include "agent_metrics.h"
#include "attest.h"
#include "issuer.h"
#include "kube_watch.h"
#include "kubelet.h"
#include "pod_cgroup.h"
#include "server.h"

#define DEFAULT_SOCKET "/run/meshtls/agent.sock"
#define DEFAULT_STATE_DIR "/var/lib/meshtls-agent"
#define EXIT_USAGE 2
/* Far deeper than any kubelet tree; only bounds the flag. */
#define MT_AGENT_CGROUP_ROOT_DEPTH_MAX 1024

struct arguments {
    const char *socket_path;
    const char *state_dir;
    const char *trust_domain;
    const char *config_path;
    const char *lifetime;
    const char *log_level;
    const char *issuer_dir;
    const char *metrics_address;
    const char *kubelet_url;
    const char *kubelet_token_file;
    const char *kubelet_ca_file;
    const char *membership_file;
    const char *api_server_url;
    const char *api_server_token_file;
    const char *api_server_ca_file;
    const char *cgroup_root_depth;
    const char *anchor_files[MT_AGENT_CONFIG_ANCHOR_FILES_MAX];
    size_t anchor_file_count;
};

static void usage(FILE *stream)
{
    fprintf(stream,
            "usage: meshtls-agent [--socket PATH] [--state-dir DIR] [--trust-domain TD]\n"
            "                     [--config FILE] [--lifetime SECONDS] [--log-level LEVEL]\n"
            "                     [--issuer-dir DIR] [--extra-anchors FILE]...\n"
            "                     [--metrics-address ADDRESS|off] [--membership-file FILE]\n"
            "                     [--kubelet-url URL --kubelet-token-file FILE\n"
            "                      --kubelet-ca-file FILE] [--cgroup-root-depth N]\n"
            "                     [--kube-api-url URL --kube-api-token-file FILE\n"
            "                      --kube-api-ca-file FILE]\n"
            "\n"
            "  --socket PATH         Unix socket to serve (default " DEFAULT_SOCKET ")\n"
            "  --state-dir DIR       where the CA lives: DIR/ca.crt, DIR/ca.key\n"
            "                        (default " DEFAULT_STATE_DIR ")\n"
            "  --trust-domain TD     trust domain of issued SPIFFE IDs (default meshtls.local)\n"
            "  --config FILE         rules, trust_domain and lifetime (libconfig)\n"
            "  --lifetime SECONDS    leaf lifetime, 5 .. 2592000 (default 86400)\n"
            "  --log-level LEVEL     error, warn, info (default) or debug\n"
            "  --issuer-dir DIR      sign with DIR/tls.crt + DIR/tls.key (an intermediate CA),\n"
            "                        serve DIR/ca.crt as the trust bundle; reloaded on change\n"
            "                        (a cert-manager secret); default: the dev CA in --state-dir\n"
            "  --extra-anchors FILE  PEM CA certificates added to the trust bundle (repeatable;\n"
            "                        reloaded on change), for trust rotation\n"
            "  --metrics-address A   Prometheus metrics on http://A/metrics, host:port or off\n"
            "                        (default " MT_AGENT_CONFIG_DEFAULT_METRICS_ADDRESS ")\n"
            "  --kubelet-url URL     name callers in Kubernetes pods by their pod: GET URL/pods\n"
            "                        (https://NODE_IP:10250; an IP address, no name lookup)\n"
            "                        gives ns/<namespace>/sa/<service account>; a caller in a\n"
            "                        pod the kubelet does not list gets no identity\n"
            "  --kubelet-token-file FILE  bearer token for the kubelet, read at every query\n"
            "  --kubelet-ca-file FILE     PEM CA the kubelet's serving certificate leads to\n"
            "  --membership-file FILE  the meshed endpoints (libconfig; reloaded on change)\n"
            "                        handed to workloads whose outbound mode is \"auto\"\n"
            "  --kube-api-url URL    add the cluster's meshed pods and Services to that\n"
            "                        membership: list and watch URL/api/v1/pods and\n"
            "                        /api/v1/services (https://10.96.0.1:443; a name needs a\n"
            "                        libcurl with an asynchronous resolver)\n"
            "  --kube-api-token-file FILE  bearer token for the API server, read at every request\n"
            "  --kube-api-ca-file FILE     PEM CA the API server's certificate leads to\n"
            "  --cgroup-root-depth N levels the agent's cgroup namespace root is below the\n"
            "                        host's (0: the host's namespace); default: read from\n"
            "                        /proc/1/cgroup, which needs the host's PID namespace\n");
}

/*
 * How deep the agent's cgroup namespace root is below the host's (pod_cgroup.h): given, else from
 * the host init's /proc/1/cgroup. False, logged, when neither tells.
 */
static bool find_cgroup_root_depth(const char *given, size_t *depth)
{
    if (given != NULL) {
        char *end = NULL;
        errno = 0;
        unsigned long value = strtoul(given, &end, 10);
        if (given[0] < '0' || given[0] > '9' || *end != '\0' || errno != 0 ||
            value > MT_AGENT_CGROUP_ROOT_DEPTH_MAX) {
            mt_log_error("--cgroup-root-depth: \"%s\" is not a number of levels (0 .. %d)", given,
                         MT_AGENT_CGROUP_ROOT_DEPTH_MAX);
            return false;
        }
        *depth = (size_t)value;
        mt_log_info("the agent's cgroup namespace root is %zu level(s) below the host's "
                    "(--cgroup-root-depth)",
                    *depth);
        return true;
    }
    char text[MT_ATTEST_CGROUP_MAX];
    size_t length = 0;
    int fd = open("/proc/1/cgroup", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t got;
        while (length < sizeof(text) &&
               (got = read(fd, text + length, sizeof(text) - length)) != 0) {
            if (got < 0 && errno == EINTR)
                continue;
            if (got < 0) {
                length = 0;
                break;
            }
            length += (size_t)got;
        }
        close(fd);
    }
    /* A full buffer may be a cut file: no answer rather than one from part of it. */
    if (length == 0 || length == sizeof(text) || !mt_pod_cgroup_root_depth(text, length, depth)) {
        mt_log_error("cannot tell the agent's cgroup namespace depth from /proc/1/cgroup: run the "
                     "agent in the host's PID namespace (hostPID) or give --cgroup-root-depth");
        return false;
    }
    mt_log_info("the agent's cgroup namespace root is %zu level(s) below the host's "
                "(/proc/1/cgroup)",
                *depth);
    return true;
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
        {"issuer-dir", required_argument, NULL, 'i'},
        {"extra-anchors", required_argument, NULL, 'a'},
        {"metrics-address", required_argument, NULL, 'm'},
        {"kubelet-url", required_argument, NULL, 'K'},
        {"kubelet-token-file", required_argument, NULL, 'T'},
        {"kubelet-ca-file", required_argument, NULL, 'C'},
        {"membership-file", required_argument, NULL, 'M'},
        {"kube-api-url", required_argument, NULL, 'U'},
        {"kube-api-token-file", required_argument, NULL, 'O'},
        {"kube-api-ca-file", required_argument, NULL, 'A'},
        {"cgroup-root-depth", required_argument, NULL, 'G'},
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
        case 'i':
            arguments->issuer_dir = optarg;
            break;
        case 'a':
            if (arguments->anchor_file_count == MT_AGENT_CONFIG_ANCHOR_FILES_MAX) {
                fprintf(stderr, "meshtls-agent: at most %d --extra-anchors\n",
                        MT_AGENT_CONFIG_ANCHOR_FILES_MAX);
                return EXIT_USAGE;
            }
            arguments->anchor_files[arguments->anchor_file_count++] = optarg;
            break;
        case 'm':
            arguments->metrics_address = optarg;
            break;
        case 'K':
            arguments->kubelet_url = optarg;
            break;
        case 'T':
            arguments->kubelet_token_file = optarg;
            break;
        case 'C':
            arguments->kubelet_ca_file = optarg;
            break;
        case 'M':
            arguments->membership_file = optarg;
            break;
        case 'U':
            arguments->api_server_url = optarg;
            break;
        case 'O':
            arguments->api_server_token_file = optarg;
            break;
        case 'A':
            arguments->api_server_ca_file = optarg;
            break;
        case 'G':
            arguments->cgroup_root_depth = optarg;
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
                                    struct mt_agent_config *config, struct mt_text *reason)
{
    if (arguments->config_path != NULL)
        MT_GUARD(mt_agent_config_load_file(arguments->config_path, config, reason));
    if (arguments->trust_domain != NULL)
        MT_GUARD(mt_agent_config_set_trust_domain(config, arguments->trust_domain, reason));
    if (arguments->lifetime != NULL)
        MT_GUARD(mt_agent_config_set_lifetime(config, arguments->lifetime, reason));
    if (arguments->issuer_dir != NULL)
        MT_GUARD(mt_agent_config_set_issuer_dir(config, arguments->issuer_dir, reason));
    for (size_t i = 0; i < arguments->anchor_file_count; i++)
        MT_GUARD(mt_agent_config_add_anchor_file(config, arguments->anchor_files[i], reason));
    if (arguments->metrics_address != NULL)
        MT_GUARD(mt_agent_config_set_metrics_address(config, arguments->metrics_address, reason));
    if (arguments->membership_file != NULL)
        MT_GUARD(mt_agent_config_set_membership_file(config, arguments->membership_file, reason));
    if (arguments->kubelet_url != NULL)
        MT_GUARD(mt_agent_config_set_kubelet_url(config, arguments->kubelet_url, reason));
    if (arguments->kubelet_token_file != NULL)
        MT_GUARD(
            mt_agent_config_set_kubelet_token_file(config, arguments->kubelet_token_file, reason));
    if (arguments->kubelet_ca_file != NULL)
        MT_GUARD(mt_agent_config_set_kubelet_ca_file(config, arguments->kubelet_ca_file, reason));
    if (arguments->api_server_url != NULL)
        MT_GUARD(mt_agent_config_set_api_server_url(config, arguments->api_server_url, reason));
    if (arguments->api_server_token_file != NULL)
        MT_GUARD(mt_agent_config_set_api_server_token_file(config, arguments->api_server_token_file,
                                                           reason));
    if (arguments->api_server_ca_file != NULL)
        MT_GUARD(
            mt_agent_config_set_api_server_ca_file(config, arguments->api_server_ca_file, reason));
    MT_GUARD(mt_agent_config_check_api_server(config, reason));
    return mt_agent_config_check_kubelet(config, reason);
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
    (void)mt_log_detect_journal(); /* a systemd service: the journal adds tag and pid */
    /* The agent holds the CA key: no scratch copy of it may outlive its use in wolfSSL's heap. */
    if (!mt_result_is_ok(mt_tls_wipe_freed_memory()))
        mt_log_warn("cannot make wolfSSL wipe the memory it frees: key scratch copies may stay "
                    "in the heap until reused");

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
    struct mt_text reason = mt_text_on(message, sizeof(message));
    struct mt_agent_config config;
    struct mt_issuer issuer;
    struct mt_server server;
    struct mt_agent_http *http = NULL;
    struct mt_kubelet kubelet;
    struct mt_kube_watch kube_watch = {.wake_fd = -1};
    char description[PATH_MAX + 256];
    bool have_server = false;
    bool have_curl = false;
    bool created = false;
    int signal_fd = -1;
    int signal_number = 0;
    mt_agent_config_init(&config);
    memset(&issuer, 0, sizeof(issuer));
    mt_kubelet_init(&kubelet, config.kubelet_url, config.kubelet_token_file,
                    config.kubelet_ca_file);
    status = EXIT_FAILURE;

    if (!mt_result_is_ok(load_configuration(&arguments, &config, &reason))) {
        mt_log_error("%s", message);
        goto out;
    }
    signal_fd = open_signal_fd();
    if (signal_fd < 0) {
        mt_log_error("cannot set up signal handling: %s", strerror(errno));
        goto out;
    }
    /* The socket first: a second agent must refuse before it touches any CA. */
    if (!mt_result_is_ok(
            mt_server_open(&server, arguments.socket_path, &config, &issuer, &reason))) {
        mt_log_error("%s", message);
        goto out;
    }
    have_server = true;
    if (config.kubelet_url[0] == '\0' && arguments.cgroup_root_depth != NULL) {
        mt_log_error("--cgroup-root-depth is for callers in pods: give it with --kubelet-url");
        goto out;
    }
    if (config.kubelet_url[0] != '\0' || config.api_server_url[0] != '\0') {
        if (!mt_result_is_ok(mt_kubelet_global_init(&reason))) {
            mt_log_error("%s", message);
            goto out;
        }
        have_curl = true;
    }
    if (config.kubelet_url[0] != '\0') {
        server.kubelet = &kubelet;
        if (!find_cgroup_root_depth(arguments.cgroup_root_depth, &server.cgroup_root_depth))
            goto out;
        mt_log_info("callers in pods are named by the kubelet at %s (CA %s, token %s)",
                    config.kubelet_url, config.kubelet_ca_file, config.kubelet_token_file);
        /* At most MT_KUBELET_QUERY_TIMEOUT_MS; a failure is logged and retried on demand. */
        mt_kubelet_probe(&kubelet, mt_sys_now_ms());
    }
    if (!mt_result_is_ok(
            mt_issuer_open(&issuer, &config, arguments.state_dir, time(NULL), &created, &reason))) {
        mt_log_error("%s", message);
        goto out;
    }
    mt_issuer_describe(&issuer, description, sizeof(description));
    mt_log_info("%s %s", created ? "created" : "loaded", description);
    if (config.api_server_url[0] != '\0') {
        const char *file = config.membership_file[0] != '\0' ? config.membership_file : NULL;
        if (!mt_result_is_ok(mt_membership_source_open_kube(
                &server.membership, file, config.trust_domain, mt_sys_now_ms(), &reason))) {
            mt_log_error("%s", message);
            goto out;
        }
        /* After the signal mask is set: the watch's thread never takes SIGTERM. */
        if (!mt_result_is_ok(mt_kube_watch_start(
                &kube_watch, config.api_server_url, config.api_server_token_file,
                config.api_server_ca_file, config.trust_domain, &reason))) {
            mt_log_error("%s", message);
            goto out;
        }
        server.kube_watch = &kube_watch;
        mt_log_info("membership from the Kubernetes API server at %s (CA %s, token %s)%s%s: "
                    "not complete until its pods and services are listed",
                    config.api_server_url, config.api_server_ca_file, config.api_server_token_file,
                    file != NULL ? " and from " : "", file != NULL ? file : "");
    } else if (config.membership_file[0] != '\0') {
        if (!mt_result_is_ok(mt_membership_source_open(&server.membership, config.membership_file,
                                                       config.trust_domain, mt_sys_now_ms(),
                                                       &reason))) {
            mt_log_error("%s", message);
            goto out;
        }
        mt_log_info("membership from %s: generation %llu, %zu entries", config.membership_file,
                    (unsigned long long)server.membership.generation, server.membership.live_count);
    }
    /* After the signal mask is set: libmicrohttpd's thread inherits it and never takes SIGTERM. */
    if (!mt_result_is_ok(mt_agent_metrics_directory_create(&server.metrics_directory, &reason))) {
        mt_log_error("%s", message);
        goto out;
    }
    /* Identities matter more than metrics: an address in use costs the endpoint, not the agent. */
    if (!mt_result_is_ok(
            mt_agent_http_start(config.metrics_address, &server.metrics_directory, &http, &reason)))
        mt_log_error("%s; serving identities without a metrics endpoint", message);
    if (http != NULL)
        mt_log_info("metrics on http://%s/metrics from %s", config.metrics_address,
                    server.metrics_directory.path);
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
    mt_agent_http_stop(http);
    /* Before curl's global cleanup, which must not run while its thread uses curl. */
    mt_kube_watch_stop(&kube_watch);
    if (have_server)
        mt_server_close(&server);
    mt_issuer_close(&issuer);
    mt_kubelet_cleanup(&kubelet);
    if (have_curl)
        mt_kubelet_global_cleanup();
    mt_agent_config_cleanup(&config);
    if (signal_fd >= 0)
        close(signal_fd);
    return status;
}
