/*
 * The webhook's HTTPS endpoint (see server.h), on libmicrohttpd with its GnuTLS backend.
 *
 * Owns the listening socket, the certificate and key in memory, the request bodies being
 * received and the routing of requests; the answers come from review.c. Requests are answered
 * on libmicrohttpd's one internal thread, bounded in connections, time and body size. A new
 * certificate takes over without a restart: the new pair is first loaded by a daemon with no
 * socket (GnuTLS checks the PEM and that the key matches the certificate), then the serving
 * daemon is quiesced (MHD_quiesce_daemon hands back its listening socket), a new daemon is
 * started on that socket, and the old one is stopped once its open connections are done. This
 * file must never serve a pair GnuTLS did not accept, never parse a body larger than
 * MT_INJECTOR_BODY_MAX, and never drop the listening socket while a pair that loads is known.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../util/addr.h"
#include "../util/log.h"
#include "../util/secret.h"
#include "review.h"
#include "server.h"

#define CONNECTIONS_MAX 64
#define CONNECTION_TIMEOUT_SECONDS 10
/* PEM files larger than this are not a certificate chain or a key. */
#define PEM_FILE_MAX (1024 * 1024)
/* The API server speaks TLS 1.2 and 1.3; nothing older. */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
/* How long a replaced daemon may take to finish its open connections (50 ms steps). */
#define DRAIN_STEPS 200
#define DRAIN_STEP_NS (50 * 1000 * 1000L)
#define LIBRARY_MESSAGE_MAX 256

/* What identifies a file's content without reading it: a replaced or rewritten file differs. */
struct file_version {
    dev_t device;
    ino_t inode;
    off_t size;
    struct timespec modified;
    struct timespec changed;
};

/* A certificate and key as read from their files. The key is in secret memory (secret.h). */
struct credentials {
    char *cert;
    char *key;
    struct file_version cert_version;
    struct file_version key_version;
};

/* A running daemon and the pair it serves, which libmicrohttpd reads from our memory. */
struct daemon {
    struct MHD_Daemon *daemon;
    struct credentials credentials;
    /* libmicrohttpd's messages during the start, for the reason of a failed one. */
    char message[LIBRARY_MESSAGE_MAX];
    atomic_bool starting;
};

struct mt_injector_server {
    struct daemon *serving;
    struct sockaddr_storage address;
    const char *cert_path;
    const char *key_path;
    bool inject_default;
    /* The files' versions last read, loaded or not: a bad pair is reported once. */
    struct file_version cert_seen;
    struct file_version key_seen;
};

/* A request body being received. */
struct upload {
    char *data;
    size_t length;
    size_t capacity;
    bool too_large;
};

static bool is_same_version(const struct file_version *a, const struct file_version *b)
{
    return a->device == b->device && a->inode == b->inode && a->size == b->size &&
           a->modified.tv_sec == b->modified.tv_sec && a->modified.tv_nsec == b->modified.tv_nsec &&
           a->changed.tv_sec == b->changed.tv_sec && a->changed.tv_nsec == b->changed.tv_nsec;
}

static struct file_version version_of(const struct stat *status)
{
    return (struct file_version){status->st_dev, status->st_ino, status->st_size, status->st_mtim,
                                 status->st_ctim};
}

static void credentials_free(struct credentials *credentials)
{
    free(credentials->cert);
    mt_secret_free(credentials->key);
    credentials->cert = NULL;
    credentials->key = NULL;
}

/*
 * Reads the PEM file at path (named by flag in messages) into memory, NUL-terminated: a secret
 * buffer for a key. marker is what a PEM block of the right kind contains.
 */
static MT_RESULT read_pem(const char *flag, const char *path, const char *marker, bool secret,
                          char **text, struct file_version *version, struct mt_text *reason)
{
    *text = NULL;
    mt_result result = MT_OK_RESULT;
    char *data = NULL;
    FILE *file = fopen(path, "re");
    if (file == NULL)
        return mt_result_explain(reason, MT_ERR_CONFIG, "%s %s: %s", flag, path, strerror(errno));
    /* Unbuffered: stdio's buffer would be a copy of the key in the heap. */
    setvbuf(file, NULL, _IONBF, 0);
    struct stat status;
    if (fstat(fileno(file), &status) != 0 || !S_ISREG(status.st_mode)) {
        result = mt_result_explain(reason, MT_ERR_CONFIG, "%s %s: not a regular file", flag, path);
        goto out;
    }
    if (status.st_size == 0 || status.st_size > PEM_FILE_MAX) {
        result = mt_result_explain(reason, MT_ERR_CONFIG, "%s %s: %s", flag, path,
                                   status.st_size == 0 ? "empty"
                                                       : "larger than a PEM file can be (1 MiB)");
        goto out;
    }
    size_t size = (size_t)status.st_size;
    if (secret) {
        void *memory;
        result = mt_secret_alloc(size + 1, &memory);
        data = memory;
    } else {
        data = calloc(1, size + 1);
        result = mt_result_of(data == NULL ? MT_ERR_NO_MEMORY : MT_OK);
    }
    if (!mt_result_is_ok(result))
        goto out;
    if (fread(data, 1, size, file) != size) {
        result = mt_result_explain(reason, MT_ERR_CONFIG, "%s %s: read failed", flag, path);
        goto out;
    }
    data[size] = '\0';
    if (strlen(data) != size || strstr(data, "-----BEGIN ") == NULL ||
        strstr(data, marker) == NULL) {
        result = mt_result_explain(reason, MT_ERR_CONFIG, "%s %s: no PEM block with \"%s\" in it",
                                   flag, path, marker);
        goto out;
    }
    *text = data;
    data = NULL;
    *version = version_of(&status);
out:
    if (secret)
        mt_secret_free(data);
    else
        free(data);
    fclose(file);
    return result;
}

static MT_RESULT read_credentials(const struct mt_injector_server *server,
                                  struct credentials *credentials, struct mt_text *reason)
{
    *credentials = (struct credentials){0};
    MT_GUARD(read_pem("--tls-cert", server->cert_path, "CERTIFICATE-----", false,
                      &credentials->cert, &credentials->cert_version, reason));
    mt_result result = read_pem("--tls-key", server->key_path, "PRIVATE KEY-----", true,
                                &credentials->key, &credentials->key_version, reason);
    if (!mt_result_is_ok(result))
        credentials_free(credentials);
    return result;
}

__attribute__((format(printf, 2, 0))) static void
log_library_message(void *context, const char *format, va_list arguments)
{
    struct daemon *daemon = context;
    char line[LIBRARY_MESSAGE_MAX];
    vsnprintf(line, sizeof(line), format, arguments);
    line[strcspn(line, "\n")] = '\0';
    /* A failed start says what went wrong first (GnuTLS's reason), then that TLS failed: keep
     * them all. At run time these are a client's failed handshakes and the like: the API server
     * reports its side of them. */
    if (atomic_load(&daemon->starting)) {
        struct mt_text message = {daemon->message, sizeof(daemon->message), strlen(daemon->message),
                                  strlen(daemon->message)};
        mt_text_append(&message, "%s%s", message.length > 0 ? "; " : "", line);
    }
    mt_log_debug("libmicrohttpd: %s", line);
}

static enum MHD_Result send_answer(struct MHD_Connection *connection,
                                   struct mt_injector_answer *answer)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer(answer->length, answer->body, MHD_RESPMEM_MUST_FREE);
    if (response == NULL) {
        mt_injector_answer_free(answer);
        return MHD_NO;
    }
    answer->body = NULL; /* the response's now */
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, answer->content_type);
    enum MHD_Result result = MHD_queue_response(connection, answer->status, response);
    MHD_destroy_response(response);
    return result;
}

static enum MHD_Result send_text(struct MHD_Connection *connection, unsigned status,
                                 const char *message)
{
    struct mt_injector_answer answer;
    if (!mt_result_is_ok(mt_injector_answer_text(status, message, &answer)))
        return MHD_NO;
    return send_answer(connection, &answer);
}

/* Keeps the body's bytes, or only counts them once it is known to be too large. */
static void receive(struct upload *upload, const char *data, size_t size)
{
    if (upload->too_large)
        return;
    if (size > MT_INJECTOR_BODY_MAX - upload->length) {
        upload->too_large = true;
        free(upload->data);
        *upload = (struct upload){.too_large = true};
        return;
    }
    if (upload->length + size > upload->capacity) {
        size_t capacity = upload->capacity == 0 ? 64 * 1024 : upload->capacity;
        while (capacity < upload->length + size)
            capacity *= 2;
        if (capacity > MT_INJECTOR_BODY_MAX)
            capacity = MT_INJECTOR_BODY_MAX;
        char *grown = realloc(upload->data, capacity);
        if (grown == NULL) {
            /* Answered as too large: the one body this server cannot take. */
            free(upload->data);
            *upload = (struct upload){.too_large = true};
            return;
        }
        upload->data = grown;
        upload->capacity = capacity;
    }
    memcpy(upload->data + upload->length, data, size);
    upload->length += size;
}

static bool is_content_length_too_large(struct MHD_Connection *connection)
{
    const char *value =
        MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (value == NULL)
        return false;
    errno = 0;
    unsigned long long length = strtoull(value, NULL, 10);
    return errno != 0 || length > MT_INJECTOR_BODY_MAX;
}

static enum MHD_Result answer_mutate(struct mt_injector_server *server,
                                     struct MHD_Connection *connection, struct upload *upload)
{
    if (upload->too_large)
        return send_text(connection, MHD_HTTP_CONTENT_TOO_LARGE,
                         "the request body is larger than 4194304 bytes");
    struct mt_injector_answer answer;
    if (!mt_result_is_ok(mt_injector_review_answer(upload->data == NULL ? "" : upload->data,
                                                   upload->length, server->inject_default,
                                                   &answer))) {
        mt_log_error("out of memory answering an AdmissionReview");
        return send_text(connection, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    return send_answer(connection, &answer);
}

/*
 * libmicrohttpd calls this first with the headers (*request_context NULL), then with each piece
 * of the body, then once more with none: every request is answered at that last call.
 */
static enum MHD_Result handle_request(void *context, struct MHD_Connection *connection,
                                      const char *url, const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **request_context)
{
    struct mt_injector_server *server = context;
    struct upload *upload = *request_context;
    if (upload == NULL) {
        upload = calloc(1, sizeof(*upload));
        if (upload == NULL)
            return MHD_NO;
        upload->too_large = is_content_length_too_large(connection);
        *request_context = upload;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        receive(upload, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    bool is_get =
        strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    if (strcmp(url, "/healthz") == 0)
        return is_get ? send_text(connection, MHD_HTTP_OK, "ok")
                      : send_text(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "GET /healthz only");
    if (strcmp(url, "/mutate") != 0)
        return send_text(connection, MHD_HTTP_NOT_FOUND,
                         "no such path (POST /mutate, GET /healthz)");
    if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
        return send_text(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "POST /mutate only");
    return answer_mutate(server, connection, upload);
}

static void request_completed(void *context, struct MHD_Connection *connection,
                              void **request_context, enum MHD_RequestTerminationCode code)
{
    struct upload *upload = *request_context;
    if (upload != NULL)
        free(upload->data);
    free(upload);
    *request_context = NULL;
}

static void daemon_free(struct daemon *daemon)
{
    if (daemon == NULL)
        return;
    credentials_free(&daemon->credentials);
    free(daemon);
}

/*
 * Starts a daemon serving credentials (taken over, even on failure) on listen_socket, on the
 * server's address when it is -1, or on no socket at all when check_only (a load of the pair and
 * nothing else). On failure reason has libmicrohttpd's or the system's explanation.
 */
static MT_RESULT daemon_start(struct mt_injector_server *server, struct credentials *credentials,
                              int listen_socket, bool check_only, struct daemon **started,
                              struct mt_text *reason)
{
    *started = NULL;
    struct daemon *daemon = calloc(1, sizeof(*daemon));
    if (daemon == NULL) {
        credentials_free(credentials);
        return mt_result_of(MT_ERR_NO_MEMORY);
    }
    daemon->credentials = *credentials;
    *credentials = (struct credentials){0};
    unsigned flags = MHD_USE_TLS | MHD_USE_ERROR_LOG;
    if (check_only)
        flags |= MHD_USE_NO_LISTEN_SOCKET;
    else
        flags |= MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC;
    if (server->address.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    struct MHD_OptionItem where[2] = {{MHD_OPTION_END, 0, NULL}, {MHD_OPTION_END, 0, NULL}};
    if (listen_socket >= 0)
        where[0] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, listen_socket, NULL};
    else if (!check_only)
        where[0] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &server->address};
    atomic_init(&daemon->starting, true);
    errno = 0;
    daemon->daemon = MHD_start_daemon(
        flags, mt_addr_port(&server->address), NULL, NULL, handle_request, server,
        MHD_OPTION_EXTERNAL_LOGGER, log_library_message, daemon, MHD_OPTION_HTTPS_MEM_CERT,
        daemon->credentials.cert, MHD_OPTION_HTTPS_MEM_KEY, daemon->credentials.key,
        MHD_OPTION_HTTPS_PRIORITIES, TLS_PRIORITIES, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)CONNECTIONS_MAX, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)CONNECTION_TIMEOUT_SECONDS, MHD_OPTION_NOTIFY_COMPLETED, request_completed, NULL,
        MHD_OPTION_ARRAY, where, MHD_OPTION_END);
    if (daemon->daemon == NULL) {
        int error = errno;
        mt_result result = mt_result_explain(reason, MT_ERR_CONFIG, "%s",
                                             daemon->message[0] != '\0' ? daemon->message
                                             : error != 0               ? strerror(error)
                                                          : "libmicrohttpd could not start");
        daemon_free(daemon);
        return result;
    }
    atomic_store(&daemon->starting, false);
    *started = daemon;
    return MT_OK_RESULT;
}

/* Loads credentials in a daemon with no socket: succeeds when GnuTLS accepts the pair. */
static MT_RESULT check_credentials(struct mt_injector_server *server,
                                   const struct credentials *credentials, struct mt_text *reason)
{
    struct credentials copy = {0};
    copy.cert = strdup(credentials->cert);
    void *key = NULL;
    size_t key_length = strlen(credentials->key);
    if (copy.cert == NULL || !mt_result_is_ok(mt_secret_alloc(key_length + 1, &key))) {
        credentials_free(&copy);
        return mt_result_of(MT_ERR_NO_MEMORY);
    }
    memcpy(key, credentials->key, key_length + 1);
    copy.key = key;
    struct daemon *checker;
    MT_GUARD(daemon_start(server, &copy, -1, true, &checker, reason));
    MHD_stop_daemon(checker->daemon);
    daemon_free(checker);
    return MT_OK_RESULT;
}

MT_RESULT mt_injector_server_start(const struct mt_injector_server_options *options,
                                   struct mt_injector_server **server, struct mt_text *reason)
{
    MT_ENSURE_REF(options);
    MT_ENSURE_REF(server);
    *server = NULL;
    struct mt_injector_server *created = calloc(1, sizeof(*created));
    MT_ENSURE(created != NULL, MT_ERR_NO_MEMORY);
    created->cert_path = options->cert_path;
    created->key_path = options->key_path;
    created->inject_default = options->inject_default;
    struct credentials credentials = {0};
    mt_result result = MT_OK_RESULT;
    if (!mt_addr_parse(options->listen_address, &created->address) ||
        mt_addr_port(&created->address) == 0) {
        result = mt_result_explain(reason, MT_ERR_CONFIG,
                                   "--listen \"%s\" is not a numeric host:port (e.g. "
                                   "0.0.0.0:8443 or [::]:8443)",
                                   options->listen_address);
        goto out;
    }
    result = read_credentials(created, &credentials, reason);
    if (!mt_result_is_ok(result))
        goto out;
    created->cert_seen = credentials.cert_version;
    created->key_seen = credentials.key_version;
    char message[LIBRARY_MESSAGE_MAX];
    result = daemon_start(created, &credentials, -1, false, &created->serving, MT_TEXT_ON(message));
    if (!mt_result_is_ok(result))
        result = mt_result_explain(reason, result.error,
                                   "cannot serve HTTPS on %s with --tls-cert %s and --tls-key %s: "
                                   "%s",
                                   options->listen_address, options->cert_path, options->key_path,
                                   message);
out:
    credentials_free(&credentials);
    if (mt_result_is_ok(result))
        *server = created;
    else
        free(created);
    return result;
}

/* Stops a quiesced daemon once its open connections are done, or after the drain time. */
static void drain_and_stop(struct daemon *daemon)
{
    for (int step = 0; step < DRAIN_STEPS; step++) {
        const union MHD_DaemonInfo *info =
            MHD_get_daemon_info(daemon->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        if (info == NULL || info->num_connections == 0)
            break;
        nanosleep(&(struct timespec){0, DRAIN_STEP_NS}, NULL);
    }
    MHD_stop_daemon(daemon->daemon);
    daemon_free(daemon);
}

/* Moves the listening socket from the serving daemon to one serving credentials. */
static MT_RESULT take_over(struct mt_injector_server *server, struct credentials *credentials,
                           struct mt_text *reason)
{
    struct daemon *old = server->serving;
    MHD_socket listen_socket = MHD_quiesce_daemon(old->daemon);
    if (listen_socket == MHD_INVALID_SOCKET) {
        credentials_free(credentials);
        return mt_result_explain(reason, MT_ERR_IO,
                                 "cannot take the listening socket from the running daemon");
    }
    char message[LIBRARY_MESSAGE_MAX];
    struct daemon *replacement;
    mt_result result =
        daemon_start(server, credentials, listen_socket, false, &replacement, MT_TEXT_ON(message));
    if (!mt_result_is_ok(result)) {
        /* The old pair loaded before and still does: serve it again on the same socket. */
        struct credentials again = old->credentials;
        old->credentials = (struct credentials){0};
        char again_message[LIBRARY_MESSAGE_MAX];
        mt_result restarted = daemon_start(server, &again, listen_socket, false, &replacement,
                                           MT_TEXT_ON(again_message));
        drain_and_stop(old);
        server->serving = NULL;
        if (!mt_result_is_ok(restarted)) {
            close(listen_socket);
            return mt_result_explain(
                reason, MT_ERR_IO, "cannot serve on the listening socket again: %s", again_message);
        }
        server->serving = replacement;
        return mt_result_explain(reason, result.error, "the new certificate did not take over: %s",
                                 message);
    }
    server->serving = replacement;
    drain_and_stop(old);
    return MT_OK_RESULT;
}

MT_RESULT mt_injector_server_reload(struct mt_injector_server *server, struct mt_text *reason)
{
    MT_ENSURE_REF(server);
    MT_ENSURE(server->serving != NULL, MT_ERR_CLOSED);
    struct stat cert_status;
    struct stat key_status;
    /* A file missing for a moment (being replaced) is looked at again next time. */
    if (stat(server->cert_path, &cert_status) != 0 || stat(server->key_path, &key_status) != 0)
        return MT_OK_RESULT;
    struct file_version cert = version_of(&cert_status);
    struct file_version key = version_of(&key_status);
    if (is_same_version(&cert, &server->cert_seen) && is_same_version(&key, &server->key_seen))
        return MT_OK_RESULT;
    server->cert_seen = cert;
    server->key_seen = key;
    char message[LIBRARY_MESSAGE_MAX];
    struct credentials credentials;
    if (!mt_result_is_ok(read_credentials(server, &credentials, MT_TEXT_ON(message)))) {
        mt_log_warn("certificate files changed but cannot be read, still serving the previous "
                    "pair: %s",
                    message);
        return MT_OK_RESULT;
    }
    server->cert_seen = credentials.cert_version;
    server->key_seen = credentials.key_version;
    if (!mt_result_is_ok(check_credentials(server, &credentials, MT_TEXT_ON(message)))) {
        mt_log_warn("--tls-cert %s and --tls-key %s changed but do not load, still serving the "
                    "previous pair: %s",
                    server->cert_path, server->key_path, message);
        credentials_free(&credentials);
        return MT_OK_RESULT;
    }
    mt_result result = take_over(server, &credentials, MT_TEXT_ON(message));
    if (server->serving == NULL)
        return mt_result_explain(reason, result.error, "%s", message);
    if (!mt_result_is_ok(result))
        mt_log_warn("%s; still serving the previous pair", message);
    else
        mt_log_info("serving the new certificate from %s", server->cert_path);
    return MT_OK_RESULT;
}

void mt_injector_server_stop(struct mt_injector_server *server)
{
    if (server == NULL)
        return;
    if (server->serving != NULL) {
        MHD_stop_daemon(server->serving->daemon);
        daemon_free(server->serving);
    }
    free(server);
}
