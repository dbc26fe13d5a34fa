/*
 * The meshtls command line.
 *
 *   meshtls run [--config FILE] [--allow-plaintext] [--allow-io-uring] -- PROGRAM [ARGS...]
 *                                                      run PROGRAM with its TCP connections meshed
 *   meshtls check PROGRAM                              can PROGRAM be interposed, and why not
 *   meshtls config check [FILE]                        validate a config, print the effective one
 *   meshtls config decide [FILE] outbound|inbound ADDRESS:PORT
 *                                                      the policy decision for one connection
 *   meshtls id [--socket PATH]                         the identity the agent issues to the caller
 *   meshtls version
 *
 * `run` (run.c) finds libmeshtls-preload.so next to this binary (build tree) or in the installed
 * layout relative to it, checks the configuration the program will load and the program itself,
 * and execs the program with LD_PRELOAD set. It never starts a program whose configuration is
 * broken, nor one the preload cannot protect unless --allow-plaintext is given.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../config/config.h"
#include "../exec/check.h"
#include "../identity/client.h"
#include "../include/meshtls.h"
#include "../tls/tls.h"
#include "../util/text.h"
#include "decide.h"
#include "run.h"
#include "status.h"
#include "supervise.h"

static int usage(FILE *out, int status)
{
    fprintf(out,
            "usage: meshtls run [--config FILE] [--allow-plaintext] [--allow-io-uring] --\n"
            "                   PROGRAM [ARGS...]\n"
            "       meshtls check PROGRAM\n"
            "       meshtls config check [FILE]\n"
            "       meshtls config decide [FILE] outbound|inbound ADDRESS:PORT\n"
            "       meshtls id [--socket PATH]\n"
            "       meshtls status [--socket PATH]\n"
            "       meshtls version\n"
            "\n"
            "run      runs PROGRAM with every TCP connection that policy selects turned into\n"
            "         mutual TLS 1.3, with an identity from meshtls-agent: glibc and musl\n"
            "         programs through the preload, Go and static ones through the system-call\n"
            "         supervisor; refuses (exit 126) a program it cannot protect (io_uring,\n"
            "         setuid, musl without its preload build, ...)\n"
            "         --allow-plaintext: start such a program anyway, unprotected, with a\n"
            "         warning; --allow-io-uring: mesh an io_uring program's sockets (for one\n"
            "         that uses io_uring for files only), with a warning\n"
            "check    says whether PROGRAM can be interposed (exit 0) or not (exit 1), and why\n"
            "config check\n"
            "         validates FILE (default: the configuration the library would load) and\n"
            "         prints the effective policy; exit 2 with FILE:LINE: KEY: ... on error\n"
            "config decide\n"
            "         prints the mode policy gives a connection to ADDRESS:PORT (outbound), or\n"
            "         from ADDRESS accepted on local PORT (inbound), and the key that chose it\n"
            "id       prints the SPIFFE ID the agent would issue to this process\n"
            "status   lists the processes using the agent: identities, expiry, open connections\n"
            "\n"
            "environment: MESHTLS_CONFIG (config file), MESHTLS_AGENT_SOCKET, MESHTLS_LOG,\n"
            "             MESHTLS_PROBE_SOURCES, MESHTLS_PROBE_PORTS\n");
    return status;
}

static int command_id(int argc, char **argv)
{
    struct mt_config config;
    char message[MT_CONFIG_MESSAGE_MAX];
    struct mt_text reason = mt_text_on(message, sizeof(message));
    if (!mt_result_is_ok(mt_config_load(&config, &reason))) {
        fprintf(stderr, "meshtls: configuration error: %s\n", message);
        return 2;
    }
    const char *socket_path = config.agent_socket;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc)
            socket_path = argv[++i];
        else
            return usage(stderr, 2);
    }
    char id[MT_SPIFFE_ID_MAX + 1];
    if (!mt_result_is_ok(mt_identity_query_id(socket_path, (uid_t)config.agent_uid,
                                              (int)config.agent_timeout_ms, id, sizeof(id),
                                              &reason))) {
        fprintf(stderr, "meshtls: %s\n", message);
        return 1;
    }
    printf("%s\n", id);
    return 0;
}

static int command_check(int argc, char **argv)
{
    if (argc != 1)
        return usage(stderr, 2);
    static struct mt_check_report report;
    bool interposable = mt_check_program(argv[0], NULL, &report);
    printf("%s\n", report.sentence);
    return interposable ? 0 : 1;
}

/*
 * The library's own procedure (defaults, the file, the environment), with FILE standing in for
 * MESHTLS_CONFIG when given, so what is printed is exactly what a program would run with.
 */
static int command_config(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "decide") == 0)
        return mt_cli_decide(argc - 1, argv + 1);
    if (argc < 1 || argc > 2 || strcmp(argv[0], "check") != 0)
        return usage(stderr, 2);
    if (argc == 2 && setenv("MESHTLS_CONFIG", argv[1], 1) != 0) {
        fprintf(stderr, "meshtls: %s: %s\n", argv[1], strerror(errno));
        return 2;
    }
    static struct mt_config config;
    char message[MT_CONFIG_MESSAGE_MAX];
    struct mt_text reason = mt_text_on(message, sizeof(message));
    if (!mt_result_is_ok(mt_config_load(&config, &reason))) {
        fprintf(stderr, "meshtls: configuration error: %s\n", message);
        return 2;
    }
    size_t length = mt_config_describe(&config, NULL, 0);
    char *text = malloc(length + 1);
    if (text == NULL) {
        fprintf(stderr, "meshtls: out of memory\n");
        return 2;
    }
    mt_config_describe(&config, text, length + 1);
    fputs(text, stdout);
    free(text);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr, 2);
    if (strcmp(argv[1], "run") == 0)
        return mt_cli_run(argc - 2, argv + 2);
    if (strcmp(argv[1], "id") == 0)
        return command_id(argc - 2, argv + 2);
    if (strcmp(argv[1], "check") == 0)
        return command_check(argc - 2, argv + 2);
    if (strcmp(argv[1], "status") == 0)
        return mt_cli_status(argc - 2, argv + 2);
    if (strcmp(argv[1], "supervise") == 0)
        return mt_cli_supervise(argc - 2, argv + 2);
    if (strcmp(argv[1], "config") == 0)
        return command_config(argc - 2, argv + 2);
    if (strcmp(argv[1], "version") == 0) {
        printf("meshtls %d.%d.%d\n", MESHTLS_VERSION_MAJOR, MESHTLS_VERSION_MINOR,
               MESHTLS_VERSION_PATCH);
        printf("wolfSSL %s, key exchange %s\n", mt_tls_library_version(),
               mt_tls_has_post_quantum()
                   ? "X25519MLKEM768 (post-quantum hybrid) first, X25519 and P-256 for classical "
                     "peers"
                   : "X25519 and P-256 only (this wolfSSL has no ML-KEM)");
        printf("AES-GCM records: %s\n", mt_tls_record_crypto_describe());
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0)
        return usage(stdout, 0);
    fprintf(stderr, "meshtls: unknown command %s\n", argv[1]);
    return usage(stderr, 2);
}
