/*
 * Tests for policy/membership.c: a set checked whole before any lookup (each malformed field
 * refuses it), lookups in both orientations (the same address on another port, another address
 * on the same port, so a lookup that ignores either cannot pass), tombstones against live
 * entries, v4-mapped destinations, and a set placed against a guard page so that any read past
 * its end crashes. Layout version 2: host entries are found by binary search, so a set of many
 * hosts is looked up at both ends and beside every member, a host's identity is checked to win
 * over a CIDR's (and not the other way round), and a set out of order is refused.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy/membership.h"
#include "policy/policy.h"

#define SET_ENTRIES_MAX 1100

/* A set as the agent writes it (mt_membership_set_write), from entries added in order. */
struct set {
    struct mt_membership_entry entries[SET_ENTRIES_MAX];
    uint32_t count;
    uint32_t host_first;
    uint8_t bytes[MT_MEMBERSHIP_HEADER_SIZE +
                  SET_ENTRIES_MAX * (MT_MEMBERSHIP_ENTRY_SIZE + MT_MEMBERSHIP_IDENTITY_MAX)];
    size_t size;
};

static void set_init(struct set *set)
{
    set->count = 0;
    set->host_first = 0;
    set->size = 0;
}

static void set_add(struct set *set, enum mt_membership_state state, const char *cidr_address,
                    unsigned prefix_length, uint16_t first, uint16_t last, const char *identity)
{
    uint8_t address[16] = {0};
    unsigned family = MT_MEMBERSHIP_FAMILY_IPV4;
    if (inet_pton(AF_INET, cidr_address, address) != 1) {
        assert_int_equal(inet_pton(AF_INET6, cidr_address, address), 1);
        family = MT_MEMBERSHIP_FAMILY_IPV6;
    }
    assert_true(set->count < SET_ENTRIES_MAX);
    assert_true(mt_membership_entry_fill(&set->entries[set->count], state, family, address,
                                         prefix_length, first, last, identity));
    set->count++;
}

/* Writes the set's bytes: the host entries are the trailing run of /32 and /128 entries (tests
 * add them last, sorted, unless they test the order). */
static void set_finish(struct set *set)
{
    uint32_t first = set->count;
    while (first > 0 && mt_membership_entry_is_host(&set->entries[first - 1]))
        first--;
    set->host_first = first;
    static const struct mt_membership_entry *ordered[SET_ENTRIES_MAX];
    for (uint32_t i = 0; i < set->count; i++)
        ordered[i] = &set->entries[i];
    set->size = mt_membership_set_size(ordered, set->count);
    assert_true(set->size <= sizeof(set->bytes));
    mt_membership_set_write(set->bytes, 7, MT_MEMBERSHIP_FLAG_COMPLETE, ordered, set->count, first);
}

static struct mt_membership_header *set_header(struct set *set)
{
    return (struct mt_membership_header *)(void *)set->bytes;
}

static struct mt_membership_record *set_record(struct set *set, uint32_t index)
{
    return (struct mt_membership_record *)(void *)(set->bytes + MT_MEMBERSHIP_HEADER_SIZE +
                                                   (size_t)index * MT_MEMBERSHIP_ENTRY_SIZE);
}

static struct sockaddr_storage destination(const char *host, uint16_t port)
{
    struct sockaddr_storage storage;
    memset(&storage, 0, sizeof(storage));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&storage;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&storage;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
    } else {
        assert_int_equal(inet_pton(AF_INET6, host, &v6->sin6_addr), 1);
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
    }
    return storage;
}

static enum mt_membership_verdict look_up(const struct mt_membership_view *view, const char *host,
                                          uint16_t port, const char **identity)
{
    struct sockaddr_storage where = destination(host, port);
    size_t length = 0;
    return mt_membership_lookup(view, &where, identity, &length);
}

static void test_mt_membership_lookup_table_address_and_port_both_decide(void **state)
{
    (void)state;
    static struct set set;
    set_init(&set);
    set_add(&set, MT_MEMBERSHIP_STATE_LIVE, "10.1.0.0", 16, 8080, 8080, "spiffe://td/ns/shop/sa/*");
    set_add(&set, MT_MEMBERSHIP_STATE_LIVE, "10.1.0.0", 16, 9000, 9100, NULL);
    set_add(&set, MT_MEMBERSHIP_STATE_LIVE, "2001:db8::", 32, 1, 65535, NULL);
    set_add(&set, MT_MEMBERSHIP_STATE_REMOVED, "10.2.0.7", 32, 443, 443, NULL);
    set_finish(&set);
    assert_int_equal(set_header(&set)->host_first, 3);
    struct mt_membership_view view;
    assert_true(mt_result_is_ok(mt_membership_view_open(set.bytes, set.size, &view)));
    assert_int_equal(view.generation, 7);
    assert_true(view.complete);

    static const struct {
        const char *host;
        uint16_t port;
        enum mt_membership_verdict verdict;
        const char *identity;
    } cases[] = {
        {"10.1.2.3", 8080, MT_MEMBERSHIP_MEMBER, "spiffe://td/ns/shop/sa/*"},
        {"10.1.2.3", 8081, MT_MEMBERSHIP_ABSENT, NULL}, /* same address, another port */
        {"10.3.2.3", 8080, MT_MEMBERSHIP_ABSENT, NULL}, /* same port, another address */
        {"10.1.255.255", 9100, MT_MEMBERSHIP_MEMBER, NULL},
        {"10.1.0.1", 9101, MT_MEMBERSHIP_ABSENT, NULL},
        {"::ffff:10.1.0.9", 9000, MT_MEMBERSHIP_MEMBER, NULL}, /* v4-mapped: looked up as IPv4 */
        {"10.2.0.7", 443, MT_MEMBERSHIP_REMOVED, NULL},
        {"10.2.0.8", 443, MT_MEMBERSHIP_ABSENT, NULL},
        {"2001:db8:1::5", 22, MT_MEMBERSHIP_MEMBER, NULL},
        {"2001:db9::5", 22, MT_MEMBERSHIP_ABSENT, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *identity = "unset";
        enum mt_membership_verdict verdict =
            look_up(&view, cases[i].host, cases[i].port, &identity);
        if (verdict != cases[i].verdict)
            fail_msg("%s port %u: verdict %d, expected %d", cases[i].host, cases[i].port,
                     (int)verdict, (int)cases[i].verdict);
        if (cases[i].identity == NULL) {
            assert_null(identity);
        } else {
            assert_non_null(identity);
            assert_memory_equal(identity, cases[i].identity, strlen(cases[i].identity));
        }
    }
}

static void test_mt_membership_lookup_live_entry_wins_over_tombstone(void **state)
{
    (void)state;
    static struct set set;
    set_init(&set);
    set_add(&set, MT_MEMBERSHIP_STATE_REMOVED, "10.0.1.0", 24, 80, 80, NULL);
    set_add(&set, MT_MEMBERSHIP_STATE_LIVE, "10.0.0.0", 24, 80, 80, NULL);
    set_add(&set, MT_MEMBERSHIP_STATE_REMOVED, "10.0.0.5", 32, 80, 80, NULL);
    set_add(&set, MT_MEMBERSHIP_STATE_LIVE, "10.0.1.6", 32, 80, 80, NULL);
    /* The same address twice, its tombstone sorted first: the live one still answers. */
    set_add(&set, MT_MEMBERSHIP_STATE_REMOVED, "10.0.2.7", 32, 80, 80, NULL);
    set_add(&set, MT_MEMBERSHIP_STATE_LIVE, "10.0.2.7", 32, 80, 80, NULL);
    set_finish(&set);
    struct mt_membership_view view;
    assert_true(mt_result_is_ok(mt_membership_view_open(set.bytes, set.size, &view)));
    /* A host tombstone under a live CIDR, a live host under a CIDR tombstone: both members. */
    assert_int_equal(look_up(&view, "10.0.0.5", 80, NULL), MT_MEMBERSHIP_MEMBER);
    assert_int_equal(look_up(&view, "10.0.1.6", 80, NULL), MT_MEMBERSHIP_MEMBER);
    assert_int_equal(look_up(&view, "10.0.1.7", 80, NULL), MT_MEMBERSHIP_REMOVED);
    assert_int_equal(look_up(&view, "10.0.2.7", 80, NULL), MT_MEMBERSHIP_MEMBER);
    assert_int_equal(look_up(&view, "10.0.2.7", 81, NULL), MT_MEMBERSHIP_ABSENT);
}

/* Both orientations: the host's identity inside the CIDR, the CIDR's beside the host. */
static void test_mt_membership_lookup_host_identity_wins_over_cidr(void **state)
{
    (void)state;
    static struct set set;
    set_init(&set);
    set_add(&set, MT_MEMBERSHIP_STATE_LIVE, "10.4.0.0", 16, 1, 65535, "spiffe://td/ns/wide/*");
    set_add(&set, MT_MEMBERSHIP_STATE_LIVE, "10.4.0.9", 32, 5432, 5432, "spiffe://td/ns/db/sa/pg");
    set_finish(&set);
    struct mt_membership_view view;
    assert_true(mt_result_is_ok(mt_membership_view_open(set.bytes, set.size, &view)));
    const char *identity = NULL;
    assert_int_equal(look_up(&view, "10.4.0.9", 5432, &identity), MT_MEMBERSHIP_MEMBER);
    assert_memory_equal(identity, "spiffe://td/ns/db/sa/pg", 23);
    assert_int_equal(look_up(&view, "10.4.0.8", 5432, &identity), MT_MEMBERSHIP_MEMBER);
    assert_memory_equal(identity, "spiffe://td/ns/wide/*", 21);
    /* The host's other ports are the CIDR's. */
    assert_int_equal(look_up(&view, "10.4.0.9", 5433, &identity), MT_MEMBERSHIP_MEMBER);
    assert_memory_equal(identity, "spiffe://td/ns/wide/*", 21);
}

/*
 * Many hosts, as the Kubernetes membership gives them: IPv4 10.8.x.y, each with two port ranges,
 * then IPv6. Every member is found with its own identity, and the addresses and ports beside it
 * are not, so a search that lands one entry off cannot pass.
 */
static void test_mt_membership_lookup_many_hosts_found_by_search(void **state)
{
    (void)state;
    static struct set set;
    set_init(&set);
    set_add(&set, MT_MEMBERSHIP_STATE_LIVE, "192.168.0.0", 16, 80, 80, NULL);
    enum { HOSTS = 500 };
    char host[64];
    char identity_of[64];
    for (unsigned i = 0; i < HOSTS; i++) {
        snprintf(host, sizeof(host), "10.8.%u.%u", (2 * i + 2) / 256, (2 * i + 2) % 256);
        snprintf(identity_of, sizeof(identity_of), "spiffe://td/ns/n/sa/s%u", i);
        set_add(&set, MT_MEMBERSHIP_STATE_LIVE, host, 32, 80, 80, identity_of);
        set_add(&set, MT_MEMBERSHIP_STATE_LIVE, host, 32, 8000, 8100, identity_of);
    }
    set_add(&set, MT_MEMBERSHIP_STATE_LIVE, "2001:db8::1", 128, 443, 443, "spiffe://td/v6/a");
    set_add(&set, MT_MEMBERSHIP_STATE_REMOVED, "2001:db8::2", 128, 443, 443, NULL);
    set_add(&set, MT_MEMBERSHIP_STATE_LIVE, "2001:db8::3", 128, 443, 443, "spiffe://td/v6/c");
    set_finish(&set);
    assert_int_equal(set_header(&set)->host_first, 1);
    struct mt_membership_view view;
    assert_true(mt_result_is_ok(mt_membership_view_open(set.bytes, set.size, &view)));
    for (unsigned i = 0; i < HOSTS; i++) {
        unsigned at = 2 * i + 2;
        snprintf(host, sizeof(host), "10.8.%u.%u", at / 256, at % 256);
        snprintf(identity_of, sizeof(identity_of), "spiffe://td/ns/n/sa/s%u", i);
        const char *identity = NULL;
        uint16_t ports[] = {80, 8000, 8050, 8100};
        for (size_t p = 0; p < sizeof(ports) / sizeof(ports[0]); p++) {
            if (look_up(&view, host, ports[p], &identity) != MT_MEMBERSHIP_MEMBER)
                fail_msg("%s port %u not found", host, ports[p]);
            assert_memory_equal(identity, identity_of, strlen(identity_of));
        }
        assert_int_equal(look_up(&view, host, 81, NULL), MT_MEMBERSHIP_ABSENT);
        assert_int_equal(look_up(&view, host, 8101, NULL), MT_MEMBERSHIP_ABSENT);
        assert_int_equal(look_up(&view, host, 7999, NULL), MT_MEMBERSHIP_ABSENT);
        snprintf(host, sizeof(host), "10.8.%u.%u", (at + 1) / 256, (at + 1) % 256);
        assert_int_equal(look_up(&view, host, 80, NULL), MT_MEMBERSHIP_ABSENT);
        snprintf(host, sizeof(host), "::ffff:10.8.%u.%u", at / 256, at % 256);
        assert_int_equal(look_up(&view, host, 8000, NULL), MT_MEMBERSHIP_MEMBER);
    }
    /* Before the first host, past the last, and the CIDR in front of them. */
    assert_int_equal(look_up(&view, "10.8.0.1", 80, NULL), MT_MEMBERSHIP_ABSENT);
    assert_int_equal(look_up(&view, "10.255.255.255", 80, NULL), MT_MEMBERSHIP_ABSENT);
    assert_int_equal(look_up(&view, "0.0.0.0", 80, NULL), MT_MEMBERSHIP_ABSENT);
    assert_int_equal(look_up(&view, "192.168.3.4", 80, NULL), MT_MEMBERSHIP_MEMBER);
    const char *identity = NULL;
    assert_int_equal(look_up(&view, "2001:db8::1", 443, &identity), MT_MEMBERSHIP_MEMBER);
    assert_memory_equal(identity, "spiffe://td/v6/a", 16);
    assert_int_equal(look_up(&view, "2001:db8::2", 443, NULL), MT_MEMBERSHIP_REMOVED);
    assert_int_equal(look_up(&view, "2001:db8::3", 443, &identity), MT_MEMBERSHIP_MEMBER);
    assert_memory_equal(identity, "spiffe://td/v6/c", 16);
    assert_int_equal(look_up(&view, "2001:db8::4", 443, NULL), MT_MEMBERSHIP_ABSENT);
    assert_int_equal(look_up(&view, "2001:db8::", 443, NULL), MT_MEMBERSHIP_ABSENT);
    /* An IPv4 host's bytes as an IPv6 address are another destination. */
    assert_int_equal(look_up(&view, "a08:2::", 80, NULL), MT_MEMBERSHIP_ABSENT);
}

/* Each way out of the version 2 order refuses the set; the set in order opens. */
static void test_mt_membership_view_open_table_refuses_entries_out_of_order(void **state)
{
    (void)state;
    enum disorder {
        IN_ORDER,
        HOSTS_SWAPPED,
        PORTS_SWAPPED,
        HOST_AMONG_CIDRS,
        CIDR_AMONG_HOSTS,
        HOST_FIRST_PAST_COUNT,
        FAMILIES_SWAPPED,
        DISORDER_COUNT,
    };
    for (int disorder = IN_ORDER; disorder < DISORDER_COUNT; disorder++) {
        static struct set set;
        set_init(&set);
        set_add(&set, MT_MEMBERSHIP_STATE_LIVE, "10.0.0.0", 8, 80, 80, NULL);
        set_add(&set, MT_MEMBERSHIP_STATE_LIVE, "10.0.0.1", 32, 80, 80, NULL);
        set_add(&set, MT_MEMBERSHIP_STATE_LIVE, "10.0.0.1", 32, 90, 90, NULL);
        set_add(&set, MT_MEMBERSHIP_STATE_LIVE, "10.0.0.2", 32, 80, 80, NULL);
        set_add(&set, MT_MEMBERSHIP_STATE_LIVE, "::1", 128, 80, 80, NULL);
        struct mt_membership_entry swap;
        switch (disorder) {
        case HOSTS_SWAPPED:
            swap = set.entries[2];
            set.entries[2] = set.entries[3];
            set.entries[3] = swap;
            break;
        case PORTS_SWAPPED:
            swap = set.entries[1];
            set.entries[1] = set.entries[2];
            set.entries[2] = swap;
            break;
        case FAMILIES_SWAPPED:
            swap = set.entries[3];
            set.entries[3] = set.entries[4];
            set.entries[4] = swap;
            break;
        default:
            break;
        }
        set_finish(&set);
        if (disorder == HOST_AMONG_CIDRS)
            set_header(&set)->host_first = 2;
        else if (disorder == CIDR_AMONG_HOSTS)
            set_header(&set)->host_first = 0;
        else if (disorder == HOST_FIRST_PAST_COUNT)
            set_header(&set)->host_first = set.count + 1;
        struct mt_membership_view view = {0};
        mt_result result = mt_membership_view_open(set.bytes, set.size, &view);
        if (disorder == IN_ORDER) {
            assert_true(mt_result_is_ok(result));
            assert_int_equal(view.host_first, 1);
        } else if (mt_result_is_ok(result)) {
            fail_msg("disorder %d: a set out of order was opened", disorder);
        } else {
            assert_null(view.base);
        }
    }
}

/* Each field broken in turn refuses the whole set; the same set unbroken opens. */
static void test_mt_membership_view_open_table_refuses_any_malformed_field(void **state)
{
    (void)state;
    enum breakage {
        NOTHING,
        MAGIC,
        VERSION,
        COUNT_PAST_SIZE,
        FAMILY,
        PREFIX,
        HOST_BITS,
        STATE,
        PORT_ZERO,
        PORTS_REVERSED,
        IDENTITY_LENGTH,
        IDENTITY_INVALID,
        IDENTITY_NUL,
        IDENTITY_PAST_END,
        IDENTITIES_CUT,
        BREAKAGE_COUNT,
    };
    for (int breakage = NOTHING; breakage < BREAKAGE_COUNT; breakage++) {
        static struct set set;
        set_init(&set);
        set_add(&set, MT_MEMBERSHIP_STATE_LIVE, "10.1.0.0", 16, 80, 90, "spiffe://td/ns/a/*");
        set_finish(&set);
        struct mt_membership_record *entry = set_record(&set, 0);
        char *identity = (char *)set.bytes + MT_MEMBERSHIP_HEADER_SIZE + MT_MEMBERSHIP_ENTRY_SIZE;
        size_t size = set.size;
        switch (breakage) {
        case MAGIC:
            set_header(&set)->magic ^= 1;
            break;
        case VERSION:
            set_header(&set)->layout_version = 1;
            break;
        case COUNT_PAST_SIZE:
            set_header(&set)->entry_count = 2;
            break;
        case FAMILY:
            entry->family = 5;
            break;
        case PREFIX:
            entry->prefix_length = 33;
            break;
        case HOST_BITS:
            entry->address[3] = 1;
            break;
        case STATE:
            entry->state = 3;
            break;
        case PORT_ZERO:
            entry->port_first = 0;
            break;
        case PORTS_REVERSED:
            entry->port_first = 91;
            break;
        case IDENTITY_LENGTH:
            entry->identity_length = MT_MEMBERSHIP_IDENTITY_MAX + 1;
            break;
        case IDENTITY_INVALID:
            memcpy(identity, "https://", 8);
            break;
        case IDENTITY_NUL:
            identity[3] = '\0';
            break;
        case IDENTITY_PAST_END:
            entry->identity_offset = 1;
            break;
        case IDENTITIES_CUT:
            size--;
            break;
        default:
            break;
        }
        struct mt_membership_view view = {0};
        mt_result result = mt_membership_view_open(set.bytes, size, &view);
        if (breakage == NOTHING) {
            assert_true(mt_result_is_ok(result));
            assert_int_equal(view.entry_count, 1);
        } else if (mt_result_is_ok(result)) {
            fail_msg("breakage %d: a malformed set was opened", breakage);
        } else {
            assert_int_equal(result.error, MT_ERR_MEMBERSHIP);
            assert_null(view.base);
        }
    }
    struct mt_membership_view view;
    uint8_t short_header[MT_MEMBERSHIP_HEADER_SIZE - 1] = {0};
    assert_false(
        mt_result_is_ok(mt_membership_view_open(short_header, sizeof(short_header), &view)));
}

/* The set ends where a PROT_NONE page begins: a read past it is a crash, not a pass. */
static void test_mt_membership_lookup_set_at_page_edge_reads_nothing_beyond(void **state)
{
    (void)state;
    long page = sysconf(_SC_PAGESIZE);
    uint8_t *pages =
        mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(pages != MAP_FAILED);
    assert_int_equal(mprotect(pages + page, (size_t)page, PROT_NONE), 0);
    static struct set set;
    set_init(&set);
    set_add(&set, MT_MEMBERSHIP_STATE_LIVE, "10.0.0.0", 8, 5432, 5432, NULL);
    set_add(&set, MT_MEMBERSHIP_STATE_LIVE, "10.0.0.1", 32, 5432, 5432, NULL);
    set_finish(&set);
    size_t size = set.size;
    uint8_t *placed = pages + page - size;
    memcpy(placed, set.bytes, size);
    struct mt_membership_view view;
    assert_true(mt_result_is_ok(mt_membership_view_open(placed, size, &view)));
    assert_int_equal(look_up(&view, "10.9.9.9", 5432, NULL), MT_MEMBERSHIP_MEMBER);
    assert_int_equal(look_up(&view, "11.9.9.9", 5432, NULL), MT_MEMBERSHIP_ABSENT);
    /* The host entry is the last bytes before the guard page: the search reads it, no further. */
    assert_int_equal(look_up(&view, "10.0.0.1", 5432, NULL), MT_MEMBERSHIP_MEMBER);
    assert_int_equal(look_up(&view, "10.0.0.2", 5432, NULL), MT_MEMBERSHIP_MEMBER);
    assert_int_equal(look_up(&view, "255.255.255.255", 5432, NULL), MT_MEMBERSHIP_ABSENT);
    /* A count one too high claims bytes in the guard page: refused, never read. */
    ((struct mt_membership_header *)(void *)placed)->entry_count = 3;
    assert_false(mt_result_is_ok(mt_membership_view_open(placed, size, &view)));
    munmap(pages, (size_t)page * 2);
}

static void test_mt_membership_is_superseded_reads_the_agent_mark(void **state)
{
    (void)state;
    static struct set set;
    set_init(&set);
    set_finish(&set);
    struct mt_membership_view view;
    assert_true(mt_result_is_ok(mt_membership_view_open(set.bytes, set.size, &view)));
    assert_false(mt_membership_is_superseded(&view));
    set_header(&set)->superseded = 1;
    assert_true(mt_membership_is_superseded(&view));
}

/* Both orientations of "once meshed": the same verdict gives mtls or plain by that alone. */
static void test_mt_policy_decide_auto_table_only_a_removal_downgrades(void **state)
{
    (void)state;
    static const struct {
        enum mt_membership_verdict verdict;
        bool was_meshed;
        enum mt_outbound_mode mode;
        bool remember;
        bool forget;
    } cases[] = {
        {MT_MEMBERSHIP_MEMBER, false, MT_OUTBOUND_MTLS, true, false},
        {MT_MEMBERSHIP_MEMBER, true, MT_OUTBOUND_MTLS, true, false},
        {MT_MEMBERSHIP_ABSENT, false, MT_OUTBOUND_PLAIN, false, false},
        {MT_MEMBERSHIP_ABSENT, true, MT_OUTBOUND_MTLS, false, false},
        {MT_MEMBERSHIP_REMOVED, false, MT_OUTBOUND_PLAIN, false, true},
        {MT_MEMBERSHIP_REMOVED, true, MT_OUTBOUND_PLAIN, false, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mt_auto_decision decision =
            mt_policy_decide_auto(cases[i].verdict, cases[i].was_meshed);
        if (decision.mode != cases[i].mode || decision.remember != cases[i].remember ||
            decision.forget != cases[i].forget)
            fail_msg("case %zu: mode %d remember %d forget %d", i, (int)decision.mode,
                     decision.remember, decision.forget);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mt_membership_lookup_table_address_and_port_both_decide),
        cmocka_unit_test(test_mt_membership_lookup_live_entry_wins_over_tombstone),
        cmocka_unit_test(test_mt_membership_lookup_host_identity_wins_over_cidr),
        cmocka_unit_test(test_mt_membership_lookup_many_hosts_found_by_search),
        cmocka_unit_test(test_mt_membership_view_open_table_refuses_entries_out_of_order),
        cmocka_unit_test(test_mt_membership_view_open_table_refuses_any_malformed_field),
        cmocka_unit_test(test_mt_membership_lookup_set_at_page_edge_reads_nothing_beyond),
        cmocka_unit_test(test_mt_membership_is_superseded_reads_the_agent_mark),
        cmocka_unit_test(test_mt_policy_decide_auto_table_only_a_removal_downgrades),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
