/*
 * The agent's development CA: creation, loading, and signing leaves (see ca.h).
 *
 * Owns the two files in the state directory and the CA key in memory. The key file is created
 * with O_CREAT|O_EXCL|O_NOFOLLOW and mode 0600 from the first byte (a chmod afterwards would leave
 * a window in which it is readable), and an existing one is refused when group or others could
 * read it, or when it belongs to another user. This file must never overwrite an existing key,
 * never log or copy key material outside struct mt_ca, and never sign with a CA that does not
 * match the configured trust domain.
 *
 * The key's PEM text, read from disk or written to it, passes only through secret buffers
 * (util/secret.h: out of core dumps, wiped when freed), never through the stack or the heap.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../util/secret.h"
#include "../util/text.h"
#include "ca.h"

/* A PEM file larger than this is not one of ours. */
#define FILE_MAX (64 * 1024)

static void format_utc(time_t when, char *text, size_t capacity)
{
    struct tm utc;
    if (gmtime_r(&when, &utc) == NULL || strftime(text, capacity, "%Y-%m-%dT%H:%M:%SZ", &utc) == 0)
        snprintf(text, capacity, "%lld", (long long)when);
}

static MT_RESULT ensure_directory(const char *path, struct mt_text *reason)
{
    if (mkdir(path, 0700) == 0)
        return MT_OK_RESULT;
    if (errno != EEXIST)
        return mt_result_explain(reason, MT_ERR_IO, "cannot create state directory %s: %s", path,
                                 strerror(errno));
    struct stat status;
    if (stat(path, &status) != 0 || !S_ISDIR(status.st_mode))
        return mt_result_explain(reason, MT_ERR_IO, "state directory %s is not a directory", path);
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
                                struct mt_text *reason)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return mt_result_explain(reason, MT_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    mt_result result = write_all(fd, data, length);
    /* The umask may have narrowed the mode; only widening a public certificate is needed. */
    if (mt_result_is_ok(result) && fchmod(fd, mode) != 0)
        result = mt_result_of(MT_ERR_IO);
    if (mt_result_is_ok(result) && fsync(fd) != 0)
        result = mt_result_of(MT_ERR_IO);
    if (close(fd) != 0 && mt_result_is_ok(result))
        result = mt_result_of(MT_ERR_IO);
    if (!mt_result_is_ok(result))
        return mt_result_explain(reason, MT_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    return MT_OK_RESULT;
}

static void ca_paths(const char *state_dir, char *key_path, char *cert_path, size_t capacity)
{
    snprintf(key_path, capacity, "%s/ca.key", state_dir);
    snprintf(cert_path, capacity, "%s/ca.crt", state_dir);
}

static MT_RESULT create(const char *key_path, const char *cert_path, const char *trust_domain,
                        time_t now, struct mt_ca *ca, struct mt_text *reason)
{
    char *key_pem = NULL;
    char cert_pem[MT_X509_CERT_PEM_MAX];
    size_t key_pem_length = 0;
    size_t cert_pem_length = 0;
    mt_result result = mt_secret_alloc(MT_X509_KEY_PEM_MAX, (void **)&key_pem);
    if (mt_result_is_ok(result))
        result = mt_x509_key_generate(&ca->key);
    if (mt_result_is_ok(result))
        result = mt_x509_ca_create(ca->key, trust_domain, now - MT_CA_BACKDATE_SECONDS,
                                   now + MT_CA_LIFETIME_SECONDS, ca->cert_der, sizeof(ca->cert_der),
                                   &ca->cert_length);
    if (mt_result_is_ok(result))
        result = mt_x509_key_to_pem(ca->key, key_pem, MT_X509_KEY_PEM_MAX, &key_pem_length);
    if (mt_result_is_ok(result))
        result = mt_x509_cert_der_to_pem(ca->cert_der, ca->cert_length, cert_pem, sizeof(cert_pem),
                                         &cert_pem_length);
    /* Generating and encoding the key leave it in wolfCrypt's dead stack frames (secret.h). */
    mt_secret_wipe_stack();
    if (!mt_result_is_ok(result)) {
        result = mt_result_explain(reason, result.error, "cannot create a CA for %s: %s",
                                   trust_domain, mt_error_message(result.error));
        goto out;
    }
    /* The key first: a crash in between leaves a key without a certificate, which load refuses. */
    result = write_new_file(key_path, 0600, key_pem, key_pem_length, reason);
    if (!mt_result_is_ok(result))
        goto out;
    result = write_new_file(cert_path, 0644, cert_pem, cert_pem_length, reason);
    if (!mt_result_is_ok(result))
        goto out;
    ca->not_after = now + MT_CA_LIFETIME_SECONDS;
    snprintf(ca->trust_domain, sizeof(ca->trust_domain), "%s", trust_domain);
    memcpy(ca->anchors[0].der, ca->cert_der, ca->cert_length);
    ca->anchors[0].length = ca->cert_length;
    ca->anchor_count = 1;

out:
    mt_secret_free(key_pem);
    return result;
}

/*
 * Opens a CA key file and refuses it unless only the agent's uid can use it: a regular file of
 * mode 0600 or narrower, owned by the agent's effective uid. The checks are made on the opened
 * descriptor, so they apply to the file that is then read. follow_links: the path may be a
 * symbolic link (a Kubernetes secret volume's tls.key is one, to ..data/tls.key, owned by root);
 * without it a link is refused (O_NOFOLLOW), as in the state directory the agent itself writes.
 * remedy is appended to the mode message, for where chmod is not how the mode is set.
 */
static MT_RESULT open_key_file(const char *key_path, bool follow_links, const char *remedy,
                               int *opened, struct mt_text *reason)
{
    int fd = open(key_path, O_RDONLY | O_CLOEXEC | (follow_links ? 0 : O_NOFOLLOW));
    if (fd < 0)
        return mt_result_explain(reason, MT_ERR_IO, "cannot open %s: %s", key_path,
                                 strerror(errno));
    struct stat status;
    mt_result result = MT_OK_RESULT;
    if (fstat(fd, &status) != 0 || !S_ISREG(status.st_mode))
        result = mt_result_explain(reason, MT_ERR_IO, "%s is not a regular file", key_path);
    else if ((status.st_mode & 077) != 0)
        result = mt_result_explain(
            reason, MT_ERR_IO,
            "%s is accessible by group or others (mode %04o); the CA key must be 0600: "
            "run chmod 600 %s%s",
            key_path, (unsigned)(status.st_mode & 07777), key_path, remedy);
    else if (status.st_uid != geteuid())
        result = mt_result_explain(
            reason, MT_ERR_IO, "%s belongs to uid %u, not to the agent's uid %u: run chown %u %s",
            key_path, (unsigned)status.st_uid, (unsigned)geteuid(), (unsigned)geteuid(), key_path);
    if (!mt_result_is_ok(result)) {
        close(fd);
        return result;
    }
    *opened = fd;
    return MT_OK_RESULT;
}

/* Reads a key file that open_key_file accepted into key, through a secret buffer. */
static MT_RESULT read_key(const char *key_path, bool follow_links, const char *remedy,
                          struct mt_x509_key **key, struct mt_text *reason)
{
    char *pem = NULL;
    size_t length = 0;
    if (!mt_result_is_ok(mt_secret_alloc(FILE_MAX, (void **)&pem)))
        return mt_result_explain(reason, MT_ERR_NO_MEMORY,
                                 "cannot allocate memory for the key in %s: %s", key_path,
                                 strerror(errno));
    int fd = -1;
    mt_result result = open_key_file(key_path, follow_links, remedy, &fd, reason);
    if (!mt_result_is_ok(result))
        goto out;
    result = read_all(fd, pem, FILE_MAX, &length);
    if (mt_result_is_ok(result))
        result = mt_x509_key_from_pem(pem, length, key);
    /* wc_EccPrivateKeyDecode leaves the scalar in its dead stack frame (see secret.h). */
    mt_secret_wipe_stack();
    if (!mt_result_is_ok(result))
        result = mt_result_explain(reason, result.error,
                                   "cannot read %s: %s (expected a P-256 EC private key in PEM)",
                                   key_path, mt_error_message(result.error));

out:
    mt_secret_free(pem);
    if (fd >= 0)
        close(fd);
    return result;
}

static MT_RESULT load_key(const char *key_path, struct mt_ca *ca, struct mt_text *reason)
{
    return read_key(key_path, false, "", &ca->key, reason);
}

static MT_RESULT load_cert(const char *cert_path, struct mt_ca *ca, struct mt_text *reason)
{
    char pem[FILE_MAX];
    size_t length = 0;
    int fd = open(cert_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return mt_result_explain(reason, MT_ERR_IO, "cannot open %s: %s", cert_path,
                                 strerror(errno));
    mt_result result = read_all(fd, pem, sizeof(pem), &length);
    close(fd);
    if (mt_result_is_ok(result))
        result = mt_x509_cert_pem_to_der(pem, length, ca->cert_der, sizeof(ca->cert_der),
                                         &ca->cert_length);
    if (!mt_result_is_ok(result))
        return mt_result_explain(reason, result.error, "cannot read %s: %s", cert_path,
                                 mt_error_message(result.error));
    return MT_OK_RESULT;
}

/* Checks a loaded CA against the key, the clock and the configured trust domain. */
static MT_RESULT check_loaded(const char *state_dir, const char *key_path, const char *cert_path,
                              const char *trust_domain, time_t now, struct mt_ca *ca,
                              struct mt_text *reason)
{
    time_t not_before = 0;
    char when[32];
    const char *why = NULL;
    if (!mt_result_is_ok(mt_x509_signing_check(ca->cert_der, ca->cert_length, &why)) ||
        !mt_result_is_ok(
            mt_x509_cert_validity(ca->cert_der, ca->cert_length, &not_before, &ca->not_after)))
        return mt_result_explain(reason, MT_ERR_CERT_PARSE,
                                 "%s is not an X.509-SVID signing certificate: %s", cert_path,
                                 why != NULL ? why : "its dates do not parse");
    if (!mt_x509_key_matches_cert(ca->key, ca->cert_der, ca->cert_length))
        return mt_result_explain(reason, MT_ERR_CERT_PARSE,
                                 "%s does not belong to %s (their public keys differ)", key_path,
                                 cert_path);
    if (ca->not_after <= now) {
        format_utc(ca->not_after, when, sizeof(when));
        return mt_result_explain(reason, MT_ERR_CERT_PARSE,
                                 "the CA in %s expired on %s: remove %s and %s to create a new one",
                                 cert_path, when, cert_path, key_path);
    }

    char ca_id[MT_SPIFFE_ID_MAX + 1];
    struct mt_spiffe_id parsed;
    if (!mt_result_is_ok(
            mt_x509_cert_spiffe_id(ca->cert_der, ca->cert_length, ca_id, sizeof(ca_id))) ||
        !mt_result_is_ok(mt_spiffe_id_parse(ca_id, strlen(ca_id), &parsed)))
        return mt_result_explain(
            reason, MT_ERR_CERT_PARSE,
            "%s has no spiffe://<trust domain> URI SAN naming its trust domain", cert_path);
    snprintf(ca->trust_domain, sizeof(ca->trust_domain), "%.*s", (int)parsed.trust_domain_length,
             parsed.trust_domain);
    if (strcmp(ca->trust_domain, trust_domain) != 0)
        return mt_result_explain(
            reason, MT_ERR_CONFIG,
            "the CA in %s is for trust domain %s, not %s: start with --trust-domain %s, "
            "or use another --state-dir",
            state_dir, ca->trust_domain, trust_domain, ca->trust_domain);
    return MT_OK_RESULT;
}

/*
 * The issuer made ready for signing: its certificate and key are checked here, once per load,
 * rather than on every leaf (tls/x509.h).
 */
static MT_RESULT prepare_signer(struct mt_ca *ca, struct mt_text *reason)
{
    mt_result result = mt_x509_signer_new(ca->cert_der, ca->cert_length, ca->key, &ca->signer);
    if (!mt_result_is_ok(result))
        return mt_result_explain(reason, result.error, "%s cannot sign leaves: %s", ca->cert_path,
                                 mt_error_message(result.error));
    return MT_OK_RESULT;
}

MT_RESULT mt_ca_load_or_create(const char *state_dir, const char *trust_domain, time_t now,
                               struct mt_ca *ca, bool *created, struct mt_text *reason)
{
    MT_ENSURE_REF(state_dir);
    MT_ENSURE_REF(trust_domain);
    MT_ENSURE_REF(ca);
    MT_ENSURE_REF(created);
    memset(ca, 0, sizeof(*ca));
    *created = false;

    char key_path[sizeof(ca->cert_path)];
    if (strlen(state_dir) + sizeof("/ca.key") > sizeof(key_path))
        return mt_result_explain(reason, MT_ERR_TOO_LONG, "state directory path too long");
    ca_paths(state_dir, key_path, ca->cert_path, sizeof(key_path));
    MT_GUARD(ensure_directory(state_dir, reason));

    bool have_key = path_exists(key_path);
    bool have_cert = path_exists(ca->cert_path);
    mt_result result = MT_OK_RESULT;
    if (!have_key && !have_cert) {
        result = create(key_path, ca->cert_path, trust_domain, now, ca, reason);
        *created = mt_result_is_ok(result);
    } else if (have_key != have_cert) {
        result = mt_result_explain(
            reason, MT_ERR_IO,
            "%s holds %s but not %s: restore the missing file, or remove both to "
            "create a new CA",
            state_dir, have_key ? "ca.key" : "ca.crt", have_key ? "ca.crt" : "ca.key");
    } else {
        result = load_key(key_path, ca, reason);
        if (mt_result_is_ok(result))
            result = load_cert(ca->cert_path, ca, reason);
        if (mt_result_is_ok(result))
            result =
                check_loaded(state_dir, key_path, ca->cert_path, trust_domain, now, ca, reason);
        if (mt_result_is_ok(result)) {
            /* The dev CA is a root: it is the bundle, and no chain is sent after the leaf. */
            memcpy(ca->anchors[0].der, ca->cert_der, ca->cert_length);
            ca->anchors[0].length = ca->cert_length;
            ca->anchor_count = 1;
        }
    }
    if (mt_result_is_ok(result))
        result = prepare_signer(ca, reason);
    if (!mt_result_is_ok(result))
        mt_ca_cleanup(ca);
    return result;
}

void mt_ca_cleanup(struct mt_ca *ca)
{
    if (ca == NULL)
        return;
    mt_x509_signer_free(ca->signer);
    ca->signer = NULL;
    mt_x509_key_free(ca->key);
    ca->key = NULL;
}

MT_RESULT mt_ca_issue(const struct mt_ca *ca, const uint8_t *csr_der, size_t csr_length,
                      const char *spiffe_id, time_t now, uint32_t lifetime_seconds, uint8_t *der,
                      size_t capacity, size_t *length, time_t *not_after)
{
    MT_ENSURE_REF(ca);
    MT_ENSURE_REF(ca->signer);
    MT_ENSURE_REF(not_after);
    /*
     * Back-dated for peers whose clocks lag, but by at most a tenth of the lifetime: workloads
     * renew at 70 % of notBefore..notAfter, and a 300 s back-date on a 60 s leaf would put that
     * point in the past and make every connection renew.
     */
    time_t backdate = MT_CA_BACKDATE_SECONDS;
    if ((time_t)lifetime_seconds / 10 < backdate)
        backdate = (time_t)lifetime_seconds / 10;
    time_t leaf_not_before = now - backdate;
    time_t leaf_not_after = now + (time_t)lifetime_seconds;
    /* A leaf past its issuer's expiry would fail verification early and be renewed too late. */
    if (leaf_not_after > ca->not_after)
        leaf_not_after = ca->not_after;
    MT_ENSURE(leaf_not_after > now, MT_ERR_INVALID_ARGUMENT);
    MT_GUARD(mt_x509_signer_issue(ca->signer, csr_der, csr_length, spiffe_id, leaf_not_before,
                                  leaf_not_after, der, capacity, length));
    *not_after = leaf_not_after;
    return MT_OK_RESULT;
}

/* ---- issuer from files ------------------------------------------------------------------- */

typedef mt_result (*certificate_visitor)(void *context, const uint8_t *der, size_t length);

/* Calls visit for each "CERTIFICATE" PEM block of pem, in order; at least one must exist. */
static MT_RESULT for_each_pem_certificate(const char *pem, size_t length, void *context,
                                          certificate_visitor visit)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----";
    static const char end[] = "-----END CERTIFICATE-----";
    const char *cursor = pem;
    const char *limit = pem + length;
    size_t found = 0;
    uint8_t der[MT_X509_CERT_DER_MAX];
    for (;;) {
        const char *start = memmem(cursor, (size_t)(limit - cursor), begin, sizeof(begin) - 1);
        if (start == NULL)
            break;
        const char *stop = memmem(start, (size_t)(limit - start), end, sizeof(end) - 1);
        MT_ENSURE(stop != NULL, MT_ERR_CERT_PARSE);
        stop += sizeof(end) - 1;
        size_t der_length = 0;
        MT_GUARD(
            mt_x509_cert_pem_to_der(start, (size_t)(stop - start), der, sizeof(der), &der_length));
        MT_GUARD(visit(context, der, der_length));
        found++;
        cursor = stop;
    }
    MT_ENSURE(found > 0, MT_ERR_CERT_PARSE);
    return MT_OK_RESULT;
}

static bool has_anchor(const struct mt_ca *ca, const uint8_t *der, size_t length)
{
    for (size_t i = 0; i < ca->anchor_count; i++)
        if (ca->anchors[i].length == length && memcmp(ca->anchors[i].der, der, length) == 0)
            return true;
    return false;
}

static mt_result add_anchor(void *context, const uint8_t *der, size_t length)
{
    struct mt_ca *ca = context;
    if (has_anchor(ca, der, length))
        return MT_OK_RESULT;
    MT_ENSURE(ca->anchor_count < MT_CA_ANCHORS_MAX, MT_ERR_TOO_LONG);
    MT_ENSURE(mt_result_is_ok(mt_x509_signing_check(der, length, NULL)), MT_ERR_CERT_PARSE);
    memcpy(ca->anchors[ca->anchor_count].der, der, length);
    ca->anchors[ca->anchor_count++].length = length;
    return MT_OK_RESULT;
}

/*
 * tls.crt: the first certificate signs; all of them, the issuer first, are sent after the leaf,
 * except those that are anchors (filtered once ca.crt is read).
 */
static mt_result add_issuer_certificate(void *context, const uint8_t *der, size_t length)
{
    struct mt_ca *ca = context;
    if (ca->cert_length == 0) {
        memcpy(ca->cert_der, der, length);
        ca->cert_length = length;
    } else {
        /* Workloads check all that follows a leaf as signing certificates (the issuer later). */
        MT_ENSURE(mt_result_is_ok(mt_x509_signing_check(der, length, NULL)), MT_ERR_CERT_PARSE);
    }
    MT_ENSURE(ca->chain_length < MT_CA_CHAIN_MAX, MT_ERR_TOO_LONG);
    memcpy(ca->chain[ca->chain_length].der, der, length);
    ca->chain[ca->chain_length++].length = length;
    return MT_OK_RESULT;
}

static MT_RESULT read_text_file(const char *path, char *buffer, size_t capacity, size_t *length,
                                struct mt_text *reason)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mt_result_explain(reason, MT_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    mt_result result = read_all(fd, buffer, capacity, length);
    close(fd);
    if (!mt_result_is_ok(result))
        return mt_result_explain(reason, result.error, "cannot read %s: %s", path,
                                 result.error == MT_ERR_TOO_LONG ? "larger than 64 KiB"
                                                                 : strerror(errno));
    return MT_OK_RESULT;
}

MT_RESULT mt_ca_add_anchor_file(struct mt_ca *ca, const char *path, struct mt_text *reason)
{
    MT_ENSURE_REF(ca);
    MT_ENSURE_REF(path);
    char pem[FILE_MAX];
    size_t length = 0;
    MT_GUARD(read_text_file(path, pem, sizeof(pem), &length, reason));
    /* An empty extra-anchors file is how an operator removes the last old anchor. */
    if (memmem(pem, length, "-----BEGIN", 10) == NULL && ca->anchor_count > 0)
        return MT_OK_RESULT;
    mt_result result = for_each_pem_certificate(pem, length, ca, add_anchor);
    if (!mt_result_is_ok(result))
        return mt_result_explain(reason, result.error,
                                 "%s: %s (expected PEM CA certificates, at most %d anchors in all)",
                                 path, mt_error_message(result.error), MT_CA_ANCHORS_MAX);
    return MT_OK_RESULT;
}

/* Drops tls.crt's chain certificates that are anchors: a root is trusted, never sent. */
static void remove_anchors_from_chain(struct mt_ca *ca)
{
    size_t kept = 0;
    for (size_t i = 0; i < ca->chain_length; i++) {
        if (has_anchor(ca, ca->chain[i].der, ca->chain[i].length))
            continue;
        if (kept != i)
            ca->chain[kept] = ca->chain[i];
        kept++;
    }
    ca->chain_length = kept;
}

static MT_RESULT check_issuer(const char *cert_path, const char *key_path, const char *trust_domain,
                              time_t now, struct mt_ca *ca, struct mt_text *reason)
{
    time_t not_before = 0;
    char when[32];
    if (!mt_result_is_ok(
            mt_x509_cert_validity(ca->cert_der, ca->cert_length, &not_before, &ca->not_after)))
        return mt_result_explain(reason, MT_ERR_CERT_PARSE,
                                 "%s: the first certificate does not parse", cert_path);
    /* X.509-SVID §3.2, §4.1, §4.3: what signs SVIDs is a CA with a critical keyCertSign. */
    const char *why = NULL;
    if (!mt_result_is_ok(mt_x509_signing_check(ca->cert_der, ca->cert_length, &why)))
        return mt_result_explain(reason, MT_ERR_CERT_PARSE,
                                 "%s is not an X.509-SVID signing certificate: %s (it needs "
                                 "basicConstraints CA:TRUE and a critical keyUsage with "
                                 "keyCertSign, and a spiffe://<trust domain> URI SAN if any)",
                                 cert_path, why);
    if (!mt_x509_key_matches_cert(ca->key, ca->cert_der, ca->cert_length))
        return mt_result_explain(reason, MT_ERR_CERT_PARSE,
                                 "%s does not belong to %s (their public keys differ)", key_path,
                                 cert_path);
    if (ca->not_after <= now) {
        format_utc(ca->not_after, when, sizeof(when));
        return mt_result_explain(
            reason, MT_ERR_CERT_PARSE,
            "the issuer in %s expired on %s: renew it (cert-manager: check the "
            "Certificate's status)",
            cert_path, when);
    }
    if (not_before > now) {
        format_utc(not_before, when, sizeof(when));
        return mt_result_explain(reason, MT_ERR_CERT_PARSE,
                                 "the issuer in %s is not valid before %s: check the clock",
                                 cert_path, when);
    }
    /* A SPIFFE CA may name its trust domain in a URI SAN; one naming another is refused. */
    char ca_id[MT_SPIFFE_ID_MAX + 1];
    struct mt_spiffe_id parsed;
    snprintf(ca->trust_domain, sizeof(ca->trust_domain), "%s", trust_domain);
    if (mt_result_is_ok(
            mt_x509_cert_spiffe_id(ca->cert_der, ca->cert_length, ca_id, sizeof(ca_id))) &&
        mt_result_is_ok(mt_spiffe_id_parse(ca_id, strlen(ca_id), &parsed)) &&
        (parsed.trust_domain_length != strlen(trust_domain) ||
         memcmp(parsed.trust_domain, trust_domain, parsed.trust_domain_length) != 0))
        return mt_result_explain(
            reason, MT_ERR_CONFIG,
            "the issuer in %s is for trust domain %.*s, not %s: fix --trust-domain or the "
            "issuer",
            cert_path, (int)parsed.trust_domain_length, parsed.trust_domain, trust_domain);
    return MT_OK_RESULT;
}

MT_RESULT mt_ca_load_issuer_dir(const char *directory, const char *trust_domain, time_t now,
                                struct mt_ca *ca, struct mt_text *reason)
{
    MT_ENSURE_REF(directory);
    MT_ENSURE_REF(trust_domain);
    MT_ENSURE_REF(ca);
    memset(ca, 0, sizeof(*ca));
    char key_path[sizeof(ca->cert_path)];
    char anchors_path[sizeof(ca->cert_path)];
    if (strlen(directory) + sizeof("/tls.crt") > sizeof(key_path))
        return mt_result_explain(reason, MT_ERR_TOO_LONG, "issuer directory path too long");
    snprintf(ca->cert_path, sizeof(ca->cert_path), "%s/tls.crt", directory);
    snprintf(key_path, sizeof(key_path), "%s/tls.key", directory);
    snprintf(anchors_path, sizeof(anchors_path), "%s/ca.crt", directory);

    char pem[FILE_MAX];
    size_t length = 0;
    mt_result result = read_text_file(ca->cert_path, pem, sizeof(pem), &length, reason);
    if (mt_result_is_ok(result)) {
        result = for_each_pem_certificate(pem, length, ca, add_issuer_certificate);
        if (!mt_result_is_ok(result))
            result = mt_result_explain(
                reason, result.error,
                "%s: %s (expected PEM certificates: the issuer, then at most %d of its "
                "chain)",
                ca->cert_path, mt_error_message(result.error), MT_CA_CHAIN_MAX);
    }
    /* A secret volume's files are links into ..data: followed, and their target checked. */
    if (mt_result_is_ok(result))
        result = read_key(key_path, true,
                          " (on a Kubernetes secret volume, set defaultMode: 0400 instead)",
                          &ca->key, reason);
    if (mt_result_is_ok(result))
        result = check_issuer(ca->cert_path, key_path, trust_domain, now, ca, reason);
    if (mt_result_is_ok(result))
        result = mt_ca_add_anchor_file(ca, anchors_path, reason);
    if (mt_result_is_ok(result))
        remove_anchors_from_chain(ca);
    if (mt_result_is_ok(result))
        result = prepare_signer(ca, reason);
    if (!mt_result_is_ok(result))
        mt_ca_cleanup(ca);
    return result;
}
