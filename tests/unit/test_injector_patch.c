/*
 * Tests for injector/patch.c: the JSON Patch operations for pods with and without the arrays and
 * objects they extend, the JSON Pointer escaping of annotation keys, LD_PRELOAD prepended (and
 * not twice), the container's own variables kept, skipped containers left alone, and the
 * annotations and pod shapes that are refused. The patches are applied to real pods in
 * tests/integration/test_k8s_injector.py; here each operation is looked at.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "injector/patch.h"

static struct json_object *parse(const char *text)
{
    struct json_object *object = json_tokener_parse(text);
    assert_non_null(object);
    return object;
}

/* The patch for pod (JSON) as compact JSON text in out, or NULL on failure (reason kept). */
static const char *patch_of(const char *pod_json, char *out, size_t capacity, char *reason,
                            size_t reason_capacity, struct mt_injector_patch_summary *summary)
{
    struct json_object *pod = parse(pod_json);
    struct mt_injector_pod_options options;
    struct mt_text explanation = mt_text_on(reason, reason_capacity);
    struct json_object *patch = NULL;
    const char *result = NULL;
    if (mt_result_is_ok(mt_injector_patch_options_read(pod, &options, &explanation)) &&
        mt_result_is_ok(mt_injector_patch_build(pod, &options, &patch, summary, &explanation))) {
        snprintf(out, capacity, "%s",
                 json_object_to_json_string_ext(patch, JSON_C_TO_STRING_PLAIN |
                                                           JSON_C_TO_STRING_NOSLASHESCAPE));
        result = out;
    }
    json_object_put(patch);
    json_object_put(pod);
    return result;
}

#define PATCH_MAX 8192

static void test_patch_build_creates_what_the_pod_lacks(void **state)
{
    char patch[PATCH_MAX];
    char reason[256];
    struct mt_injector_patch_summary summary;
    assert_non_null(patch_of("{\"metadata\": {\"name\": \"p\"},"
                             " \"spec\": {\"containers\": [{\"name\": \"c\"}]}}",
                             patch, sizeof(patch), reason, sizeof(reason), &summary));
    /* "add" below a missing member fails (RFC 6902 4.1): each is added whole. */
    assert_non_null(strstr(patch, "{\"op\":\"add\",\"path\":\"/spec/volumes\",\"value\":["));
    assert_non_null(strstr(patch, "\"path\":\"/spec/containers/0/volumeMounts\",\"value\":["));
    assert_non_null(strstr(patch, "\"path\":\"/spec/containers/0/env\",\"value\":["));
    assert_non_null(strstr(patch, "{\"op\":\"add\",\"path\":\"/metadata/annotations\","
                                  "\"value\":{\"meshtls.io/injected\":\"true\"}}"));
    assert_null(strstr(patch, "/-\""));
    assert_null(strstr(patch, "MESHTLS_PROBE_PORTS"));
    assert_int_equal(summary.injected, 1);
    assert_int_equal(summary.skipped, 0);
}

static void test_patch_build_appends_and_escapes_the_annotation_key(void **state)
{
    char patch[PATCH_MAX];
    char reason[256];
    struct mt_injector_patch_summary summary;
    assert_non_null(patch_of(
        "{\"metadata\": {\"annotations\": {\"a/b~c\": \"x\"}},"
        " \"spec\": {\"volumes\": [{\"name\": \"data\", \"emptyDir\": {}}],"
        " \"containers\": [{\"name\": \"c\", \"env\": [{\"name\": \"A\", \"value\": \"1\"}],"
        " \"volumeMounts\": [{\"name\": \"data\", \"mountPath\": \"/data\"}]}]}}",
        patch, sizeof(patch), reason, sizeof(reason), &summary));
    assert_non_null(strstr(patch, "{\"op\":\"add\",\"path\":\"/metadata/annotations/"
                                  "meshtls.io~1injected\",\"value\":\"true\"}"));
    assert_non_null(strstr(patch, "\"path\":\"/spec/volumes/-\",\"value\":{\"name\":"
                                  "\"meshtls-socket\",\"hostPath\":{\"path\":\"/run/meshtls\","
                                  "\"type\":\"Directory\"}}"));
    assert_non_null(strstr(patch, "\"path\":\"/spec/containers/0/volumeMounts/-\",\"value\":"
                                  "{\"name\":\"meshtls-lib\",\"mountPath\":\"/var/lib/meshtls\","
                                  "\"readOnly\":true}"));
    assert_non_null(strstr(patch, "\"path\":\"/spec/containers/0/env/-\",\"value\":{\"name\":"
                                  "\"LD_PRELOAD\",\"value\":\"" MT_INJECTOR_PRELOAD_GLIBC "\"}"));
    /* Nothing of the pod's own is replaced or removed. */
    assert_null(strstr(patch, "\"op\":\"replace\""));
    assert_null(strstr(patch, "\"op\":\"remove\""));
}

static void test_patch_build_prepends_ld_preload_once(void **state)
{
    char patch[PATCH_MAX];
    char reason[256];
    struct mt_injector_patch_summary summary;
    assert_non_null(
        patch_of("{\"metadata\": {\"annotations\": {\"meshtls.io/libc\": \"musl\"}},"
                 " \"spec\": {\"containers\": [{\"name\": \"c\", \"env\": [{\"name\": \"X\"},"
                 " {\"name\": \"LD_PRELOAD\", \"value\": \"/lib/a.so /lib/b.so\"}]}]}}",
                 patch, sizeof(patch), reason, sizeof(reason), &summary));
    assert_non_null(strstr(patch,
                           "{\"op\":\"replace\",\"path\":\"/spec/containers/0/env/1/value\","
                           "\"value\":\"" MT_INJECTOR_PRELOAD_MUSL ":/lib/a.so /lib/b.so\"}"));
    assert_null(strstr(patch, "\"name\":\"LD_PRELOAD\""));
    /* Already first: left as it is. */
    assert_non_null(patch_of("{\"spec\": {\"containers\": [{\"name\": \"c\", \"env\": [{\"name\":"
                             " \"LD_PRELOAD\", \"value\": \"" MT_INJECTOR_PRELOAD_GLIBC
                             ":/lib/a.so\"}]}]}}",
                             patch, sizeof(patch), reason, sizeof(reason), &summary));
    assert_null(strstr(patch, "LD_PRELOAD"));
    assert_null(strstr(patch, "/env/0/value"));
    /* Empty: ours alone. */
    assert_non_null(patch_of("{\"spec\": {\"containers\": [{\"name\": \"c\", \"env\": [{\"name\":"
                             " \"LD_PRELOAD\", \"value\": \"\"}]}]}}",
                             patch, sizeof(patch), reason, sizeof(reason), &summary));
    assert_non_null(strstr(patch, "{\"op\":\"add\",\"path\":\"/spec/containers/0/env/0/value\","
                                  "\"value\":\"" MT_INJECTOR_PRELOAD_GLIBC "\"}"));
}

static void test_patch_build_keeps_the_containers_own_variables(void **state)
{
    char patch[PATCH_MAX];
    char reason[256];
    struct mt_injector_patch_summary summary;
    assert_non_null(
        patch_of("{\"metadata\": {\"annotations\": {\"meshtls.io/config-map\": \"app-mesh\"}},"
                 " \"spec\": {\"containers\": [{\"name\": \"c\", \"env\": ["
                 " {\"name\": \"MESHTLS_CONFIG\", \"value\": \"/etc/own.conf\"},"
                 " {\"name\": \"MESHTLS_AGENT_SOCKET\", \"value\": \"/own.sock\"}]}]}}",
                 patch, sizeof(patch), reason, sizeof(reason), &summary));
    assert_null(strstr(patch, "\"name\":\"MESHTLS_CONFIG\""));
    assert_null(strstr(patch, "\"name\":\"MESHTLS_AGENT_SOCKET\""));
    assert_non_null(strstr(patch, "\"name\":\"MESHTLS_PROBE_SOURCES\",\"valueFrom\":{\"fieldRef\":"
                                  "{\"apiVersion\":\"v1\",\"fieldPath\":\"status.hostIP\"}}"));
    /* The ConfigMap is still mounted where the annotation asked for it. */
    assert_non_null(strstr(patch, "{\"name\":\"meshtls-config\",\"configMap\":{\"name\":"
                                  "\"app-mesh\",\"items\":[{\"key\":\"meshtls.conf\",\"path\":"
                                  "\"meshtls.conf\"}]}}"));
    assert_non_null(strstr(patch, "{\"name\":\"meshtls-config\",\"mountPath\":"
                                  "\"/etc/meshtls/workload\",\"readOnly\":true}"));
}

static void test_patch_build_leaves_skipped_containers_alone(void **state)
{
    char patch[PATCH_MAX];
    char reason[256];
    struct mt_injector_patch_summary summary;
    assert_non_null(patch_of(
        "{\"metadata\": {\"annotations\": {\"meshtls.io/skip-containers\": \" init ,proxy\"}},"
        " \"spec\": {\"initContainers\": [{\"name\": \"init\"}, {\"name\": \"prepare\"}],"
        " \"containers\": [{\"name\": \"proxy\"}, {\"name\": \"proxy-2\"}, {\"name\": \"app\"}]}}",
        patch, sizeof(patch), reason, sizeof(reason), &summary));
    assert_int_equal(summary.injected, 3);
    assert_int_equal(summary.skipped, 2);
    assert_null(strstr(patch, "/spec/initContainers/0/"));
    assert_non_null(strstr(patch, "/spec/initContainers/1/env"));
    assert_null(strstr(patch, "/spec/containers/0/"));
    /* A name that only starts like a skipped one is not skipped. */
    assert_non_null(strstr(patch, "/spec/containers/1/env"));
    assert_non_null(strstr(patch, "/spec/containers/2/env"));
}

static void test_patch_refuses_what_cannot_be_meshed(void **state)
{
    static const struct {
        const char *pod;
        const char *reason;
    } cases[] = {
        {"{\"metadata\": {\"annotations\": {\"meshtls.io/libc\": \"bionic\"}},"
         " \"spec\": {\"containers\": [{\"name\": \"c\"}]}}",
         "meshtls.io/libc: \"bionic\" is neither musl nor glibc"},
        {"{\"metadata\": {\"annotations\": {\"meshtls.io/config-map\": \"-x\"}},"
         " \"spec\": {\"containers\": [{\"name\": \"c\"}]}}",
         "meshtls.io/config-map: \"-x\" is not a ConfigMap name"},
        {"{\"metadata\": {\"annotations\": {\"meshtls.io/config-map\": \"App\"}},"
         " \"spec\": {\"containers\": [{\"name\": \"c\"}]}}",
         "meshtls.io/config-map: \"App\" is not a ConfigMap name"},
        {"{\"spec\": {\"containers\": [{\"name\": \"c\", \"env\": [{\"name\": \"LD_PRELOAD\","
         " \"valueFrom\": {\"secretKeyRef\": {\"name\": \"s\", \"key\": \"k\"}}}]}]}}",
         "container \"c\" takes LD_PRELOAD from valueFrom"},
        {"{\"spec\": {\"volumes\": [{\"name\": \"meshtls-socket\", \"emptyDir\": {}}],"
         " \"containers\": [{\"name\": \"c\"}]}}",
         "the pod already has a volume named \"meshtls-socket\""},
        {"{\"spec\": {\"volumes\": [{\"name\": \"v\", \"emptyDir\": {}}], \"containers\":"
         " [{\"name\": \"c\", \"volumeMounts\": [{\"name\": \"v\", \"mountPath\":"
         " \"/var/lib/meshtls\"}]}]}}",
         "container \"c\" already mounts a volume at /var/lib/meshtls"},
        {"{\"spec\": {\"containers\": [{\"name\": \"c\", \"readinessProbe\": {\"httpGet\":"
         " {\"port\": \"http\"}}}]}}",
         "readinessProbe.httpGet.port \"http\" names no port"},
        {"{\"spec\": {\"containers\": [{\"image\": \"x\"}]}}", "spec.containers[0] has no name"},
        {"{\"spec\": {}}", "the pod has no spec.containers"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char patch[PATCH_MAX];
        char reason[256];
        struct mt_injector_patch_summary summary;
        assert_null(patch_of(cases[i].pod, patch, sizeof(patch), reason, sizeof(reason), &summary));
        if (strstr(reason, cases[i].reason) == NULL)
            fail_msg("case %zu: reason \"%s\" lacks \"%s\"", i, reason, cases[i].reason);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_patch_build_creates_what_the_pod_lacks),
        cmocka_unit_test(test_patch_build_appends_and_escapes_the_annotation_key),
        cmocka_unit_test(test_patch_build_prepends_ld_preload_once),
        cmocka_unit_test(test_patch_build_keeps_the_containers_own_variables),
        cmocka_unit_test(test_patch_build_leaves_skipped_containers_alone),
        cmocka_unit_test(test_patch_refuses_what_cannot_be_meshed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
