/*
 * Configuration loading and the identity / TLS context lifecycle (see runtime.h).
 *
 * Owns the process's configuration (loaded once) and its current TLS context, renewed through
 * the agent. Must never start a thread, wait for the agent while a valid identity is at hand, nor
 * hand out a context whose identity has expired.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../identity/client.h"
#include "../metrics/metrics.h"
#include "../util/log.h"
#include "../util/text.h"
#include "../util/sys.h"
#include "runtime.h"

/* After a failed fetch, wait this long (doubling up to the maximum) before asking again. */
#define RETRY_FIRST_MS 500
#define RETRY_MAX_MS 30000
/* While a process waits for its first identity (agent_wait_ms), it asks this often. */
#define FIRST_WAIT_RETRY_MS 100
/* "2025-01-31T23:59:59Z" and its NUL, with room to spare. */
#define TIME_TEXT_MAX 32

static pthread_once_t config_once = PTHREAD_ONCE_INIT;
static struct mt_config config;
static bool config_failed;
static char config_message[MT_CONFIG_MESSAGE_MAX];

static pthread_mutex_t context_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mt_tls_context *current_context;
static long long next_attempt_ms;
static int retry_delay_ms = RETRY_FIRST_MS;
static char last_failure[MT_CONFIG_MESSAGE_MAX];
static struct mt_identity_request *renewal; /* under way, under context_lock */
static long long loaded_ms;                 /* when the configuration was loaded */
static bool waiting_for_agent;              /* quiet failures while waiting for it */
static bool agent_untrusted;                /* the last attempt found an impostor (peer.h) */

/*
 * How long the first metrics event of a process may wait for the agent's metrics file. It is
 * asked on the connection path, with the metrics lock held (metrics.h), and a reply takes the
 * agent well under a millisecond: a slow or hung agent costs one connection this long, then
 * metrics stay off until the next attempt, instead of agent_timeout_ms.
 */
#define METRICS_FILE_TIMEOUT_MS 500

/* The metrics-file request sent beside the first identity request; under the metrics lock. */
static struct mt_identity_metrics_request *metrics_ahead;

/*
 * mt_metrics_ask_ahead's ahead(): the first connection records into the metrics file right after
 * its identity is installed, and asking for the file only then made a second round trip to the
 * agent on every process's way to its first connection. A failure here is said by the request
 * the first event then makes itself.
 */
static void ask_metrics_file_ahead(void)
{
    char message[MT_CONFIG_MESSAGE_MAX];
    struct mt_text reason = mt_text_on(message, sizeof(message));
    if (metrics_ahead != NULL)
        return;
    mt_result started =
        mt_identity_metrics_request_start(config.agent_socket, (uid_t)config.agent_uid,
                                          (int)config.agent_timeout_ms, &metrics_ahead, &reason);
    if (!mt_result_is_ok(started))
        metrics_ahead = NULL;
}

/*
 * The metrics file, from the agent (see metrics.h): asked lazily, on the first event to record,
 * or beside the first identity request (ask_metrics_file_ahead), whose reply is taken here.
 */
static mt_result request_metrics_file(int *fd, struct mt_text *reason)
{
    int timeout_ms = config.agent_timeout_ms < METRICS_FILE_TIMEOUT_MS
                         ? (int)config.agent_timeout_ms
                         : METRICS_FILE_TIMEOUT_MS;
    if (metrics_ahead == NULL)
        return mt_identity_metrics_file(config.agent_socket, (uid_t)config.agent_uid, timeout_ms,
                                        fd, reason);
    mt_result result = mt_identity_metrics_request_poll(metrics_ahead, timeout_ms, fd, reason);
    if (result.error == MT_ERR_WOULD_BLOCK)
        result =
            mt_result_explain(reason, MT_ERR_TIMEOUT, "agent at %s: no metrics file after %d ms",
                              config.agent_socket, timeout_ms);
    mt_identity_metrics_request_free(metrics_ahead);
    metrics_ahead = NULL;
    return result;
}

static void load_config(void)
{
    mt_log_set_writer(mt_sys_write);
    (void)mt_log_detect_journal(); /* a program run as a systemd service */
    struct mt_text reason = mt_text_on(config_message, sizeof(config_message));
    /* Static and loaded once: zero until now. */
    if (!mt_result_is_ok(mt_config_load_fresh(&config, &reason))) {
        config_failed = true;
        mt_log_error("configuration error: %s; every TCP connection is refused until it is fixed",
                     config_message);
        return;
    }
    mt_log_set_level(config.log_level);
    loaded_ms = mt_sys_now_ms();
    mt_metrics_init(request_metrics_file);
    mt_log_debug("configuration %s: outbound loopback=%s default=%s, inbound loopback=%s "
                 "default=%s, agent %s",
                 config.source[0] != '\0' ? config.source : "(built-in defaults)",
                 mt_outbound_mode_name(config.outbound.loopback),
                 mt_outbound_mode_name(config.outbound.other),
                 mt_inbound_mode_name(config.inbound.loopback),
                 mt_inbound_mode_name(config.inbound.other), config.agent_socket);
}

const struct mt_config *mt_runtime_config(void)
{
    pthread_once(&config_once, load_config);
    return &config;
}

bool mt_runtime_config_failed(const char **message)
{
    pthread_once(&config_once, load_config);
    if (message != NULL)
        *message = config_message;
    return config_failed;
}

static void format_time(time_t when, char *text, size_t size)
{
    struct tm parts;
    gmtime_r(&when, &parts);
    strftime(text, size, "%Y-%m-%dT%H:%M:%SZ", &parts);
}

/* With context_lock held: the agent could not give an identity now; back off, say why. */
static void note_failure(const char *message, enum mt_error error)
{
    snprintf(last_failure, sizeof(last_failure), "%s", message);
    next_attempt_ms = mt_sys_now_ms() + retry_delay_ms;
    retry_delay_ms = retry_delay_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : retry_delay_ms * 2;
    /* An agent not up yet is expected while waiting for it; an impostor in its place is not. */
    agent_untrusted = error == MT_ERR_AGENT_UNTRUSTED;
    if (waiting_for_agent && !agent_untrusted)
        mt_log_debug("no identity yet: %s", message);
    else
        mt_log_warn("no new identity: %s", message);
}

/* With context_lock held: builds a TLS context for identity and makes it current. */
static void install(const struct mt_config *settings, struct mt_credentials *identity)
{
    char message[MT_CONFIG_MESSAGE_MAX] = "";
    struct mt_text reason = mt_text_on(message, sizeof(message));
    struct mt_tls_context *context = NULL;
    mt_result result = MT_OK_RESULT;
    /* Refused, never quietly classical: the configuration asks what this build cannot do. */
    if (settings->post_quantum == MT_POST_QUANTUM_REQUIRE && !mt_tls_has_post_quantum())
        result = mt_result_explain(&reason, MT_ERR_UNSUPPORTED,
                                   "post_quantum = \"require\", but this build's wolfSSL has no "
                                   "ML-KEM key exchange (build with -Dwolfssl=bundled)");
    else if (!mt_result_is_ok(result = mt_tls_context_new(identity, settings->resumption_s,
                                                          settings->post_quantum, &context)))
        result = mt_result_explain(&reason, result.error, "cannot load the identity into TLS: %s",
                                   mt_error_message(result.error));
    if (mt_result_is_ok(result) && settings->trust_domain[0] != '\0' &&
        strcmp(identity->trust_domain, settings->trust_domain) != 0)
        result = mt_result_explain(
            &reason, MT_ERR_SVID, "agent issued %.200s, outside the configured trust domain %.100s",
            identity->spiffe_id, settings->trust_domain);
    if (!mt_result_is_ok(result)) {
        mt_tls_context_release(context);
        note_failure(message, result.error);
        return;
    }
    char expiry[TIME_TEXT_MAX];
    format_time(identity->not_after, expiry, sizeof(expiry));
    mt_log_info("identity %s, valid until %s", identity->spiffe_id, expiry);
    mt_metrics_identity(identity->not_after, current_context != NULL);
    mt_tls_context_release(current_context);
    current_context = context;
    retry_delay_ms = RETRY_FIRST_MS;
    next_attempt_ms = 0;
    agent_untrusted = false;
}

/*
 * With context_lock held: advances the renewal, waiting at most wait_ms (0: only what can be
 * done now), starting it first if none is under way. A renewal started by one connection is
 * finished by whichever later connection finds the agent's reply there, so no connection waits
 * for the agent while the identity it would use is still valid.
 */
static void renew_locked(const struct mt_config *settings, int wait_ms)
{
    char message[MT_CONFIG_MESSAGE_MAX] = "";
    struct mt_text reason = mt_text_on(message, sizeof(message));
    if (renewal == NULL) {
        if (mt_sys_now_ms() < next_attempt_ms)
            return;
        mt_result started =
            mt_identity_request_start(settings->agent_socket, (uid_t)settings->agent_uid,
                                      (int)settings->agent_timeout_ms, &renewal, &reason);
        if (!mt_result_is_ok(started)) {
            note_failure(message, started.error);
            return;
        }
        if (current_context == NULL)
            mt_metrics_ask_ahead(ask_metrics_file_ahead);
    }
    struct mt_credentials *identity = NULL;
    mt_result result = mt_identity_request_poll(renewal, wait_ms, &identity, &reason);
    if (result.error == MT_ERR_WOULD_BLOCK)
        return;
    mt_identity_request_free(renewal);
    renewal = NULL;
    if (!mt_result_is_ok(result)) {
        note_failure(message, result.error);
        return;
    }
    install(settings, identity);
    mt_credentials_release(identity); /* the context holds its own reference */
}

/*
 * With context_lock held, no identity yet: a process started before its agent (both started by
 * one container runtime, say) waits for it, up to agent_wait_ms after the process loaded its
 * configuration, rather than failing its first connections. Past that, it fails fast.
 */
static void wait_for_first_identity(const struct mt_config *settings)
{
    long long until = loaded_ms + (long long)settings->agent_wait_ms;
    bool said = false;
    for (;;) {
        waiting_for_agent = mt_sys_remaining_ms(until) > 0;
        renew_locked(settings, (int)settings->agent_timeout_ms);
        /* Waiting is for an agent that is late; an impostor is refused once, then backed off. */
        if (current_context != NULL || !waiting_for_agent || agent_untrusted) {
            waiting_for_agent = false;
            return;
        }
        if (!said) {
            mt_log_info("waiting up to %u ms for the agent at %s", settings->agent_wait_ms,
                        settings->agent_socket);
            said = true;
        }
        struct timespec pause = {0, FIRST_WAIT_RETRY_MS * 1000000L};
        nanosleep(&pause, NULL);
        next_attempt_ms = 0; /* the backoff is for after the wait */
    }
}

/*
 * With context_lock held: a reference to the current context when its identity is valid now,
 * else NULL with the reason (NULL allowed).
 */
static struct mt_tls_context *valid_context_locked(struct mt_text *reason)
{
    const struct mt_credentials *identity =
        current_context != NULL ? mt_tls_context_credentials(current_context) : NULL;
    if (identity != NULL && time(NULL) < identity->not_after)
        return mt_tls_context_acquire(current_context);
    if (identity != NULL) {
        char expiry[TIME_TEXT_MAX];
        format_time(identity->not_after, expiry, sizeof(expiry));
        mt_text_set(reason, "identity %.200s expired at %s and no new one: %.200s",
                    identity->spiffe_id, expiry, last_failure);
    } else {
        mt_text_set(reason, "no workload identity: %s", last_failure);
    }
    return NULL;
}

struct mt_tls_context *mt_runtime_context(struct mt_text *reason)
{
    const struct mt_config *settings = mt_runtime_config();
    if (!mt_result_is_ok(mt_tls_global_init())) {
        mt_text_set(reason, "wolfSSL failed to initialise");
        return NULL;
    }
    pthread_mutex_lock(&context_lock);
    time_t now = time(NULL);
    const struct mt_credentials *identity =
        current_context != NULL ? mt_tls_context_credentials(current_context) : NULL;
    if (identity == NULL && current_context == NULL)
        wait_for_first_identity(settings);
    else if (identity == NULL || now >= identity->not_after)
        renew_locked(settings, (int)settings->agent_timeout_ms); /* nothing valid to use */
    else if (now >= identity->refresh_at)
        renew_locked(settings, 0);
    struct mt_tls_context *context = valid_context_locked(reason);
    pthread_mutex_unlock(&context_lock);
    return context;
}

struct mt_tls_context *mt_runtime_context_now(struct mt_text *reason, bool *pending)
{
    *pending = false;
    const struct mt_config *settings = mt_runtime_config();
    if (!mt_result_is_ok(mt_tls_global_init())) {
        mt_text_set(reason, "wolfSSL failed to initialise");
        return NULL;
    }
    pthread_mutex_lock(&context_lock);
    const struct mt_credentials *identity =
        current_context != NULL ? mt_tls_context_credentials(current_context) : NULL;
    bool first = current_context == NULL;
    long long until = loaded_ms + (long long)settings->agent_wait_ms;
    /* The request is started, or its reply taken when it is there; never waited for. */
    if (identity == NULL || time(NULL) >= identity->refresh_at) {
        waiting_for_agent = first && mt_sys_remaining_ms(until) > 0;
        renew_locked(settings, 0);
        /* As wait_for_first_identity: an agent that is late is asked again every 100 ms, not
         * after the backoff, which is for after the wait. */
        long long soon = mt_sys_now_ms() + FIRST_WAIT_RETRY_MS;
        if (waiting_for_agent && renewal == NULL && !agent_untrusted && next_attempt_ms > soon)
            next_attempt_ms = soon;
        waiting_for_agent = false;
    }
    struct mt_tls_context *context = valid_context_locked(reason);
    /* Worth asking again soon: a reply is awaited, or the agent may still come up. */
    if (context == NULL)
        *pending = renewal != NULL || (first && !agent_untrusted && mt_sys_remaining_ms(until) > 0);
    pthread_mutex_unlock(&context_lock);
    return context;
}

void mt_runtime_after_fork_child(void)
{
    pthread_mutex_init(&context_lock, NULL);
    mt_tls_after_fork_child();
    /* The parent owns the reply to a renewal under way; the child asks again if it needs to. */
    mt_identity_request_free(renewal);
    renewal = NULL;
    mt_identity_metrics_request_free(metrics_ahead);
    metrics_ahead = NULL;
}
