/*
 * The agent's kubelet client (see kubelet.h): the list of the node's pods, how fresh it is, how
 * often the kubelet may be asked, and the reading of a v1 PodList with json-c.
 *
 * Owns the pod list, the query schedule and the HTTPS GET, done by libcurl (GnuTLS flavour, the
 * TLS library the agent already has through libmicrohttpd), so RSA and ECDSA chains both verify
 * as real clusters present them. It must never ask the kubelet more than once per
 * MT_KUBELET_QUERY_INTERVAL_MS, never wait longer than MT_KUBELET_QUERY_TIMEOUT_MS (a bounded
 * synchronous query in the one event loop: see server.c), never send the bearer token to a server
 * it has not verified, never keep the token beyond one query, and never answer "unknown pod" from a
 * list older than the miss when it could ask again: a pod started a moment ago is in the next
 * list. A list the kubelet no longer gives (a failed query) is not used past its freshness.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util/json_member.h"
#include "../util/log.h"
#include "kubelet.h"

#define TOKEN_MAX MT_KUBELET_TOKEN_MAX
#define AUTHORIZATION_PREFIX "Authorization: Bearer "

void mt_kubelet_init(struct mt_kubelet *kubelet, const char *url, const char *token_file,
                     const char *ca_file)
{
    memset(kubelet, 0, sizeof(*kubelet));
    kubelet->url = url;
    kubelet->token_file = token_file;
    kubelet->ca_file = ca_file;
}

void mt_kubelet_cleanup(struct mt_kubelet *kubelet)
{
    if (kubelet == NULL)
        return;
    mt_kubelet_pods_free(&kubelet->list);
    kubelet->has_list = false;
}

/* ---- the PodList -------------------------------------------------------------------------- */

static void free_pod(struct mt_kubelet_pod *pod)
{
    free(pod->namespace_name);
    free(pod->name);
    free(pod->service_account);
    free(pod->workload);
    for (size_t i = 0; i < pod->label_count; i++) {
        free(pod->labels[i].key);
        free(pod->labels[i].value);
    }
    free(pod->labels);
    for (size_t i = 0; i < pod->container_count; i++) {
        free(pod->containers[i].name);
        free(pod->containers[i].image);
    }
    free(pod->containers);
}

void mt_kubelet_pods_free(struct mt_kubelet_pods *pods)
{
    if (pods == NULL)
        return;
    for (size_t i = 0; i < pods->count; i++)
        free_pod(&pods->pods[i]);
    free(pods->pods);
    pods->pods = NULL;
    pods->count = 0;
}

/* The string at path (keys, NULL-terminated) below object, or NULL. */
static const char *string_at(struct json_object *object, const char *const *path)
{
    for (; *path != NULL; path++) {
        struct json_object *child = NULL;
        if (object == NULL || !json_object_is_type(object, json_type_object) ||
            !json_object_object_get_ex(object, *path, &child))
            return NULL;
        object = child;
    }
    return object != NULL && json_object_is_type(object, json_type_string)
               ? json_object_get_string(object)
               : NULL;
}

static char *copy_or_empty(const char *text)
{
    return strdup(text != NULL ? text : "");
}

/*
 * The owner workload: the controller's kind and name in lower case ("statefulset/db"); a
 * ReplicaSet "web-7d9f8c6b5" made by a Deployment is the Deployment "deployment/web".
 */
static char *read_workload(struct json_object *metadata)
{
    struct json_object *owners = mt_json_member(metadata, "ownerReferences", json_type_array);
    size_t count = owners != NULL ? json_object_array_length(owners) : 0;
    for (size_t i = 0; i < count; i++) {
        struct json_object *owner = json_object_array_get_idx(owners, i);
        struct json_object *controller = mt_json_member(owner, "controller", json_type_boolean);
        const char *kind = string_at(owner, (const char *const[]){"kind", NULL});
        const char *name = string_at(owner, (const char *const[]){"name", NULL});
        if (controller == NULL || !json_object_get_boolean(controller) || kind == NULL ||
            name == NULL)
            continue;
        size_t name_length = strlen(name);
        if (strcmp(kind, "ReplicaSet") == 0) {
            /* The pod-template-hash is the last '-' segment of a Deployment's ReplicaSet. */
            const char *dash = strrchr(name, '-');
            if (dash != NULL && dash != name && dash[1] != '\0') {
                kind = "Deployment";
                name_length = (size_t)(dash - name);
            }
        }
        size_t capacity = strlen(kind) + 1 + name_length + 1;
        char *workload = malloc(capacity);
        if (workload == NULL)
            return NULL;
        size_t kind_length = strlen(kind);
        for (size_t k = 0; k < kind_length; k++)
            workload[k] = (char)(kind[k] >= 'A' && kind[k] <= 'Z' ? kind[k] - 'A' + 'a' : kind[k]);
        workload[kind_length] = '/';
        memcpy(workload + kind_length + 1, name, name_length);
        workload[kind_length + 1 + name_length] = '\0';
        return workload;
    }
    return strdup("");
}

static MT_RESULT read_labels(struct json_object *metadata, struct mt_kubelet_pod *pod)
{
    struct json_object *labels = mt_json_member(metadata, "labels", json_type_object);
    if (labels == NULL)
        return MT_OK_RESULT;
    size_t count = (size_t)json_object_object_length(labels);
    pod->labels = calloc(count > 0 ? count : 1, sizeof(*pod->labels));
    MT_ENSURE(pod->labels != NULL, MT_ERR_NO_MEMORY);
    json_object_object_foreach(labels, key, value)
    {
        if (!json_object_is_type(value, json_type_string) || pod->label_count == count)
            continue;
        struct mt_kubelet_label *label = &pod->labels[pod->label_count++];
        label->key = strdup(key);
        label->value = strdup(json_object_get_string(value));
        MT_ENSURE(label->key != NULL && label->value != NULL, MT_ERR_NO_MEMORY);
    }
    return MT_OK_RESULT;
}

/* "containerd://<64 hex>", "cri-o://...", "docker://...": the ID after "://". */
static void store_container_id(const char *text, char *id)
{
    id[0] = '\0';
    const char *separator = text != NULL ? strstr(text, "://") : NULL;
    const char *start = separator != NULL ? separator + 3 : text;
    if (start != NULL && strlen(start) == MT_POD_CONTAINER_ID_LENGTH)
        snprintf(id, MT_POD_CONTAINER_ID_LENGTH + 1, "%s", start);
}

static MT_RESULT read_containers(struct json_object *status, struct mt_kubelet_pod *pod)
{
    static const char *const lists[] = {"containerStatuses", "initContainerStatuses"};
    size_t total = 0;
    for (size_t l = 0; l < 2; l++) {
        struct json_object *array = mt_json_member(status, lists[l], json_type_array);
        total += array != NULL ? json_object_array_length(array) : 0;
    }
    pod->containers = calloc(total > 0 ? total : 1, sizeof(*pod->containers));
    MT_ENSURE(pod->containers != NULL, MT_ERR_NO_MEMORY);
    for (size_t l = 0; l < 2; l++) {
        struct json_object *array = mt_json_member(status, lists[l], json_type_array);
        size_t count = array != NULL ? json_object_array_length(array) : 0;
        for (size_t i = 0; i < count && pod->container_count < total; i++) {
            struct json_object *entry = json_object_array_get_idx(array, i);
            struct mt_kubelet_container *container = &pod->containers[pod->container_count++];
            container->name = copy_or_empty(string_at(entry, (const char *const[]){"name", NULL}));
            container->image =
                copy_or_empty(string_at(entry, (const char *const[]){"image", NULL}));
            MT_ENSURE(container->name != NULL && container->image != NULL, MT_ERR_NO_MEMORY);
            store_container_id(string_at(entry, (const char *const[]){"containerID", NULL}),
                               container->id);
        }
    }
    return MT_OK_RESULT;
}

static bool is_valid_uid(const char *uid)
{
    if (uid == NULL || strlen(uid) != MT_POD_UID_LENGTH)
        return false;
    for (size_t i = 0; i < MT_POD_UID_LENGTH; i++) {
        char c = uid[i];
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

/* One item of the list; false (and nothing kept) for an item without a usable uid or names. */
static MT_RESULT read_pod(struct json_object *item, struct mt_kubelet_pod *pod, bool *kept)
{
    *kept = false;
    struct json_object *metadata = mt_json_member(item, "metadata", json_type_object);
    const char *uid = string_at(metadata, (const char *const[]){"uid", NULL});
    const char *namespace_name = string_at(metadata, (const char *const[]){"namespace", NULL});
    const char *name = string_at(metadata, (const char *const[]){"name", NULL});
    if (!is_valid_uid(uid) || namespace_name == NULL || name == NULL)
        return MT_OK_RESULT;
    const char *service_account =
        string_at(item, (const char *const[]){"spec", "serviceAccountName", NULL});
    memset(pod, 0, sizeof(*pod));
    snprintf(pod->uid, sizeof(pod->uid), "%s", uid);
    pod->namespace_name = strdup(namespace_name);
    pod->name = strdup(name);
    pod->service_account =
        strdup(service_account != NULL && service_account[0] != '\0' ? service_account : "default");
    pod->workload = read_workload(metadata);
    *kept = true;
    MT_ENSURE(pod->namespace_name != NULL && pod->name != NULL && pod->service_account != NULL &&
                  pod->workload != NULL,
              MT_ERR_NO_MEMORY);
    MT_GUARD(read_labels(metadata, pod));
    return read_containers(mt_json_member(item, "status", json_type_object), pod);
}

MT_RESULT mt_kubelet_parse_pods(const char *json, size_t length, struct mt_kubelet_pods *pods,
                                struct mt_text *reason)
{
    MT_ENSURE_REF(json);
    MT_ENSURE_REF(pods);
    *pods = (struct mt_kubelet_pods){0};
    struct json_tokener *tokener = json_tokener_new();
    MT_ENSURE(tokener != NULL, MT_ERR_NO_MEMORY);
    mt_result result = MT_OK_RESULT;
    struct json_object *root = json_tokener_parse_ex(tokener, json, (int)length);
    enum json_tokener_error error = json_tokener_get_error(tokener);
    if (root == NULL || error != json_tokener_success) {
        mt_text_append(reason, "the pod list is not JSON (%s)", json_tokener_error_desc(error));
        result = mt_result_of(MT_ERR_PROTO_MALFORMED);
        goto out;
    }
    /* One document and nothing after it but white space. */
    for (size_t end = json_tokener_get_parse_end(tokener); end < length; end++) {
        if (strchr(" \t\r\n", json[end]) == NULL || json[end] == '\0') {
            mt_text_append(reason, "the pod list has bytes after its JSON document");
            result = mt_result_of(MT_ERR_PROTO_MALFORMED);
            goto out;
        }
    }
    const char *kind = string_at(root, (const char *const[]){"kind", NULL});
    struct json_object *items = mt_json_member(root, "items", json_type_array);
    if (kind == NULL || strcmp(kind, "PodList") != 0 || items == NULL) {
        mt_text_append(reason, "the answer is not a v1 PodList (kind %s)",
                       kind != NULL ? kind : "missing");
        result = mt_result_of(MT_ERR_PROTO_MALFORMED);
        goto out;
    }
    size_t count = json_object_array_length(items);
    pods->pods = calloc(count > 0 ? count : 1, sizeof(*pods->pods));
    if (pods->pods == NULL) {
        result = mt_result_of(MT_ERR_NO_MEMORY);
        goto out;
    }
    for (size_t i = 0; i < count && mt_result_is_ok(result); i++) {
        bool kept = false;
        result = read_pod(json_object_array_get_idx(items, i), &pods->pods[pods->count], &kept);
        if (kept)
            pods->count++;
    }
    if (!mt_result_is_ok(result))
        mt_kubelet_pods_free(pods);

out:
    if (root != NULL)
        json_object_put(root);
    json_tokener_free(tokener);
    return result;
}

/* ---- asking the kubelet ------------------------------------------------------------------- */

/*
 * "Authorization: Bearer <the token file's first line>" into authorization, the request header;
 * wiped by the caller.
 */
MT_RESULT mt_kubelet_read_token(const char *path, char *authorization, size_t capacity,
                                struct mt_text *reason)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        mt_text_append(reason, "cannot open the token file %s: %s", path, strerror(errno));
        return mt_result_of(MT_ERR_IO);
    }
    static const char prefix[] = AUTHORIZATION_PREFIX;
    size_t length = 0;
    size_t room = capacity - sizeof(prefix);
    ssize_t got;
    memcpy(authorization, prefix, sizeof(prefix) - 1);
    char *token = authorization + sizeof(prefix) - 1;
    while (length < room && (got = read(fd, token + length, room - length)) != 0) {
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            break;
        length += (size_t)got;
    }
    close(fd);
    token[length] = '\0';
    token[strcspn(token, "\r\n")] = '\0';
    if (token[0] == '\0' || length == room) {
        mt_text_append(reason, "the token file %s is empty or larger than %d bytes", path,
                       TOKEN_MAX);
        return mt_result_of(MT_ERR_CONFIG);
    }
    return MT_OK_RESULT;
}

/* The body as it arrives, within MT_KUBELET_BODY_MAX. */
struct body {
    char *data;
    size_t length;
    size_t capacity;
    bool too_long;
    bool no_memory;
};

static size_t receive_body(char *bytes, size_t size, size_t count, void *context)
{
    struct body *body = context;
    size_t length = size * count;
    if (length > MT_KUBELET_BODY_MAX - body->length) {
        body->too_long = true;
        return 0; /* curl ends the transfer with CURLE_WRITE_ERROR */
    }
    if (body->length + length + 1 > body->capacity) {
        size_t capacity = body->capacity > 0 ? body->capacity : 64 * 1024;
        while (capacity < body->length + length + 1)
            capacity *= 2;
        char *data = realloc(body->data, capacity);
        if (data == NULL) {
            body->no_memory = true;
            return 0;
        }
        body->data = data;
        body->capacity = capacity;
    }
    memcpy(body->data + body->length, bytes, length);
    body->length += length;
    body->data[body->length] = '\0';
    return length;
}

/*
 * A URL whose host is a name, not an IP address (v4, or v6 in brackets), is refused when this
 * libcurl has no asynchronous (threaded or c-ares) resolver: its lookup would then be outside
 * CURLOPT_TIMEOUT_MS, which without signals bounds only an asynchronous one, and could block the
 * event loop without bound.
 */
MT_RESULT mt_kubelet_check_url_host(const char *url, struct mt_text *reason)
{
    CURLU *parsed = curl_url();
    char *host = NULL;
    mt_result result = MT_OK_RESULT;
    if (parsed == NULL) {
        result = mt_result_of(MT_ERR_NO_MEMORY);
        goto out;
    }
    if (curl_url_set(parsed, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(parsed, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        mt_text_append(reason, "%s is not a URL", url);
        result = mt_result_of(MT_ERR_CONFIG);
        goto out;
    }
    unsigned char address[16];
    bool is_address = host[0] == '[' || inet_pton(AF_INET, host, address) == 1;
    if (!is_address &&
        (curl_version_info(CURLVERSION_NOW)->features & CURL_VERSION_ASYNCHDNS) == 0) {
        mt_text_append(reason,
                       "%s names a host, and this libcurl has no asynchronous resolver to "
                       "bound its lookup: give the server's IP address",
                       url);
        result = mt_result_of(MT_ERR_CONFIG);
    }

out:
    curl_free(host);
    curl_url_cleanup(parsed);
    return result;
}

bool mt_kubelet_curl_set_tls(CURL *handle, const char *url, const char *ca_file,
                             struct curl_slist *header, char *error)
{
    return curl_easy_setopt(handle, CURLOPT_URL, url) == CURLE_OK &&
           curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "https") == CURLE_OK &&
           curl_easy_setopt(handle, CURLOPT_REDIR_PROTOCOLS_STR, "https") == CURLE_OK &&
           curl_easy_setopt(handle, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
           curl_easy_setopt(handle, CURLOPT_PROXY, "") == CURLE_OK &&
           curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
           curl_easy_setopt(handle, CURLOPT_CAINFO, ca_file) == CURLE_OK &&
           curl_easy_setopt(handle, CURLOPT_CAPATH, NULL) == CURLE_OK &&
           curl_easy_setopt(handle, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
           curl_easy_setopt(handle, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
           curl_easy_setopt(handle, CURLOPT_HTTPHEADER, header) == CURLE_OK &&
           curl_easy_setopt(handle, CURLOPT_USERAGENT, "meshtls-agent") == CURLE_OK &&
           curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error) == CURLE_OK;
}

/*
 * GET url with curl (mt_kubelet_curl_set_tls: HTTPS only, verified, no redirect, no proxy, no
 * signal), the whole exchange within MT_KUBELET_QUERY_TIMEOUT_MS. *status is the HTTP status of
 * an answer.
 */
static MT_RESULT get(const char *url, const char *ca_file, char *authorization, int *status,
                     struct body *body, struct mt_text *reason)
{
    MT_GUARD(mt_kubelet_check_url_host(url, reason));
    CURL *handle = curl_easy_init();
    MT_ENSURE(handle != NULL, MT_ERR_NO_MEMORY);
    char error[CURL_ERROR_SIZE] = "";
    /*
     * The caller's buffer, not curl_slist_append's copy, which curl_slist_free_all frees
     * unwiped. curl still copies the header into the request it writes, freed unwiped too.
     */
    struct curl_slist header = {.data = authorization, .next = NULL};
    mt_result result = MT_OK_RESULT;
    bool set = mt_kubelet_curl_set_tls(handle, url, ca_file, &header, error) &&
               curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, (long)MT_KUBELET_QUERY_TIMEOUT_MS) ==
                   CURLE_OK &&
               curl_easy_setopt(handle, CURLOPT_MAXFILESIZE_LARGE,
                                (curl_off_t)MT_KUBELET_BODY_MAX) == CURLE_OK &&
               curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, receive_body) == CURLE_OK &&
               curl_easy_setopt(handle, CURLOPT_WRITEDATA, body) == CURLE_OK;
    if (!set) {
        mt_text_append(reason, "this libcurl lacks an option the kubelet client needs");
        result = mt_result_of(MT_ERR_CONFIG);
        goto out;
    }
    CURLcode code = curl_easy_perform(handle);
    if (body->too_long || code == CURLE_FILESIZE_EXCEEDED) {
        mt_text_append(reason, "asking %s: the answer is longer than %u bytes", url,
                       MT_KUBELET_BODY_MAX);
        result = mt_result_of(MT_ERR_TOO_LONG);
        goto out;
    }
    if (body->no_memory) {
        mt_text_append(reason, "asking %s: out of memory for the answer", url);
        result = mt_result_of(MT_ERR_NO_MEMORY);
        goto out;
    }
    if (code != CURLE_OK) {
        /* GnuTLS names the subject's CN in its mismatch message, though only the SAN counts. */
        mt_text_append(reason, "asking %s: %s%s", url,
                       error[0] != '\0' ? error : curl_easy_strerror(code),
                       code == CURLE_PEER_FAILED_VERIFICATION
                           ? " (the certificate must lead to the CA file and name the URL's "
                             "host: an IP address SAN for an address, a DNS SAN for a name); "
                             "the token was not sent"
                           : "");
        result = mt_result_of(code == CURLE_OPERATION_TIMEDOUT ? MT_ERR_TIMEOUT : MT_ERR_IO);
        goto out;
    }
    long response_code = 0;
    curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &response_code);
    *status = (int)response_code;

out:
    curl_easy_cleanup(handle);
    return result;
}

/* One query; on success the list is replaced. */
static void query(struct mt_kubelet *kubelet, long long now_ms)
{
    char url[1024];
    char authorization[MT_KUBELET_AUTHORIZATION_MAX];
    struct mt_text reason = mt_text_on(kubelet->last_error, sizeof(kubelet->last_error));
    struct body body = {0};
    int status = 0;
    kubelet->has_queried = true;
    kubelet->queried_ms = now_ms;
    kubelet->last_query_failed = true;
    size_t base = strlen(kubelet->url);
    while (base > 0 && kubelet->url[base - 1] == '/')
        base--;
    snprintf(url, sizeof(url), "%.*s/pods", (int)base, kubelet->url);
    if (!mt_result_is_ok(mt_kubelet_read_token(kubelet->token_file, authorization,
                                               sizeof(authorization), &reason)))
        goto out;
    mt_result result = get(url, kubelet->ca_file, authorization, &status, &body, &reason);
    explicit_bzero(authorization, sizeof(authorization));
    if (!mt_result_is_ok(result))
        goto out;
    if (status != 200) {
        mt_text_append(&reason, "the kubelet at %s answered HTTP %d%s", url, status,
                       status == 401   ? ": it does not accept the token of --kubelet-token-file"
                       : status == 403 ? ": the agent's service account needs get on nodes/proxy"
                                       : "");
        goto out;
    }
    struct mt_kubelet_pods pods;
    if (!mt_result_is_ok(
            mt_kubelet_parse_pods(body.data != NULL ? body.data : "", body.length, &pods, &reason)))
        goto out;
    mt_kubelet_pods_free(&kubelet->list);
    kubelet->list = pods;
    kubelet->has_list = true;
    kubelet->listed_ms = now_ms;
    kubelet->last_query_failed = false;
    kubelet->last_error[0] = '\0';
    mt_log_debug("the kubelet at %s lists %zu pod(s)", url, pods.count);

out:
    explicit_bzero(authorization, sizeof(authorization));
    free(body.data);
    if (kubelet->last_query_failed)
        mt_log_limited(MT_LOG_WARN,
                       "kubelet query failed: %s; callers in pods get no identity "
                       "until it succeeds",
                       kubelet->last_error);
}

MT_RESULT mt_kubelet_global_init(struct mt_text *reason)
{
    CURLcode code = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (code != CURLE_OK) {
        mt_text_append(reason, "cannot initialise libcurl for the kubelet client: %s",
                       curl_easy_strerror(code));
        return mt_result_of(MT_ERR_IO);
    }
    return MT_OK_RESULT;
}

void mt_kubelet_global_cleanup(void)
{
    curl_global_cleanup();
}

void mt_kubelet_probe(struct mt_kubelet *kubelet, long long now_ms)
{
    query(kubelet, now_ms);
    if (!kubelet->last_query_failed)
        mt_log_info("the kubelet at %s lists %zu pod(s) on this node", kubelet->url,
                    kubelet->list.count);
}

static const struct mt_kubelet_pod *find_in_list(const struct mt_kubelet *kubelet, const char *uid)
{
    for (size_t i = 0; kubelet->has_list && i < kubelet->list.count; i++)
        if (strcmp(kubelet->list.pods[i].uid, uid) == 0)
            return &kubelet->list.pods[i];
    return NULL;
}

enum mt_kubelet_answer mt_kubelet_find_pod(struct mt_kubelet *kubelet, const char *uid,
                                           long long now_ms, const struct mt_kubelet_pod **pod)
{
    *pod = NULL;
    bool fresh = kubelet->has_list && now_ms - kubelet->listed_ms < MT_KUBELET_FRESH_MS;
    const struct mt_kubelet_pod *found = fresh ? find_in_list(kubelet, uid) : NULL;
    if (found != NULL) {
        *pod = found;
        return MT_KUBELET_POD_FOUND;
    }
    bool may_query =
        !kubelet->has_queried || now_ms - kubelet->queried_ms >= MT_KUBELET_QUERY_INTERVAL_MS;
    if (may_query) {
        query(kubelet, now_ms);
        fresh = kubelet->has_list && now_ms - kubelet->listed_ms < MT_KUBELET_FRESH_MS;
    }
    if (kubelet->last_query_failed || !fresh) {
        if (!kubelet->last_query_failed)
            snprintf(kubelet->last_error, sizeof(kubelet->last_error),
                     "the pod list is older than %d ms and the kubelet was asked less than "
                     "%d ms ago",
                     MT_KUBELET_FRESH_MS, MT_KUBELET_QUERY_INTERVAL_MS);
        return MT_KUBELET_POD_UNAVAILABLE;
    }
    found = find_in_list(kubelet, uid);
    if (found == NULL)
        return MT_KUBELET_POD_UNKNOWN;
    *pod = found;
    return MT_KUBELET_POD_FOUND;
}

const struct mt_kubelet_container *mt_kubelet_pod_container(const struct mt_kubelet_pod *pod,
                                                            const char *id)
{
    for (size_t i = 0; pod != NULL && id != NULL && id[0] != '\0' && i < pod->container_count; i++)
        if (strcmp(pod->containers[i].id, id) == 0)
            return &pod->containers[i];
    return NULL;
}
