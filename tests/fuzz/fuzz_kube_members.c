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

static void check_members(const struct mt_kube_state *state)
{
    struct mt_membership_entry *entries = NULL;
    size_t count = 0;
    if (!mt_result_is_ok(mt_kube_members_compute(state, "cluster.local", &entries, &count)))
        return;
    size_t size = MT_MEMBERSHIP_HEADER_SIZE + count * MT_MEMBERSHIP_ENTRY_SIZE;
    uint8_t *set = calloc(1, size);
    require(set != NULL);
    struct mt_membership_header header = {
        .magic = MT_MEMBERSHIP_MAGIC,
        .layout_version = MT_MEMBERSHIP_LAYOUT_VERSION,
        .generation = 1,
        .entry_count = (uint32_t)count,
        .flags = MT_MEMBERSHIP_FLAG_COMPLETE,
    };
    memcpy(set, &header, sizeof(header));
    if (count > 0)
        memcpy(set + MT_MEMBERSHIP_HEADER_SIZE, entries, count * MT_MEMBERSHIP_ENTRY_SIZE);
    struct mt_membership_view view;
    require(count > MT_MEMBERSHIP_ENTRIES_MAX ||
            mt_result_is_ok(mt_membership_view_open(set, size, &view)));
    free(set);
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
