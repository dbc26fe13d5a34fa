/*
 * Tests for agent/membership_source.c: the file read into a published set (one entry per port
 * range, identities within the trust domain), a reload that turns what left into tombstones, a
 * malformed file that names file, line and key and keeps the set published, the descriptor
 * workloads get: sealed, read-only, never writable, and the published order (CIDR entries in
 * file order, then host entries and their tombstones sorted) that the reader insists on.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "agent/membership_source.h"

static char directory[] = "/tmp/test_membership_source.XXXXXX";
static char path[128];

static int set_up(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(directory));
    snprintf(path, sizeof(path), "%s/membership.conf", directory);
    return 0;
}

static int tear_down(void **state)
{
    (void)state;
    unlink(path);
    rmdir(directory);
    memcpy(directory + strlen(directory) - 6, "XXXXXX", 6);
    return 0;
}

static void write_file(const char *text)
{
    FILE *file = fopen(path, "w");
    assert_non_null(file);
    fputs(text, file);
    fclose(file);
}

/* What a workload sees: the set through the descriptor the agent hands out. */
struct mapped {
    void *bytes;
    size_t size;
    struct mt_membership_view view;
};

static void map_reader(const struct mt_membership_source *source, struct mapped *mapped)
{
    int fd = mt_membership_source_reader_fd(source);
    assert_true(fd >= 0);
    struct stat status;
    assert_int_equal(fstat(fd, &status), 0);
    mapped->size = (size_t)status.st_size;
    /* Read-only, and sealed: no writable mapping, no write, no resize. */
    assert_true(mmap(NULL, mapped->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
    assert_int_equal(write(fd, "x", 1), -1);
    assert_int_equal(ftruncate(fd, 0), -1);
    mapped->bytes = mmap(NULL, mapped->size, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(mapped->bytes != MAP_FAILED);
    close(fd);
    assert_true(
        mt_result_is_ok(mt_membership_view_open(mapped->bytes, mapped->size, &mapped->view)));
}

static enum mt_membership_verdict look_up(const struct mapped *mapped, const char *host,
                                          uint16_t port, const char **identity)
{
    struct sockaddr_storage storage;
    memset(&storage, 0, sizeof(storage));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&storage;
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    assert_int_equal(inet_pton(AF_INET, host, &v4->sin_addr), 1);
    size_t length = 0;
    return mt_membership_lookup(&mapped->view, &storage, identity, &length);
}

static void test_mt_membership_source_open_publishes_ports_and_identities(void **state)
{
    (void)state;
    write_file(
        "membership = (\n"
        "  { cidr = \"10.1.0.0/16\"; ports = (8080, \"9000-9100\"); id = \"ns/shop/sa/*\"; },\n"
        "  { cidr = \"10.2.0.7\"; }\n"
        ");\n");
    static struct mt_membership_source source;
    char message[512] = "";
    if (!mt_result_is_ok(
            mt_membership_source_open(&source, path, "prod.example", 0, MT_TEXT_ON(message))))
        fail_msg("%s", message);
    struct mapped mapped;
    map_reader(&source, &mapped);
    assert_int_equal(mapped.view.generation, 1);
    assert_int_equal(mapped.view.entry_count, 3);
    const char *identity = NULL;
    assert_int_equal(look_up(&mapped, "10.1.3.4", 9050, &identity), MT_MEMBERSHIP_MEMBER);
    assert_non_null(identity);
    assert_memory_equal(identity, "spiffe://prod.example/ns/shop/sa/*", 34);
    assert_int_equal(look_up(&mapped, "10.1.3.4", 8081, NULL), MT_MEMBERSHIP_ABSENT);
    assert_int_equal(look_up(&mapped, "10.2.0.7", 1, &identity), MT_MEMBERSHIP_MEMBER);
    assert_null(identity);
    assert_int_equal(look_up(&mapped, "10.2.0.8", 1, NULL), MT_MEMBERSHIP_ABSENT);
    munmap(mapped.bytes, mapped.size);
    mt_membership_source_close(&source);
}

static struct mt_membership_entry pod_entry(const char *host, const char *identity)
{
    struct mt_membership_entry entry;
    uint8_t address[16] = {0};
    assert_int_equal(inet_pton(AF_INET, host, address), 1);
    assert_true(mt_membership_entry_fill(&entry, MT_MEMBERSHIP_STATE_LIVE, 4, address, 32, 1, 65535,
                                         identity));
    return entry;
}

/* The API server's entries handed over (as kube_watch.c does): united with the file's, flagged
 * complete only once it has listed, and what it drops a tombstone. */
static void test_mt_membership_source_set_kube_unites_flags_and_removes(void **state)
{
    (void)state;
    write_file("membership = ( { cidr = \"10.2.0.7\"; } );\n");
    static struct mt_membership_source source;
    char message[512] = "";
    if (!mt_result_is_ok(
            mt_membership_source_open_kube(&source, path, "prod.example", 0, MT_TEXT_ON(message))))
        fail_msg("%s", message);
    struct mapped mapped;
    map_reader(&source, &mapped);
    assert_false(mapped.view.complete);
    assert_int_equal(look_up(&mapped, "10.2.0.7", 80, NULL), MT_MEMBERSHIP_MEMBER);
    munmap(mapped.bytes, mapped.size);

    struct mt_membership_entry *entries = malloc(2 * sizeof(*entries));
    assert_non_null(entries);
    entries[0] = pod_entry("10.1.0.1", "spiffe://prod.example/ns/shop/sa/web");
    entries[1] = pod_entry("10.1.0.2", "spiffe://prod.example/ns/shop/sa/api");
    assert_true(mt_result_is_ok(
        mt_membership_source_set_kube(&source, entries, 2, true, MT_TEXT_ON(message))));
    map_reader(&source, &mapped);
    assert_true(mapped.view.complete);
    assert_int_equal(mapped.view.generation, 2);
    const char *identity = NULL;
    assert_int_equal(look_up(&mapped, "10.1.0.2", 443, &identity), MT_MEMBERSHIP_MEMBER);
    assert_memory_equal(identity, "spiffe://prod.example/ns/shop/sa/api", 36);
    assert_int_equal(look_up(&mapped, "10.2.0.7", 80, NULL), MT_MEMBERSHIP_MEMBER);
    munmap(mapped.bytes, mapped.size);

    entries = malloc(sizeof(*entries));
    assert_non_null(entries);
    entries[0] = pod_entry("10.1.0.1", "spiffe://prod.example/ns/shop/sa/web");
    assert_true(mt_result_is_ok(
        mt_membership_source_set_kube(&source, entries, 1, true, MT_TEXT_ON(message))));
    map_reader(&source, &mapped);
    assert_int_equal(look_up(&mapped, "10.1.0.2", 443, NULL), MT_MEMBERSHIP_REMOVED);
    assert_int_equal(look_up(&mapped, "10.1.0.1", 443, NULL), MT_MEMBERSHIP_MEMBER);
    assert_int_equal(look_up(&mapped, "10.2.0.7", 80, NULL), MT_MEMBERSHIP_MEMBER);
    munmap(mapped.bytes, mapped.size);

    /* More than a set holds: refused, the last set stays. */
    size_t too_many = MT_MEMBERSHIP_ENTRIES_MAX;
    entries = calloc(too_many, sizeof(*entries));
    assert_non_null(entries);
    for (size_t i = 0; i < too_many; i++)
        entries[i] = pod_entry("10.3.0.1", NULL);
    assert_false(mt_result_is_ok(
        mt_membership_source_set_kube(&source, entries, too_many, true, MT_TEXT_ON(message))));
    free(entries);
    map_reader(&source, &mapped);
    assert_int_equal(mapped.view.generation, 3);
    munmap(mapped.bytes, mapped.size);
    mt_membership_source_close(&source);
}

static void test_mt_membership_source_poll_removal_becomes_tombstone(void **state)
{
    (void)state;
    write_file("membership = ( { cidr = \"10.0.0.1\"; ports = [80]; },\n"
               "               { cidr = \"10.0.0.2\"; ports = [80]; } );\n");
    static struct mt_membership_source source;
    char message[512] = "";
    assert_true(
        mt_result_is_ok(mt_membership_source_open(&source, path, "td", 0, MT_TEXT_ON(message))));
    struct mapped first;
    map_reader(&source, &first);

    write_file("membership = ( { cidr = \"10.0.0.1\"; ports = [80]; } ); # 10.0.0.2 left\n");
    mt_membership_source_poll(&source, MT_MEMBERSHIP_SOURCE_POLL_MS);
    /* The set readers hold learns that a newer one exists. */
    assert_true(mt_membership_is_superseded(&first.view));
    struct mapped second;
    map_reader(&source, &second);
    assert_int_equal(second.view.generation, 2);
    assert_int_equal(look_up(&second, "10.0.0.1", 80, NULL), MT_MEMBERSHIP_MEMBER);
    assert_int_equal(look_up(&second, "10.0.0.2", 80, NULL), MT_MEMBERSHIP_REMOVED);
    assert_int_equal(look_up(&second, "10.0.0.3", 80, NULL), MT_MEMBERSHIP_ABSENT);
    /* The old set is unchanged: a reader mid-lookup never sees it move. */
    assert_int_equal(look_up(&first, "10.0.0.2", 80, NULL), MT_MEMBERSHIP_MEMBER);

    /* Back in: live again, no tombstone left. */
    write_file("membership = ( { cidr = \"10.0.0.1\"; ports = [80]; },\n"
               "               { cidr = \"10.0.0.2\"; ports = [80]; } ); # back\n");
    mt_membership_source_poll(&source, 2 * MT_MEMBERSHIP_SOURCE_POLL_MS);
    struct mapped third;
    map_reader(&source, &third);
    assert_int_equal(third.view.generation, 3);
    assert_int_equal(third.view.entry_count, 2);
    assert_int_equal(look_up(&third, "10.0.0.2", 80, NULL), MT_MEMBERSHIP_MEMBER);
    munmap(first.bytes, first.size);
    munmap(second.bytes, second.size);
    munmap(third.bytes, third.size);
    mt_membership_source_close(&source);
}

/* Hosts given in descending order, CIDRs between them, a host later removed: the set opens (the
 * reader refuses one out of order) with the CIDRs first in file order and the hosts sorted. */
static void test_mt_membership_source_publish_sorts_hosts_after_cidrs(void **state)
{
    (void)state;
    write_file("membership = (\n"
               "  { cidr = \"10.9.0.3\"; ports = [443]; },\n"
               "  { cidr = \"2001:db8::1\"; },\n"
               "  { cidr = \"10.0.0.0/8\"; ports = [80]; id = \"ns/a/*\"; },\n"
               "  { cidr = \"10.9.0.2\"; ports = (443, 80); id = \"ns/b/sa/web\"; },\n"
               "  { cidr = \"10.9.0.1\"; ports = [443]; },\n"
               "  { cidr = \"10.8.0.0/16\"; ports = [80]; id = \"ns/c/*\"; }\n"
               ");\n");
    static struct mt_membership_source source;
    char message[512] = "";
    if (!mt_result_is_ok(mt_membership_source_open(&source, path, "td", 0, MT_TEXT_ON(message))))
        fail_msg("%s", message);
    write_file("membership = (\n"
               "  { cidr = \"10.9.0.3\"; ports = [443]; },\n"
               "  { cidr = \"2001:db8::1\"; },\n"
               "  { cidr = \"10.0.0.0/8\"; ports = [80]; id = \"ns/a/*\"; },\n"
               "  { cidr = \"10.9.0.2\"; ports = (443, 80); id = \"ns/b/sa/web\"; },\n"
               "  { cidr = \"10.8.0.0/16\"; ports = [80]; id = \"ns/c/*\"; }\n"
               ");\n");
    mt_membership_source_poll(&source, MT_MEMBERSHIP_SOURCE_POLL_MS);
    assert_int_equal(source.generation, 2);
    struct mapped mapped;
    map_reader(&source, &mapped);
    assert_int_equal(mapped.view.entry_count, 7);
    assert_int_equal(mapped.view.host_first, 2);
    const struct mt_membership_record *entries =
        (const void *)((const uint8_t *)mapped.bytes + MT_MEMBERSHIP_HEADER_SIZE);
    assert_int_equal(entries[0].prefix_length, 8);
    assert_int_equal(entries[1].prefix_length, 16);
    static const struct {
        unsigned family;
        uint8_t last_byte;
        uint16_t port;
        uint8_t state;
    } sorted[] = {
        {MT_MEMBERSHIP_FAMILY_IPV4, 1, 443, MT_MEMBERSHIP_STATE_REMOVED},
        {MT_MEMBERSHIP_FAMILY_IPV4, 2, 80, MT_MEMBERSHIP_STATE_LIVE},
        {MT_MEMBERSHIP_FAMILY_IPV4, 2, 443, MT_MEMBERSHIP_STATE_LIVE},
        {MT_MEMBERSHIP_FAMILY_IPV4, 3, 443, MT_MEMBERSHIP_STATE_LIVE},
        {MT_MEMBERSHIP_FAMILY_IPV6, 1, 1, MT_MEMBERSHIP_STATE_LIVE},
    };
    for (size_t i = 0; i < sizeof(sorted) / sizeof(sorted[0]); i++) {
        const struct mt_membership_record *entry = &entries[2 + i];
        unsigned last = sorted[i].family == MT_MEMBERSHIP_FAMILY_IPV4 ? 3 : 15;
        if (entry->family != sorted[i].family || entry->address[last] != sorted[i].last_byte ||
            entry->port_first != sorted[i].port || entry->state != sorted[i].state)
            fail_msg("host entry %zu out of place", i);
    }
    const char *identity = NULL;
    /* Inside 10.0.0.0/8 on port 80: the host's identity, not the CIDR's. */
    assert_int_equal(look_up(&mapped, "10.9.0.2", 80, &identity), MT_MEMBERSHIP_MEMBER);
    assert_memory_equal(identity, "spiffe://td/ns/b/sa/web", 23);
    assert_int_equal(look_up(&mapped, "10.9.0.5", 80, &identity), MT_MEMBERSHIP_MEMBER);
    assert_memory_equal(identity, "spiffe://td/ns/a/*", 18);
    assert_int_equal(look_up(&mapped, "10.9.0.1", 443, NULL), MT_MEMBERSHIP_REMOVED);
    assert_int_equal(look_up(&mapped, "10.9.0.3", 443, NULL), MT_MEMBERSHIP_MEMBER);
    assert_int_equal(look_up(&mapped, "10.9.0.3", 80, NULL), MT_MEMBERSHIP_MEMBER);
    assert_int_equal(look_up(&mapped, "10.9.0.3", 444, NULL), MT_MEMBERSHIP_ABSENT);
    munmap(mapped.bytes, mapped.size);
    mt_membership_source_close(&source);
}

/* The file: 10.5.x.y for i < hosts (odd i left out when only_even), 10.5.0.1 twice when not. */
static void write_hosts(unsigned hosts, bool only_even)
{
    static char text[4096 * 48];
    size_t length = (size_t)snprintf(text, sizeof(text), "membership = (\n");
    for (unsigned i = 0; i < hosts; i++) {
        if (only_even && i % 2 == 1)
            continue;
        length +=
            (size_t)snprintf(text + length, sizeof(text) - length,
                             "  { cidr = \"10.5.%u.%u\"; ports = [80]; },\n", i / 256, i % 256);
    }
    if (!only_even)
        length += (size_t)snprintf(text + length, sizeof(text) - length,
                                   "  { cidr = \"10.5.0.1\"; ports = [80]; },\n");
    assert_true(length + 8 < sizeof(text));
    snprintf(text + length - 2, sizeof(text) - length + 2, "\n);\n");
    write_file(text);
}

/* Many hosts, one listed twice, reloaded without every odd one: each removed place becomes
 * exactly one tombstone, and the kept ones stay live. */
static void test_mt_membership_source_poll_many_removals_one_tombstone_each(void **state)
{
    (void)state;
    enum { HOSTS = 3000 };
    write_hosts(HOSTS, false);
    static struct mt_membership_source source;
    char message[512] = "";
    if (!mt_result_is_ok(mt_membership_source_open(&source, path, "td", 0, MT_TEXT_ON(message))))
        fail_msg("%s", message);
    assert_int_equal(source.live_count, HOSTS + 1);
    write_hosts(HOSTS, true);
    mt_membership_source_poll(&source, MT_MEMBERSHIP_SOURCE_POLL_MS);
    assert_int_equal(source.generation, 2);
    assert_int_equal(source.live_count, HOSTS / 2);
    assert_int_equal(source.removed_count, HOSTS / 2);
    struct mapped mapped;
    map_reader(&source, &mapped);
    assert_int_equal(mapped.view.entry_count, HOSTS);
    assert_int_equal(look_up(&mapped, "10.5.0.0", 80, NULL), MT_MEMBERSHIP_MEMBER);
    assert_int_equal(look_up(&mapped, "10.5.0.1", 80, NULL), MT_MEMBERSHIP_REMOVED);
    assert_int_equal(look_up(&mapped, "10.5.11.182", 80, NULL), MT_MEMBERSHIP_MEMBER);
    assert_int_equal(look_up(&mapped, "10.5.11.183", 80, NULL), MT_MEMBERSHIP_REMOVED);
    assert_int_equal(look_up(&mapped, "10.5.11.184", 80, NULL), MT_MEMBERSHIP_ABSENT);
    munmap(mapped.bytes, mapped.size);
    mt_membership_source_close(&source);
}

static void test_mt_membership_source_poll_malformed_file_keeps_last_set(void **state)
{
    (void)state;
    write_file("membership = ( { cidr = \"10.0.0.1\"; ports = [80]; } );\n");
    static struct mt_membership_source source;
    char message[512] = "";
    assert_true(
        mt_result_is_ok(mt_membership_source_open(&source, path, "td", 0, MT_TEXT_ON(message))));
    write_file("membership = (\n  { cidr = \"10.0.0.1\"; ports = [80]; },\n"
               "  { cidr = \"10.0.0.300\"; }\n);\n");
    mt_membership_source_poll(&source, MT_MEMBERSHIP_SOURCE_POLL_MS);
    assert_int_equal(source.generation, 1);
    struct mapped mapped;
    map_reader(&source, &mapped);
    assert_int_equal(look_up(&mapped, "10.0.0.1", 80, NULL), MT_MEMBERSHIP_MEMBER);
    munmap(mapped.bytes, mapped.size);
    mt_membership_source_close(&source);
}

static void test_mt_membership_source_open_errors_name_file_line_and_key(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *expected; /* after "PATH:" */
    } cases[] = {
        {"membership = (\n { ports = [80]; }\n);\n", "2: membership[0]: missing key cidr"},
        {"membership = (\n { cidr = \"10.0.0.1/8\"; }\n);\n",
         "2: membership[0].cidr: \"10.0.0.1/8\" has bits set beyond its /8 prefix"},
        {"membership = (\n { cidr = \"10.0.0.0/8\";\n   ports = [0]; }\n);\n",
         "3: membership[0].ports"},
        {"membership = (\n { cidr = \"10.0.0.0/8\";\n   id = \"ns//x\"; }\n);\n",
         "3: membership[0].id: \"ns//x\" is not an identity pattern"},
        {"membership = (\n { cidr = \"10.0.0.0/8\"; colour = 1; }\n);\n",
         "2: membership[0]: unknown key \"colour\""},
        {"members = ();\n", "1: unknown key \"members\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_file(cases[i].text);
        static struct mt_membership_source source;
        char message[512] = "";
        mt_result result = mt_membership_source_open(&source, path, "td", 0, MT_TEXT_ON(message));
        char expected[256];
        snprintf(expected, sizeof(expected), "%s:%s", path, cases[i].expected);
        if (mt_result_is_ok(result) || strncmp(message, expected, strlen(expected)) != 0)
            fail_msg("case %zu: got \"%s\", expected \"%s...\"", i, message, expected);
        assert_int_equal(mt_membership_source_reader_fd(&source), -1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_mt_membership_source_open_publishes_ports_and_identities, set_up, tear_down),
        cmocka_unit_test_setup_teardown(test_mt_membership_source_set_kube_unites_flags_and_removes,
                                        set_up, tear_down),
        cmocka_unit_test_setup_teardown(test_mt_membership_source_poll_removal_becomes_tombstone,
                                        set_up, tear_down),
        cmocka_unit_test_setup_teardown(test_mt_membership_source_publish_sorts_hosts_after_cidrs,
                                        set_up, tear_down),
        cmocka_unit_test_setup_teardown(
            test_mt_membership_source_poll_many_removals_one_tombstone_each, set_up, tear_down),
        cmocka_unit_test_setup_teardown(
            test_mt_membership_source_poll_malformed_file_keeps_last_set, set_up, tear_down),
        cmocka_unit_test_setup_teardown(
            test_mt_membership_source_open_errors_name_file_line_and_key, set_up, tear_down),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
