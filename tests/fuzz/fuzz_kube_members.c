/*
 * libFuzzer target for the Kubernetes API server's JSON as the agent reads it
 * (agent/kube_members.c): watch events and list pages of pods and Services.
 *
 * An input is a mode byte (bit 0: Services rather than pods; bit 1: the rest is one list page
 * rather than watch lines), then the text: each line a WatchEvent, or the whole a list page.
 * Beyond "no crash, no read past the end, no leak" (the replay copies each input into an
 * allocation of exactly its size), it checks what publication relies on: every member entry
 * computed from whatever was applied passes the workloads' own check (mt_membership_view_open),
 * so a hostile or broken API server answer can never make the agent publish a set its
 * workloads refuse whole.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/kube_members.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(bool condition)
{
    if (!condition)
        abort();
}

static int host_order(const void *left, const void *right)
{
    const struct mt_membership_entry *const *a = left;
    const struct mt_membership_entry *const *b = right;
    return mt_membership_host_compare(*a, *b);
}

/* The members computed from any input make a set that workloads accept, in the order the agent
 * publishes (CIDR entries, then host entries sorted). */
static void check_members(const struct mt_kube_state *state)
{
    struct mt_membership_entry *entries = NULL;
    size_t count = 0;
    if (!mt_result_is_ok(mt_kube_members_compute(state, "cluster.local", &entries, &count)))
        return;
    const struct mt_membership_entry **ordered = calloc(count > 0 ? count : 1, sizeof(*ordered));
    require(ordered != NULL);
    size_t ranges = 0;
    for (size_t i = 0; i < count; i++) {
        if (!mt_membership_entry_is_host(&entries[i]))
            ordered[ranges++] = &entries[i];
    }
    size_t hosts = ranges;
    for (size_t i = 0; i < count; i++) {
        if (mt_membership_entry_is_host(&entries[i]))
            ordered[hosts++] = &entries[i];
    }
    qsort(ordered + ranges, count - ranges, sizeof(*ordered), host_order);
    size_t size = mt_membership_set_size(ordered, count);
    uint8_t *set = calloc(1, size);
    require(set != NULL);
    mt_membership_set_write(set, 1, MT_MEMBERSHIP_FLAG_COMPLETE, ordered, count, (uint32_t)ranges);
    struct mt_membership_view view;
    require(count > MT_MEMBERSHIP_ENTRIES_MAX ||
            mt_result_is_ok(mt_membership_view_open(set, size, &view)));
    free(set);
    free(ordered);
    free(entries);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    enum mt_kube_kind kind = (data[0] & 1u) ? MT_KUBE_SERVICES : MT_KUBE_PODS;
    bool list = (data[0] & 2u) != 0;
    const char *text = (const char *)data + 1;
    size_t length = size - 1;
    struct mt_kube_state state = {0};
    char message[512];
    struct mt_text reason = mt_text_on(message, sizeof(message));
    if (list) {
        char version[MT_KUBE_RESOURCE_VERSION_MAX];
        char next[MT_KUBE_CONTINUE_MAX];
        if (mt_result_is_ok(
                mt_kube_members_apply_list(&state, kind, text, length, version, next, &reason)))
            require(strlen(version) > 0 && strlen(version) < sizeof(version) &&
                    strlen(next) < sizeof(next));
    } else {
        size_t start = 0;
        while (start < length) {
            const char *newline = memchr(text + start, '\n', length - start);
            size_t end = newline != NULL ? (size_t)(newline - text) : length;
            struct mt_kube_event event;
            mt_text_clear(&reason);
            if (mt_result_is_ok(mt_kube_members_apply_event(&state, kind, text + start, end - start,
                                                            &event, &reason)))
                require(event.type <= MT_KUBE_EVENT_ERROR &&
                        strlen(event.resource_version) < sizeof(event.resource_version));
            start = end + 1;
        }
    }
    check_members(&state);
    mt_kube_state_free(&state);
    return 0;
}
