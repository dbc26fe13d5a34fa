/*
 * A TLS 1.3 client built on wolfSSL directly (not libmeshtls), for the resumption tests: it can
 * present any of several certificates and offer any ticket it has seen, inside any session's
 * state, which is what a client that copied another's ticket off the wire can do.
 *
 *   ticket_client CA_PEM CERT_PEM KEY_PEM [CERT_PEM KEY_PEM]...
 *
 * Reads one connection a line from stdin and answers each with one line on stdout:
 *
 *   PORT IDENTITY OFFER      IDENTITY: index of a certificate/key pair (0 = the first)
 *                            OFFER: "-" none; "K" the session received on connection K as it is;
 *                            "K:J" connection K's ticket inside connection J's session state (its
 *                            secret and ticket age are J's: the ticket's own checks fail); a
 *                            trailing "!" offers it for psk_ke alone (no fresh key share)
 *   → N ok|fail resumed=0|1 ticket=0|1 port=LOCAL_PORT reply=TEXT
 *
 * N counts connections from 0. On each connection the client sends "who\n" and reads one line
 * back (TEXT, which may hold spaces; "-" when none came); ticket=1 when the server sent a new
 * ticket, which becomes connection N's session. LOCAL_PORT names the connection in the
 * server's log lines.
 * Uses the meshtls/1 ALPN mark, as a meshed client does.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#define IDENTITIES_MAX 8
#define CONNECTIONS_MAX 1024
#define TICKET_MAX 1024

struct received {
    WOLFSSL_SESSION *session; /* NULL: connection N brought no ticket */
    unsigned char ticket[TICKET_MAX];
    unsigned ticket_length;
};

static WOLFSSL_CTX *contexts[IDENTITIES_MAX];
static size_t identity_count;
static struct received received[CONNECTIONS_MAX];

static int connect_loopback(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval timeout = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sets the offer on ssl: false when it names a connection that brought no ticket. */
static bool offer(WOLFSSL *ssl, const char *text, long connection)
{
    if (strcmp(text, "-") == 0)
        return true;
    size_t length = strlen(text);
    if (length > 1 && text[length - 1] == '!') {
        /* psk_ke only: a resumption without a fresh (EC)DHE share. */
        char bare[32];
        if (length >= sizeof(bare) || wolfSSL_no_dhe_psk(ssl) != 0)
            return false;
        memcpy(bare, text, length - 1);
        bare[length - 1] = '\0';
        return offer(ssl, bare, connection);
    }
    char *end = NULL;
    long ticket_from = strtol(text, &end, 10);
    long state_from = ticket_from;
    if (*end == ':')
        state_from = strtol(end + 1, &end, 10);
    if (*end != '\0' || ticket_from < 0 || ticket_from >= connection || state_from < 0 ||
        state_from >= connection || received[ticket_from].session == NULL ||
        received[state_from].session == NULL)
        return false;
    if (wolfSSL_set_session(ssl, received[state_from].session) != WOLFSSL_SUCCESS)
        return false;
    return ticket_from == state_from ||
           wolfSSL_set_SessionTicket(ssl, received[ticket_from].ticket,
                                     received[ticket_from].ticket_length) == WOLFSSL_SUCCESS;
}

/* Keeps the session ssl holds now when its ticket is not the one offered. */
static bool keep(WOLFSSL *ssl, long connection, const unsigned char *offered,
                 unsigned offered_length)
{
    struct received *entry = &received[connection];
    entry->ticket_length = sizeof(entry->ticket);
    if (wolfSSL_get_SessionTicket(ssl, entry->ticket, &entry->ticket_length) != WOLFSSL_SUCCESS ||
        entry->ticket_length == 0 ||
        (entry->ticket_length == offered_length &&
         memcmp(entry->ticket, offered, offered_length) == 0))
        return false;
    WOLFSSL_SESSION *current = wolfSSL_get1_session(ssl);
    entry->session = current != NULL ? wolfSSL_SESSION_dup(current) : NULL;
    wolfSSL_SESSION_free(current);
    return entry->session != NULL;
}

static void run(int port, size_t identity, const char *offer_text, long connection)
{
    char reply[2100] = "-";
    bool ok = false;
    bool resumed = false;
    bool ticket = false;
    unsigned char offered[TICKET_MAX];
    unsigned offered_length = sizeof(offered);
    WOLFSSL *ssl = identity < identity_count ? wolfSSL_new(contexts[identity]) : NULL;
    int fd = ssl != NULL ? connect_loopback(port) : -1;
    struct sockaddr_in local = {0};
    socklen_t local_length = sizeof(local);
    if (fd >= 0)
        getsockname(fd, (struct sockaddr *)&local, &local_length);
    if (fd < 0 || !offer(ssl, offer_text, connection) ||
        wolfSSL_UseALPN(ssl, (char *)"meshtls/1", 9, WOLFSSL_ALPN_CONTINUE_ON_MISMATCH) !=
            WOLFSSL_SUCCESS)
        goto out;
    if (wolfSSL_get_SessionTicket(ssl, offered, &offered_length) != WOLFSSL_SUCCESS)
        offered_length = 0;
    wolfSSL_set_fd(ssl, fd);
    if (wolfSSL_connect(ssl) != WOLFSSL_SUCCESS || wolfSSL_write(ssl, "who\n", 4) != 4)
        goto out;
    size_t used = 0;
    while (used < sizeof(reply) - 1) {
        int n = wolfSSL_read(ssl, reply + used, (int)(sizeof(reply) - 1 - used));
        if (n <= 0)
            break;
        used += (size_t)n;
        if (memchr(reply, '\n', used) != NULL)
            break;
    }
    reply[used] = '\0';
    char *newline = strchr(reply, '\n');
    ok = newline != NULL;
    if (newline != NULL)
        *newline = '\0';
    else
        snprintf(reply, sizeof(reply), "-");
    resumed = wolfSSL_session_reused(ssl) != 0;
    ticket = ok && keep(ssl, connection, offered, offered_length);
out:
    printf("%ld %s resumed=%d ticket=%d port=%u reply=%s\n", connection, ok ? "ok" : "fail",
           resumed, ticket, ntohs(local.sin_port), reply[0] != '\0' ? reply : "-");
    fflush(stdout);
    if (ssl != NULL)
        wolfSSL_free(ssl);
    if (fd >= 0)
        close(fd);
}

int main(int argc, char **argv)
{
    if (argc < 4 || (argc - 2) % 2 != 0 || (size_t)(argc - 2) / 2 > IDENTITIES_MAX) {
        fprintf(stderr, "usage: ticket_client CA_PEM CERT_PEM KEY_PEM [CERT_PEM KEY_PEM]...\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* a refused connection is reported, not fatal */
    if (wolfSSL_Init() != WOLFSSL_SUCCESS)
        return 1;
    for (int i = 2; i + 1 < argc; i += 2) {
        WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
        if (ctx == NULL ||
            wolfSSL_CTX_load_verify_locations(ctx, argv[1], NULL) != WOLFSSL_SUCCESS ||
            wolfSSL_CTX_use_certificate_chain_file(ctx, argv[i]) != WOLFSSL_SUCCESS ||
            wolfSSL_CTX_use_PrivateKey_file(ctx, argv[i + 1], WOLFSSL_FILETYPE_PEM) !=
                WOLFSSL_SUCCESS) {
            fprintf(stderr, "ticket_client: cannot load %s / %s\n", argv[i], argv[i + 1]);
            return 1;
        }
        wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL);
        contexts[identity_count++] = ctx;
    }
    char line[256];
    long connection = 0;
    while (connection < CONNECTIONS_MAX && fgets(line, sizeof(line), stdin) != NULL) {
        int port = 0;
        size_t identity = 0;
        char offer_text[64];
        if (sscanf(line, "%d %zu %63s", &port, &identity, offer_text) != 3) {
            fprintf(stderr, "ticket_client: cannot parse %s", line);
            return 2;
        }
        run(port, identity, offer_text, connection++);
    }
    return 0;
}
