/*
 * Tests for agent/kube_members.c: v1 PodList, ServiceList and WatchEvent JSON into compact
 * records, and the member entries they make. Each rule of what is a member is tested from both
 * sides (a pod that is one, the same pod changed in one respect that is not), so that a rule
 * that looks at the wrong field cannot pass.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/kube_members.h"

#define TD "cluster.local"

static char buffer[8192];

/* A pod's JSON: injected ("true" or NULL), extra spec and status members spliced in. */
static const char *pod_json(const char *namespace_name, const char *name, const char *ip,
                            const char *account, const char *injected, const char *labels,
                            const char *extra_spec, const char *phase)
{
    char annotations[128] = "{}";
    if (injected != NULL)
        snprintf(annotations, sizeof(annotations), "{\"meshtls.io/injected\": \"%s\"}", injected);
    snprintf(buffer, sizeof(buffer),
             "{\"kind\": \"Pod\", \"metadata\": {\"namespace\": \"%s\", \"name\": \"%s\", "
             "\"resourceVersion\": \"7\", \"labels\": %s, \"annotations\": %s}, "
             "\"spec\": {\"serviceAccountName\": \"%s\"%s}, "
             "\"status\": {\"phase\": \"%s\", \"podIP\": \"%s\", \"podIPs\": [{\"ip\": \"%s\"}, "
             "{\"ip\": \"fd00::7\"}]}}",
             namespace_name, name, labels, annotations, account, extra_spec, phase, ip, ip);
    return buffer;
}

static void apply(struct mt_kube_state *state, enum mt_kube_kind kind, const char *type,
                  const char *object)
{
    static char event[10000];
    snprintf(event, sizeof(event), "{\"type\": \"%s\", \"object\": %s}\n", type, object);
    struct mt_kube_event parsed;
    char message[256] = "";
    struct mt_text reason = mt_text_on(message, sizeof(message));
    mt_result result =
        mt_kube_members_apply_event(state, kind, event, strlen(event), &parsed, &reason);
    if (!mt_result_is_ok(result))
        fail_msg("%s", message);
}

static void compute(const struct mt_kube_state *state, struct mt_membership_entry **entries,
                    size_t *count)
{
    assert_true(mt_result_is_ok(mt_kube_members_compute(state, TD, entries, count)));
}

static bool has_entry(const struct mt_membership_entry *entries, size_t count, const char *ip,
                      uint16_t first, uint16_t last, const char *identity)
{
    uint8_t address[16] = {0};
    unsigned family = inet_pton(AF_INET, ip, address) == 1 ? 4 : 6;
    if (family == 6)
        assert_int_equal(inet_pton(AF_INET6, ip, address), 1);
    for (size_t i = 0; i < count; i++) {
        const struct mt_membership_entry *entry = &entries[i];
        if (entry->family == family && memcmp(entry->address, address, 16) == 0 &&
            entry->port_first == first && entry->port_last == last &&
            entry->identity_length == strlen(identity) &&
            memcmp(entry->identity, identity, entry->identity_length) == 0)
            return true;
    }
    return false;
}

static size_t members_of(const char *object)
{
    struct mt_kube_state state = {0};
    apply(&state, MT_KUBE_PODS, "ADDED", object);
    struct mt_membership_entry *entries = NULL;
    size_t count = 0;
    compute(&state, &entries, &count);
    free(entries);
    mt_kube_state_free(&state);
    return count;
}

static void test_mt_kube_members_compute_injected_pod_every_port_its_account(void **unused)
{
    (void)unused;
    struct mt_kube_state state = {0};
    apply(&state, MT_KUBE_PODS, "ADDED",
          pod_json("shop", "web-1", "10.1.0.7", "web", "true", "{}", "", "Running"));
    struct mt_membership_entry *entries = NULL;
    size_t count = 0;
    compute(&state, &entries, &count);
    assert_int_equal(count, 2); /* dual-stack: both IPs */
    assert_true(has_entry(entries, count, "10.1.0.7", 1, 65535, "spiffe://" TD "/ns/shop/sa/web"));
    assert_true(has_entry(entries, count, "fd00::7", 1, 65535, "spiffe://" TD "/ns/shop/sa/web"));
    free(entries);
    mt_kube_state_free(&state);
}

static void test_mt_kube_members_compute_each_exclusion_from_both_sides(void **unused)
{
    (void)unused;
    assert_int_equal(members_of(pod_json("a", "p", "10.0.0.1", "s", "true", "{}", "", "Running")),
                     2);
    assert_int_equal(members_of(pod_json("a", "p", "10.0.0.1", "s", NULL, "{}", "", "Running")), 0);
    assert_int_equal(members_of(pod_json("a", "p", "10.0.0.1", "s", "false", "{}", "", "Running")),
                     0);
    assert_int_equal(members_of(pod_json("a", "p", "10.0.0.1", "s", "true", "{}",
                                         ", \"hostNetwork\": true", "Running")),
                     0);
    assert_int_equal(members_of(pod_json("a", "p", "10.0.0.1", "s", "true", "{}",
                                         ", \"hostNetwork\": false", "Running")),
                     2);
    assert_int_equal(members_of(pod_json("a", "p", "10.0.0.1", "s", "true", "{}", "", "Succeeded")),
                     0);
    assert_int_equal(members_of(pod_json("a", "p", "10.0.0.1", "s", "true", "{}", "", "Failed")),
                     0);
    assert_int_equal(members_of(pod_json("a", "p", "10.0.0.1", "s", "true", "{}", "", "Pending")),
                     2);
    /* Being deleted: metadata.deletionTimestamp. */
    const char *deleting = "{\"metadata\": {\"namespace\": \"a\", \"name\": \"p\", "
                           "\"deletionTimestamp\": \"2026-01-01T00:00:00Z\", \"annotations\": "
                           "{\"meshtls.io/injected\": \"true\"}}, \"spec\": {}, \"status\": "
                           "{\"podIP\": \"10.0.0.1\"}}";
    assert_int_equal(members_of(deleting), 0);
    /* No IP yet. */
    const char *no_ip = "{\"metadata\": {\"namespace\": \"a\", \"name\": \"p\", \"annotations\": "
                        "{\"meshtls.io/injected\": \"true\"}}, \"spec\": {}, \"status\": {}}";
    assert_int_equal(members_of(no_ip), 0);
}

static void test_mt_kube_members_apply_event_modified_and_deleted_change_members(void **unused)
{
    (void)unused;
    struct mt_kube_state state = {0};
    struct mt_membership_entry *entries = NULL;
    size_t count = 0;
    apply(&state, MT_KUBE_PODS, "ADDED",
          pod_json("shop", "late", "10.1.0.9", "web", NULL, "{}", "", "Running"));
    compute(&state, &entries, &count);
    assert_int_equal(count, 0);
    free(entries);
    apply(&state, MT_KUBE_PODS, "MODIFIED",
          pod_json("shop", "late", "10.1.0.9", "web", "true", "{}", "", "Running"));
    assert_int_equal(state.pod_count, 1); /* replaced, not added */
    compute(&state, &entries, &count);
    assert_int_equal(count, 2);
    free(entries);
    apply(&state, MT_KUBE_PODS, "DELETED",
          pod_json("shop", "late", "10.1.0.9", "web", "true", "{}", "", "Running"));
    assert_int_equal(state.pod_count, 0);
    compute(&state, &entries, &count);
    assert_int_equal(count, 0);
    free(entries);
    mt_kube_state_free(&state);
}

static const char *service_json(const char *selector)
{
    static char text[1024];
    snprintf(text, sizeof(text),
             "{\"metadata\": {\"namespace\": \"shop\", \"name\": \"web\"}, \"spec\": "
             "{\"selector\": %s, \"clusterIP\": \"10.96.0.10\", \"clusterIPs\": [\"10.96.0.10\"], "
             "\"ports\": [{\"port\": 80, \"protocol\": \"TCP\"}, {\"port\": 53, \"protocol\": "
             "\"UDP\"}, {\"port\": 8443}]}}",
             selector);
    return text;
}

static void test_mt_kube_members_compute_service_only_when_all_selected_pods_injected(void **unused)
{
    (void)unused;
    struct mt_kube_state state = {0};
    struct mt_membership_entry *entries = NULL;
    size_t count = 0;
    apply(&state, MT_KUBE_SERVICES, "ADDED", service_json("{\"app\": \"web\"}"));
    compute(&state, &entries, &count);
    assert_int_equal(count, 0); /* no pod selected: nothing says it is meshed */
    free(entries);

    apply(&state, MT_KUBE_PODS, "ADDED",
          pod_json("shop", "w1", "10.1.0.1", "web", "true", "{\"app\": \"web\"}", "", "Running"));
    /* Same labels, another namespace: not selected. */
    apply(&state, MT_KUBE_PODS, "ADDED",
          pod_json("other", "w1", "10.2.0.1", "web", NULL, "{\"app\": \"web\"}", "", "Running"));
    compute(&state, &entries, &count);
    assert_int_equal(count, 2 + 2); /* the pod's two IPs, the Service's two TCP ports */
    assert_true(has_entry(entries, count, "10.96.0.10", 80, 80, "spiffe://" TD "/ns/shop/sa/web"));
    assert_true(
        has_entry(entries, count, "10.96.0.10", 8443, 8443, "spiffe://" TD "/ns/shop/sa/web"));
    assert_false(has_entry(entries, count, "10.96.0.10", 53, 53, "spiffe://" TD "/ns/shop/sa/web"));
    free(entries);

    /* A second pod of another account: the namespace's wildcard. */
    apply(&state, MT_KUBE_PODS, "ADDED",
          pod_json("shop", "w2", "10.1.0.2", "api", "true", "{\"app\": \"web\", \"v\": \"2\"}", "",
                   "Running"));
    compute(&state, &entries, &count);
    assert_true(has_entry(entries, count, "10.96.0.10", 80, 80, "spiffe://" TD "/ns/shop/sa/*"));
    free(entries);

    /* One selected pod not injected: the Service is not a member; a terminal one does not
     * count. */
    apply(&state, MT_KUBE_PODS, "ADDED",
          pod_json("shop", "w3", "10.1.0.3", "web", NULL, "{\"app\": \"web\"}", "", "Succeeded"));
    compute(&state, &entries, &count);
    assert_int_equal(count, 4 + 2);
    free(entries);
    apply(&state, MT_KUBE_PODS, "MODIFIED",
          pod_json("shop", "w3", "10.1.0.3", "web", NULL, "{\"app\": \"web\"}", "", "Running"));
    compute(&state, &entries, &count);
    assert_int_equal(count, 4); /* the two injected pods only */
    assert_false(has_entry(entries, count, "10.96.0.10", 80, 80, "spiffe://" TD "/ns/shop/sa/*"));
    free(entries);
    mt_kube_state_free(&state);
}

static void test_mt_kube_members_compute_headless_or_selectorless_service_is_not(void **unused)
{
    (void)unused;
    struct mt_kube_state state = {0};
    struct mt_membership_entry *entries = NULL;
    size_t count = 0;
    apply(&state, MT_KUBE_PODS, "ADDED",
          pod_json("shop", "w1", "10.1.0.1", "web", "true", "{\"app\": \"web\"}", "", "Running"));
    apply(&state, MT_KUBE_SERVICES, "ADDED",
          "{\"metadata\": {\"namespace\": \"shop\", \"name\": \"headless\"}, \"spec\": "
          "{\"selector\": {\"app\": \"web\"}, \"clusterIP\": \"None\", \"ports\": [{\"port\": "
          "80}]}}");
    apply(&state, MT_KUBE_SERVICES, "ADDED",
          "{\"metadata\": {\"namespace\": \"shop\", \"name\": \"manual\"}, \"spec\": "
          "{\"clusterIP\": \"10.96.0.11\", \"ports\": [{\"port\": 80}]}}");
    compute(&state, &entries, &count);
    assert_int_equal(count, 2);
    free(entries);
    mt_kube_state_free(&state);
}

static void test_mt_kube_members_apply_event_bookmark_and_error(void **unused)
{
    (void)unused;
    struct mt_kube_state state = {0};
    struct mt_kube_event event;
    char message[256] = "";
    struct mt_text reason = mt_text_on(message, sizeof(message));
    const char *bookmark = "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"metadata\":"
                           "{\"resourceVersion\":\"12345\"}}}";
    assert_true(mt_result_is_ok(mt_kube_members_apply_event(&state, MT_KUBE_PODS, bookmark,
                                                            strlen(bookmark), &event, &reason)));
    assert_int_equal(event.type, MT_KUBE_EVENT_BOOKMARK);
    assert_string_equal(event.resource_version, "12345");
    assert_false(event.changed);
    const char *gone = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,"
                       "\"message\":\"too old resource version: 1 (5)\"}}";
    assert_true(mt_result_is_ok(
        mt_kube_members_apply_event(&state, MT_KUBE_PODS, gone, strlen(gone), &event, &reason)));
    assert_int_equal(event.type, MT_KUBE_EVENT_ERROR);
    assert_int_equal(event.error_code, 410);
    assert_int_equal(state.pod_count, 0);
    mt_kube_state_free(&state);
}

static void test_mt_kube_members_apply_event_malformed_refused(void **unused)
{
    (void)unused;
    static const char *const malformed[] = {
        "",
        "{",
        "[]",
        "{\"type\":\"ADDED\"}",
        "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"p\"}}}",
        "{\"type\":\"SOMETHING\",\"object\":{}}",
        "{\"type\":\"ADDED\",\"object\":{}} {}",
    };
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        struct mt_kube_state state = {0};
        struct mt_kube_event event;
        char message[256] = "";
        struct mt_text reason = mt_text_on(message, sizeof(message));
        assert_false(mt_result_is_ok(mt_kube_members_apply_event(
            &state, MT_KUBE_PODS, malformed[i], strlen(malformed[i]), &event, &reason)));
        assert_true(message[0] != '\0');
        assert_int_equal(state.pod_count, 0);
    }
}

static void test_mt_kube_members_apply_list_pages_and_versions(void **unused)
{
    (void)unused;
    struct mt_kube_state state = {0};
    char version[MT_KUBE_RESOURCE_VERSION_MAX];
    char next[MT_KUBE_CONTINUE_MAX];
    char message[256] = "";
    struct mt_text reason = mt_text_on(message, sizeof(message));
    char page[sizeof(buffer) + 256];
    snprintf(page, sizeof(page),
             "{\"kind\":\"PodList\",\"metadata\":{\"resourceVersion\":\"900\",\"continue\":"
             "\"abc\"},\"items\":[%s]}",
             pod_json("a", "p1", "10.0.0.1", "s", "true", "{}", "", "Running"));
    assert_true(mt_result_is_ok(mt_kube_members_apply_list(&state, MT_KUBE_PODS, page, strlen(page),
                                                           version, next, &reason)));
    assert_string_equal(version, "900");
    assert_string_equal(next, "abc");
    const char *last = "{\"kind\":\"PodList\",\"metadata\":{\"resourceVersion\":\"901\"},"
                       "\"items\":null}";
    assert_true(mt_result_is_ok(mt_kube_members_apply_list(&state, MT_KUBE_PODS, last, strlen(last),
                                                           version, next, &reason)));
    assert_string_equal(next, "");
    assert_int_equal(state.pod_count, 1);
    /* A ServiceList is not a PodList. */
    const char *services = "{\"kind\":\"ServiceList\",\"metadata\":{\"resourceVersion\":\"1\"},"
                           "\"items\":[]}";
    assert_false(mt_result_is_ok(mt_kube_members_apply_list(
        &state, MT_KUBE_PODS, services, strlen(services), version, next, &reason)));

    /* A relist replaces the kind whole. */
    struct mt_kube_state listing = {0};
    mt_kube_state_replace(&state, &listing, MT_KUBE_PODS);
    assert_int_equal(state.pod_count, 0);
    mt_kube_state_free(&state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mt_kube_members_compute_injected_pod_every_port_its_account),
        cmocka_unit_test(test_mt_kube_members_compute_each_exclusion_from_both_sides),
        cmocka_unit_test(test_mt_kube_members_apply_event_modified_and_deleted_change_members),
        cmocka_unit_test(test_mt_kube_members_compute_service_only_when_all_selected_pods_injected),
        cmocka_unit_test(test_mt_kube_members_compute_headless_or_selectorless_service_is_not),
        cmocka_unit_test(test_mt_kube_members_apply_event_bookmark_and_error),
        cmocka_unit_test(test_mt_kube_members_apply_event_malformed_refused),
        cmocka_unit_test(test_mt_kube_members_apply_list_pages_and_versions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
