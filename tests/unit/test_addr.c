/*
 * Tests for util/addr.c: the text that appears in log lines, the loopback test policy relies on
 * (including v4-mapped IPv6), ports, and the bounded copy.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/un.h>

#include <cmocka.h>

#include "util/addr.h"

/* Builds an AF_INET or AF_INET6 address from text; the test fails on a typo in the table. */
static struct sockaddr_storage make_address(const char *host, uint16_t port)
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

static struct sockaddr_storage make_unix_address(void)
{
    struct sockaddr_storage storage;
    memset(&storage, 0, sizeof(storage));
    struct sockaddr_un *un = (struct sockaddr_un *)&storage;
    un->sun_family = AF_UNIX;
    strcpy(un->sun_path, "/run/x.sock");
    return storage;
}

static void test_mt_addr_is_loopback_table_matches_the_ranges(void **state)
{
    (void)state;
    static const struct {
        const char *host;
        bool loopback;
    } cases[] = {
        {"127.0.0.1", true},
        {"127.255.255.254", true},
        {"127.1.2.3", true},
        {"126.255.255.255", false},
        {"128.0.0.1", false},
        {"0.0.0.0", true}, /* connect() to it reaches the local host */
        {"10.0.0.7", false},
        {"::1", true},
        {"::", true},
        {"::ffff:0.0.0.0", true},
        {"::2", false},
        {"fe80::1", false},
        {"2001:db8::1", false},
        {"::ffff:127.0.0.1", true},
        {"::ffff:127.9.9.9", true},
        {"::ffff:10.0.0.7", false},
        {"::ffff:128.0.0.1", false},
        /* IPv4-compatible (deprecated) is not v4-mapped and is not loopback. */
        {"::127.0.0.1", false},
        /* The loopback /8 inside a non-mapped prefix must not be mistaken for one. */
        {"64:ff9b::127.0.0.1", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sockaddr_storage address = make_address(cases[i].host, 80);
        if (mt_addr_is_loopback(&address) != cases[i].loopback)
            fail_msg("%s: expected loopback=%d", cases[i].host, cases[i].loopback);
    }
}

static void test_mt_addr_is_loopback_non_inet_or_null_is_false(void **state)
{
    (void)state;
    struct sockaddr_storage address = make_unix_address();
    assert_false(mt_addr_is_loopback(&address));
    memset(&address, 0, sizeof(address));
    assert_false(mt_addr_is_loopback(&address));
    assert_false(mt_addr_is_loopback(NULL));
}

static void test_mt_addr_format_table_gives_log_text(void **state)
{
    (void)state;
    static const struct {
        const char *host;
        uint16_t port;
        const char *text;
    } cases[] = {
        {"10.0.0.7", 8443, "10.0.0.7:8443"},
        {"0.0.0.0", 0, "0.0.0.0:0"},
        {"255.255.255.255", 65535, "255.255.255.255:65535"},
        {"::1", 443, "[::1]:443"},
        {"2001:db8::1", 80, "[2001:db8::1]:80"},
        {"::ffff:127.0.0.1", 5000, "[::ffff:127.0.0.1]:5000"},
        {"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", 65535,
         "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sockaddr_storage address = make_address(cases[i].host, cases[i].port);
        char text[MT_ADDR_TEXT_MAX];
        mt_addr_format(&address, text, sizeof(text));
        assert_string_equal(text, cases[i].text);
    }
}

static void test_mt_addr_format_unix_and_unknown_give_placeholders(void **state)
{
    (void)state;
    char text[MT_ADDR_TEXT_MAX];
    struct sockaddr_storage address = make_unix_address();
    mt_addr_format(&address, text, sizeof(text));
    assert_string_equal(text, "unix");
    memset(&address, 0, sizeof(address));
    address.ss_family = AF_PACKET;
    mt_addr_format(&address, text, sizeof(text));
    assert_string_equal(text, "?");
    mt_addr_format(NULL, text, sizeof(text));
    assert_string_equal(text, "?");
}

static void test_mt_addr_format_small_buffer_truncates_and_terminates(void **state)
{
    (void)state;
    struct sockaddr_storage address = make_address("10.0.0.7", 8443);
    char text[8];
    memset(text, 'x', sizeof(text));
    mt_addr_format(&address, text, 6);
    assert_string_equal(text, "10.0.");
    assert_int_equal(text[6], 'x');
    mt_addr_format(&address, text, 1);
    assert_string_equal(text, "");
    /* Capacity 0 must not write at all. */
    text[0] = 'y';
    mt_addr_format(&address, text, 0);
    assert_int_equal(text[0], 'y');
}

static void test_mt_addr_port_each_family_gives_host_order_port(void **state)
{
    (void)state;
    struct sockaddr_storage v4 = make_address("10.0.0.7", 8443);
    struct sockaddr_storage v6 = make_address("::1", 443);
    struct sockaddr_storage un = make_unix_address();
    assert_int_equal(mt_addr_port(&v4), 8443);
    assert_int_equal(mt_addr_port(&v6), 443);
    assert_int_equal(mt_addr_port(&un), 0);
    assert_int_equal(mt_addr_port(NULL), 0);
}

static void test_mt_addr_set_port_each_family_round_trips(void **state)
{
    (void)state;
    struct sockaddr_storage v4 = make_address("10.0.0.7", 8443);
    struct sockaddr_storage v6 = make_address("::1", 443);
    struct sockaddr_storage un = make_unix_address();
    mt_addr_set_port(&v4, 0);
    mt_addr_set_port(&v6, 65535);
    mt_addr_set_port(&un, 80);
    assert_int_equal(mt_addr_port(&v4), 0);
    assert_int_equal(mt_addr_port(&v6), 65535);
    assert_int_equal(mt_addr_port(&un), 0);
}

static void test_mt_addr_copy_short_address_zero_fills_the_rest(void **state)
{
    (void)state;
    struct sockaddr_storage source = make_address("10.0.0.7", 80);
    struct sockaddr_storage storage;
    memset(&storage, 0xaa, sizeof(storage));
    assert_true(
        mt_addr_copy(&storage, (const struct sockaddr *)&source, sizeof(struct sockaddr_in)));
    assert_memory_equal(&storage, &source, sizeof(struct sockaddr_in));
    const unsigned char *bytes = (const unsigned char *)&storage;
    for (size_t i = sizeof(struct sockaddr_in); i < sizeof(storage); i++)
        assert_int_equal(bytes[i], 0);
}

static void test_mt_addr_copy_oversized_length_is_refused_and_untouched(void **state)
{
    (void)state;
    unsigned char big[sizeof(struct sockaddr_storage) + 1];
    memset(big, 1, sizeof(big));
    struct sockaddr_storage storage;
    memset(&storage, 0xaa, sizeof(storage));
    assert_false(mt_addr_copy(&storage, (const struct sockaddr *)big, sizeof(big)));
    assert_int_equal(((unsigned char *)&storage)[0], 0xaa);
    assert_false(mt_addr_copy(&storage, NULL, sizeof(struct sockaddr_in)));
    assert_false(mt_addr_copy(NULL, (const struct sockaddr *)big, 4));
    assert_true(mt_addr_copy(&storage, (const struct sockaddr *)big, sizeof(storage)));
}

/* mt_addr_parse reads back what mt_addr_format writes, and refuses everything else. */
static void test_mt_addr_parse_formatted_addresses_round_trip(void **state)
{
    (void)state;
    static const char *const good[] = {"127.0.0.1:8080", "10.0.0.7:1", "[::1]:443",
                                       "[2001:db8::1]:65535", "0.0.0.0:0"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct sockaddr_storage address;
        assert_true(mt_addr_parse(good[i], &address));
        char text[MT_ADDR_TEXT_MAX];
        mt_addr_format(&address, text, sizeof(text));
        assert_string_equal(text, good[i]);
    }
    static const char *const bad[] = {
        "",        "127.0.0.1", "127.0.0.1:",  "127.0.0.1:65536", "localhost:80",
        "::1:443", "[::1]:-1",  "1.2.3.4:80x", "[::1:443",        "127.0.0.1:+80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sockaddr_storage address;
        assert_false(mt_addr_parse(bad[i], &address));
    }
}

/* Each family a connection can have comes back whole (scope id included), in 28 bytes. */
static void test_mt_addr_compact_store_inet_families_load_back_whole(void **state)
{
    (void)state;
    struct sockaddr_storage addresses[] = {
        make_address("10.0.0.7", 8443),
        make_address("fe80::1", 443),
        make_address("::ffff:127.0.0.1", 1),
    };
    ((struct sockaddr_in6 *)&addresses[1])->sin6_scope_id = 3;
    assert_true(sizeof(union mt_addr_compact) <= sizeof(struct sockaddr_in6));
    for (size_t i = 0; i < sizeof(addresses) / sizeof(addresses[0]); i++) {
        union mt_addr_compact compact;
        mt_addr_compact_store(&compact, &addresses[i]);
        struct sockaddr_storage loaded = mt_addr_compact_load(&compact);
        assert_memory_equal(&loaded, &addresses[i], sizeof(loaded));
        char expected[MT_ADDR_TEXT_MAX];
        char text[MT_ADDR_TEXT_MAX];
        mt_addr_format(&addresses[i], expected, sizeof(expected));
        mt_addr_compact_format(&compact, text, sizeof(text));
        assert_string_equal(text, expected);
        assert_int_equal(mt_addr_compact_port(&compact), mt_addr_port(&addresses[i]));
    }
}

/* Another family is not cut to fit: it is kept as none at all. */
static void test_mt_addr_compact_store_other_family_keeps_unspecified(void **state)
{
    (void)state;
    struct sockaddr_storage unix_address = make_unix_address();
    union mt_addr_compact compact;
    memset(&compact, 0xa5, sizeof(compact));
    mt_addr_compact_store(&compact, &unix_address);
    assert_int_equal(compact.family, AF_UNSPEC);
    struct sockaddr_storage loaded = mt_addr_compact_load(&compact);
    assert_int_equal(loaded.ss_family, AF_UNSPEC);
    assert_int_equal(mt_addr_compact_port(&compact), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mt_addr_parse_formatted_addresses_round_trip),
        cmocka_unit_test(test_mt_addr_is_loopback_table_matches_the_ranges),
        cmocka_unit_test(test_mt_addr_is_loopback_non_inet_or_null_is_false),
        cmocka_unit_test(test_mt_addr_format_table_gives_log_text),
        cmocka_unit_test(test_mt_addr_format_unix_and_unknown_give_placeholders),
        cmocka_unit_test(test_mt_addr_format_small_buffer_truncates_and_terminates),
        cmocka_unit_test(test_mt_addr_port_each_family_gives_host_order_port),
        cmocka_unit_test(test_mt_addr_set_port_each_family_round_trips),
        cmocka_unit_test(test_mt_addr_copy_short_address_zero_fills_the_rest),
        cmocka_unit_test(test_mt_addr_copy_oversized_length_is_refused_and_untouched),
        cmocka_unit_test(test_mt_addr_compact_store_inet_families_load_back_whole),
        cmocka_unit_test(test_mt_addr_compact_store_other_family_keeps_unspecified),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
