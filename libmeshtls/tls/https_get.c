/*
 * One HTTPS GET with a deadline (see https_get.h), for the agent's kubelet client.
 *
 * Owns the client side of one exchange: the URL, a non-blocking connect, a TLS 1.3 client
 * context of its own (not the mesh's: the server is verified against the CA file given, never
 * against the mesh's trust bundle, and no mesh identity is presented), the request and the
 * reading of one HTTP/1.1 response. It must never wait past the deadline (the agent has one
 * event loop), never accept a server whose chain does not lead to the CA file or whose
 * certificate does not name the address connected to, never hold more than the cap, and never
 * log the Authorization header.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>

#include "http_response.h"
#include "https_get.h"
#include "tls.h"
#include "x509.h"

#define CA_FILE_MAX (1024 * 1024)
#define READ_CHUNK 16384
#define HOST_MAX 64
#define PATH_MAX_LENGTH 1024

struct url {
    char host[HOST_MAX]; /* the address, without brackets */
    unsigned port;
    char path[PATH_MAX_LENGTH];
    struct sockaddr_storage address;
    socklen_t address_length;
};

static long long now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static MT_RESULT parse_url(const char *text, struct url *url, struct mt_text *reason)
{
    static const char scheme[] = "https://";
    const char *cursor = text;
    if (strncmp(cursor, scheme, strlen(scheme)) != 0) {
        mt_text_append(reason, "URL \"%s\" does not start with https://", text);
        return mt_result_of(MT_ERR_CONFIG);
    }
    cursor += strlen(scheme);
    const char *host_end;
    const char *after_host;
    if (*cursor == '[') {
        cursor++;
        host_end = strchr(cursor, ']');
        after_host = host_end != NULL ? host_end + 1 : NULL;
    } else {
        host_end = cursor + strcspn(cursor, ":/");
        after_host = host_end;
    }
    if (host_end == NULL || host_end == cursor || (size_t)(host_end - cursor) >= HOST_MAX) {
        mt_text_append(reason, "URL \"%s\" has no address", text);
        return mt_result_of(MT_ERR_CONFIG);
    }
    memcpy(url->host, cursor, (size_t)(host_end - cursor));
    url->host[host_end - cursor] = '\0';
    url->port = 443;
    cursor = after_host;
    if (*cursor == ':') {
        char *end = NULL;
        unsigned long port = strtoul(cursor + 1, &end, 10);
        if (end == cursor + 1 || port == 0 || port > 65535 || (*end != '/' && *end != '\0')) {
            mt_text_append(reason, "URL \"%s\" has a bad port", text);
            return mt_result_of(MT_ERR_CONFIG);
        }
        url->port = (unsigned)port;
        cursor = end;
    }
    if (strlen(cursor) >= sizeof(url->path) || strpbrk(cursor, " \r\n") != NULL) {
        mt_text_append(reason, "URL \"%s\" has a path too long or with spaces", text);
        return mt_result_of(MT_ERR_CONFIG);
    }
    snprintf(url->path, sizeof(url->path), "%s", cursor[0] == '\0' ? "/" : cursor);
    memset(&url->address, 0, sizeof(url->address));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&url->address;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&url->address;
    if (inet_pton(AF_INET, url->host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)url->port);
        url->address_length = sizeof(*v4);
    } else if (inet_pton(AF_INET6, url->host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)url->port);
        url->address_length = sizeof(*v6);
    } else {
        mt_text_append(reason, "URL \"%s\" does not name an IP address (no name is looked up)",
                       text);
        return mt_result_of(MT_ERR_CONFIG);
    }
    return MT_OK_RESULT;
}

/* Waits until fd is ready for events or the deadline passes. */
static MT_RESULT wait_for(int fd, short events, long long deadline_ms)
{
    for (;;) {
        long long left = deadline_ms - now_ms();
        MT_ENSURE(left > 0, MT_ERR_TIMEOUT);
        struct pollfd poll_fd = {.fd = fd, .events = events};
        int ready = poll(&poll_fd, 1, (int)left);
        if (ready > 0)
            return MT_OK_RESULT;
        MT_ENSURE(ready == 0 || errno == EINTR, MT_ERR_IO);
    }
}

static MT_RESULT connect_before(const struct url *url, long long deadline_ms, int *fd_out,
                                struct mt_text *reason)
{
    int fd = socket(url->address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        mt_text_append(reason, "socket: %s", strerror(errno));
        return mt_result_of(MT_ERR_IO);
    }
    int error = 0;
    if (connect(fd, (const struct sockaddr *)&url->address, url->address_length) != 0) {
        error = errno;
        if (error == EINPROGRESS) {
            socklen_t length = sizeof(error);
            mt_result waited = wait_for(fd, POLLOUT, deadline_ms);
            if (!mt_result_is_ok(waited)) {
                mt_text_append(reason, "connecting to %s:%u: timed out", url->host, url->port);
                close(fd);
                return waited;
            }
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0)
                error = errno;
        }
    }
    if (error != 0) {
        mt_text_append(reason, "connecting to %s:%u: %s", url->host, url->port, strerror(error));
        close(fd);
        return mt_result_of(MT_ERR_IO);
    }
    *fd_out = fd;
    return MT_OK_RESULT;
}

/* What the verify callback found, for the failure's reason. */
struct server_check {
    const struct url *url;
    bool address_mismatch;
    bool address_checked; /* the server's certificate named the address */
};

/*
 * wolfSSL's verify callback (called for every certificate: WOLFSSL_ALWAYS_VERIFY_CB): the chain as
 * wolfSSL judged it, and the server's own certificate (depth 0) naming the address connected to
 * in an iPAddress SAN. wolfSSL's own IP check (wolfSSL_check_ip_address) compares the address
 * with DNS names and the common name only in this build (no WOLFSSL_IP_ALT_NAME), which is not
 * how a kubelet's serving certificate names its node.
 */
static int verify_server(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
    if (!preverify)
        return 0;
    struct server_check *check = store->userCtx;
    if (store->error_depth != 0 || check == NULL)
        return 1;
    if (store->certs == NULL || store->totalCerts < 1 || store->certs[0].buffer == NULL)
        return 0;
    const struct sockaddr_storage *address = &check->url->address;
    const uint8_t *bytes =
        address->ss_family == AF_INET
            ? (const uint8_t *)&((const struct sockaddr_in *)address)->sin_addr
            : (const uint8_t *)&((const struct sockaddr_in6 *)address)->sin6_addr;
    size_t size = address->ss_family == AF_INET ? 4 : 16;
    if (mt_x509_cert_has_ip_address(store->certs[0].buffer, store->certs[0].length, bytes, size)) {
        check->address_checked = true;
        return 1;
    }
    check->address_mismatch = true;
    return 0;
}

static MT_RESULT load_ca_file(WOLFSSL_CTX *ctx, const char *path, struct mt_text *reason)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        mt_text_append(reason, "cannot open the CA file %s: %s", path, strerror(errno));
        return mt_result_of(MT_ERR_IO);
    }
    mt_result result = MT_OK_RESULT;
    char *pem = malloc(CA_FILE_MAX);
    size_t length = 0;
    if (pem == NULL) {
        result = mt_result_of(MT_ERR_NO_MEMORY);
        goto out;
    }
    for (;;) {
        ssize_t got = read(fd, pem + length, CA_FILE_MAX - length);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            mt_text_append(reason, "cannot read the CA file %s: %s", path, strerror(errno));
            result = mt_result_of(MT_ERR_IO);
            goto out;
        }
        if (got == 0)
            break;
        length += (size_t)got;
        if (length == CA_FILE_MAX) {
            mt_text_append(reason, "the CA file %s is larger than 1 MiB", path);
            result = mt_result_of(MT_ERR_TOO_LONG);
            goto out;
        }
    }
    if (wolfSSL_CTX_load_verify_buffer(ctx, (const unsigned char *)pem, (long)length,
                                       WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
        mt_text_append(reason,
                       "the CA file %s holds no certificate this build can use (PEM, ECDSA)", path);
        result = mt_result_of(MT_ERR_CERT_PARSE);
    }

out:
    free(pem);
    close(fd);
    return result;
}

/* Runs one wolfSSL step (ret from it) to completion or the deadline; 1: done, 0: try again. */
static int tls_wait(WOLFSSL *ssl, int fd, int ret, long long deadline_ms, mt_result *result)
{
    int error = wolfSSL_get_error(ssl, ret);
    short events = error == WOLFSSL_ERROR_WANT_READ    ? POLLIN
                   : error == WOLFSSL_ERROR_WANT_WRITE ? POLLOUT
                                                       : 0;
    if (events == 0) {
        *result = mt_result_of(MT_ERR_HANDSHAKE);
        return 1;
    }
    *result = wait_for(fd, events, deadline_ms);
    return mt_result_is_ok(*result) ? 0 : 1;
}

static void explain_tls_error(WOLFSSL *ssl, int ret, const char *what, const struct url *url,
                              mt_result result, struct mt_text *reason)
{
    if (result.error == MT_ERR_TIMEOUT) {
        mt_text_append(reason, "%s with %s:%u: timed out", what, url->host, url->port);
        return;
    }
    char text[WOLFSSL_MAX_ERROR_SZ];
    int error = wolfSSL_get_error(ssl, ret);
    wolfSSL_ERR_error_string_n((unsigned long)error, text, sizeof(text));
    mt_text_append(reason, "%s with %s:%u failed: %s (wolfSSL error %d)", what, url->host,
                   url->port, text, error);
}

/*
 * True when data[0 .. length) holds a whole response whose end its headers tell (Content-Length,
 * or chunked read to its last chunk); any other response ends when the server closes. Reads the
 * data without writing it, and a chunked body only by its chunk sizes.
 */
static bool response_is_whole(char *data, size_t length)
{
    int status;
    char *body;
    size_t body_length;
    mt_result parsed = mt_http_response_read(data, length, false, &status, &body, &body_length);
    return parsed.error == MT_OK && status != 0;
}

static MT_RESULT exchange(WOLFSSL *ssl, int fd, const struct url *url,
                          const struct server_check *check, const struct mt_https_request *request,
                          long long deadline_ms, char **data_out, size_t *length_out,
                          struct mt_text *reason)
{
    mt_result result = MT_OK_RESULT;
    int ret;
    while ((ret = wolfSSL_connect(ssl)) != WOLFSSL_SUCCESS)
        if (tls_wait(ssl, fd, ret, deadline_ms, &result)) {
            explain_tls_error(ssl, ret, "TLS handshake", url, result, reason);
            return mt_result_is_ok(result) ? mt_result_of(MT_ERR_HANDSHAKE) : result;
        }
    /* A wolfSSL that would not show the callback a certificate it verified fails closed here. */
    if (!check->address_checked) {
        mt_text_append(reason, "the certificate of %s:%u was not checked for its address",
                       url->host, url->port);
        return mt_result_of(MT_ERR_HANDSHAKE);
    }

    size_t header_capacity = strlen(url->path) + strlen(url->host) + 256 +
                             (request->authorization != NULL ? strlen(request->authorization) : 0);
    char *header = malloc(header_capacity);
    MT_ENSURE(header != NULL, MT_ERR_NO_MEMORY);
    int header_length =
        snprintf(header, header_capacity,
                 "GET %s HTTP/1.1\r\nHost: %s%s%s:%u\r\nAccept: application/json\r\n%s%s%s"
                 "User-Agent: meshtls-agent\r\nConnection: close\r\n\r\n",
                 url->path, strchr(url->host, ':') != NULL ? "[" : "", url->host,
                 strchr(url->host, ':') != NULL ? "]" : "", url->port,
                 request->authorization != NULL ? "Authorization: " : "",
                 request->authorization != NULL ? request->authorization : "",
                 request->authorization != NULL ? "\r\n" : "");
    int written = 0;
    while (header_length > 0 && written < header_length) {
        ret = wolfSSL_write(ssl, header + written, header_length - written);
        if (ret > 0) {
            written += ret;
            continue;
        }
        if (tls_wait(ssl, fd, ret, deadline_ms, &result)) {
            explain_tls_error(ssl, ret, "sending the request", url, result, reason);
            explicit_bzero(header, header_capacity);
            free(header);
            return mt_result_is_ok(result) ? mt_result_of(MT_ERR_IO) : result;
        }
    }
    /* The header holds the bearer token. */
    explicit_bzero(header, header_capacity);
    free(header);

    size_t cap = request->body_max + MT_HTTP_RESPONSE_HEADERS_MAX;
    size_t length = 0;
    size_t capacity = READ_CHUNK;
    char *data = malloc(capacity + 1);
    MT_ENSURE(data != NULL, MT_ERR_NO_MEMORY);
    for (;;) {
        if (length == capacity) {
            if (capacity >= cap) {
                mt_text_append(reason, "the response of %s:%u is larger than %zu bytes", url->host,
                               url->port, cap);
                result = mt_result_of(MT_ERR_TOO_LONG);
                break;
            }
            size_t grown = capacity * 2 < cap ? capacity * 2 : cap;
            char *larger = realloc(data, grown + 1);
            if (larger == NULL) {
                result = mt_result_of(MT_ERR_NO_MEMORY);
                break;
            }
            data = larger;
            capacity = grown;
        }
        ret = wolfSSL_read(ssl, data + length, (int)(capacity - length));
        if (ret > 0) {
            length += (size_t)ret;
            if (response_is_whole(data, length))
                break;
            continue;
        }
        int error = wolfSSL_get_error(ssl, ret);
        /* The end of the response: close_notify, or the server closing the connection. */
        if (error == WOLFSSL_ERROR_ZERO_RETURN || error == SOCKET_PEER_CLOSED_E ||
            (ret == 0 && error != WOLFSSL_ERROR_WANT_READ && error != WOLFSSL_ERROR_WANT_WRITE))
            break;
        if (tls_wait(ssl, fd, ret, deadline_ms, &result)) {
            explain_tls_error(ssl, ret, "reading the response", url, result, reason);
            if (mt_result_is_ok(result))
                result = mt_result_of(MT_ERR_IO);
            break;
        }
    }
    if (!mt_result_is_ok(result)) {
        free(data);
        return result;
    }
    data[length] = '\0';
    *data_out = data;
    *length_out = length;
    return MT_OK_RESULT;
}

MT_RESULT mt_https_get(const struct mt_https_request *request, struct mt_https_response *response,
                       struct mt_text *reason)
{
    MT_ENSURE_REF(request);
    MT_ENSURE_REF(request->url);
    MT_ENSURE_REF(request->ca_file);
    MT_ENSURE_REF(response);
    *response = (struct mt_https_response){0};
    long long deadline_ms = now_ms() + request->timeout_ms;
    struct url url;
    MT_GUARD(parse_url(request->url, &url, reason));
    if (!mt_result_is_ok(mt_tls_global_init())) {
        mt_text_append(reason, "wolfSSL failed to initialise");
        return mt_result_of(MT_ERR_CRYPTO);
    }

    int fd = -1;
    WOLFSSL *ssl = NULL;
    char *data = NULL;
    size_t length = 0;
    mt_result result = MT_OK_RESULT;
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
    if (ctx == NULL) {
        mt_text_append(reason, "cannot make a TLS client context (out of memory)");
        result = mt_result_of(MT_ERR_NO_MEMORY);
        goto out;
    }
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, verify_server);
    result = load_ca_file(ctx, request->ca_file, reason);
    if (!mt_result_is_ok(result))
        goto out;
    result = connect_before(&url, deadline_ms, &fd, reason);
    if (!mt_result_is_ok(result))
        goto out;
    ssl = wolfSSL_new(ctx);
    if (ssl == NULL || wolfSSL_set_fd(ssl, fd) != WOLFSSL_SUCCESS) {
        mt_text_append(reason, "cannot make a TLS session (out of memory)");
        result = mt_result_of(MT_ERR_NO_MEMORY);
        goto out;
    }
    struct server_check check = {.url = &url};
    wolfSSL_SetCertCbCtx(ssl, &check);
    result = exchange(ssl, fd, &url, &check, request, deadline_ms, &data, &length, reason);
    if (!mt_result_is_ok(result)) {
        if (check.address_mismatch)
            mt_text_append(reason, " (the server's certificate has no IP address SAN %s)",
                           url.host);
        goto out;
    }
    char *body = NULL;
    size_t body_length = 0;
    result = mt_https_parse_response(data, length, &response->status, &body, &body_length);
    if (!mt_result_is_ok(result)) {
        mt_text_append(reason, "the response of %s:%u is not HTTP/1.1 (%s)", url.host, url.port,
                       mt_error_message(result.error));
        goto out;
    }
    if (body_length > request->body_max) {
        mt_text_append(reason, "the response body of %s:%u is larger than %zu bytes", url.host,
                       url.port, request->body_max);
        result = mt_result_of(MT_ERR_TOO_LONG);
        goto out;
    }
    memmove(data, body, body_length);
    data[body_length] = '\0';
    response->body = data;
    response->body_length = body_length;
    data = NULL;

out:
    free(data);
    if (ssl != NULL)
        wolfSSL_free(ssl);
    if (ctx != NULL)
        wolfSSL_CTX_free(ctx);
    if (fd >= 0)
        close(fd);
    return result;
}

void mt_https_response_free(struct mt_https_response *response)
{
    if (response == NULL)
        return;
    free(response->body);
    *response = (struct mt_https_response){0};
}
