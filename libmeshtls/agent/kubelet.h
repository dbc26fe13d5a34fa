/*
 * The node's pods as its kubelet lists them (GET <url>/pods, a v1 PodList), for attesting callers
 * that run in a pod (pod_cgroup.h): pod UID → namespace, name, service account, labels, owner
 * workload, containers.
 *
 * The list is kept for MT_KUBELET_FRESH_MS and asked again on a miss, but never more often than
 * once per MT_KUBELET_QUERY_INTERVAL_MS whatever callers do: a process in a pod unknown to the
 * kubelet cannot make the agent hammer it. Each query is synchronous and bounded by
 * MT_KUBELET_QUERY_TIMEOUT_MS: the agent's one event loop waits that long at most, at most once
 * per interval. The bearer token is read from its file for every query (projected service
 * account tokens rotate) and wiped after.
 */
#ifndef MT_AGENT_KUBELET_H
#define MT_AGENT_KUBELET_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

#include "../util/result.h"
#include "../util/text.h"
#include "pod_cgroup.h"

#define MT_KUBELET_FRESH_MS 5000
#define MT_KUBELET_QUERY_INTERVAL_MS 1000
#define MT_KUBELET_QUERY_TIMEOUT_MS 3000
#define MT_KUBELET_BODY_MAX (32u * 1024u * 1024u)
#define MT_KUBELET_TOKEN_MAX 16384
/* "Authorization: Bearer " and the token. */
#define MT_KUBELET_AUTHORIZATION_MAX (MT_KUBELET_TOKEN_MAX + 32)

struct mt_kubelet_label {
    char *key;
    char *value;
};

struct mt_kubelet_container {
    char *name;
    char *image;
    char id[MT_POD_CONTAINER_ID_LENGTH + 1]; /* without the runtime's "containerd://" */
};

struct mt_kubelet_pod {
    char uid[MT_POD_UID_LENGTH + 1];
    char *namespace_name;
    char *name;
    char *service_account; /* "default" when the spec names none */
    char *workload;        /* "deployment/web", "statefulset/db", "" without a controller */
    struct mt_kubelet_label *labels;
    size_t label_count;
    struct mt_kubelet_container *containers;
    size_t container_count;
};

struct mt_kubelet_pods {
    struct mt_kubelet_pod *pods;
    size_t count;
};

struct mt_kubelet {
    const char *url; /* <url>/pods is asked */
    const char *token_file;
    const char *ca_file;
    struct mt_kubelet_pods list;
    bool has_list;
    long long listed_ms;  /* when list was received */
    long long queried_ms; /* the last query, whatever its outcome */
    bool has_queried;
    bool last_query_failed;
    char last_error[512];
};

enum mt_kubelet_answer {
    MT_KUBELET_POD_FOUND,
    MT_KUBELET_POD_UNKNOWN,     /* a list received since the miss does not hold it */
    MT_KUBELET_POD_UNAVAILABLE, /* the kubelet could not be asked or refused: last_error says */
};

/*
 * libcurl's global state, once at the agent's start while it has one thread, and its release at
 * exit.
 */
MT_RESULT mt_kubelet_global_init(struct mt_text *reason);
void mt_kubelet_global_cleanup(void);

/* url, token_file and ca_file must outlive kubelet. */
void mt_kubelet_init(struct mt_kubelet *kubelet, const char *url, const char *token_file,
                     const char *ca_file);
void mt_kubelet_cleanup(struct mt_kubelet *kubelet);

/*
 * Asks the kubelet once now (at start-up, so that a wrong URL, CA or token is logged before any
 * caller meets it): the pod count at info, or the failure at warning.
 */
void mt_kubelet_probe(struct mt_kubelet *kubelet, long long now_ms);

/*
 * The pod whose UID is uid at now_ms: from the list while fresh, else after one query (subject to
 * the interval). *pod stays valid until the next call.
 */
enum mt_kubelet_answer mt_kubelet_find_pod(struct mt_kubelet *kubelet, const char *uid,
                                           long long now_ms, const struct mt_kubelet_pod **pod);

/* The container of pod whose ID is id, or NULL. */
const struct mt_kubelet_container *mt_kubelet_pod_container(const struct mt_kubelet_pod *pod,
                                                            const char *id);

/* Parses a v1 PodList's JSON (json-c) into *pods; reason says what is wrong on failure. */
MT_RESULT mt_kubelet_parse_pods(const char *json, size_t length, struct mt_kubelet_pods *pods,
                                struct mt_text *reason);
void mt_kubelet_pods_free(struct mt_kubelet_pods *pods);

/* ---- the HTTPS client rules, shared with the API server's (kube_watch.c) -------------------- */

/*
 * "Authorization: Bearer <the token file's first line>" into authorization (capacity at most
 * MT_KUBELET_AUTHORIZATION_MAX), read now: projected tokens rotate. The caller wipes it.
 */
MT_RESULT mt_kubelet_read_token(const char *path, char *authorization, size_t capacity,
                                struct mt_text *reason);

/*
 * A URL whose host is a name, not an IP address, is refused when this libcurl has no
 * asynchronous resolver: its lookup would escape every timeout.
 */
MT_RESULT mt_kubelet_check_url_host(const char *url, struct mt_text *reason);

/*
 * The TLS and request rules on handle: url over HTTPS only, the server verified against ca_file
 * alone (no system CA directory) and the URL's host (GnuTLS matches an IP address against
 * iPAddress SANs only, RFC 6125 section 6.2.1), no redirect, no proxy from the environment, no
 * signal, header (the bearer token) and the error text into error (CURL_ERROR_SIZE). False when
 * this libcurl refuses one of them.
 */
bool mt_kubelet_curl_set_tls(CURL *handle, const char *url, const char *ca_file,
                             struct curl_slist *header, char *error);

#endif
