/*
 * The agent's development CA: creation, loading, and signing leaves (see ca.h).
 *
 * Owns the two files in the state directory and the CA key in memory. The key file is created
 * with O_CREAT|O_EXCL|O_NOFOLLOW and mode 0600 from the first byte (a chmod afterwards would leave
 * a window in which it is readable), and an existing one is refused when group or others could
 * read it, or when it belongs to another user. This file must never overwrite an existing key,
 * never log or copy key material outside struct mt_ca, and never sign with a CA that does not
 * match the configured trust domain.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca.h"

/* A PEM file larger than this is not one of ours. */
#define FILE_MAX (64 * 1024)

__attribute__((format(printf, 4, 5))) static mt_result
fail(char *message, size_t message_size, enum mt_error error, const char *format, ...)
{
    if (message != NULL && message_size > 0) {
        va_list arguments;
        va_start(arguments, format);
        vsnprintf(message, message_size, format, arguments);
        va_end(arguments);
    }
    return mt_result_of(error);
}

static void format_utc(time_t when, char *text, size_t capacity)
{
    struct tm utc;
    if (gmtime_r(&when, &utc) == NULL || strftime(text, capacity, "%Y-%m-%dT%H:%M:%SZ", &utc) == 0)
        snprintf(text, capacity, "%lld", (long long)when);
}

static MT_RESULT ensure_directory(const char *path, char *message, size_t message_size)
{
    if (mkdir(path, 0700) == 0)
        return MT_OK_RESULT;
    if (errno != EEXIST)
        return fail(message, message_size, MT_ERR_IO, "cannot create state directory %s: %s", path,
                    strerror(errno));
    struct stat status;
    if (stat(path, &status) != 0 || !S_ISDIR(status.st_mode))
        return fail(message, message_size, MT_ERR_IO, "state directory %s is not a directory",
                    path);
    return MT_OK_RESULT;
}

static bool path_exists(const char *path)
{
    struct stat status;
    return lstat(path, &status) == 0;
}

static MT_RESULT write_all(int fd, const char *data, size_t length)
{
    while (length > 0) {
        ssize_t written = write(fd, data, length);
        if (written < 0 && errno == EINTR)
            continue;
        MT_ENSURE(written > 0, MT_ERR_IO);
        data += written;
        length -= (size_t)written;
    }
    return MT_OK_RESULT;
}

/* Reads all of fd into buffer (NUL-terminated); MT_ERR_TOO_LONG past capacity − 1 bytes. */
static MT_RESULT read_all(int fd, char *buffer, size_t capacity, size_t *length)
{
    size_t total = 0;
    for (;;) {
        MT_ENSURE(total < capacity - 1, MT_ERR_TOO_LONG);
        ssize_t got = read(fd, buffer + total, capacity - 1 - total);
        if (got < 0 && errno == EINTR)
            continue;
        MT_ENSURE(got >= 0, MT_ERR_IO);
        if (got == 0)
            break;
        total += (size_t)got;
    }
    buffer[total] = '\0';
    *length = total;
    return MT_OK_RESULT;
}

/* Writes a new file that must not exist yet, with its final mode from the moment it exists. */
static MT_RESULT write_new_file(const char *path, mode_t mode, const char *data, size_t length,
                                char *message, size_t message_size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return fail(message, message_size, MT_ERR_IO, "cannot create %s: %s", path,
                    strerror(errno));
    mt_result result = write_all(fd, data, length);
    /* The umask may have narrowed the mode; only widening a public certificate is needed. */
    if (mt_result_is_ok(result) && fchmod(fd, mode) != 0)
        result = mt_result_of(MT_ERR_IO);
    if (mt_result_is_ok(result) && fsync(fd) != 0)
        result = mt_result_of(MT_ERR_IO);
    if (close(fd) != 0 && mt_result_is_ok(result))
        result = mt_result_of(MT_ERR_IO);
    if (!mt_result_is_ok(result))
        return fail(message, message_size, MT_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    return MT_OK_RESULT;
}

static void ca_paths(const char *state_dir, char *key_path, char *cert_path, size_t capacity)
{
    snprintf(key_path, capacity, "%s/ca.key", state_dir);
    snprintf(cert_path, capacity, "%s/ca.crt", state_dir);
}

static MT_RESULT create(const char *key_path, const char *cert_path, const char *trust_domain,
                        time_t now, struct mt_ca *ca, char *message, size_t message_size)
{
    char key_pem[MT_X509_KEY_PEM_MAX];
    char cert_pem[MT_X509_CERT_PEM_MAX];
    size_t key_pem_length = 0;
    size_t cert_pem_length = 0;
    mt_result result = mt_x509_key_generate(&ca->key);
    if (mt_result_is_ok(result))
        result = mt_x509_ca_create(ca->key, trust_domain, now - MT_CA_BACKDATE_SECONDS,
                                   now + MT_CA_LIFETIME_SECONDS, ca->cert_der, sizeof(ca->cert_der),
                                   &ca->cert_length);
    if (mt_result_is_ok(result))
        result = mt_x509_key_to_pem(ca->key, key_pem, sizeof(key_pem), &key_pem_length);
    if (mt_result_is_ok(result))
        result = mt_x509_cert_der_to_pem(ca->cert_der, ca->cert_length, cert_pem, sizeof(cert_pem),
                                         &cert_pem_length);
    if (!mt_result_is_ok(result)) {
        result = fail(message, message_size, result.error, "cannot create a CA for %s: %s",
                      trust_domain, mt_error_message(result.error));
        goto out;
    }
    /* The key first: a crash in between leaves a key without a certificate, which load refuses. */
    result = write_new_file(key_path, 0600, key_pem, key_pem_length, message, message_size);
    if (!mt_result_is_ok(result))
        goto out;
    result = write_new_file(cert_path, 0644, cert_pem, cert_pem_length, message, message_size);
    if (!mt_result_is_ok(result))
        goto out;
    ca->not_after = now + MT_CA_LIFETIME_SECONDS;
    snprintf(ca->trust_domain, sizeof(ca->trust_domain), "%s", trust_domain);

out:
    explicit_bzero(key_pem, sizeof(key_pem));
    return result;
}

static MT_RESULT load_key(const char *key_path, struct mt_ca *ca, char *message,
                          size_t message_size)
{
    char pem[FILE_MAX];
    size_t length = 0;
    mt_result result = MT_OK_RESULT;
    int fd = open(key_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return fail(message, message_size, MT_ERR_IO, "cannot open %s: %s", key_path,
                    strerror(errno));

    struct stat status;
    if (fstat(fd, &status) != 0 || !S_ISREG(status.st_mode)) {
        result = fail(message, message_size, MT_ERR_IO, "%s is not a regular file", key_path);
        goto out;
    }
    if ((status.st_mode & 077) != 0) {
        result = fail(message, message_size, MT_ERR_IO,
                      "%s is accessible by group or others (mode %04o); the CA key must be 0600: "
                      "run chmod 600 %s",
                      key_path, (unsigned)(status.st_mode & 07777), key_path);
        goto out;
    }
    if (status.st_uid != geteuid()) {
        result = fail(message, message_size, MT_ERR_IO,
                      "%s belongs to uid %u, not to the agent's uid %u", key_path,
                      (unsigned)status.st_uid, (unsigned)geteuid());
        goto out;
    }
    result = read_all(fd, pem, sizeof(pem), &length);
    if (mt_result_is_ok(result))
        result = mt_x509_key_from_pem(pem, length, &ca->key);
    if (!mt_result_is_ok(result))
        result = fail(message, message_size, result.error,
                      "cannot read %s: %s (expected a P-256 EC private key in PEM)", key_path,
                      mt_error_message(result.error));

out:
    explicit_bzero(pem, sizeof(pem));
    close(fd);
    return result;
}

static MT_RESULT load_cert(const char *cert_path, struct mt_ca *ca, char *message,
                           size_t message_size)
{
    char pem[FILE_MAX];
    size_t length = 0;
    int fd = open(cert_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return fail(message, message_size, MT_ERR_IO, "cannot open %s: %s", cert_path,
                    strerror(errno));
    mt_result result = read_all(fd, pem, sizeof(pem), &length);
    close(fd);
    if (mt_result_is_ok(result))
        result = mt_x509_cert_pem_to_der(pem, length, ca->cert_der, sizeof(ca->cert_der),
                                         &ca->cert_length);
    if (!mt_result_is_ok(result))
        return fail(message, message_size, result.error, "cannot read %s: %s", cert_path,
                    mt_error_message(result.error));
    return MT_OK_RESULT;
}

/* Checks a loaded CA against the key, the clock and the configured trust domain. */
static MT_RESULT check_loaded(const char *state_dir, const char *key_path, const char *cert_path,
                              const char *trust_domain, time_t now, struct mt_ca *ca, char *message,
                              size_t message_size)
{
    time_t not_before = 0;
    char when[32];
    if (!mt_x509_cert_is_ca(ca->cert_der, ca->cert_length) ||
        !mt_result_is_ok(
            mt_x509_cert_validity(ca->cert_der, ca->cert_length, &not_before, &ca->not_after)))
        return fail(message, message_size, MT_ERR_CERT_PARSE, "%s is not a CA certificate",
                    cert_path);
    if (!mt_x509_key_matches_cert(ca->key, ca->cert_der, ca->cert_length))
        return fail(message, message_size, MT_ERR_CERT_PARSE,
                    "%s does not belong to %s (their public keys differ)", key_path, cert_path);
    if (ca->not_after <= now) {
        format_utc(ca->not_after, when, sizeof(when));
        return fail(message, message_size, MT_ERR_CERT_PARSE,
                    "the CA in %s expired on %s: remove %s and %s to create a new one", cert_path,
                    when, cert_path, key_path);
    }

    char ca_id[MT_SPIFFE_ID_MAX + 1];
    struct mt_spiffe_id parsed;
    if (!mt_result_is_ok(
            mt_x509_cert_spiffe_id(ca->cert_der, ca->cert_length, ca_id, sizeof(ca_id))) ||
        !mt_result_is_ok(mt_spiffe_id_parse(ca_id, strlen(ca_id), &parsed)))
        return fail(message, message_size, MT_ERR_CERT_PARSE,
                    "%s has no spiffe://<trust domain> URI SAN naming its trust domain", cert_path);
    snprintf(ca->trust_domain, sizeof(ca->trust_domain), "%.*s", (int)parsed.trust_domain_length,
             parsed.trust_domain);
    if (strcmp(ca->trust_domain, trust_domain) != 0)
        return fail(message, message_size, MT_ERR_CONFIG,
                    "the CA in %s is for trust domain %s, not %s: start with --trust-domain %s, "
                    "or use another --state-dir",
                    state_dir, ca->trust_domain, trust_domain, ca->trust_domain);
    return MT_OK_RESULT;
}

MT_RESULT mt_ca_load_or_create(const char *state_dir, const char *trust_domain, time_t now,
                               struct mt_ca *ca, bool *created, char *message, size_t message_size)
{
    MT_ENSURE_REF(state_dir);
    MT_ENSURE_REF(trust_domain);
    MT_ENSURE_REF(ca);
    MT_ENSURE_REF(created);
    memset(ca, 0, sizeof(*ca));
    *created = false;

    char key_path[sizeof(ca->cert_path)];
    if (strlen(state_dir) + sizeof("/ca.key") > sizeof(key_path))
        return fail(message, message_size, MT_ERR_TOO_LONG, "state directory path too long");
    ca_paths(state_dir, key_path, ca->cert_path, sizeof(key_path));
    MT_GUARD(ensure_directory(state_dir, message, message_size));

    bool have_key = path_exists(key_path);
    bool have_cert = path_exists(ca->cert_path);
    mt_result result = MT_OK_RESULT;
    if (!have_key && !have_cert) {
        result = create(key_path, ca->cert_path, trust_domain, now, ca, message, message_size);
        *created = mt_result_is_ok(result);
    } else if (have_key != have_cert) {
        result = fail(message, message_size, MT_ERR_IO,
                      "%s holds %s but not %s: restore the missing file, or remove both to "
                      "create a new CA",
                      state_dir, have_key ? "ca.key" : "ca.crt", have_key ? "ca.crt" : "ca.key");
    } else {
        result = load_key(key_path, ca, message, message_size);
        if (mt_result_is_ok(result))
            result = load_cert(ca->cert_path, ca, message, message_size);
        if (mt_result_is_ok(result))
            result = check_loaded(state_dir, key_path, ca->cert_path, trust_domain, now, ca,
                                  message, message_size);
    }
    if (!mt_result_is_ok(result))
        mt_ca_cleanup(ca);
    return result;
}

void mt_ca_cleanup(struct mt_ca *ca)
{
    if (ca == NULL)
        return;
    mt_x509_key_free(ca->key);
    ca->key = NULL;
}

MT_RESULT mt_ca_issue(const struct mt_ca *ca, const uint8_t *csr_der, size_t csr_length,
                      const char *spiffe_id, time_t now, uint32_t lifetime_seconds, uint8_t *der,
                      size_t capacity, size_t *length, time_t *not_after)
{
    MT_ENSURE_REF(ca);
    MT_ENSURE_REF(ca->key);
    MT_ENSURE_REF(not_after);
    time_t leaf_not_before = now - MT_CA_BACKDATE_SECONDS;
    time_t leaf_not_after = now + (time_t)lifetime_seconds;
    /* A leaf past its issuer's expiry would fail verification early and be renewed too late. */
    if (leaf_not_after > ca->not_after)
        leaf_not_after = ca->not_after;
    MT_ENSURE(leaf_not_after > now, MT_ERR_INVALID_ARGUMENT);
    MT_GUARD(mt_x509_leaf_issue(csr_der, csr_length, spiffe_id, ca->cert_der, ca->cert_length,
                                ca->key, leaf_not_before, leaf_not_after, der, capacity, length));
    *not_after = leaf_not_after;
    return MT_OK_RESULT;
}
