/*
 * bench_membership: nanoseconds per mesh membership lookup (policy/membership.c) in a set of N
 * host entries, as the Kubernetes membership publishes them (one per meshed pod IP and service
 * ClusterIP), for a destination that is a member and one that is absent; beside it the scan of
 * every 544-byte entry that layout version 1 did, on the same entries, as the baseline.
 *
 *     bench_membership [N...]          default: 10 1000 16384 65536
 *
 * Also what a workload pays once per generation: open_ms, the checks of mt_membership_view_open
 * on memory already touched, and adopt_ms, mapping the set from a memfd afresh and checking it,
 * as core/members.c does (the page faults of the mapping included).
 *
 * Prints one line per N. Built by meson, never run by meson test (no timed assertion anywhere):
 * figures are for a person comparing the two columns of one run on one machine.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "policy/membership.h"

#define DESTINATIONS 1024
#define LOOKUPS_MIN 200000u

static int compare_hosts(const void *a, const void *b)
{
    return mt_membership_host_compare(a, b);
}

static uint64_t next_random(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

/* Pod addresses in 10.0.0.0/8, even last bytes only: an odd one is absent by construction. */
static uint32_t pod_address(uint64_t *state)
{
    return (10u << 24) | ((uint32_t)next_random(state) & 0x00fffffeu);
}

/*
 * The version 1 lookup: every entry in order, the first live one that covers wins, over entries
 * of version 1's 544 bytes (struct mt_membership_entry is that entry, its identity inline).
 */
static enum mt_membership_verdict linear_lookup(const struct mt_membership_entry *entries,
                                                uint32_t count,
                                                const struct sockaddr_in *destination)
{
    const uint8_t *address = (const uint8_t *)&destination->sin_addr;
    uint16_t port = ntohs(destination->sin_port);
    bool removed = false;
    for (uint32_t i = 0; i < count; i++) {
        const struct mt_membership_entry *entry = &entries[i];
        if (entry->family != MT_MEMBERSHIP_FAMILY_IPV4 || port < entry->port_first ||
            port > entry->port_last)
            continue;
        unsigned whole = entry->prefix_length / 8;
        if (memcmp(address, entry->address, whole) != 0)
            continue;
        if (entry->state == MT_MEMBERSHIP_STATE_REMOVED) {
            removed = true;
            continue;
        }
        return MT_MEMBERSHIP_MEMBER;
    }
    return removed ? MT_MEMBERSHIP_REMOVED : MT_MEMBERSHIP_ABSENT;
}

static double now_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec * 1e9 + (double)now.tv_nsec;
}

/* ns per lookup of destinations (cycled), each expected to give expected; 0 when one did not. */
static double measure(const struct mt_membership_view *view,
                      const struct mt_membership_entry *entries,
                      const struct sockaddr_storage *destinations, bool linear,
                      enum mt_membership_verdict expected, unsigned lookups)
{
    double start = now_ns();
    for (unsigned i = 0; i < lookups; i++) {
        const struct sockaddr_storage *destination = &destinations[i % DESTINATIONS];
        enum mt_membership_verdict verdict =
            linear
                ? linear_lookup(entries, view->entry_count, (const struct sockaddr_in *)destination)
                : mt_membership_lookup(view, destination, NULL, NULL);
        if (verdict != expected)
            return 0;
    }
    return (now_ns() - start) / lookups;
}

/* Milliseconds to map the set from a memfd afresh and check it whole; negative on failure. */
static double adopt_ms(const uint8_t *set, size_t size)
{
    int fd = memfd_create("bench-membership", MFD_CLOEXEC);
    if (fd < 0 || write(fd, set, size) != (ssize_t)size) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    double start = now_ns();
    void *mapped = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    struct mt_membership_view view;
    bool opened =
        mapped != MAP_FAILED && mt_result_is_ok(mt_membership_view_open(mapped, size, &view));
    double elapsed = (now_ns() - start) / 1e6;
    if (mapped != MAP_FAILED)
        munmap(mapped, size);
    close(fd);
    return opened ? elapsed : -1;
}

static int bench(uint32_t count)
{
    struct mt_membership_entry *entries = calloc(count, sizeof(*entries));
    const struct mt_membership_entry **ordered = calloc(count, sizeof(*ordered));
    uint8_t *set = NULL;
    size_t size = 0;
    struct sockaddr_storage *members = calloc(DESTINATIONS, sizeof(*members));
    struct sockaddr_storage *absent = calloc(DESTINATIONS, sizeof(*absent));
    int status = 1;
    if (entries == NULL || ordered == NULL || members == NULL || absent == NULL)
        goto out;
    uint64_t random = 0x9e3779b97f4a7c15ull ^ count;
    char identity[64];
    for (uint32_t i = 0; i < count; i++) {
        uint32_t address = htonl(pod_address(&random));
        snprintf(identity, sizeof(identity), "spiffe://cluster.local/ns/shop/sa/s%u", i % 97);
        if (!mt_membership_entry_fill(&entries[i], MT_MEMBERSHIP_STATE_LIVE,
                                      MT_MEMBERSHIP_FAMILY_IPV4, (const uint8_t *)&address, 32,
                                      8080, 8080, identity))
            goto out;
    }
    /* The destinations are drawn before sorting, so that members are spread over the set. */
    for (unsigned i = 0; i < DESTINATIONS; i++) {
        struct sockaddr_in *member = (struct sockaddr_in *)&members[i];
        member->sin_family = AF_INET;
        member->sin_port = htons(8080);
        memcpy(&member->sin_addr, entries[next_random(&random) % count].address, 4);
        struct sockaddr_in *stranger = (struct sockaddr_in *)&absent[i];
        stranger->sin_family = AF_INET;
        stranger->sin_port = htons(8080);
        stranger->sin_addr.s_addr = htonl(pod_address(&random) | 1u);
    }
    qsort(entries, count, sizeof(*entries), compare_hosts);
    for (uint32_t i = 0; i < count; i++)
        ordered[i] = &entries[i];
    size = mt_membership_set_size(ordered, count);
    set = malloc(size);
    if (set == NULL)
        goto out;
    mt_membership_set_write(set, 1, MT_MEMBERSHIP_FLAG_COMPLETE, ordered, count, 0);
    struct mt_membership_view view;
    double open_start = now_ns();
    if (!mt_result_is_ok(mt_membership_view_open(set, size, &view)))
        goto out;
    double open_ms = (now_ns() - open_start) / 1e6;
    double adopt = adopt_ms(set, size);
    if (adopt < 0)
        goto out;
    /* About a second of linear scans at the largest set; the same count for both columns. */
    unsigned lookups = count > 0 ? (unsigned)(4000000000ull / ((uint64_t)count * 40)) : 0;
    if (lookups < LOOKUPS_MIN / 100)
        lookups = LOOKUPS_MIN / 100;
    if (lookups > LOOKUPS_MIN * 10)
        lookups = LOOKUPS_MIN * 10;
    unsigned search_lookups = lookups < LOOKUPS_MIN ? LOOKUPS_MIN : lookups;
    double search_member =
        measure(&view, entries, members, false, MT_MEMBERSHIP_MEMBER, search_lookups);
    double search_absent =
        measure(&view, entries, absent, false, MT_MEMBERSHIP_ABSENT, search_lookups);
    double linear_member = measure(&view, entries, members, true, MT_MEMBERSHIP_MEMBER, lookups);
    double linear_absent = measure(&view, entries, absent, true, MT_MEMBERSHIP_ABSENT, lookups);
    if (search_member == 0 || search_absent == 0 || linear_member == 0 || linear_absent == 0) {
        fprintf(stderr, "bench_membership: a lookup gave the wrong verdict (N=%u)\n", count);
        goto out;
    }
    printf("%8u %10.1f %10.1f %12.1f %12.1f %10.2f %10.2f %8.1f\n", count, search_member,
           search_absent, linear_member, linear_absent, open_ms, adopt,
           (double)size / (1024 * 1024));
    status = 0;
out:
    free(set);
    free(entries);
    free(ordered);
    free(members);
    free(absent);
    return status;
}

int main(int argc, char **argv)
{
    static const uint32_t defaults[] = {10, 1000, 16384, 65536};
    printf("%8s %10s %10s %12s %12s %10s %10s %8s\n", "entries", "search_ns", "search_ns",
           "linear_ns", "linear_ns", "open_ms", "adopt_ms", "set_MiB");
    printf("%8s %10s %10s %12s %12s %10s %10s %8s\n", "", "member", "absent", "member", "absent",
           "(checks)", "(mapped)", "");
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            unsigned long count = strtoul(argv[i], NULL, 10);
            if (count == 0 || count > MT_MEMBERSHIP_ENTRIES_MAX || bench((uint32_t)count) != 0)
                return 1;
        }
        return 0;
    }
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
        if (bench(defaults[i]) != 0)
            return 1;
    return 0;
}
