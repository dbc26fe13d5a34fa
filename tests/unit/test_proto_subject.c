/*
 * Tests for the SUBJECT of a request (identity/proto.h): the tag that makes the agent attest a
 * child of the caller instead of the caller. A request naming a subject must be version 2, so
 * that an agent that predates the tag refuses it instead of skipping it and attesting the
 * caller; every other frame stays version 1, so that old and new peers still agree.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "identity/proto.h"

static size_t build(uint8_t *buffer, size_t capacity, enum mt_proto_type type, bool subject)
{
    struct mt_proto_writer writer;
    size_t length = 0;
    mt_proto_writer_begin(&writer, buffer, capacity, type);
    if (type == MT_PROTO_SVID_REQUEST)
        mt_proto_writer_put(&writer, MT_PROTO_TAG_CSR, "csr", 3);
    if (subject)
        mt_proto_writer_put_subject(&writer);
    assert_true(mt_result_is_ok(mt_proto_writer_finish(&writer, &length)));
    return length;
}

static void parse(const uint8_t *buffer, size_t length, struct mt_proto_frame *frame)
{
    size_t consumed = 0;
    assert_true(mt_result_is_ok(mt_proto_frame_parse(buffer, length, frame, &consumed)));
    assert_int_equal(consumed, length);
}

static void test_mt_proto_writer_put_subject_makes_a_version_2_request(void **state)
{
    (void)state;
    static const enum mt_proto_type types[] = {MT_PROTO_SVID_REQUEST, MT_PROTO_ID_REQUEST,
                                               MT_PROTO_METRICS_FILE_REQUEST};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        uint8_t buffer[128];
        size_t length = build(buffer, sizeof(buffer), types[i], true);
        assert_int_equal(buffer[2], MT_PROTO_VERSION_SUBJECT);
        struct mt_proto_frame frame;
        parse(buffer, length, &frame);
        assert_int_equal(frame.version, MT_PROTO_VERSION_SUBJECT);
        assert_int_equal(frame.type, types[i]);
        bool has_subject = false;
        assert_true(mt_result_is_ok(mt_proto_decode_subject(&frame, &has_subject)));
        assert_true(has_subject);
    }
}

static void test_mt_proto_decode_subject_plain_request_stays_version_1_without_subject(void **state)
{
    (void)state;
    uint8_t buffer[128];
    size_t length = build(buffer, sizeof(buffer), MT_PROTO_ID_REQUEST, false);
    assert_int_equal(buffer[2], MT_PROTO_VERSION);
    struct mt_proto_frame frame;
    parse(buffer, length, &frame);
    bool has_subject = true;
    assert_true(mt_result_is_ok(mt_proto_decode_subject(&frame, &has_subject)));
    assert_false(has_subject);
}

/* The CSR beside a SUBJECT is the one the agent signs: the tag changes nothing else. */
static void test_mt_proto_decode_svid_request_with_subject_keeps_the_csr(void **state)
{
    (void)state;
    uint8_t buffer[128];
    size_t length = build(buffer, sizeof(buffer), MT_PROTO_SVID_REQUEST, true);
    struct mt_proto_frame frame;
    parse(buffer, length, &frame);
    struct mt_proto_svid_request request;
    assert_true(mt_result_is_ok(mt_proto_decode_svid_request(&frame, &request)));
    assert_int_equal(request.csr.length, 3);
    assert_memory_equal(request.csr.data, "csr", 3);
}

/* A frame by hand: header of version and type, then the payload as given. */
static size_t raw_frame(uint8_t *buffer, uint8_t version, const uint8_t *payload, size_t length)
{
    buffer[0] = 'M';
    buffer[1] = 'T';
    buffer[2] = version;
    buffer[3] = MT_PROTO_ID_REQUEST;
    buffer[4] = 0;
    buffer[5] = 0;
    buffer[6] = (uint8_t)(length >> 8);
    buffer[7] = (uint8_t)length;
    memcpy(buffer + MT_PROTO_HEADER_SIZE, payload, length);
    return MT_PROTO_HEADER_SIZE + length;
}

static void assert_subject_malformed(uint8_t version, const uint8_t *payload, size_t length)
{
    uint8_t buffer[128];
    size_t total = raw_frame(buffer, version, payload, length);
    struct mt_proto_frame frame;
    parse(buffer, total, &frame);
    bool has_subject = false;
    assert_int_equal(mt_proto_decode_subject(&frame, &has_subject).error, MT_ERR_PROTO_MALFORMED);
    assert_false(has_subject);
}

static void test_mt_proto_decode_subject_malformed_subjects_refused(void **state)
{
    (void)state;
    static const uint8_t one[] = {0, MT_PROTO_TAG_SUBJECT, 0, 0, 0, 4, 0, 0, 0, 1};
    static const uint8_t two_descriptors[] = {0, MT_PROTO_TAG_SUBJECT, 0, 0, 0, 4, 0, 0, 0, 2};
    static const uint8_t short_value[] = {0, MT_PROTO_TAG_SUBJECT, 0, 0, 0, 1, 1};
    static const uint8_t twice[] = {0, MT_PROTO_TAG_SUBJECT, 0, 0, 0, 4, 0, 0, 0, 1,
                                    0, MT_PROTO_TAG_SUBJECT, 0, 0, 0, 4, 0, 0, 0, 1};
    /* Version 1 writers never knew the tag. */
    assert_subject_malformed(MT_PROTO_VERSION, one, sizeof(one));
    assert_subject_malformed(MT_PROTO_VERSION_SUBJECT, two_descriptors, sizeof(two_descriptors));
    assert_subject_malformed(MT_PROTO_VERSION_SUBJECT, short_value, sizeof(short_value));
    assert_subject_malformed(MT_PROTO_VERSION_SUBJECT, twice, sizeof(twice));
    /* The control: the same bytes as version 2 are a subject. */
    uint8_t buffer[128];
    size_t total = raw_frame(buffer, MT_PROTO_VERSION_SUBJECT, one, sizeof(one));
    struct mt_proto_frame frame;
    parse(buffer, total, &frame);
    bool has_subject = false;
    assert_true(mt_result_is_ok(mt_proto_decode_subject(&frame, &has_subject)));
    assert_true(has_subject);
}

static void test_mt_proto_frame_parse_version_past_subject_refused(void **state)
{
    (void)state;
    const uint8_t bytes[] = {'M', 'T', MT_PROTO_VERSION_MAX + 1, MT_PROTO_ID_REQUEST, 0, 0, 0, 0};
    struct mt_proto_frame frame;
    size_t consumed = 99;
    assert_int_equal(mt_proto_frame_parse(bytes, sizeof(bytes), &frame, &consumed).error,
                     MT_ERR_PROTO_VERSION);
    assert_int_equal(consumed, 0);
}

/* A writer out of room fails the frame rather than sending a version 2 frame without its tag. */
static void test_mt_proto_writer_put_subject_without_room_fails_the_frame(void **state)
{
    (void)state;
    uint8_t buffer[MT_PROTO_HEADER_SIZE + 4];
    struct mt_proto_writer writer;
    size_t length = 0;
    mt_proto_writer_begin(&writer, buffer, sizeof(buffer), MT_PROTO_ID_REQUEST);
    mt_proto_writer_put_subject(&writer);
    assert_int_equal(mt_proto_writer_finish(&writer, &length).error, MT_ERR_TOO_LONG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mt_proto_writer_put_subject_makes_a_version_2_request),
        cmocka_unit_test(
            test_mt_proto_decode_subject_plain_request_stays_version_1_without_subject),
        cmocka_unit_test(test_mt_proto_decode_svid_request_with_subject_keeps_the_csr),
        cmocka_unit_test(test_mt_proto_decode_subject_malformed_subjects_refused),
        cmocka_unit_test(test_mt_proto_frame_parse_version_past_subject_refused),
        cmocka_unit_test(test_mt_proto_writer_put_subject_without_room_fails_the_frame),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
