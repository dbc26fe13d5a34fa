/*
 * The agent's requests (identity/proto.h): SVID (a CSR in, a signed leaf, its chain and the trust
 * bundle out), ID (the identity the caller would get), METRICS_FILE (the caller's metrics file,
 * passed with the reply), MEMBERSHIP (the node's mesh membership set, passed read-only); STATUS is
 * server_status.c's. Any of the three may name a SUBJECT, a child of the caller that is attested
 * instead of it (attest_subject.h): a supervisor holds the identity and the metrics file of the
 * program it runs.
 *
 * Owns what a caller gets for what it asked. It must never let a client choose its identity (that
 * is decided by attestation and the rules: agent_config.h) or the name of its metrics file (that
 * is its attested pid and start time), never log a key or a CSR, and never answer with a guess:
 * a caller a sha256 rule may name but whose executable cannot be hashed now is refused, not given
 * another rule's identity or the default. With a kubelet configured, a caller in a pod is named
 * by its pod (pod_cgroup.h, kubelet.h), attested again at every request (a renewal included, so a
 * deleted pod's processes lose their identity when they renew); a caller in a pod the kubelet
 * does not list, or whose pod cannot be told, gets no identity at all, never the uid default.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../util/log.h"
#include "../util/sys.h"
#include "../util/text.h"
#include "agent_metrics.h"
#include "attest_subject.h"
#include "pod_cgroup.h"
#include "server_internal.h"

static void format_utc(time_t when, char *text, size_t capacity)
{
    struct tm utc;
    if (gmtime_r(&when, &utc) == NULL || strftime(text, capacity, "%Y-%m-%dT%H:%M:%SZ", &utc) == 0)
        snprintf(text, capacity, "%lld", (long long)when);
}

/*
 * For a subject, asked last before an answer goes out: it is still the caller's live child (a
 * pid reused since would fail the pidfd). False after refusing the client.
 */
static bool subject_still_there(struct mt_server_client *client)
{
    char text[256];
    struct mt_text reason = mt_text_on(text, sizeof(text));
    if (mt_attest_subject_still_there(&client->peer, &reason))
        return true;
    mt_server_client_refuse(client, MT_PROTO_ERROR_DENIED, text);
    return false;
}

/* The caller's executable's digest, hashed when a sha256 rule first needs it (agent_config.h). */
static const uint8_t *client_exe_sha256(void *context, const char **problem, bool *later)
{
    struct mt_server_client *client = context;
    struct mt_attest_peer *peer = &client->peer;
    switch (mt_attest_exe_sha256(client->fd, mt_sys_now_ms(), peer)) {
    case MT_ATTEST_HASH_COMPUTED:
        atomic_fetch_add(&mt_agent_stats.exe_hashes_computed, 1);
        break;
    case MT_ATTEST_HASH_OVER_BUDGET:
        atomic_fetch_add(&mt_agent_stats.exe_hashes_over_budget, 1);
        break;
    default:
        break;
    }
    /* Also when an earlier call settled it (MT_ATTEST_HASH_ALREADY) as a passing failure. */
    *later = peer->exe_sha256_later;
    *problem = peer->exe_sha256_problem;
    return peer->has_exe_sha256 ? peer->exe_sha256 : NULL;
}

/* Refuses a caller whose pod could not be attested: a warning with what to fix, and a count. */
static void refuse_pod_caller(struct mt_server_client *client, const char *pod_uid,
                              const char *reason)
{
    mt_log_limited(MT_LOG_WARN, "refused pid %ld uid %u in pod %s: %s", (long)client->peer.pid,
                   (unsigned)client->peer.uid, pod_uid, reason);
    atomic_fetch_add(&mt_agent_stats.pod_callers_refused, 1);
    char message[640];
    snprintf(message, sizeof(message), "no identity for a caller in pod %s: %s", pod_uid, reason);
    mt_server_client_refuse(client, MT_PROTO_ERROR_DENIED, message);
}

/* A pod that cannot be attested: refused (see refuse_pod_caller), or no pod when !refuse. */
static bool fail_pod(bool refuse, struct mt_server_client *client, const char *pod_uid,
                     const char *reason)
{
    if (!refuse)
        return true;
    refuse_pod_caller(client, pod_uid, reason);
    return false;
}

/*
 * With a kubelet: the pod the caller runs in, into *pod (pod_used true), or nothing for a process
 * of the node. False after refusing the caller; with refuse false (a caller asking for what is no
 * identity, its metrics file), a pod that cannot be attested is no pod and the caller is not
 * refused.
 */
static bool client_pod(struct mt_server *server, struct mt_server_client *client, bool refuse,
                       struct mt_agent_pod *pod, bool *pod_used)
{
    *pod_used = false;
    if (server->kubelet == NULL)
        return true;
    char text[MT_ATTEST_CGROUP_MAX];
    size_t length = 0;
    const char *problem = NULL;
    if (!mt_attest_read_cgroup(client->fd, &client->peer, text, sizeof(text), &length, &problem)) {
        return fail_pod(refuse, client, "(unknown)", problem);
    }
    struct mt_pod_cgroup cgroup;
    switch (mt_pod_cgroup_parse(text, length, server->cgroup_root_depth, &cgroup)) {
    case MT_POD_CGROUP_HOST:
        return true;
    case MT_POD_CGROUP_OUTSIDE:
        return fail_pod(refuse, client, "(unknown)",
                        "its cgroup path climbs above the host's cgroup root as the agent counts "
                        "it: the agent's cgroup namespace depth (--cgroup-root-depth) is wrong");
    case MT_POD_CGROUP_UNKNOWN:
        return fail_pod(refuse, client, "(unknown)",
                        "its /proc/<pid>/cgroup names no cgroup, or none whose pod the agent can "
                        "tell (the agent's own pod, or a wrong --cgroup-root-depth)");
    case MT_POD_CGROUP_POD:
        break;
    }
    const struct mt_kubelet_pod *listed = NULL;
    switch (mt_kubelet_find_pod(server->kubelet, cgroup.uid, mt_sys_now_ms(), &listed)) {
    case MT_KUBELET_POD_FOUND:
        break;
    case MT_KUBELET_POD_UNKNOWN:
        return fail_pod(refuse, client, cgroup.uid,
                        "the kubelet does not list this pod (deleted, or not of this node)");
    case MT_KUBELET_POD_UNAVAILABLE:
    default:
        return fail_pod(refuse, client, cgroup.uid, server->kubelet->last_error);
    }
    const struct mt_kubelet_container *container =
        mt_kubelet_pod_container(listed, cgroup.container_id);
    *pod = (struct mt_agent_pod){
        .namespace_name = listed->namespace_name,
        .name = listed->name,
        .service_account = listed->service_account,
        .workload = listed->workload,
        .labels = listed->labels,
        .label_count = listed->label_count,
        .container = container != NULL ? container->name : NULL,
        .image = container != NULL ? container->image : NULL,
    };
    *pod_used = true;
    mt_log_debug("pid %ld uid %u is in pod %s/%s (%s) container %s", (long)client->peer.pid,
                 (unsigned)client->peer.uid, listed->namespace_name, listed->name, cgroup.uid,
                 container != NULL ? container->name : "(not in the pod's status)");
    return true;
}

/* The identity attestation and the rules give this client; false after refusing it. */
static bool client_identity(struct mt_server *server, struct mt_server_client *client,
                            char *spiffe_id, size_t capacity)
{
    struct mt_agent_pod pod;
    bool pod_used = false;
    if (!client_pod(server, client, true, &pod, &pod_used))
        return false;
    const struct mt_attest_peer *peer = &client->peer;
    struct mt_agent_caller caller = {
        .pid = peer->pid,
        .uid = peer->uid,
        .gid = peer->gid,
        .exe = peer->has_exe ? peer->exe : NULL,
        .exe_device = peer->exe_device,
        .exe_inode = peer->exe_inode,
        .other_mount_namespace = peer->other_mount_namespace,
        .exe_sha256 = peer->has_exe_sha256 ? peer->exe_sha256 : NULL,
        .exe_sha256_problem = peer->exe_sha256_problem,
        .hash_exe = client_exe_sha256,
        .hash_context = client,
        .pod = pod_used ? &pod : NULL,
    };
    struct mt_agent_match match;
    mt_result result =
        mt_agent_config_resolve_id(server->config, &caller, spiffe_id, capacity, &match);
    atomic_fetch_add(&mt_agent_stats.exe_mismatches, match.exe_mismatches);
    if (result.error == MT_ERR_WOULD_BLOCK) {
        /* A sha256 rule may name the caller, but its executable cannot be hashed now (the
         * hashing budget is spent, or the agent is short of descriptors or memory): no identity
         * rather than a guess (another rule's, the default). */
        mt_server_client_refuse(
            client, MT_PROTO_ERROR_INTERNAL,
            "agent busy: the caller's executable cannot be hashed for a sha256 rule "
            "for now (hashing budget spent or a passing failure); retry in a minute");
        return false;
    }
    if (!mt_result_is_ok(result)) {
        mt_server_client_refuse(client, MT_PROTO_ERROR_DENIED, "no valid identity for this caller");
        return false;
    }
    if (match.rule != NULL)
        mt_log_debug("pid %ld matched the rule at %s:%u", (long)peer->pid, server->config->source,
                     match.rule->line);
    /* Rules may have hashed the subject's executable meanwhile: it must still be there. */
    return subject_still_there(client);
}

static void handle_id_request(struct mt_server *server, struct mt_server_client *client)
{
    char spiffe_id[MT_SPIFFE_ID_MAX + 1];
    if (!client_identity(server, client, spiffe_id, sizeof(spiffe_id)))
        return;
    uint8_t *reply = malloc(MT_SERVER_REPLY_MAX);
    if (reply == NULL) {
        mt_server_client_refuse(client, MT_PROTO_ERROR_INTERNAL, "out of memory");
        return;
    }
    struct mt_proto_writer writer;
    size_t length = 0;
    mt_proto_writer_begin(&writer, reply, MT_SERVER_REPLY_MAX, MT_PROTO_ID_RESPONSE);
    mt_proto_writer_put(&writer, MT_PROTO_TAG_SPIFFE_ID, spiffe_id, strlen(spiffe_id));
    if (!mt_result_is_ok(mt_proto_writer_finish(&writer, &length))) {
        free(reply);
        mt_server_client_refuse(client, MT_PROTO_ERROR_INTERNAL, "reply does not fit");
        return;
    }
    char supervision[48];
    mt_log_info("told pid %ld uid %u exe %s%s its identity %s", (long)client->peer.pid,
                (unsigned)client->peer.uid, mt_server_client_exe(client),
                mt_server_client_supervision(client, supervision, sizeof(supervision)), spiffe_id);
    mt_server_client_reply(client, reply, length);
}

static void handle_svid_request(struct mt_server *server, struct mt_server_client *client,
                                const struct mt_proto_frame *frame)
{
    struct mt_proto_svid_request request;
    if (!mt_result_is_ok(mt_proto_decode_svid_request(frame, &request))) {
        mt_server_client_refuse(client, MT_PROTO_ERROR_MALFORMED,
                                "SVID request malformed (needs one CSR)");
        return;
    }
    char spiffe_id[MT_SPIFFE_ID_MAX + 1];
    if (!client_identity(server, client, spiffe_id, sizeof(spiffe_id)))
        return;

    uint8_t leaf[MT_X509_CERT_DER_MAX];
    size_t leaf_length = 0;
    time_t not_after = 0;
    const struct mt_ca *ca = server->issuer->ca;
    mt_result result =
        mt_ca_issue(ca, request.csr.data, request.csr.length, spiffe_id, time(NULL),
                    server->config->lifetime_seconds, leaf, sizeof(leaf), &leaf_length, &not_after);
    if (!mt_result_is_ok(result)) {
        if (result.error == MT_ERR_CERT_PARSE)
            mt_server_client_refuse(
                client, MT_PROTO_ERROR_BAD_CSR,
                "CSR rejected: unparsable, bad self-signature, or not an ECDSA P-256 key");
        else
            mt_server_client_refuse(client, MT_PROTO_ERROR_INTERNAL,
                                    mt_error_message(result.error));
        return;
    }

    uint8_t *reply = malloc(MT_SERVER_REPLY_MAX);
    if (reply == NULL) {
        mt_server_client_refuse(client, MT_PROTO_ERROR_INTERNAL, "out of memory");
        return;
    }
    struct mt_proto_writer writer;
    size_t length = 0;
    mt_proto_writer_begin(&writer, reply, MT_SERVER_REPLY_MAX, MT_PROTO_SVID_RESPONSE);
    mt_proto_writer_put(&writer, MT_PROTO_TAG_SPIFFE_ID, spiffe_id, strlen(spiffe_id));
    mt_proto_writer_put(&writer, MT_PROTO_TAG_CERT, leaf, leaf_length);
    for (size_t i = 0; i < ca->chain_length; i++)
        mt_proto_writer_put(&writer, MT_PROTO_TAG_CERT, ca->chain[i].der, ca->chain[i].length);
    for (size_t i = 0; i < ca->anchor_count; i++)
        mt_proto_writer_put(&writer, MT_PROTO_TAG_BUNDLE, ca->anchors[i].der,
                            ca->anchors[i].length);
    mt_proto_writer_put_u64(&writer, MT_PROTO_TAG_EXPIRY, (uint64_t)not_after);
    if (!mt_result_is_ok(mt_proto_writer_finish(&writer, &length))) {
        free(reply);
        mt_server_client_refuse(client, MT_PROTO_ERROR_INTERNAL, "reply does not fit");
        return;
    }
    /* Signing took a while: the subject must not have gone (and its pid been reused) since. */
    if (!subject_still_there(client)) {
        free(reply);
        return;
    }
    char expires[32];
    char supervision[48];
    format_utc(not_after, expires, sizeof(expires));
    mt_log_info("issued %s to pid %ld uid %u exe %s%s, expires %s", spiffe_id,
                (long)client->peer.pid, (unsigned)client->peer.uid, mt_server_client_exe(client),
                mt_server_client_supervision(client, supervision, sizeof(supervision)), expires);
    atomic_fetch_add(&mt_agent_stats.svids_issued, 1);
    mt_server_issued_remember(server, &client->peer, spiffe_id, not_after);
    mt_server_client_reply(client, reply, length);
}

/* Creates the caller's metrics file and sends it along with the reply (metrics/directory.h). */
static void handle_metrics_file_request(struct mt_server *server, struct mt_server_client *client)
{
    char text[PATH_MAX + 160];
    struct mt_text reason = mt_text_on(text, sizeof(text));
    int fd = -1;
    unsigned long long start_time = 0;
    mt_result result = mt_agent_metrics_file_create(&server->metrics_directory, &client->peer, &fd,
                                                    &start_time, &reason);
    if (!mt_result_is_ok(result)) {
        mt_server_client_refuse(client,
                                result.error == MT_ERR_AGENT_REFUSED ? MT_PROTO_ERROR_DENIED
                                                                     : MT_PROTO_ERROR_INTERNAL,
                                text);
        return;
    }
    uint8_t *reply = malloc(MT_SERVER_REPLY_MAX);
    struct mt_proto_writer writer;
    size_t length = 0;
    mt_proto_writer_begin(&writer, reply, MT_SERVER_REPLY_MAX, MT_PROTO_METRICS_FILE_RESPONSE);
    mt_proto_writer_put_u32(&writer, MT_PROTO_TAG_PID, (uint32_t)client->peer.pid);
    mt_proto_writer_put_u64(&writer, MT_PROTO_TAG_START_TIME, start_time);
    if (reply == NULL || !mt_result_is_ok(mt_proto_writer_finish(&writer, &length))) {
        free(reply);
        close(fd);
        mt_server_client_refuse(client, MT_PROTO_ERROR_INTERNAL, "out of memory");
        return;
    }
    if (!subject_still_there(client)) {
        free(reply);
        close(fd);
        return;
    }
    struct mt_agent_pod pod;
    bool pod_used = false;
    if (client_pod(server, client, false, &pod, &pod_used) && pod_used)
        mt_agent_metrics_remember_pod(client->peer.pid, start_time, pod.namespace_name, pod.name,
                                      pod.workload);
    char supervision[48];
    mt_log_info("gave pid %ld uid %u exe %s%s its metrics file %s/%ld-%llu.metrics",
                (long)client->peer.pid, (unsigned)client->peer.uid, mt_server_client_exe(client),
                mt_server_client_supervision(client, supervision, sizeof(supervision)),
                server->metrics_directory.path, (long)client->peer.pid, start_time);
    client->passed_fd = fd;
    client->has_passed_fd = true;
    mt_server_client_reply(client, reply, length);
}

/* Sends a read-only descriptor of the mesh membership set with the reply (membership_source.h). */
static void handle_membership_request(struct mt_server *server, struct mt_server_client *client)
{
    if (server->membership.published == NULL) {
        mt_server_client_refuse(client, MT_PROTO_ERROR_UNSUPPORTED,
                                "this agent publishes no mesh membership (no membership_file)");
        return;
    }
    int fd = mt_membership_source_reader_fd(&server->membership);
    uint8_t *reply = malloc(MT_SERVER_REPLY_MAX);
    struct mt_proto_writer writer;
    size_t length = 0;
    mt_proto_writer_begin(&writer, reply, MT_SERVER_REPLY_MAX, MT_PROTO_MEMBERSHIP_RESPONSE);
    mt_proto_writer_put_u64(&writer, MT_PROTO_TAG_GENERATION, server->membership.generation);
    if (fd < 0 || reply == NULL || !mt_result_is_ok(mt_proto_writer_finish(&writer, &length))) {
        free(reply);
        if (fd >= 0)
            close(fd);
        mt_server_client_refuse(client, MT_PROTO_ERROR_INTERNAL,
                                "cannot hand out the membership set");
        return;
    }
    mt_log_debug("gave pid %ld uid %u the membership set, generation %llu", (long)client->peer.pid,
                 (unsigned)client->peer.uid, (unsigned long long)server->membership.generation);
    client->passed_fd = fd;
    client->has_passed_fd = true;
    mt_server_client_reply(client, reply, length);
}

/*
 * Settles whom the request is for: with a SUBJECT (identity/proto.h) and its one pidfd, the
 * client's peer becomes the subject when attest_subject.h allows it. False after refusing.
 */
static bool adopt_subject(struct mt_server_client *client, const struct mt_proto_frame *frame)
{
    bool has_subject = false;
    if (!mt_result_is_ok(mt_proto_decode_subject(frame, &has_subject))) {
        mt_server_client_refuse(client, MT_PROTO_ERROR_MALFORMED,
                                "request malformed (a SUBJECT needs protocol version 2 and the "
                                "value 1, once)");
        return false;
    }
    const char *malformed = NULL;
    if (client->extra_fds > 0)
        malformed = "request carries more than one descriptor (a SUBJECT takes one pidfd)";
    else if (has_subject && !client->has_subject_fd)
        malformed = "request names a SUBJECT but carries no pidfd";
    else if (!has_subject && client->has_subject_fd)
        malformed = "request carries a descriptor but names no SUBJECT";
    else if (has_subject && frame->type == MT_PROTO_STATUS_REQUEST)
        malformed = "a STATUS request names no SUBJECT";
    else if (has_subject && frame->type == MT_PROTO_MEMBERSHIP_REQUEST)
        malformed = "a MEMBERSHIP request names no SUBJECT";
    if (malformed != NULL) {
        mt_server_client_refuse(client, MT_PROTO_ERROR_MALFORMED, malformed);
        return false;
    }
    if (!has_subject)
        return true;
    char text[256];
    struct mt_text reason = mt_text_on(text, sizeof(text));
    struct mt_attest_peer subject;
    switch (mt_attest_identify_subject(&client->peer, client->subject_fd, &subject, &reason)) {
    case MT_ATTEST_SUBJECT_OK:
        mt_log_debug("pid %ld uid %u asks for its child pid %ld exe %s", (long)client->peer.pid,
                     (unsigned)client->peer.uid, (long)subject.pid,
                     subject.has_exe ? subject.exe : "unknown");
        client->peer = subject;
        return true;
    case MT_ATTEST_SUBJECT_IS_CALLER:
        return true;
    case MT_ATTEST_SUBJECT_NOT_PIDFD:
        mt_server_client_refuse(client, MT_PROTO_ERROR_MALFORMED, text);
        return false;
    case MT_ATTEST_SUBJECT_REFUSED:
    default: {
        char message[320];
        snprintf(message, sizeof(message), "subject pid %ld refused: %s", (long)subject.pid, text);
        mt_server_client_refuse(client, MT_PROTO_ERROR_DENIED, message);
        return false;
    }
    }
}

void mt_server_request_handle(struct mt_server *server, struct mt_server_client *client,
                              const struct mt_proto_frame *frame)
{
    char text[64];
    if (!adopt_subject(client, frame))
        return;
    switch (frame->type) {
    case MT_PROTO_SVID_REQUEST:
        handle_svid_request(server, client, frame);
        break;
    case MT_PROTO_ID_REQUEST:
        handle_id_request(server, client);
        break;
    case MT_PROTO_STATUS_REQUEST:
        mt_server_status_reply(server, client);
        break;
    case MT_PROTO_METRICS_FILE_REQUEST:
        handle_metrics_file_request(server, client);
        break;
    case MT_PROTO_MEMBERSHIP_REQUEST:
        handle_membership_request(server, client);
        break;
    default:
        snprintf(text, sizeof(text), "message type %u is not a request", (unsigned)frame->type);
        mt_server_client_refuse(client, MT_PROTO_ERROR_UNSUPPORTED, text);
        break;
    }
}
