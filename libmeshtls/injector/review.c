/*
 * The AdmissionReview exchange (see review.h).
 *
 * Owns the parsing of the review (strict JSON, bounded depth, nothing after the document), the
 * checks that it is an admission.k8s.io/v1 review of a Pod, the decision whether the pod is
 * injected, and the review sent back (the patch base64-encoded, RFC 4648 section 4, as the
 * API's []byte fields are). Must never answer a review it could not read with "allowed" (the
 * API server then applies the webhook's failurePolicy instead), never admit unmeshed a pod that
 * asked for the mesh, and never patch a pod already marked injected.
 */
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/json_member.h"
#include "../util/log.h"
#include "patch.h"
#include "review.h"

#define API_VERSION "admission.k8s.io/v1"
#define REVIEW_KIND "AdmissionReview"
/* A Pod is a few levels deep (spec.containers[].livenessProbe.httpGet.httpHeaders[]); a review
 * nested deeper than this is refused rather than walked. */
#define JSON_DEPTH_MAX 64
#define MESSAGE_MAX 512
/* Names from the review quoted in the log, cut and with control characters replaced. */
#define LOGGED_NAME_MAX 128
/* An unknown meshtls.io/inject value is quoted at most this long. */
#define QUOTED_MAX 64

struct review {
    const char *uid;
    const char *namespace_name;
    const char *operation;
    struct json_object *pod;
};

static void printable(const char *text, char *out, size_t capacity)
{
    size_t n = 0;
    for (; text != NULL && text[n] != '\0' && n + 1 < capacity; n++)
        out[n] = (text[n] < 0x20 || text[n] == 0x7f) ? '?' : text[n];
    out[n] = '\0';
}

static MT_RESULT parse_document(const char *body, size_t length, struct json_object **document,
                                struct mt_text *reason)
{
    *document = NULL;
    if (length == 0)
        return mt_result_explain(reason, MT_ERR_INVALID_ARGUMENT, "the body is empty");
    /* json-c takes an int length; the server caps bodies far below it (server.h). */
    if (length > INT_MAX)
        return mt_result_explain(reason, MT_ERR_INVALID_ARGUMENT, "the body is too large");
    struct json_tokener *tokener = json_tokener_new_ex(JSON_DEPTH_MAX);
    MT_ENSURE(tokener != NULL, MT_ERR_NO_MEMORY);
    json_tokener_set_flags(tokener, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    mt_result result = MT_OK_RESULT;
    struct json_object *parsed = json_tokener_parse_ex(tokener, body, (int)length);
    enum json_tokener_error error = json_tokener_get_error(tokener);
    size_t end = json_tokener_get_parse_end(tokener);
    if (parsed == NULL && error == json_tokener_continue) {
        result =
            mt_result_explain(reason, MT_ERR_INVALID_ARGUMENT,
                              "the body is not JSON: it ends inside a value (%zu bytes)", length);
        goto out;
    }
    if (parsed == NULL) {
        result = mt_result_explain(reason, MT_ERR_INVALID_ARGUMENT,
                                   "the body is not JSON: %s at byte %zu",
                                   json_tokener_error_desc(error), end);
        goto out;
    }
    while (end < length && strchr(" \t\r\n", body[end]) != NULL)
        end++;
    if (end < length) {
        json_object_put(parsed);
        result = mt_result_explain(reason, MT_ERR_INVALID_ARGUMENT,
                                   "the body is not one JSON document: bytes follow it at byte %zu",
                                   end);
        goto out;
    }
    *document = parsed;
out:
    json_tokener_free(tokener);
    return result;
}

/* The checks of review.h's first row, each failure one sentence naming the field. */
static MT_RESULT read_review(struct json_object *document, struct review *review,
                             struct mt_text *reason)
{
    if (!json_object_is_type(document, json_type_object))
        return mt_result_explain(reason, MT_ERR_INVALID_ARGUMENT,
                                 "the body is not a JSON object (an AdmissionReview)");
    const char *api_version = mt_json_string_member(document, "apiVersion");
    if (api_version == NULL || strcmp(api_version, API_VERSION) != 0)
        return mt_result_explain(reason, MT_ERR_INVALID_ARGUMENT,
                                 "apiVersion is %s%.*s%s, not " API_VERSION
                                 " (set admissionReviewVersions: [v1] in the webhook)",
                                 api_version == NULL ? "missing" : "\"", QUOTED_MAX,
                                 api_version == NULL ? "" : api_version,
                                 api_version == NULL ? "" : "\"");
    const char *kind = mt_json_string_member(document, "kind");
    if (kind == NULL || strcmp(kind, REVIEW_KIND) != 0)
        return mt_result_explain(reason, MT_ERR_INVALID_ARGUMENT,
                                 "kind is %s%.*s%s, not " REVIEW_KIND,
                                 kind == NULL ? "missing" : "\"", QUOTED_MAX,
                                 kind == NULL ? "" : kind, kind == NULL ? "" : "\"");
    struct json_object *request = mt_json_member(document, "request", json_type_object);
    if (request == NULL)
        return mt_result_explain(reason, MT_ERR_INVALID_ARGUMENT,
                                 "request is missing or not an object");
    review->uid = mt_json_string_member(request, "uid");
    if (review->uid == NULL || review->uid[0] == '\0')
        return mt_result_explain(reason, MT_ERR_INVALID_ARGUMENT,
                                 "request.uid is missing or empty");
    struct json_object *request_kind = mt_json_member(request, "kind", json_type_object);
    const char *group = mt_json_string_member(request_kind, "group");
    const char *resource_kind = mt_json_string_member(request_kind, "kind");
    if (resource_kind == NULL || strcmp(resource_kind, "Pod") != 0 ||
        (group != NULL && group[0] != '\0'))
        return mt_result_explain(reason, MT_ERR_INVALID_ARGUMENT,
                                 "request.kind is %s%.*s%s, not a Pod (the webhook's rules must "
                                 "select pods only)",
                                 resource_kind == NULL ? "missing" : "\"", QUOTED_MAX,
                                 resource_kind == NULL ? "" : resource_kind,
                                 resource_kind == NULL ? "" : "\"");
    review->pod = mt_json_member(request, "object", json_type_object);
    if (review->pod == NULL)
        return mt_result_explain(reason, MT_ERR_INVALID_ARGUMENT,
                                 "request.object is missing or not an object (a Pod)");
    const char *object_kind = mt_json_string_member(review->pod, "kind");
    if (object_kind != NULL && strcmp(object_kind, "Pod") != 0)
        return mt_result_explain(reason, MT_ERR_INVALID_ARGUMENT,
                                 "request.object is a \"%.*s\", not a Pod", QUOTED_MAX,
                                 object_kind);
    review->namespace_name = mt_json_string_member(request, "namespace");
    review->operation = mt_json_string_member(request, "operation");
    return MT_OK_RESULT;
}

/* Adds value (put when it cannot be added); nonzero when value is NULL or adding failed. */
static int add_value(struct json_object *object, const char *key, struct json_object *value)
{
    if (value == NULL || json_object_object_add(object, key, value) != 0) {
        json_object_put(value);
        return 1;
    }
    return 0;
}

static int add_string(struct json_object *object, const char *key, const char *text)
{
    return add_value(object, key, json_object_new_string(text));
}

static char *base64(const char *data, size_t length)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((length + 2) / 3 * 4 + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < length; i += 3) {
        unsigned long group = (unsigned long)(unsigned char)data[i] << 16;
        if (i + 1 < length)
            group |= (unsigned long)(unsigned char)data[i + 1] << 8;
        if (i + 2 < length)
            group |= (unsigned long)(unsigned char)data[i + 2];
        out[o++] = alphabet[(group >> 18) & 63];
        out[o++] = alphabet[(group >> 12) & 63];
        out[o++] = i + 1 < length ? alphabet[(group >> 6) & 63] : '=';
        out[o++] = i + 2 < length ? alphabet[group & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

/*
 * The review sent back: allowed with the patch (patch may be NULL: no patch), or denied with
 * message. The patch is put here.
 */
static MT_RESULT build_response(const char *uid, struct json_object *patch, const char *denial,
                                struct mt_injector_answer *answer)
{
    mt_result result = mt_result_of(MT_ERR_NO_MEMORY);
    char *encoded = NULL;
    struct json_object *document = json_object_new_object();
    struct json_object *response = json_object_new_object();
    if (document == NULL || response == NULL)
        goto out;
    if (patch != NULL) {
        const char *text = json_object_to_json_string_ext(
            patch, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (text == NULL || (encoded = base64(text, strlen(text))) == NULL)
            goto out;
    }
    int failed = add_string(document, "apiVersion", API_VERSION);
    failed |= add_string(document, "kind", REVIEW_KIND);
    failed |= add_string(response, "uid", uid);
    failed |= add_value(response, "allowed", json_object_new_boolean(denial == NULL));
    if (encoded != NULL) {
        failed |= add_string(response, "patchType", "JSONPatch");
        failed |= add_string(response, "patch", encoded);
    }
    if (denial != NULL) {
        struct json_object *status = json_object_new_object();
        if (status != NULL) {
            failed |= add_value(status, "code", json_object_new_int(400));
            failed |= add_string(status, "message", denial);
        }
        failed |= add_value(response, "status", status);
    }
    failed |= add_value(document, "response", response);
    response = NULL; /* the document's now, or put by add_value */
    if (failed != 0)
        goto out;
    const char *text = json_object_to_json_string_ext(document, JSON_C_TO_STRING_PLAIN |
                                                                    JSON_C_TO_STRING_NOSLASHESCAPE);
    if (text == NULL || (answer->body = strdup(text)) == NULL)
        goto out;
    answer->length = strlen(answer->body);
    answer->status = 200;
    answer->content_type = "application/json";
    result = MT_OK_RESULT;
out:
    free(encoded);
    json_object_put(response);
    json_object_put(document);
    json_object_put(patch);
    return result;
}

/* "namespace/name" (or "namespace/generateName*") of the pod, for the log. */
static void describe_pod(const struct review *review, char *text, size_t capacity)
{
    struct json_object *metadata = mt_json_member(review->pod, "metadata", json_type_object);
    const char *name = mt_json_string_member(metadata, "name");
    const char *generate_name = mt_json_string_member(metadata, "generateName");
    char namespace_name[LOGGED_NAME_MAX];
    char pod_name[LOGGED_NAME_MAX];
    printable(review->namespace_name != NULL ? review->namespace_name : "?", namespace_name,
              sizeof(namespace_name));
    printable(name != NULL            ? name
              : generate_name != NULL ? generate_name
                                      : "?",
              pod_name, sizeof(pod_name));
    snprintf(text, capacity, "%s/%s%s", namespace_name, pod_name,
             name == NULL && generate_name != NULL ? "*" : "");
}

/* Decides and answers a review that passed read_review. */
static MT_RESULT answer_review(const struct review *review, bool inject_default,
                               struct mt_injector_answer *answer)
{
    char pod[2 * LOGGED_NAME_MAX + 2];
    describe_pod(review, pod, sizeof(pod));
    /* Only a pod being created is patched; the rules select CREATE, this guards against a
     * configuration that sends more. */
    if (review->operation != NULL && strcmp(review->operation, "CREATE") != 0) {
        mt_log_debug("%s: admitted unchanged (operation %.*s)", pod, QUOTED_MAX, review->operation);
        return build_response(review->uid, NULL, NULL, answer);
    }
    const char *injected = mt_injector_pod_annotation(review->pod, MT_INJECTOR_ANNOTATION_INJECTED);
    if (injected != NULL && strcmp(injected, "true") == 0) {
        mt_log_info("%s: admitted unchanged (already " MT_INJECTOR_ANNOTATION_INJECTED ")", pod);
        return build_response(review->uid, NULL, NULL, answer);
    }
    char message[MESSAGE_MAX];
    struct mt_text reason = mt_text_on(message, sizeof(message));
    const char *inject = mt_injector_pod_annotation(review->pod, MT_INJECTOR_ANNOTATION_INJECT);
    bool wanted = inject_default;
    if (inject != NULL && strcmp(inject, "enabled") == 0) {
        wanted = true;
    } else if (inject != NULL && strcmp(inject, "disabled") == 0) {
        wanted = false;
    } else if (inject != NULL) {
        mt_text_set(&reason,
                    "annotation " MT_INJECTOR_ANNOTATION_INJECT
                    ": \"%.*s\" is neither enabled nor disabled",
                    QUOTED_MAX, inject);
        goto denied;
    }
    if (!wanted) {
        mt_log_info("%s: admitted unchanged (" MT_INJECTOR_ANNOTATION_INJECT " %s)", pod,
                    inject != NULL ? inject : "absent, default disabled");
        return build_response(review->uid, NULL, NULL, answer);
    }
    struct mt_injector_pod_options options;
    if (!mt_result_is_ok(mt_injector_patch_options_read(review->pod, &options, &reason)))
        goto denied;
    struct json_object *patch = NULL;
    struct mt_injector_patch_summary summary;
    mt_result built = mt_injector_patch_build(review->pod, &options, &patch, &summary, &reason);
    if (built.error == MT_ERR_NO_MEMORY)
        return built;
    if (!mt_result_is_ok(built))
        goto denied;
    mt_log_info("%s: injected %zu container%s (%zu skipped, %s preload)", pod, summary.injected,
                summary.injected == 1 ? "" : "s", summary.skipped,
                options.libc == MT_INJECTOR_LIBC_MUSL ? "musl" : "glibc");
    return build_response(review->uid, patch, NULL, answer);
denied:
    mt_log_warn("%s: denied: %s", pod, message);
    char denial[MESSAGE_MAX + 32];
    snprintf(denial, sizeof(denial), "meshtls-injector: %s", message);
    return build_response(review->uid, NULL, denial, answer);
}

MT_RESULT mt_injector_review_answer(const char *body, size_t length, bool inject_default,
                                    struct mt_injector_answer *answer)
{
    MT_ENSURE_REF(body);
    MT_ENSURE_REF(answer);
    *answer = (struct mt_injector_answer){0};
    char message[MESSAGE_MAX];
    struct mt_text reason = mt_text_on(message, sizeof(message));
    struct json_object *document = NULL;
    struct review review = {0};
    mt_result result = parse_document(body, length, &document, &reason);
    if (result.error == MT_ERR_NO_MEMORY)
        goto out;
    if (mt_result_is_ok(result))
        result = read_review(document, &review, &reason);
    if (!mt_result_is_ok(result)) {
        mt_log_warn("refused a malformed AdmissionReview: %s", message);
        result = mt_injector_answer_text(400, message, answer);
        goto out;
    }
    result = answer_review(&review, inject_default, answer);
out:
    json_object_put(document);
    return result;
}

MT_RESULT mt_injector_answer_text(unsigned status, const char *message,
                                  struct mt_injector_answer *answer)
{
    MT_ENSURE_REF(message);
    MT_ENSURE_REF(answer);
    size_t length = strlen("meshtls-injector: ") + strlen(message) + 1;
    *answer = (struct mt_injector_answer){.status = status, .content_type = "text/plain"};
    answer->body = malloc(length + 1);
    MT_ENSURE(answer->body != NULL, MT_ERR_NO_MEMORY);
    snprintf(answer->body, length + 1, "meshtls-injector: %s\n", message);
    answer->length = length;
    return MT_OK_RESULT;
}

void mt_injector_answer_free(struct mt_injector_answer *answer)
{
    if (answer == NULL)
        return;
    free(answer->body);
    *answer = (struct mt_injector_answer){0};
}
