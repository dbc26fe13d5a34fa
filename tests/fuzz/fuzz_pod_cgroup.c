/*
 * libFuzzer target for the pod reader of /proc/<pid>/cgroup (agent/pod_cgroup.c).
 *
 * An input is the depth of the reader's cgroup namespace root below the host's (the low three
 * bits of its first byte: '0' .. '7' in the checked-in corpus), then the file's text, also read
 * as the host init's /proc/1/cgroup.
 *
 * Beyond "no crash, no read past the end" (the replay copies each input into an allocation of
 * exactly its size), it checks what the agent relies on: the answer is one of the four results,
 * and a pod answer carries a canonical pod UID (8-4-4-4-12 lowercase hexadecimal digits) and
 * either no container ID or 64 lowercase hexadecimal digits with the runtime that named it.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/pod_cgroup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(bool condition)
{
    if (!condition)
        abort();
}

static bool is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t root_depth = data[0] & 7u;
    const char *text = size > 1 ? (const char *)data + 1 : NULL;
    size_t length = size - 1;
    size_t depth = SIZE_MAX;
    if (mt_pod_cgroup_root_depth(text, length, &depth))
        require(depth <= length / 3); /* each level is "/.." */
    struct mt_pod_cgroup pod;
    memset(&pod, 0, sizeof(pod));
    enum mt_pod_cgroup_result result = mt_pod_cgroup_parse(text, length, root_depth, &pod);
    require(result == MT_POD_CGROUP_HOST || result == MT_POD_CGROUP_POD ||
            result == MT_POD_CGROUP_OUTSIDE || result == MT_POD_CGROUP_UNKNOWN);
    if (result != MT_POD_CGROUP_POD)
        return 0;
    require(strlen(pod.uid) == MT_POD_UID_LENGTH);
    for (size_t i = 0; i < MT_POD_UID_LENGTH; i++)
        require(i == 8 || i == 13 || i == 18 || i == 23 ? pod.uid[i] == '-'
                                                        : is_lower_hex(pod.uid[i]));
    size_t id_length = strlen(pod.container_id);
    require((id_length == 0) == (pod.runtime == MT_POD_RUNTIME_NONE));
    require(id_length == 0 || id_length == MT_POD_CONTAINER_ID_LENGTH);
    for (size_t i = 0; i < id_length; i++)
        require(is_lower_hex(pod.container_id[i]));
    return 0;
}
