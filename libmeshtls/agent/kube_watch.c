/*
 * The API server's list and watch of pods and Services, on the watch's own thread (see
 * kube_watch.h).
 *
 * Owns the thread, its libcurl multi handle with one transfer per kind, the pod and Service
 * records (kube_members.h) and the schedule: pages of a LIST, the WATCH after it, re-watches,
 * relists on 410, backoff. The event loop sees nothing of it but the finished entry arrays it
 * takes under the lock. It must never hand over a state built from a LIST not read to its last
 * page (that would call meshed pods absent), never retry without a pause after a failure, never
 * send the token to a server its CA file does not vouch for, and never keep the token beyond one
 * request.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../util/log.h"
#include "../util/sys.h"
#include "agent_metrics.h"
#include "kube_members.h"
#include "kube_watch.h"
#include "kubelet.h"

enum phase {
    PHASE_IDLE,     /* waiting until retry_at_ms to start the next request */
    PHASE_LISTING,  /* a page of the LIST under way */
    PHASE_WATCHING, /* the WATCH under way */
};

/* One kind's requests and what they have read. */
struct context;

struct resource {
    struct context *owner;
    enum mt_kube_kind kind;
    const char *path;
    const char *name; /* for log lines */
    enum phase phase;
    bool listed;       /* a LIST was read whole at least once */
    bool next_is_list; /* what PHASE_IDLE starts at retry_at_ms */
    long long retry_at_ms;
    long long backoff_ms;
    long long started_ms; /* when the request under way began */
    CURL *handle;
    struct curl_slist header;
    char authorization[MT_KUBELET_AUTHORIZATION_MAX];
    char error[CURL_ERROR_SIZE];
    char url[2048 + MT_KUBE_CONTINUE_MAX * 3];
    char resource_version[MT_KUBE_RESOURCE_VERSION_MAX];
    char continue_token[MT_KUBE_CONTINUE_MAX];
    struct mt_kube_state listing; /* the LIST being read, page by page */
    /* A LIST page whole, or the watch line being received. */
    char *data;
    size_t length;
    size_t capacity;
    bool too_long;
    bool no_memory;
    /* The watch: what its lines said. */
    bool gone;         /* an ERROR event with code 410 */
    bool event_failed; /* a line that could not be applied */
    bool had_event;
    char event_error[512];
};

struct context {
    struct mt_kube_watch *watch;
    CURLM *multi;
    struct mt_kube_state state;
    struct resource resources[2];
    bool dirty;
    long long handed_ms;
    /* What was handed over last: a pod's status changes often and seldom its membership, and
     * the same set again would cost every workload a new mapping for nothing. */
    bool has_handed;
    uint64_t handed_digest;
    size_t handed_count;
    bool handed_complete;
};

/* FNV-1a of the entries, to tell a set from the one handed over last. */
static uint64_t digest(const struct mt_membership_entry *entries, size_t count)
{
    uint64_t hash = 0xcbf29ce484222325ull;
    const uint8_t *bytes = (const uint8_t *)entries;
    for (size_t i = 0; i < count * sizeof(*entries); i++)
        hash = (hash ^ bytes[i]) * 0x100000001b3ull;
    return hash;
}

/* ---- handing over ------------------------------------------------------------------------- */

static void hand_over(struct context *context, long long now)
{
    struct mt_membership_entry *entries = NULL;
    size_t count = 0;
    if (!mt_result_is_ok(mt_kube_members_compute(&context->state, context->watch->trust_domain,
                                                 &entries, &count))) {
        mt_log_error("out of memory computing the mesh members from the API server's pods");
        return;
    }
    struct mt_kube_watch *watch = context->watch;
    bool complete = context->resources[0].listed && context->resources[1].listed;
    uint64_t hash = digest(entries, count);
    context->dirty = false;
    context->handed_ms = now;
    if (context->has_handed && hash == context->handed_digest && count == context->handed_count &&
        complete == context->handed_complete) {
        free(entries);
        return;
    }
    context->has_handed = true;
    context->handed_digest = hash;
    context->handed_count = count;
    context->handed_complete = complete;
    pthread_mutex_lock(&watch->lock);
    free(watch->pending);
    watch->pending = entries;
    watch->pending_count = count;
    watch->has_pending = true;
    watch->pending_complete = complete;
    pthread_mutex_unlock(&watch->lock);
    atomic_store(&mt_agent_stats.kube_members, (unsigned long long)count);
    uint64_t one = 1;
    /* A full counter is still readable: the loop takes the newest entries either way. */
    ssize_t written = write(watch->wake_fd, &one, sizeof(one));
    (void)written;
}

/* ---- receiving ---------------------------------------------------------------------------- */

static bool append(struct resource *resource, const char *bytes, size_t length, size_t limit)
{
    if (length > limit - resource->length) {
        resource->too_long = true;
        return false;
    }
    if (resource->length + length + 1 > resource->capacity) {
        size_t capacity = resource->capacity > 0 ? resource->capacity : 64 * 1024;
        while (capacity < resource->length + length + 1)
            capacity *= 2;
        char *data = realloc(resource->data, capacity);
        if (data == NULL) {
            resource->no_memory = true;
            return false;
        }
        resource->data = data;
        resource->capacity = capacity;
    }
    memcpy(resource->data + resource->length, bytes, length);
    resource->length += length;
    resource->data[resource->length] = '\0';
    return true;
}

static size_t receive_page(char *bytes, size_t size, size_t count, void *pointer)
{
    struct resource *resource = pointer;
    return append(resource, bytes, size * count, MT_KUBE_WATCH_PAGE_BYTES_MAX) ? size * count : 0;
}

/* One complete watch line applied; false ends the transfer (the state may have lost an event). */
static bool apply_line(struct context *context, struct resource *resource, const char *line,
                       size_t length)
{
    while (length > 0 && (line[length - 1] == '\r' || line[length - 1] == ' '))
        length--;
    if (length == 0)
        return true;
    struct mt_kube_event event;
    struct mt_text reason = mt_text_on(resource->event_error, sizeof(resource->event_error));
    mt_text_clear(&reason);
    mt_result result =
        mt_kube_members_apply_event(&context->state, resource->kind, line, length, &event, &reason);
    if (!mt_result_is_ok(result)) {
        resource->event_failed = true;
        return false;
    }
    if (event.type == MT_KUBE_EVENT_ERROR) {
        if (event.error_code == 410)
            resource->gone = true;
        else
            resource->event_failed = true;
        return false;
    }
    if (event.resource_version[0] != '\0')
        snprintf(resource->resource_version, sizeof(resource->resource_version), "%s",
                 event.resource_version);
    resource->had_event = true;
    if (event.changed)
        context->dirty = true;
    return true;
}

static size_t receive_watch(char *bytes, size_t size, size_t count, void *pointer)
{
    struct resource *resource = pointer;
    size_t length = size * count;
    size_t done = 0;
    while (done < length) {
        const char *newline = memchr(bytes + done, '\n', length - done);
        size_t piece = newline != NULL ? (size_t)(newline - (bytes + done)) : length - done;
        if (!append(resource, bytes + done, piece, MT_KUBE_WATCH_EVENT_MAX))
            return 0;
        done += piece;
        if (newline == NULL)
            break;
        done++; /* the newline */
        bool applied = apply_line(resource->owner, resource, resource->data, resource->length);
        resource->length = 0;
        if (!applied)
            return 0;
    }
    return length;
}

/* ---- requests ----------------------------------------------------------------------------- */

static void end_transfer(struct context *context, struct resource *resource)
{
    if (resource->handle != NULL) {
        curl_multi_remove_handle(context->multi, resource->handle);
        curl_easy_cleanup(resource->handle);
        resource->handle = NULL;
    }
    explicit_bzero(resource->authorization, sizeof(resource->authorization));
    resource->length = 0;
    resource->too_long = false;
    resource->no_memory = false;
}

static void schedule_retry(struct resource *resource, bool list, long long now)
{
    resource->phase = PHASE_IDLE;
    resource->next_is_list = list;
    resource->retry_at_ms = now + resource->backoff_ms;
    resource->backoff_ms = resource->backoff_ms * 2 > MT_KUBE_WATCH_BACKOFF_MAX_MS
                               ? MT_KUBE_WATCH_BACKOFF_MAX_MS
                               : resource->backoff_ms * 2;
}

static void fail(struct resource *resource, bool list, long long now, const char *format,
                 const char *detail)
{
    atomic_fetch_add(&mt_agent_stats.kube_api_errors, 1);
    mt_log_warn("Kubernetes API server: %s %s: %s; keeping the last membership, trying again in "
                "%lld ms",
                format, resource->name, detail, resource->backoff_ms);
    schedule_retry(resource, list, now);
}

/* Starts the next LIST page or the WATCH of resource; on failure schedules a retry. */
static void begin(struct context *context, struct resource *resource, bool list, long long now)
{
    const struct mt_kube_watch *watch = context->watch;
    size_t base = strlen(watch->url);
    while (base > 0 && watch->url[base - 1] == '/')
        base--;
    int length;
    if (list) {
        char *escaped = NULL;
        if (resource->continue_token[0] != '\0') {
            escaped = curl_easy_escape(NULL, resource->continue_token, 0);
            if (escaped == NULL) {
                fail(resource, true, now, "listing", "out of memory");
                return;
            }
        }
        length = snprintf(resource->url, sizeof(resource->url), "%.*s%s?limit=%d%s%s", (int)base,
                          watch->url, resource->path, MT_KUBE_WATCH_PAGE,
                          escaped != NULL ? "&continue=" : "", escaped != NULL ? escaped : "");
        curl_free(escaped);
    } else {
        length = snprintf(resource->url, sizeof(resource->url),
                          "%.*s%s?watch=1&resourceVersion=%s&allowWatchBookmarks=true&"
                          "timeoutSeconds=%d",
                          (int)base, watch->url, resource->path, resource->resource_version,
                          MT_KUBE_WATCH_TIMEOUT_SECONDS);
    }
    if (length < 0 || (size_t)length >= sizeof(resource->url)) {
        fail(resource, true, now, list ? "listing" : "watching", "the request URL is too long");
        return;
    }
    char message[512] = "";
    struct mt_text reason = mt_text_on(message, sizeof(message));
    if (!mt_result_is_ok(mt_kubelet_read_token(watch->token_file, resource->authorization,
                                               sizeof(resource->authorization), &reason))) {
        explicit_bzero(resource->authorization, sizeof(resource->authorization));
        fail(resource, list, now, list ? "listing" : "watching", message);
        return;
    }
    resource->handle = curl_easy_init();
    resource->header = (struct curl_slist){.data = resource->authorization, .next = NULL};
    resource->error[0] = '\0';
    resource->length = 0;
    resource->gone = false;
    resource->event_failed = false;
    resource->had_event = false;
    bool set = resource->handle != NULL &&
               mt_kubelet_curl_set_tls(resource->handle, resource->url, watch->ca_file,
                                       &resource->header, resource->error) &&
               curl_easy_setopt(resource->handle, CURLOPT_CONNECTTIMEOUT_MS,
                                (long)MT_KUBE_WATCH_CONNECT_TIMEOUT_MS) == CURLE_OK &&
               curl_easy_setopt(resource->handle, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK &&
               curl_easy_setopt(resource->handle, CURLOPT_PRIVATE, resource) == CURLE_OK;
    if (set && list)
        set = curl_easy_setopt(resource->handle, CURLOPT_TIMEOUT_MS,
                               (long)MT_KUBE_WATCH_LIST_TIMEOUT_MS) == CURLE_OK &&
              curl_easy_setopt(resource->handle, CURLOPT_WRITEFUNCTION, receive_page) == CURLE_OK &&
              curl_easy_setopt(resource->handle, CURLOPT_WRITEDATA, resource) == CURLE_OK;
    else if (set)
        /* The server ends the watch at timeoutSeconds; past that by a minute it is dead. */
        set =
            curl_easy_setopt(resource->handle, CURLOPT_TIMEOUT_MS,
                             (long)(MT_KUBE_WATCH_TIMEOUT_SECONDS + 60) * 1000L) == CURLE_OK &&
            curl_easy_setopt(resource->handle, CURLOPT_WRITEFUNCTION, receive_watch) == CURLE_OK &&
            curl_easy_setopt(resource->handle, CURLOPT_WRITEDATA, resource) == CURLE_OK;
    if (!set || curl_multi_add_handle(context->multi, resource->handle) != CURLM_OK) {
        end_transfer(context, resource);
        fail(resource, list, now, list ? "listing" : "watching",
             "this libcurl lacks an option the API server client needs");
        return;
    }
    resource->phase = list ? PHASE_LISTING : PHASE_WATCHING;
    resource->started_ms = now;
}

static void start_list(struct context *context, struct resource *resource, long long now)
{
    mt_kube_state_free(&resource->listing);
    resource->continue_token[0] = '\0';
    begin(context, resource, true, now);
}

/* "HTTP 403 (what to do)" for an answer that is not 200. */
static void describe_status(int status, char *detail, size_t capacity)
{
    snprintf(detail, capacity, "HTTP %d%s", status,
             status == 401   ? " (the API server does not accept the token)"
             : status == 403 ? " (the agent's service account needs get, list and watch on pods "
                               "and services)"
                             : "");
}

/* A LIST page has arrived whole (HTTP status status). */
static void finish_page(struct context *context, struct resource *resource, int status,
                        long long now)
{
    char message[512] = "";
    struct mt_text reason = mt_text_on(message, sizeof(message));
    char detail[160];
    if (status == 410 && resource->continue_token[0] != '\0') {
        /* The continue token expired between pages: the list starts over (once: a 410 to a
         * first page is a failure like any other). */
        mt_kube_state_free(&resource->listing);
        resource->continue_token[0] = '\0';
        begin(context, resource, true, now);
        return;
    }
    if (status != 200) {
        describe_status(status, detail, sizeof(detail));
        mt_kube_state_free(&resource->listing);
        fail(resource, true, now, "listing", detail);
        return;
    }
    char version[MT_KUBE_RESOURCE_VERSION_MAX];
    if (!mt_result_is_ok(mt_kube_members_apply_list(
            &resource->listing, resource->kind, resource->data != NULL ? resource->data : "",
            resource->length, version, resource->continue_token, &reason))) {
        mt_kube_state_free(&resource->listing);
        fail(resource, true, now, "listing", message);
        return;
    }
    if (resource->continue_token[0] != '\0') {
        begin(context, resource, true, now);
        return;
    }
    /* The last page: the list replaces the kind's state whole. The page buffer goes: watch
     * lines are far shorter than a page of 500 objects. */
    mt_kube_state_replace(&context->state, &resource->listing, resource->kind);
    free(resource->data);
    resource->data = NULL;
    resource->length = resource->capacity = 0;
    snprintf(resource->resource_version, sizeof(resource->resource_version), "%s", version);
    bool first = !resource->listed;
    resource->listed = true;
    resource->backoff_ms = MT_KUBE_WATCH_BACKOFF_MIN_MS;
    context->dirty = true;
    size_t count =
        resource->kind == MT_KUBE_PODS ? context->state.pod_count : context->state.service_count;
    mt_log_info("Kubernetes API server: %s %s: %zu at resourceVersion %s",
                first ? "listed" : "relisted", resource->name, count, version);
    begin(context, resource, false, now);
}

static void finish_watch(struct context *context, struct resource *resource, CURLcode code,
                         int status, long long now)
{
    if (status == 410 || resource->gone) {
        atomic_fetch_add(&mt_agent_stats.kube_relists, 1);
        mt_log_info("Kubernetes API server: the watch of %s is past resourceVersion %s (410 "
                    "Gone): listing again",
                    resource->name, resource->resource_version);
        start_list(context, resource, now);
        return;
    }
    if (resource->event_failed) {
        /* An event not applied may have been a change: only a new LIST is sure to hold it. */
        mt_kube_state_free(&resource->listing);
        fail(resource, true, now, "watching", resource->event_error);
        return;
    }
    if (resource->too_long || resource->no_memory) {
        fail(resource, true, now, "watching",
             resource->too_long ? "an event is longer than the limit" : "out of memory");
        return;
    }
    char detail[CURL_ERROR_SIZE + 64];
    if (code != CURLE_OK && code != CURLE_OPERATION_TIMEDOUT) {
        snprintf(detail, sizeof(detail), "%s",
                 resource->error[0] != '\0' ? resource->error : curl_easy_strerror(code));
        fail(resource, false, now, "watching", detail);
        return;
    }
    if (status != 200) {
        describe_status(status, detail, sizeof(detail));
        fail(resource, false, now, "watching", detail);
        return;
    }
    atomic_fetch_add(&mt_agent_stats.kube_watch_restarts, 1);
    if (resource->had_event || now - resource->started_ms >= MT_KUBE_WATCH_BACKOFF_MAX_MS) {
        resource->backoff_ms = MT_KUBE_WATCH_BACKOFF_MIN_MS;
        if (now - resource->started_ms >= MT_KUBE_WATCH_BACKOFF_MIN_MS) {
            begin(context, resource, false, now);
            return;
        }
    }
    /* A watch that ended at once, or with nothing said: again after a pause, so a server that
     * closes every watch at once is not asked in a loop. */
    schedule_retry(resource, false, now);
}

static void finish(struct context *context, CURLMsg *message, long long now)
{
    struct resource *resource = NULL;
    curl_easy_getinfo(message->easy_handle, CURLINFO_PRIVATE, (char **)&resource);
    if (resource == NULL)
        return;
    CURLcode code = message->data.result;
    long status = 0;
    curl_easy_getinfo(resource->handle, CURLINFO_RESPONSE_CODE, &status);
    enum phase phase = resource->phase;
    bool too_long = resource->too_long;
    bool no_memory = resource->no_memory;
    char error[CURL_ERROR_SIZE];
    snprintf(error, sizeof(error), "%s",
             resource->error[0] != '\0' ? resource->error : curl_easy_strerror(code));
    /* The body stays for finish_page; the handle and the token go now. */
    if (resource->handle != NULL) {
        curl_multi_remove_handle(context->multi, resource->handle);
        curl_easy_cleanup(resource->handle);
        resource->handle = NULL;
    }
    explicit_bzero(resource->authorization, sizeof(resource->authorization));
    if (phase == PHASE_LISTING) {
        if (too_long || no_memory || code != CURLE_OK) {
            mt_kube_state_free(&resource->listing);
            fail(resource, true, now, "listing",
                 too_long    ? "a page is longer than the limit"
                 : no_memory ? "out of memory"
                             : error);
        } else {
            finish_page(context, resource, (int)status, now);
        }
    } else {
        resource->too_long = too_long;
        resource->no_memory = no_memory;
        finish_watch(context, resource, code, (int)status, now);
    }
    if (resource->phase == PHASE_IDLE) {
        resource->length = 0;
        resource->too_long = false;
        resource->no_memory = false;
    }
}

/* ---- the thread --------------------------------------------------------------------------- */

static int wait_ms(const struct context *context, long long now)
{
    long long wait = 1000; /* so that a stop is seen within a second whatever happens */
    if (context->dirty) {
        long long due = context->handed_ms + MT_KUBE_WATCH_COALESCE_MS - now;
        if (due < wait)
            wait = due;
    }
    for (size_t i = 0; i < 2; i++) {
        const struct resource *resource = &context->resources[i];
        if (resource->phase == PHASE_IDLE && resource->retry_at_ms - now < wait)
            wait = resource->retry_at_ms - now;
    }
    return wait < 0 ? 0 : (int)wait;
}

static void *run(void *pointer)
{
    struct context *context = pointer;
    long long now = mt_sys_now_ms();
    for (size_t i = 0; i < 2; i++)
        start_list(context, &context->resources[i], now);
    while (!atomic_load(&context->watch->stopping)) {
        int running = 0;
        curl_multi_perform(context->multi, &running);
        now = mt_sys_now_ms();
        CURLMsg *message;
        int left;
        while ((message = curl_multi_info_read(context->multi, &left)) != NULL)
            if (message->msg == CURLMSG_DONE)
                finish(context, message, now);
        for (size_t i = 0; i < 2; i++) {
            struct resource *resource = &context->resources[i];
            if (resource->phase == PHASE_IDLE && resource->retry_at_ms <= now) {
                if (resource->next_is_list)
                    start_list(context, resource, now);
                else
                    begin(context, resource, false, now);
            }
        }
        if (context->dirty && now - context->handed_ms >= MT_KUBE_WATCH_COALESCE_MS)
            hand_over(context, now);
        curl_multi_poll(context->multi, NULL, 0, wait_ms(context, mt_sys_now_ms()), NULL);
    }
    for (size_t i = 0; i < 2; i++) {
        struct resource *resource = &context->resources[i];
        end_transfer(context, resource);
        mt_kube_state_free(&resource->listing);
        free(resource->data);
    }
    mt_kube_state_free(&context->state);
    free(context);
    return NULL;
}

MT_RESULT mt_kube_watch_start(struct mt_kube_watch *watch, const char *url, const char *token_file,
                              const char *ca_file, const char *trust_domain, struct mt_text *reason)
{
    MT_ENSURE_REF(watch);
    MT_ENSURE_REF(url);
    MT_ENSURE_REF(token_file);
    MT_ENSURE_REF(ca_file);
    MT_ENSURE_REF(trust_domain);
    memset(watch, 0, sizeof(*watch));
    watch->wake_fd = -1;
    MT_GUARD(mt_kubelet_check_url_host(url, reason));
    watch->url = url;
    watch->token_file = token_file;
    watch->ca_file = ca_file;
    watch->trust_domain = trust_domain;
    atomic_init(&watch->stopping, false);
    struct context *context = calloc(1, sizeof(*context));
    mt_result result = MT_OK_RESULT;
    if (context == NULL) {
        result = mt_result_explain(reason, MT_ERR_NO_MEMORY, "out of memory");
        goto out;
    }
    context->watch = watch;
    static const char *const paths[] = {"/api/v1/pods", "/api/v1/services"};
    static const char *const names[] = {"pods", "services"};
    for (size_t i = 0; i < 2; i++) {
        context->resources[i].owner = context;
        context->resources[i].kind = (enum mt_kube_kind)i;
        context->resources[i].path = paths[i];
        context->resources[i].name = names[i];
        context->resources[i].backoff_ms = MT_KUBE_WATCH_BACKOFF_MIN_MS;
    }
    watch->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (watch->wake_fd < 0) {
        result = mt_result_explain(reason, MT_ERR_IO, "eventfd: %s", strerror(errno));
        goto out;
    }
    context->multi = curl_multi_init();
    watch->multi = context->multi;
    if (context->multi == NULL) {
        result = mt_result_explain(reason, MT_ERR_NO_MEMORY, "curl_multi_init failed");
        goto out;
    }
    int error = pthread_mutex_init(&watch->lock, NULL);
    if (error == 0) {
        error = pthread_create(&watch->thread, NULL, run, context);
        if (error != 0)
            pthread_mutex_destroy(&watch->lock);
    }
    if (error != 0) {
        result = mt_result_explain(reason, MT_ERR_IO, "cannot start the API server's watch: %s",
                                   strerror(error));
        goto out;
    }
    watch->started = true;
    context = NULL;
out:
    if (context != NULL) {
        if (context->multi != NULL)
            curl_multi_cleanup(context->multi);
        free(context);
    }
    if (!watch->started) {
        watch->multi = NULL;
        if (watch->wake_fd >= 0)
            close(watch->wake_fd);
        watch->wake_fd = -1;
    }
    return result;
}

int mt_kube_watch_fd(const struct mt_kube_watch *watch)
{
    return watch != NULL && watch->started ? watch->wake_fd : -1;
}

bool mt_kube_watch_take(struct mt_kube_watch *watch, struct mt_membership_entry **entries,
                        size_t *count, bool *complete)
{
    if (watch == NULL || !watch->started)
        return false;
    uint64_t value;
    ssize_t got = read(watch->wake_fd, &value, sizeof(value));
    (void)got;
    pthread_mutex_lock(&watch->lock);
    bool has = watch->has_pending;
    if (has) {
        *entries = watch->pending;
        *count = watch->pending_count;
        *complete = watch->pending_complete;
        watch->pending = NULL;
        watch->pending_count = 0;
        watch->has_pending = false;
    }
    pthread_mutex_unlock(&watch->lock);
    return has;
}

void mt_kube_watch_stop(struct mt_kube_watch *watch)
{
    if (watch == NULL || !watch->started)
        return;
    atomic_store(&watch->stopping, true);
    curl_multi_wakeup(watch->multi);
    pthread_join(watch->thread, NULL);
    curl_multi_cleanup(watch->multi);
    watch->multi = NULL;
    pthread_mutex_destroy(&watch->lock);
    free(watch->pending);
    watch->pending = NULL;
    close(watch->wake_fd);
    watch->wake_fd = -1;
    watch->started = false;
}
