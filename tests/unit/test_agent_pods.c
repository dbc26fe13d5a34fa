/*
 * Tests for the agent's Kubernetes pieces other than the cgroup reader: the kubelet's v1 PodList
 * as json-c reads it (agent/kubelet.c), rules with pod selectors (agent/rules.c) and the identity
 * they give (agent/agent_config.c): a pod's default ns/<namespace>/sa/<service account>, pod
 * selectors that never match a process of the node, labels that must all be there.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/kubelet.h"
#include "agent_config_support.h"

#define UID_A "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
#define UID_B "2b4e28ba-2fa1-11d2-883f-0016d3cca427"
#define CID "3f2a6c1e9b8d7f60a5c4e3d2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a09876"

static const char pod_list[] =
    "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{},\"items\":["
    "{\"metadata\":{\"name\":\"web-7d9f8c6b5-x2x4z\",\"namespace\":\"shop\",\"uid\":\"" UID_A "\","
    "\"labels\":{\"app\":\"web\",\"tier\":\"front\"},"
    "\"ownerReferences\":[{\"kind\":\"ReplicaSet\",\"name\":\"web-7d9f8c6b5\",\"controller\":true}]"
    "},"
    "\"spec\":{\"serviceAccountName\":\"frontend\"},"
    "\"status\":{\"containerStatuses\":[{\"name\":\"app\",\"image\":\"registry.test/web:2\","
    "\"containerID\":\"containerd://" CID "\"}],"
    "\"initContainerStatuses\":[{\"name\":\"init\",\"image\":\"busybox\","
    "\"containerID\":\"cri-o://" CID "\"}]}},"
    "{\"metadata\":{\"name\":\"db-0\",\"namespace\":\"data\",\"uid\":\"" UID_B "\","
    "\"ownerReferences\":[{\"kind\":\"StatefulSet\",\"name\":\"db\",\"controller\":true}]},"
    "\"spec\":{},\"status\":{}},"
    "{\"metadata\":{\"name\":\"bad\",\"namespace\":\"x\",\"uid\":\"not-a-uid\"}},"
    "{\"metadata\":{\"name\":\"static\",\"namespace\":\"kube-system\","
    "\"uid\":\"3b4e28ba-2fa1-11d2-883f-0016d3cca427\"}}"
    "]}";

static void test_parse_pods_reads_names_owner_labels_containers(void **state)
{
    (void)state;
    char text[256];
    struct mt_text reason = mt_text_on(text, sizeof(text));
    struct mt_kubelet_pods pods;
    assert_true(mt_result_is_ok(mt_kubelet_parse_pods(pod_list, strlen(pod_list), &pods, &reason)));
    /* The item with a malformed uid is left out. */
    assert_int_equal(pods.count, 3);
    const struct mt_kubelet_pod *web = &pods.pods[0];
    assert_string_equal(web->uid, UID_A);
    assert_string_equal(web->namespace_name, "shop");
    assert_string_equal(web->service_account, "frontend");
    assert_string_equal(web->workload, "deployment/web");
    assert_int_equal(web->label_count, 2);
    assert_int_equal(web->container_count, 2);
    assert_string_equal(web->containers[0].name, "app");
    assert_string_equal(web->containers[0].image, "registry.test/web:2");
    assert_string_equal(web->containers[0].id, CID);
    assert_string_equal(web->containers[1].name, "init");
    const struct mt_kubelet_pod *db = &pods.pods[1];
    assert_string_equal(db->workload, "statefulset/db");
    /* No serviceAccountName: Kubernetes' default. */
    assert_string_equal(db->service_account, "default");
    assert_string_equal(pods.pods[2].workload, "");
    assert_ptr_equal(mt_kubelet_pod_container(web, CID), &web->containers[0]);
    assert_null(mt_kubelet_pod_container(db, CID));
    mt_kubelet_pods_free(&pods);
}

static void test_parse_pods_rejects_other_documents(void **state)
{
    (void)state;
    static const char *const documents[] = {
        "",
        "{",
        "[]",
        "{\"kind\":\"Status\",\"code\":401}",
        "{\"kind\":\"PodList\"}",
        "{\"kind\":\"PodList\",\"items\":{}}",
        "{\"kind\":\"PodList\",\"items\":[]} trailing",
    };
    for (size_t i = 0; i < sizeof(documents) / sizeof(documents[0]); i++) {
        char text[256];
        struct mt_text reason = mt_text_on(text, sizeof(text));
        struct mt_kubelet_pods pods;
        mt_result result =
            mt_kubelet_parse_pods(documents[i], strlen(documents[i]), &pods, &reason);
        if (mt_result_is_ok(result))
            fail_msg("accepted %s", documents[i]);
        assert_true(strlen(text) > 0);
    }
}

/* ---- rules ---------------------------------------------------------------------------------- */

static const char pod_rules[] =
    "trust_domain = \"example.org\";\n"
    "rules = (\n"
    "  { namespace = \"shop\"; labels = { app = \"web\"; tier = "
    "\"front\"; }; id = \"ns/shop/sa/web-front\"; },\n"
    "  { namespace = \"shop\"; container = \"app\"; image = "
    "\"registry.test/web:*\"; id = \"ns/shop/sa/web-app\"; },\n"
    "  { service_account = \"frontend\"; id = \"ns/any/sa/frontend\"; },\n"
    "  { uid = 1000; id = \"ns/dev/sa/{uid}\"; }\n"
    ");\n";

static struct mt_kubelet_label front_labels[] = {{"app", "web"}, {"tier", "front"}};

static void resolve_pod(const struct fixture *fixture, uid_t uid, const struct mt_agent_pod *pod,
                        const char *expected)
{
    struct mt_agent_caller caller = caller_of(uid, uid, "/bin/sh", "/bin/sh");
    caller.pod = pod;
    char id[MT_SPIFFE_ID_MAX + 1];
    assert_true(mt_result_is_ok(
        mt_agent_config_resolve_id(&fixture->config, &caller, id, sizeof(id), NULL)));
    assert_string_equal(id, expected);
}

static void test_resolve_pod_rules_and_default(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_text(fixture, pod_rules)));
    struct mt_agent_pod pod = {.namespace_name = "shop",
                               .name = "web-1",
                               .service_account = "web",
                               .workload = "deployment/web",
                               .labels = front_labels,
                               .label_count = 2,
                               .container = "app",
                               .image = "registry.test/web:2"};
    resolve_pod(fixture, 1000, &pod, "spiffe://example.org/ns/shop/sa/web-front");
    /* One label of two missing: the next rule, by container name and image glob. */
    pod.label_count = 1;
    resolve_pod(fixture, 1000, &pod, "spiffe://example.org/ns/shop/sa/web-app");
    pod.image = "registry.test/other:2";
    /* No pod rule left: the uid rule is a host rule and never names a caller in a pod, whose
     * uid any other pod of the node may run as; the pod's default applies. */
    resolve_pod(fixture, 1000, &pod, "spiffe://example.org/ns/shop/sa/web");
    resolve_pod(fixture, 1000, NULL, "spiffe://example.org/ns/dev/sa/1000"); /* a host process */
    resolve_pod(fixture, 7, &pod, "spiffe://example.org/ns/shop/sa/web");
    pod.service_account = "frontend";
    pod.namespace_name = "other";
    resolve_pod(fixture, 7, &pod, "spiffe://example.org/ns/any/sa/frontend");
    /* A container the pod's status does not name matches no container rule. */
    pod = (struct mt_agent_pod){
        .namespace_name = "shop", .name = "web-2", .service_account = "web", .workload = ""};
    resolve_pod(fixture, 7, &pod, "spiffe://example.org/ns/shop/sa/web");
}

static void test_resolve_pod_labels_as_key_value_strings(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(
        load_text(fixture, "trust_domain = \"example.org\";\n"
                           "rules = ( { labels = [\"app.kubernetes.io/name=web\", \"tier=a=b\"];"
                           " id = \"ns/shop/sa/named\"; } );\n")));
    struct mt_kubelet_label labels[] = {{"app.kubernetes.io/name", "web"}, {"tier", "a=b"}};
    struct mt_agent_pod pod = {.namespace_name = "shop",
                               .name = "web-1",
                               .service_account = "web",
                               .workload = "",
                               .labels = labels,
                               .label_count = 2};
    resolve_pod(fixture, 7, &pod, "spiffe://example.org/ns/shop/sa/named");
    labels[1].value = "a";
    resolve_pod(fixture, 7, &pod, "spiffe://example.org/ns/shop/sa/web");
}

static void test_resolve_pod_rules_never_match_node_processes(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_text(fixture, pod_rules)));
    resolve(fixture, 7, 7, "/bin/sh", "spiffe://example.org/uid/7");
    resolve(fixture, 1000, 1000, "/bin/sh", "spiffe://example.org/ns/dev/sa/1000");
}

static void test_load_pod_rules_errors_name_key(void **state)
{
    expect_error(*state, "rules = (\n  { labels = { app = 1; }; id = \"a\"; }\n);\n", 2,
                 "rules[0].labels.app", "expected a string");
    expect_error(*state, "rules = (\n  { labels = {}; id = \"a\"; }\n);\n", 2, "rules[0].labels",
                 "a group of label");
    expect_error(*state, "rules = (\n  { namespace = \"\"; id = \"a\"; }\n);\n", 2,
                 "rules[0].namespace", "is empty");
    expect_error(*state, "rules = (\n  { labels = [\"app\"]; id = \"a\"; }\n);\n", 2,
                 "rules[0].labels[0]", "is not key=value");
    expect_error(*state, "rules = (\n  { labels = [\"=web\"]; id = \"a\"; }\n);\n", 2,
                 "rules[0].labels[0]", "is not key=value");
}

static void test_load_kubelet_group_and_flags(void **state)
{
    struct fixture *fixture = *state;
    assert_true(mt_result_is_ok(load_text(fixture, "kubelet = { url = \"https://10.0.0.4:10250\"; "
                                                   "token_file = \"/t\"; ca_file = \"/c\"; };\n")));
    assert_string_equal(fixture->config.kubelet_url, "https://10.0.0.4:10250");
    assert_string_equal(fixture->config.kubelet_token_file, "/t");
    assert_string_equal(fixture->config.kubelet_ca_file, "/c");
    expect_error(*state, "kubelet = {\n url = \"https://10.0.0.4\"; ca_file = \"/c\"; };\n", 1,
                 "kubelet", "missing key token_file");
    expect_error(*state,
                 "kubelet = { url = \"http://10.0.0.4\";\n token_file = \"/t\"; ca_file = "
                 "\"/c\"; };\n",
                 1, "kubelet.url", "is not a URL");
    expect_error(*state, "kubelet = { url = \"https://a\"; tokenfile = \"/t\"; };\n", 1, "kubelet",
                 "unknown key \"tokenfile\"");
    struct mt_agent_config config;
    mt_agent_config_init(&config);
    char message[256];
    struct mt_text reason = mt_text_on(message, sizeof(message));
    assert_true(mt_result_is_ok(mt_agent_config_check_kubelet(&config, &reason)));
    assert_true(
        mt_result_is_ok(mt_agent_config_set_kubelet_url(&config, "https://[::1]:10250", &reason)));
    assert_false(mt_result_is_ok(mt_agent_config_check_kubelet(&config, &reason)));
    assert_non_null(strstr(message, "the token file is missing"));
    mt_agent_config_cleanup(&config);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_pods_reads_names_owner_labels_containers),
        cmocka_unit_test(test_parse_pods_rejects_other_documents),
        cmocka_unit_test_setup_teardown(test_resolve_pod_rules_and_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolve_pod_labels_as_key_value_strings, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_resolve_pod_rules_never_match_node_processes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_load_pod_rules_errors_name_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_kubelet_group_and_flags, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
