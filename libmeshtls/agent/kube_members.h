/*
 * The cluster's meshed endpoints as the Kubernetes API server lists and watches them: pods and
 * Services kept as compact records (never the JSON), and the membership entries they make.
 *
 *     object                               member entries
 *     ----------------------------------   ----------------------------------------------------
 *     pod annotated meshtls.io/injected    each pod IP, every port, expected identity
 *     = "true", not hostNetwork, with an   spiffe://<td>/ns/<namespace>/sa/<service account>
 *     IP, not Succeeded/Failed, not being  (the agent's default identity for a pod's caller)
 *     deleted
 *     Service with a selector and a        each ClusterIP on each TCP service port, when EVERY
 *     ClusterIP (not "None")               non-terminal pod of its namespace its selector picks
 *                                          is injected, and there is at least one; identity the
 *                                          pods' common service account's, else
 *                                          spiffe://<td>/ns/<namespace>/sa/ANY
 *     anything else                        none
 *
 * (ANY: the pattern's "*" after the last slash, every service account of the namespace.)
 *
 * Input is what GET /api/v1/{pods,services} (a v1 PodList or ServiceList) and each line of a
 * watch of them (a v1 WatchEvent: ADDED, MODIFIED, DELETED, BOOKMARK, ERROR) carry. Nothing here
 * does I/O: kube_watch.c feeds it and publishes what it computes.
 */
#ifndef MT_AGENT_KUBE_MEMBERS_H
#define MT_AGENT_KUBE_MEMBERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../policy/membership.h"
#include "../util/result.h"
#include "../util/text.h"

#define MT_KUBE_ANNOTATION_INJECTED "meshtls.io/injected"
#define MT_KUBE_ADDRESSES_MAX 2 /* one IPv4 and one IPv6: dual-stack pods and Services */
#define MT_KUBE_RESOURCE_VERSION_MAX 64
#define MT_KUBE_CONTINUE_MAX 1024
#define MT_KUBE_SERVICE_PORTS_MAX 64 /* ports kept per Service; more are left out */

enum mt_kube_kind {
    MT_KUBE_PODS = 0,
    MT_KUBE_SERVICES = 1,
};

struct mt_kube_address {
    uint8_t family; /* MT_MEMBERSHIP_FAMILY_IPV4 or _IPV6 */
    uint8_t bytes[16];
};

struct mt_kube_label {
    char *key;
    char *value;
};

struct mt_kube_pod {
    char *namespace_name;
    char *name;
    char *service_account;
    struct mt_kube_label *labels;
    uint32_t label_count;
    uint8_t address_count;
    bool injected;
    bool host_network;
    bool terminal; /* phase Succeeded or Failed */
    bool deleting; /* metadata.deletionTimestamp set */
    struct mt_kube_address addresses[MT_KUBE_ADDRESSES_MAX];
};

struct mt_kube_service {
    char *namespace_name;
    char *name;
    struct mt_kube_label *selector;
    uint32_t selector_count;
    uint8_t address_count;
    uint16_t port_count;
    struct mt_kube_address addresses[MT_KUBE_ADDRESSES_MAX];
    uint16_t ports[MT_KUBE_SERVICE_PORTS_MAX];
};

/* What the agent knows of the cluster: every pod and Service (not only members). */
struct mt_kube_state {
    struct mt_kube_pod *pods;
    size_t pod_count;
    size_t pod_capacity;
    struct mt_kube_service *services;
    size_t service_count;
    size_t service_capacity;
};

enum mt_kube_event_type {
    MT_KUBE_EVENT_ADDED,
    MT_KUBE_EVENT_MODIFIED,
    MT_KUBE_EVENT_DELETED,
    MT_KUBE_EVENT_BOOKMARK,
    MT_KUBE_EVENT_ERROR,
};

/* What one watch line said, beyond the change it made to the state. */
struct mt_kube_event {
    enum mt_kube_event_type type;
    char resource_version[MT_KUBE_RESOURCE_VERSION_MAX]; /* "" when the event has none */
    int error_code; /* an ERROR event's Status code (410: the resourceVersion is too old) */
    bool changed;   /* the state changed in a way that may change the members */
};

void mt_kube_state_free(struct mt_kube_state *state);

/* Moves kind's records from source into state (state's old ones freed); source keeps none. */
void mt_kube_state_replace(struct mt_kube_state *state, struct mt_kube_state *source,
                           enum mt_kube_kind kind);

/*
 * Applies one page of a LIST of kind (a v1 PodList or ServiceList) to state, appending its
 * items. resource_version gets the list's metadata.resourceVersion, continue_token its
 * metadata.continue ("" on the last page). On error state keeps what earlier pages gave.
 */
MT_RESULT mt_kube_members_apply_list(struct mt_kube_state *state, enum mt_kube_kind kind,
                                     const char *json, size_t length, char *resource_version,
                                     char *continue_token, struct mt_text *reason);

/*
 * Applies one watch line (a v1 WatchEvent of kind) to state: ADDED and MODIFIED replace the
 * object by namespace and name, DELETED removes it, BOOKMARK and ERROR change nothing.
 */
MT_RESULT mt_kube_members_apply_event(struct mt_kube_state *state, enum mt_kube_kind kind,
                                      const char *json, size_t length, struct mt_kube_event *event,
                                      struct mt_text *reason);

/* The member entries of state, pods first (the caller frees *entries; *count may be 0). */
MT_RESULT mt_kube_members_compute(const struct mt_kube_state *state, const char *trust_domain,
                                  struct mt_membership_entry **entries, size_t *count);

#endif
