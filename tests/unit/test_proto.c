/*
 * Tests for identity/proto.c, the agent protocol codec.
 *
 * Every input that is parsed is first copied to the very end of a readable mapping followed by a
 * PROT_NONE page, so a parser that reads even one byte past the length it was given crashes the
 * test instead of passing by luck.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "identity/proto.h"

#define COUNT_OF(array) (sizeof(array) / sizeof((array)[0]))

/* A copy of some bytes that ends exactly where an inaccessible page begins. */
struct guarded {
    uint8_t *mapping;
    size_t mapping_size;
    uint8_t *data;
};

static void guarded_init(struct guarded *guarded, const uint8_t *data, size_t length)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data_pages = length / page + 1;
    guarded->mapping_size = (data_pages + 1) * page;
    guarded->mapping = mmap(NULL, guarded->mapping_size, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(guarded->mapping != MAP_FAILED);
    uint8_t *guard = guarded->mapping + data_pages * page;
    assert_int_equal(mprotect(guard, page, PROT_NONE), 0);
    guarded->data = guard - length;
    if (length > 0)
        memcpy(guarded->data, data, length);
}

static void guarded_cleanup(struct guarded *guarded)
{
    munmap(guarded->mapping, guarded->mapping_size);
}

static const uint8_t csr[] = {0x30, 0x82, 0x01, 0x0a, 0xde, 0xad};
static const char spiffe_id[] = "spiffe://example.org/ns/default/sa/web";
static const uint8_t cert_a[] = {0x30, 0x01, 0xaa};
static const uint8_t cert_b[] = {0x30, 0x02, 0xbb, 0xbb};
static const uint8_t anchor_a[] = {0x30, 0x03, 0xcc, 0xcc, 0xcc};
static const uint8_t anchor_b[] = {0x30, 0x01, 0xdd};
static const uint64_t expiry = 0x0102030405060708ull;
static const char error_text[] = "no rule matches uid 1000";
static const uint32_t metrics_pid = 0x00012345;
static const uint64_t metrics_start_time = 0x0000000100000002ull;

/* Frames are built in buffers this large; every test frame fits. */
#define FRAME_BUFFER 512

static size_t writer_finish_ok(struct mt_proto_writer *writer)
{
    size_t length = 0;
    mt_result result = mt_proto_writer_finish(writer, &length);
    assert_int_equal(result.error, MT_OK);
    return length;
}

static size_t build_svid_request(uint8_t *buffer)
{
    struct mt_proto_writer writer;
    mt_proto_writer_begin(&writer, buffer, FRAME_BUFFER, MT_PROTO_SVID_REQUEST);
    mt_proto_writer_put(&writer, MT_PROTO_TAG_CSR, csr, sizeof(csr));
    return writer_finish_ok(&writer);
}

static size_t build_svid_response(uint8_t *buffer)
{
    struct mt_proto_writer writer;
    mt_proto_writer_begin(&writer, buffer, FRAME_BUFFER, MT_PROTO_SVID_RESPONSE);
    mt_proto_writer_put(&writer, MT_PROTO_TAG_SPIFFE_ID, spiffe_id, strlen(spiffe_id));
    mt_proto_writer_put(&writer, MT_PROTO_TAG_CERT, cert_a, sizeof(cert_a));
    mt_proto_writer_put(&writer, MT_PROTO_TAG_CERT, cert_b, sizeof(cert_b));
    mt_proto_writer_put(&writer, MT_PROTO_TAG_BUNDLE, anchor_a, sizeof(anchor_a));
    mt_proto_writer_put(&writer, MT_PROTO_TAG_BUNDLE, anchor_b, sizeof(anchor_b));
    mt_proto_writer_put_u64(&writer, MT_PROTO_TAG_EXPIRY, expiry);
    return writer_finish_ok(&writer);
}

static size_t build_id_request(uint8_t *buffer)
{
    struct mt_proto_writer writer;
    mt_proto_writer_begin(&writer, buffer, FRAME_BUFFER, MT_PROTO_ID_REQUEST);
    return writer_finish_ok(&writer);
}

static size_t build_id_response(uint8_t *buffer)
{
    struct mt_proto_writer writer;
    mt_proto_writer_begin(&writer, buffer, FRAME_BUFFER, MT_PROTO_ID_RESPONSE);
    mt_proto_writer_put(&writer, MT_PROTO_TAG_SPIFFE_ID, spiffe_id, strlen(spiffe_id));
    return writer_finish_ok(&writer);
}

static size_t build_error(uint8_t *buffer)
{
    struct mt_proto_writer writer;
    mt_proto_writer_begin(&writer, buffer, FRAME_BUFFER, MT_PROTO_ERROR);
    mt_proto_writer_put_u32(&writer, MT_PROTO_TAG_ERROR_CODE, MT_PROTO_ERROR_DENIED);
    mt_proto_writer_put(&writer, MT_PROTO_TAG_MESSAGE, error_text, strlen(error_text));
    return writer_finish_ok(&writer);
}

static size_t build_metrics_file_request(uint8_t *buffer)
{
    struct mt_proto_writer writer;
    mt_proto_writer_begin(&writer, buffer, FRAME_BUFFER, MT_PROTO_METRICS_FILE_REQUEST);
    return writer_finish_ok(&writer);
}

static size_t build_metrics_file_response(uint8_t *buffer)
{
    struct mt_proto_writer writer;
    mt_proto_writer_begin(&writer, buffer, FRAME_BUFFER, MT_PROTO_METRICS_FILE_RESPONSE);
    mt_proto_writer_put_u32(&writer, MT_PROTO_TAG_PID, metrics_pid);
    mt_proto_writer_put_u64(&writer, MT_PROTO_TAG_START_TIME, metrics_start_time);
    return writer_finish_ok(&writer);
}

static const struct {
    const char *name;
    size_t (*build)(uint8_t *buffer);
} valid_frames[] = {
    {"svid_request", build_svid_request},
    {"svid_response", build_svid_response},
    {"id_request", build_id_request},
    {"id_response", build_id_response},
    {"error", build_error},
    {"metrics_file_request", build_metrics_file_request},
    {"metrics_file_response", build_metrics_file_response},
};

/* Each decoder behind one switch, so tables can say "decode this as that". */
enum decoder {
    DECODE_SVID_REQUEST,
    DECODE_SVID_RESPONSE,
    DECODE_ID_RESPONSE,
    DECODE_ERROR,
    DECODE_METRICS_FILE_RESPONSE,
};

static const uint8_t decoder_types[] = {
    [DECODE_SVID_REQUEST] = MT_PROTO_SVID_REQUEST,
    [DECODE_SVID_RESPONSE] = MT_PROTO_SVID_RESPONSE,
    [DECODE_ID_RESPONSE] = MT_PROTO_ID_RESPONSE,
    [DECODE_ERROR] = MT_PROTO_ERROR,
    [DECODE_METRICS_FILE_RESPONSE] = MT_PROTO_METRICS_FILE_RESPONSE,
};

static enum mt_error decode_with(enum decoder decoder, const struct mt_proto_frame *frame)
{
    struct mt_proto_svid_request request;
    struct mt_proto_svid_response response;
    struct mt_proto_blob id;
    struct mt_proto_error_reply reply;
    struct mt_proto_metrics_file_response metrics_file;
    switch (decoder) {
    case DECODE_SVID_REQUEST:
        return mt_proto_decode_svid_request(frame, &request).error;
    case DECODE_SVID_RESPONSE:
        return mt_proto_decode_svid_response(frame, &response).error;
    case DECODE_ID_RESPONSE:
        return mt_proto_decode_id_response(frame, &id).error;
    case DECODE_ERROR:
        return mt_proto_decode_error(frame, &reply).error;
    case DECODE_METRICS_FILE_RESPONSE:
        return mt_proto_decode_metrics_file_response(frame, &metrics_file).error;
    }
    fail_msg("unknown decoder %d", (int)decoder);
    return MT_ERR_INVALID_ARGUMENT;
}

/* Parses a whole frame placed against the guard page, then decodes it. */
static enum mt_error parse_and_decode(const uint8_t *bytes, size_t length, enum decoder decoder)
{
    struct guarded guarded;
    guarded_init(&guarded, bytes, length);
    struct mt_proto_frame frame;
    size_t consumed = 1;
    mt_result result = mt_proto_frame_parse(guarded.data, length, &frame, &consumed);
    assert_int_equal(result.error, MT_OK);
    assert_int_equal(consumed, length);
    enum mt_error error = decode_with(decoder, &frame);
    guarded_cleanup(&guarded);
    return error;
}

/* Raw frame bytes, for inputs the writer would never produce. */
struct raw {
    uint8_t bytes[FRAME_BUFFER];
    size_t length;
};

static void raw_begin(struct raw *raw, uint8_t type)
{
    const uint8_t header[MT_PROTO_HEADER_SIZE] = {'M', 'T', MT_PROTO_VERSION, type, 0, 0, 0, 0};
    memcpy(raw->bytes, header, sizeof(header));
    raw->length = sizeof(header);
}

static void raw_put_bytes(struct raw *raw, const void *bytes, size_t length)
{
    assert_true(length <= sizeof(raw->bytes) - raw->length);
    if (length > 0)
        memcpy(raw->bytes + raw->length, bytes, length);
    raw->length += length;
}

static void raw_put_u32(struct raw *raw, uint32_t value)
{
    const uint8_t bytes[4] = {(uint8_t)(value >> 24), (uint8_t)(value >> 16), (uint8_t)(value >> 8),
                              (uint8_t)value};
    raw_put_bytes(raw, bytes, sizeof(bytes));
}

/* A TLV header declaring declared_length, followed by value_length bytes of value. */
static void raw_put_tlv(struct raw *raw, uint16_t tag, uint32_t declared_length, const void *value,
                        size_t value_length)
{
    const uint8_t tag_bytes[2] = {(uint8_t)(tag >> 8), (uint8_t)tag};
    raw_put_bytes(raw, tag_bytes, sizeof(tag_bytes));
    raw_put_u32(raw, declared_length);
    raw_put_bytes(raw, value, value_length);
}

/* Sets the header's payload length to what was actually put. */
static void raw_finish(struct raw *raw)
{
    uint32_t payload = (uint32_t)(raw->length - MT_PROTO_HEADER_SIZE);
    raw->bytes[4] = (uint8_t)(payload >> 24);
    raw->bytes[5] = (uint8_t)(payload >> 16);
    raw->bytes[6] = (uint8_t)(payload >> 8);
    raw->bytes[7] = (uint8_t)payload;
}

static void assert_blob_equal(struct mt_proto_blob blob, const void *expected, size_t length)
{
    assert_int_equal(blob.length, length);
    assert_memory_equal(blob.data, expected, length);
}

static void parse_whole(const uint8_t *buffer, size_t length, struct mt_proto_frame *frame)
{
    size_t consumed = 0;
    mt_result result = mt_proto_frame_parse(buffer, length, frame, &consumed);
    assert_int_equal(result.error, MT_OK);
    assert_int_equal(consumed, length);
}

static void test_mt_proto_decode_svid_request_round_trip_gives_the_csr(void **state)
{
    (void)state;
    uint8_t buffer[FRAME_BUFFER];
    size_t length = build_svid_request(buffer);
    assert_int_equal(length, MT_PROTO_HEADER_SIZE + MT_PROTO_TLV_HEADER_SIZE + sizeof(csr));
    struct mt_proto_frame frame;
    parse_whole(buffer, length, &frame);
    assert_int_equal(frame.type, MT_PROTO_SVID_REQUEST);
    struct mt_proto_svid_request request;
    assert_int_equal(mt_proto_decode_svid_request(&frame, &request).error, MT_OK);
    assert_blob_equal(request.csr, csr, sizeof(csr));
}

static void test_mt_proto_decode_svid_response_round_trip_gives_every_field(void **state)
{
    (void)state;
    uint8_t buffer[FRAME_BUFFER];
    size_t length = build_svid_response(buffer);
    struct mt_proto_frame frame;
    parse_whole(buffer, length, &frame);
    struct mt_proto_svid_response response;
    assert_int_equal(mt_proto_decode_svid_response(&frame, &response).error, MT_OK);
    assert_blob_equal(response.spiffe_id, spiffe_id, strlen(spiffe_id));
    assert_int_equal(response.cert_count, 2);
    assert_blob_equal(response.certs[0], cert_a, sizeof(cert_a));
    assert_blob_equal(response.certs[1], cert_b, sizeof(cert_b));
    assert_int_equal(response.anchor_count, 2);
    assert_blob_equal(response.anchors[0], anchor_a, sizeof(anchor_a));
    assert_blob_equal(response.anchors[1], anchor_b, sizeof(anchor_b));
    assert_true(response.expiry == expiry);
}

static void test_mt_proto_frame_parse_id_request_round_trip_has_empty_payload(void **state)
{
    (void)state;
    uint8_t buffer[FRAME_BUFFER];
    size_t length = build_id_request(buffer);
    const uint8_t expected[] = {'M', 'T', MT_PROTO_VERSION, MT_PROTO_ID_REQUEST, 0, 0, 0, 0};
    assert_int_equal(length, sizeof(expected));
    assert_memory_equal(buffer, expected, sizeof(expected));
    struct mt_proto_frame frame;
    parse_whole(buffer, length, &frame);
    assert_int_equal(frame.type, MT_PROTO_ID_REQUEST);
    assert_int_equal(frame.payload_length, 0);
}

static void test_mt_proto_decode_id_response_round_trip_gives_the_id(void **state)
{
    (void)state;
    uint8_t buffer[FRAME_BUFFER];
    size_t length = build_id_response(buffer);
    struct mt_proto_frame frame;
    parse_whole(buffer, length, &frame);
    struct mt_proto_blob id;
    assert_int_equal(mt_proto_decode_id_response(&frame, &id).error, MT_OK);
    assert_blob_equal(id, spiffe_id, strlen(spiffe_id));
}

static void test_mt_proto_decode_error_round_trip_gives_code_and_message(void **state)
{
    (void)state;
    uint8_t buffer[FRAME_BUFFER];
    size_t length = build_error(buffer);
    struct mt_proto_frame frame;
    parse_whole(buffer, length, &frame);
    struct mt_proto_error_reply reply;
    assert_int_equal(mt_proto_decode_error(&frame, &reply).error, MT_OK);
    assert_int_equal(reply.code, MT_PROTO_ERROR_DENIED);
    assert_blob_equal(reply.message, error_text, strlen(error_text));
}

static void test_mt_proto_decode_metrics_file_response_round_trip_gives_pid_and_start(void **state)
{
    (void)state;
    uint8_t buffer[FRAME_BUFFER];
    size_t length = build_metrics_file_response(buffer);
    struct mt_proto_frame frame;
    parse_whole(buffer, length, &frame);
    struct mt_proto_metrics_file_response response;
    assert_int_equal(mt_proto_decode_metrics_file_response(&frame, &response).error, MT_OK);
    assert_int_equal(response.pid, metrics_pid);
    assert_int_equal(response.start_time, metrics_start_time);
    length = build_metrics_file_request(buffer);
    parse_whole(buffer, length, &frame);
    assert_int_equal(frame.type, MT_PROTO_METRICS_FILE_REQUEST);
    assert_int_equal(frame.payload_length, 0);
}

/* The agent never names a file after a pid it could not see (0) or one past pid_t. */
static void test_mt_proto_decode_metrics_file_response_impossible_pid_is_malformed(void **state)
{
    (void)state;
    static const uint32_t pids[] = {0, 0x80000000u, 0xffffffffu};
    for (size_t i = 0; i < COUNT_OF(pids); i++) {
        uint8_t buffer[FRAME_BUFFER];
        struct mt_proto_writer writer;
        mt_proto_writer_begin(&writer, buffer, FRAME_BUFFER, MT_PROTO_METRICS_FILE_RESPONSE);
        mt_proto_writer_put_u32(&writer, MT_PROTO_TAG_PID, pids[i]);
        mt_proto_writer_put_u64(&writer, MT_PROTO_TAG_START_TIME, 1);
        size_t length = writer_finish_ok(&writer);
        assert_int_equal(parse_and_decode(buffer, length, DECODE_METRICS_FILE_RESPONSE),
                         MT_ERR_PROTO_MALFORMED);
    }
}

/* The byte layout is the contract with the agent; pin it so both sides cannot drift together. */
static void test_mt_proto_writer_put_u32_layout_is_big_endian(void **state)
{
    (void)state;
    uint8_t buffer[FRAME_BUFFER];
    struct mt_proto_writer writer;
    mt_proto_writer_begin(&writer, buffer, sizeof(buffer), MT_PROTO_ERROR);
    mt_proto_writer_put_u32(&writer, MT_PROTO_TAG_ERROR_CODE, 0x0a0b0c0du);
    mt_proto_writer_put(&writer, MT_PROTO_TAG_MESSAGE, "hi", 2);
    size_t length = writer_finish_ok(&writer);
    const uint8_t expected[] = {'M', 'T', 1, 3, 0, 0, 0,    18,               /* header */
                                0,   6,   0, 0, 0, 4, 0x0a, 0x0b, 0x0c, 0x0d, /* code */
                                0,   7,   0, 0, 0, 2, 'h',  'i'};             /* message */
    assert_int_equal(length, sizeof(expected));
    assert_memory_equal(buffer, expected, sizeof(expected));
}

static void test_mt_proto_frame_parse_every_truncation_needs_more_bytes(void **state)
{
    (void)state;
    for (size_t f = 0; f < COUNT_OF(valid_frames); f++) {
        uint8_t buffer[FRAME_BUFFER];
        size_t length = valid_frames[f].build(buffer);
        for (size_t cut = 0; cut <= length; cut++) {
            struct guarded guarded;
            guarded_init(&guarded, buffer, cut);
            struct mt_proto_frame frame;
            size_t consumed = 99;
            mt_result result = mt_proto_frame_parse(guarded.data, cut, &frame, &consumed);
            guarded_cleanup(&guarded);
            if (result.error != MT_OK || consumed != (cut == length ? length : 0))
                fail_msg("%s cut at %zu of %zu: error %s, consumed %zu", valid_frames[f].name, cut,
                         length, mt_error_name(result.error), consumed);
        }
    }
}

static void test_mt_proto_frame_parse_two_frames_consumes_only_the_first(void **state)
{
    (void)state;
    uint8_t buffer[2 * FRAME_BUFFER];
    size_t first = build_id_response(buffer);
    size_t second = build_error(buffer + first);
    struct mt_proto_frame frame;
    size_t consumed = 0;
    assert_int_equal(mt_proto_frame_parse(buffer, first + second, &frame, &consumed).error, MT_OK);
    assert_int_equal(consumed, first);
    assert_int_equal(frame.type, MT_PROTO_ID_RESPONSE);
    assert_int_equal(mt_proto_frame_parse(buffer + first, second, &frame, &consumed).error, MT_OK);
    assert_int_equal(consumed, second);
    assert_int_equal(frame.type, MT_PROTO_ERROR);
}

/*
 * A frame whose header agrees with a cut payload: the TLVs themselves end early. Every such cut
 * of every reply must be refused by its decoder, never read past the payload.
 */
static void test_mt_proto_decode_every_payload_truncation_is_malformed(void **state)
{
    (void)state;
    static const struct {
        size_t (*build)(uint8_t *buffer);
        enum decoder decoder;
    } cases[] = {
        {build_svid_request, DECODE_SVID_REQUEST},
        {build_svid_response, DECODE_SVID_RESPONSE},
        {build_id_response, DECODE_ID_RESPONSE},
        {build_error, DECODE_ERROR},
        {build_metrics_file_response, DECODE_METRICS_FILE_RESPONSE},
    };
    for (size_t c = 0; c < COUNT_OF(cases); c++) {
        uint8_t buffer[FRAME_BUFFER];
        size_t length = cases[c].build(buffer);
        for (size_t cut = MT_PROTO_HEADER_SIZE; cut < length; cut++) {
            struct raw raw;
            raw_begin(&raw, decoder_types[cases[c].decoder]);
            raw_put_bytes(&raw, buffer + MT_PROTO_HEADER_SIZE, cut - MT_PROTO_HEADER_SIZE);
            raw_finish(&raw);
            enum mt_error error = parse_and_decode(raw.bytes, raw.length, cases[c].decoder);
            if (error != MT_ERR_PROTO_MALFORMED)
                fail_msg("decoder %zu, payload cut at %zu: %s", c, cut, mt_error_name(error));
        }
        assert_int_equal(parse_and_decode(buffer, length, cases[c].decoder), MT_OK);
    }
}

static void test_mt_proto_frame_parse_bad_magic_is_malformed_from_first_byte(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t length;
    } cases[] = {
        {"X", 1},
        {"mT", 2},
        {"Mt", 2},
        {"GET / HTTP/1.1\r\n", 16},
        {"\x16\x03\x01\x02\x00\x01\x00\x01", 8}, /* a TLS ClientHello */
        {"TM\x01\x01\x00\x00\x00\x00", 8},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        struct guarded guarded;
        guarded_init(&guarded, (const uint8_t *)cases[i].bytes, cases[i].length);
        struct mt_proto_frame frame;
        size_t consumed = 99;
        mt_result result = mt_proto_frame_parse(guarded.data, cases[i].length, &frame, &consumed);
        guarded_cleanup(&guarded);
        assert_int_equal(result.error, MT_ERR_PROTO_MALFORMED);
        assert_int_equal(consumed, 0);
    }
}

static void test_mt_proto_frame_parse_bad_version_is_refused(void **state)
{
    (void)state;
    static const uint8_t versions[] = {0, MT_PROTO_VERSION_MAX + 1, 0xff};
    for (size_t i = 0; i < COUNT_OF(versions); i++) {
        const uint8_t bytes[] = {'M', 'T', versions[i], MT_PROTO_ID_REQUEST, 0, 0, 0, 0};
        /* Known from the third byte on, without waiting for the rest of the header. */
        for (size_t length = 3; length <= sizeof(bytes); length++) {
            struct mt_proto_frame frame;
            size_t consumed = 99;
            assert_int_equal(mt_proto_frame_parse(bytes, length, &frame, &consumed).error,
                             MT_ERR_PROTO_VERSION);
            assert_int_equal(consumed, 0);
        }
    }
}

static void test_mt_proto_frame_parse_oversized_length_is_refused_from_header(void **state)
{
    (void)state;
    static const struct {
        uint32_t declared;
        enum mt_error error;
    } cases[] = {
        {MT_PROTO_MAX_PAYLOAD, MT_OK},         {MT_PROTO_MAX_PAYLOAD + 1, MT_ERR_PROTO_OVERSIZED},
        {0x7fffffffu, MT_ERR_PROTO_OVERSIZED}, {0xfffffff8u, MT_ERR_PROTO_OVERSIZED},
        {0xffffffffu, MT_ERR_PROTO_OVERSIZED},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        struct raw raw;
        raw_begin(&raw, MT_PROTO_SVID_RESPONSE);
        raw.bytes[4] = (uint8_t)(cases[i].declared >> 24);
        raw.bytes[5] = (uint8_t)(cases[i].declared >> 16);
        raw.bytes[6] = (uint8_t)(cases[i].declared >> 8);
        raw.bytes[7] = (uint8_t)cases[i].declared;
        struct guarded guarded;
        guarded_init(&guarded, raw.bytes, raw.length);
        struct mt_proto_frame frame;
        size_t consumed = 99;
        mt_result result = mt_proto_frame_parse(guarded.data, raw.length, &frame, &consumed);
        guarded_cleanup(&guarded);
        assert_int_equal(result.error, cases[i].error);
        assert_int_equal(consumed, 0);
    }
}

static void test_mt_proto_frame_parse_largest_payload_is_accepted(void **state)
{
    (void)state;
    static uint8_t buffer[MT_PROTO_MAX_FRAME];
    struct mt_proto_writer writer;
    mt_proto_writer_begin(&writer, buffer, sizeof(buffer), MT_PROTO_SVID_REQUEST);
    static const uint8_t filler[MT_PROTO_MAX_PAYLOAD - MT_PROTO_TLV_HEADER_SIZE];
    mt_proto_writer_put(&writer, MT_PROTO_TAG_CSR, filler, sizeof(filler));
    size_t length = writer_finish_ok(&writer);
    assert_int_equal(length, MT_PROTO_MAX_FRAME);
    assert_int_equal(parse_and_decode(buffer, length, DECODE_SVID_REQUEST), MT_OK);
}

static uint32_t next_random(uint32_t *state)
{
    /* xorshift32 */
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    return *state;
}

static void test_mt_proto_frame_parse_garbage_never_over_reads(void **state)
{
    (void)state;
    /*
     * A fixed pseudo-random sequence, so a failure reproduces. Half of the inputs get a valid
     * header with a fitting length, so the TLV decoders see garbage too, not only the header check.
     */
    uint32_t seed = 0x2545f491u;
    for (int round = 0; round < 5000; round++) {
        uint8_t bytes[64];
        size_t length = next_random(&seed) % sizeof(bytes);
        for (size_t i = 0; i < length; i++)
            bytes[i] = (uint8_t)next_random(&seed);
        if (round % 2 == 0 && length >= MT_PROTO_HEADER_SIZE) {
            const uint8_t header[] = {'M',
                                      'T',
                                      MT_PROTO_VERSION,
                                      (uint8_t)(bytes[3] % 7),
                                      0,
                                      0,
                                      0,
                                      (uint8_t)(bytes[7] % (length - MT_PROTO_HEADER_SIZE + 1))};
            memcpy(bytes, header, sizeof(header));
        }
        struct guarded guarded;
        guarded_init(&guarded, bytes, length);
        struct mt_proto_frame frame;
        size_t consumed = 0;
        mt_result result = mt_proto_frame_parse(guarded.data, length, &frame, &consumed);
        if (mt_result_is_ok(result) && consumed > 0) {
            assert_true(consumed <= length);
            for (int d = DECODE_SVID_REQUEST; d <= DECODE_METRICS_FILE_RESPONSE; d++) {
                enum mt_error error = decode_with((enum decoder)d, &frame);
                assert_true(error == MT_OK || error == MT_ERR_PROTO_MALFORMED ||
                            error == MT_ERR_PROTO_UNEXPECTED);
            }
        }
        guarded_cleanup(&guarded);
    }
}

static void test_mt_proto_decode_tlv_past_payload_is_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        uint32_t declared; /* the TLV's declared value length */
        size_t present;    /* value bytes actually in the payload */
    } cases[] = {
        {"one byte past", sizeof(csr) + 1, sizeof(csr)},
        {"length wraps a 32-bit sum", 0xfffffffau, sizeof(csr)},
        {"largest length", 0xffffffffu, sizeof(csr)},
        {"larger than any payload", MT_PROTO_MAX_PAYLOAD, sizeof(csr)},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        struct raw raw;
        raw_begin(&raw, MT_PROTO_SVID_REQUEST);
        raw_put_tlv(&raw, MT_PROTO_TAG_CSR, cases[i].declared, csr, cases[i].present);
        raw_finish(&raw);
        enum mt_error error = parse_and_decode(raw.bytes, raw.length, DECODE_SVID_REQUEST);
        if (error != MT_ERR_PROTO_MALFORMED)
            fail_msg("%s: %s", cases[i].name, mt_error_name(error));
    }
}

static void test_mt_proto_decode_partial_tlv_header_is_malformed(void **state)
{
    (void)state;
    for (size_t header_bytes = 1; header_bytes < MT_PROTO_TLV_HEADER_SIZE; header_bytes++) {
        struct raw raw;
        raw_begin(&raw, MT_PROTO_SVID_REQUEST);
        raw_put_tlv(&raw, MT_PROTO_TAG_CSR, sizeof(csr), csr, sizeof(csr));
        const uint8_t partial[MT_PROTO_TLV_HEADER_SIZE] = {0, MT_PROTO_TAG_CSR, 0, 0, 0, 0};
        raw_put_bytes(&raw, partial, header_bytes);
        raw_finish(&raw);
        assert_int_equal(parse_and_decode(raw.bytes, raw.length, DECODE_SVID_REQUEST),
                         MT_ERR_PROTO_MALFORMED);
    }
}

static void test_mt_proto_decode_repeated_single_valued_tag_is_malformed(void **state)
{
    (void)state;
    static const uint8_t eight[8] = {0};
    static const uint8_t four[4] = {0};
    static const struct {
        enum decoder decoder;
        size_t (*build)(uint8_t *buffer);
        uint16_t tag;
        const void *value;
        size_t length;
    } cases[] = {
        {DECODE_SVID_REQUEST, build_svid_request, MT_PROTO_TAG_CSR, csr, sizeof(csr)},
        {DECODE_SVID_RESPONSE, build_svid_response, MT_PROTO_TAG_SPIFFE_ID, spiffe_id, 5},
        {DECODE_SVID_RESPONSE, build_svid_response, MT_PROTO_TAG_EXPIRY, eight, sizeof(eight)},
        {DECODE_ID_RESPONSE, build_id_response, MT_PROTO_TAG_SPIFFE_ID, spiffe_id, 5},
        {DECODE_ERROR, build_error, MT_PROTO_TAG_ERROR_CODE, four, sizeof(four)},
        {DECODE_ERROR, build_error, MT_PROTO_TAG_MESSAGE, "again", 5},
        {DECODE_METRICS_FILE_RESPONSE, build_metrics_file_response, MT_PROTO_TAG_PID, four,
         sizeof(four)},
        {DECODE_METRICS_FILE_RESPONSE, build_metrics_file_response, MT_PROTO_TAG_START_TIME, eight,
         sizeof(eight)},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        struct raw raw;
        raw.length = cases[i].build(raw.bytes);
        raw_put_tlv(&raw, cases[i].tag, (uint32_t)cases[i].length, cases[i].value, cases[i].length);
        raw_finish(&raw);
        enum mt_error error = parse_and_decode(raw.bytes, raw.length, cases[i].decoder);
        if (error != MT_ERR_PROTO_MALFORMED)
            fail_msg("tag %u repeated: %s", cases[i].tag, mt_error_name(error));
    }
}

static size_t build_svid_response_with(uint8_t *buffer, size_t capacity, size_t certs,
                                       size_t anchors)
{
    struct mt_proto_writer writer;
    mt_proto_writer_begin(&writer, buffer, capacity, MT_PROTO_SVID_RESPONSE);
    mt_proto_writer_put(&writer, MT_PROTO_TAG_SPIFFE_ID, spiffe_id, strlen(spiffe_id));
    for (size_t i = 0; i < certs; i++)
        mt_proto_writer_put(&writer, MT_PROTO_TAG_CERT, cert_a, sizeof(cert_a));
    for (size_t i = 0; i < anchors; i++)
        mt_proto_writer_put(&writer, MT_PROTO_TAG_BUNDLE, anchor_a, sizeof(anchor_a));
    mt_proto_writer_put_u64(&writer, MT_PROTO_TAG_EXPIRY, expiry);
    return writer_finish_ok(&writer);
}

static void test_mt_proto_decode_svid_response_count_limits_are_enforced(void **state)
{
    (void)state;
    static const struct {
        size_t certs;
        size_t anchors;
        enum mt_error error;
    } cases[] = {
        {1, 1, MT_OK},
        {MT_PROTO_MAX_CERTS, MT_PROTO_MAX_ANCHORS, MT_OK},
        {MT_PROTO_MAX_CERTS + 1, 1, MT_ERR_PROTO_MALFORMED},
        {1, MT_PROTO_MAX_ANCHORS + 1, MT_ERR_PROTO_MALFORMED},
        {0, 1, MT_ERR_PROTO_MALFORMED},
        {1, 0, MT_ERR_PROTO_MALFORMED},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        uint8_t buffer[FRAME_BUFFER];
        size_t length =
            build_svid_response_with(buffer, sizeof(buffer), cases[i].certs, cases[i].anchors);
        struct guarded guarded;
        guarded_init(&guarded, buffer, length);
        struct mt_proto_frame frame;
        parse_whole(guarded.data, length, &frame);
        struct mt_proto_svid_response response;
        enum mt_error error = mt_proto_decode_svid_response(&frame, &response).error;
        if (error != cases[i].error)
            fail_msg("%zu certs, %zu anchors: %s", cases[i].certs, cases[i].anchors,
                     mt_error_name(error));
        if (error == MT_OK) {
            assert_int_equal(response.cert_count, cases[i].certs);
            assert_int_equal(response.anchor_count, cases[i].anchors);
        }
        guarded_cleanup(&guarded);
    }
}

static void test_mt_proto_decode_missing_required_tag_is_malformed(void **state)
{
    (void)state;
    static const uint8_t expiry_bytes[8] = {0, 0, 0, 0, 0x66, 0, 0, 0};
    static const uint8_t code_bytes[4] = {0, 0, 0, MT_PROTO_ERROR_INTERNAL};
    static const struct {
        const char *name;
        enum decoder decoder;
        uint16_t tags[5]; /* 0 ends the list */
    } cases[] = {
        {"empty svid request", DECODE_SVID_REQUEST, {0}},
        {"no spiffe id", DECODE_SVID_RESPONSE, {3, 4, 5, 0}},
        {"no cert", DECODE_SVID_RESPONSE, {2, 4, 5, 0}},
        {"no bundle", DECODE_SVID_RESPONSE, {2, 3, 5, 0}},
        {"no expiry", DECODE_SVID_RESPONSE, {2, 3, 4, 0}},
        {"empty id response", DECODE_ID_RESPONSE, {0}},
        {"no error code", DECODE_ERROR, {7, 0}},
        {"no error message", DECODE_ERROR, {6, 0}},
        {"empty metrics file response", DECODE_METRICS_FILE_RESPONSE, {0}},
        {"no pid", DECODE_METRICS_FILE_RESPONSE, {10, 0}},
        {"no start time", DECODE_METRICS_FILE_RESPONSE, {9, 0}},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        struct raw raw;
        raw_begin(&raw, decoder_types[cases[i].decoder]);
        for (size_t t = 0; cases[i].tags[t] != 0; t++) {
            uint16_t tag = cases[i].tags[t];
            if (tag == MT_PROTO_TAG_EXPIRY || tag == MT_PROTO_TAG_START_TIME)
                raw_put_tlv(&raw, tag, sizeof(expiry_bytes), expiry_bytes, sizeof(expiry_bytes));
            else if (tag == MT_PROTO_TAG_ERROR_CODE || tag == MT_PROTO_TAG_PID)
                raw_put_tlv(&raw, tag, sizeof(code_bytes), code_bytes, sizeof(code_bytes));
            else
                raw_put_tlv(&raw, tag, 3, "abc", 3);
        }
        raw_finish(&raw);
        enum mt_error error = parse_and_decode(raw.bytes, raw.length, cases[i].decoder);
        if (error != MT_ERR_PROTO_MALFORMED)
            fail_msg("%s: %s", cases[i].name, mt_error_name(error));
    }
}

static void test_mt_proto_decode_fixed_width_integer_wrong_length_is_malformed(void **state)
{
    (void)state;
    static const uint8_t zeros[9] = {0};
    static const struct {
        enum decoder decoder;
        uint16_t tag;
        size_t length;
    } cases[] = {
        {DECODE_SVID_RESPONSE, MT_PROTO_TAG_EXPIRY, 0},
        {DECODE_SVID_RESPONSE, MT_PROTO_TAG_EXPIRY, 4},
        {DECODE_SVID_RESPONSE, MT_PROTO_TAG_EXPIRY, 7},
        {DECODE_SVID_RESPONSE, MT_PROTO_TAG_EXPIRY, 9},
        {DECODE_ERROR, MT_PROTO_TAG_ERROR_CODE, 0},
        {DECODE_ERROR, MT_PROTO_TAG_ERROR_CODE, 3},
        {DECODE_ERROR, MT_PROTO_TAG_ERROR_CODE, 5},
        {DECODE_ERROR, MT_PROTO_TAG_ERROR_CODE, 8},
        {DECODE_METRICS_FILE_RESPONSE, MT_PROTO_TAG_PID, 8},
        {DECODE_METRICS_FILE_RESPONSE, MT_PROTO_TAG_START_TIME, 4},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        struct raw raw;
        raw_begin(&raw, decoder_types[cases[i].decoder]);
        if (cases[i].decoder == DECODE_SVID_RESPONSE) {
            raw_put_tlv(&raw, MT_PROTO_TAG_SPIFFE_ID, 3, "abc", 3);
            raw_put_tlv(&raw, MT_PROTO_TAG_CERT, 3, "abc", 3);
            raw_put_tlv(&raw, MT_PROTO_TAG_BUNDLE, 3, "abc", 3);
        } else if (cases[i].decoder == DECODE_METRICS_FILE_RESPONSE) {
            static const uint8_t pid[4] = {0, 0, 0, 7};
            static const uint8_t start[8] = {0, 0, 0, 0, 0, 0, 0, 9};
            if (cases[i].tag == MT_PROTO_TAG_PID)
                raw_put_tlv(&raw, MT_PROTO_TAG_START_TIME, 8, start, 8);
            else
                raw_put_tlv(&raw, MT_PROTO_TAG_PID, 4, pid, 4);
        } else {
            raw_put_tlv(&raw, MT_PROTO_TAG_MESSAGE, 3, "abc", 3);
        }
        raw_put_tlv(&raw, cases[i].tag, (uint32_t)cases[i].length, zeros, cases[i].length);
        raw_finish(&raw);
        enum mt_error error = parse_and_decode(raw.bytes, raw.length, cases[i].decoder);
        if (error != MT_ERR_PROTO_MALFORMED)
            fail_msg("tag %u with %zu bytes: %s", cases[i].tag, cases[i].length,
                     mt_error_name(error));
    }
}

static void test_mt_proto_decode_empty_required_blob_is_malformed(void **state)
{
    (void)state;
    struct raw raw;
    raw_begin(&raw, MT_PROTO_SVID_REQUEST);
    raw_put_tlv(&raw, MT_PROTO_TAG_CSR, 0, NULL, 0);
    raw_finish(&raw);
    assert_int_equal(parse_and_decode(raw.bytes, raw.length, DECODE_SVID_REQUEST),
                     MT_ERR_PROTO_MALFORMED);

    raw_begin(&raw, MT_PROTO_ID_RESPONSE);
    raw_put_tlv(&raw, MT_PROTO_TAG_SPIFFE_ID, 0, NULL, 0);
    raw_finish(&raw);
    assert_int_equal(parse_and_decode(raw.bytes, raw.length, DECODE_ID_RESPONSE),
                     MT_ERR_PROTO_MALFORMED);

    uint8_t buffer[FRAME_BUFFER];
    size_t length = build_svid_response_with(buffer, sizeof(buffer), 1, 1);
    memcpy(raw.bytes, buffer, length);
    raw.length = length;
    raw_put_tlv(&raw, MT_PROTO_TAG_CERT, 0, NULL, 0);
    raw_finish(&raw);
    assert_int_equal(parse_and_decode(raw.bytes, raw.length, DECODE_SVID_RESPONSE),
                     MT_ERR_PROTO_MALFORMED);
}

static void test_mt_proto_decode_error_empty_message_is_accepted(void **state)
{
    (void)state;
    uint8_t buffer[FRAME_BUFFER];
    struct mt_proto_writer writer;
    mt_proto_writer_begin(&writer, buffer, sizeof(buffer), MT_PROTO_ERROR);
    mt_proto_writer_put_u32(&writer, MT_PROTO_TAG_ERROR_CODE, 77);
    mt_proto_writer_put(&writer, MT_PROTO_TAG_MESSAGE, NULL, 0);
    size_t length = writer_finish_ok(&writer);
    struct mt_proto_frame frame;
    parse_whole(buffer, length, &frame);
    struct mt_proto_error_reply reply;
    assert_int_equal(mt_proto_decode_error(&frame, &reply).error, MT_OK);
    assert_int_equal(reply.code, 77);
    assert_int_equal(reply.message.length, 0);
}

static void test_mt_proto_decode_unknown_tags_are_skipped(void **state)
{
    (void)state;
    struct raw raw;
    raw_begin(&raw, MT_PROTO_ID_RESPONSE);
    raw_put_tlv(&raw, 0, 2, "zz", 2);
    raw_put_tlv(&raw, 0xffff, 0, NULL, 0);
    raw_put_tlv(&raw, MT_PROTO_TAG_CSR, 3, "csr", 3);
    raw_put_tlv(&raw, MT_PROTO_TAG_SPIFFE_ID, (uint32_t)strlen(spiffe_id), spiffe_id,
                strlen(spiffe_id));
    raw_put_tlv(&raw, 1000, 4, "next", 4);
    raw_finish(&raw);
    struct guarded guarded;
    guarded_init(&guarded, raw.bytes, raw.length);
    struct mt_proto_frame frame;
    parse_whole(guarded.data, raw.length, &frame);
    struct mt_proto_blob id;
    assert_int_equal(mt_proto_decode_id_response(&frame, &id).error, MT_OK);
    assert_blob_equal(id, spiffe_id, strlen(spiffe_id));
    guarded_cleanup(&guarded);
}

static void test_mt_proto_decode_wrong_frame_type_is_unexpected(void **state)
{
    (void)state;
    static const uint8_t types[] = {0,
                                    MT_PROTO_SVID_REQUEST,
                                    MT_PROTO_SVID_RESPONSE,
                                    MT_PROTO_ERROR,
                                    MT_PROTO_ID_REQUEST,
                                    MT_PROTO_ID_RESPONSE,
                                    6,
                                    0xff};
    /* A payload that every decoder would accept, so only the type can be the reason. */
    struct raw raw;
    raw_begin(&raw, 0);
    raw_put_tlv(&raw, MT_PROTO_TAG_CSR, 3, "csr", 3);
    raw_put_tlv(&raw, MT_PROTO_TAG_SPIFFE_ID, 3, "abc", 3);
    raw_put_tlv(&raw, MT_PROTO_TAG_CERT, 3, "abc", 3);
    raw_put_tlv(&raw, MT_PROTO_TAG_BUNDLE, 3, "abc", 3);
    raw_put_tlv(&raw, MT_PROTO_TAG_EXPIRY, 8, "\0\0\0\0\0\0\0\1", 8);
    raw_put_tlv(&raw, MT_PROTO_TAG_ERROR_CODE, 4, "\0\0\0\1", 4);
    raw_put_tlv(&raw, MT_PROTO_TAG_MESSAGE, 3, "abc", 3);
    raw_finish(&raw);
    for (size_t t = 0; t < COUNT_OF(types); t++) {
        raw.bytes[3] = types[t];
        for (int d = DECODE_SVID_REQUEST; d <= DECODE_ERROR; d++) {
            enum mt_error expected = types[t] == decoder_types[d] ? MT_OK : MT_ERR_PROTO_UNEXPECTED;
            enum mt_error error = parse_and_decode(raw.bytes, raw.length, (enum decoder)d);
            if (error != expected)
                fail_msg("type %u, decoder %d: %s", types[t], d, mt_error_name(error));
        }
    }
}

static void test_mt_proto_decode_failure_leaves_output_unchanged(void **state)
{
    (void)state;
    uint8_t buffer[FRAME_BUFFER];
    size_t length = build_svid_response_with(buffer, sizeof(buffer), MT_PROTO_MAX_CERTS + 1, 1);
    struct mt_proto_frame frame;
    parse_whole(buffer, length, &frame);
    struct mt_proto_svid_response response;
    memset(&response, 0x5a, sizeof(response));
    struct mt_proto_svid_response before = response;
    assert_int_equal(mt_proto_decode_svid_response(&frame, &response).error,
                     MT_ERR_PROTO_MALFORMED);
    assert_memory_equal(&response, &before, sizeof(response));
}

static void test_mt_proto_writer_finish_overflow_never_writes_past_capacity(void **state)
{
    (void)state;
    uint8_t reference[FRAME_BUFFER];
    size_t needed = build_svid_response(reference);
    for (size_t capacity = 0; capacity <= needed; capacity++) {
        uint8_t buffer[FRAME_BUFFER + 16];
        memset(buffer, 0xee, sizeof(buffer));
        struct mt_proto_writer writer;
        mt_proto_writer_begin(&writer, buffer, capacity, MT_PROTO_SVID_RESPONSE);
        mt_proto_writer_put(&writer, MT_PROTO_TAG_SPIFFE_ID, spiffe_id, strlen(spiffe_id));
        mt_proto_writer_put(&writer, MT_PROTO_TAG_CERT, cert_a, sizeof(cert_a));
        mt_proto_writer_put(&writer, MT_PROTO_TAG_CERT, cert_b, sizeof(cert_b));
        mt_proto_writer_put(&writer, MT_PROTO_TAG_BUNDLE, anchor_a, sizeof(anchor_a));
        mt_proto_writer_put(&writer, MT_PROTO_TAG_BUNDLE, anchor_b, sizeof(anchor_b));
        mt_proto_writer_put_u64(&writer, MT_PROTO_TAG_EXPIRY, expiry);
        size_t length = 0;
        enum mt_error error = mt_proto_writer_finish(&writer, &length).error;
        for (size_t i = capacity; i < sizeof(buffer); i++) {
            if (buffer[i] != 0xee)
                fail_msg("capacity %zu: byte %zu written", capacity, i);
        }
        if (capacity < needed) {
            assert_int_equal(error, MT_ERR_TOO_LONG);
        } else {
            assert_int_equal(error, MT_OK);
            assert_int_equal(length, needed);
            assert_memory_equal(buffer, reference, needed);
        }
    }
}

static void test_mt_proto_writer_put_after_overflow_stays_failed(void **state)
{
    (void)state;
    uint8_t buffer[32];
    struct mt_proto_writer writer;
    mt_proto_writer_begin(&writer, buffer, sizeof(buffer), MT_PROTO_ERROR);
    uint8_t big[64] = {0};
    mt_proto_writer_put(&writer, MT_PROTO_TAG_MESSAGE, big, sizeof(big));
    /* This one would fit on its own; a frame missing a field must still not be sent. */
    mt_proto_writer_put_u32(&writer, MT_PROTO_TAG_ERROR_CODE, 1);
    size_t length = 0;
    assert_int_equal(mt_proto_writer_finish(&writer, &length).error, MT_ERR_TOO_LONG);
}

static void test_mt_proto_writer_finish_payload_over_limit_is_too_long(void **state)
{
    (void)state;
    static uint8_t buffer[MT_PROTO_MAX_FRAME + 64];
    static const uint8_t filler[MT_PROTO_MAX_PAYLOAD];
    struct mt_proto_writer writer;
    mt_proto_writer_begin(&writer, buffer, sizeof(buffer), MT_PROTO_SVID_REQUEST);
    mt_proto_writer_put(&writer, MT_PROTO_TAG_CSR, filler, sizeof(filler));
    size_t length = 0;
    assert_int_equal(mt_proto_writer_finish(&writer, &length).error, MT_ERR_TOO_LONG);
}

static void test_mt_proto_writer_put_null_value_fails_the_frame(void **state)
{
    (void)state;
    uint8_t buffer[64];
    struct mt_proto_writer writer;
    mt_proto_writer_begin(&writer, buffer, sizeof(buffer), MT_PROTO_SVID_REQUEST);
    mt_proto_writer_put(&writer, MT_PROTO_TAG_CSR, NULL, 4);
    size_t length = 0;
    assert_int_equal(mt_proto_writer_finish(&writer, &length).error, MT_ERR_TOO_LONG);
}

static void test_mt_proto_frame_parse_null_arguments_are_invalid(void **state)
{
    (void)state;
    struct mt_proto_frame frame;
    size_t consumed;
    const uint8_t bytes[1] = {'M'};
    assert_int_equal(mt_proto_frame_parse(NULL, 1, &frame, &consumed).error,
                     MT_ERR_INVALID_ARGUMENT);
    assert_int_equal(mt_proto_frame_parse(bytes, 1, NULL, &consumed).error,
                     MT_ERR_INVALID_ARGUMENT);
    assert_int_equal(mt_proto_frame_parse(bytes, 1, &frame, NULL).error, MT_ERR_INVALID_ARGUMENT);
    consumed = 5;
    assert_int_equal(mt_proto_frame_parse(NULL, 0, &frame, &consumed).error, MT_OK);
    assert_int_equal(consumed, 0);
}

static void test_mt_proto_error_code_name_known_and_unknown_codes_are_named(void **state)
{
    (void)state;
    assert_string_equal(mt_proto_error_code_name(MT_PROTO_ERROR_DENIED), "denied");
    assert_string_equal(mt_proto_error_code_name(MT_PROTO_ERROR_BAD_CSR), "bad_csr");
    assert_string_equal(mt_proto_error_code_name(0), "unknown");
    assert_string_equal(mt_proto_error_code_name(0xffffffffu), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mt_proto_decode_svid_request_round_trip_gives_the_csr),
        cmocka_unit_test(test_mt_proto_decode_svid_response_round_trip_gives_every_field),
        cmocka_unit_test(test_mt_proto_frame_parse_id_request_round_trip_has_empty_payload),
        cmocka_unit_test(test_mt_proto_decode_id_response_round_trip_gives_the_id),
        cmocka_unit_test(test_mt_proto_decode_error_round_trip_gives_code_and_message),
        cmocka_unit_test(test_mt_proto_decode_metrics_file_response_round_trip_gives_pid_and_start),
        cmocka_unit_test(test_mt_proto_decode_metrics_file_response_impossible_pid_is_malformed),
        cmocka_unit_test(test_mt_proto_writer_put_u32_layout_is_big_endian),
        cmocka_unit_test(test_mt_proto_frame_parse_every_truncation_needs_more_bytes),
        cmocka_unit_test(test_mt_proto_frame_parse_two_frames_consumes_only_the_first),
        cmocka_unit_test(test_mt_proto_decode_every_payload_truncation_is_malformed),
        cmocka_unit_test(test_mt_proto_frame_parse_bad_magic_is_malformed_from_first_byte),
        cmocka_unit_test(test_mt_proto_frame_parse_bad_version_is_refused),
        cmocka_unit_test(test_mt_proto_frame_parse_oversized_length_is_refused_from_header),
        cmocka_unit_test(test_mt_proto_frame_parse_largest_payload_is_accepted),
        cmocka_unit_test(test_mt_proto_frame_parse_garbage_never_over_reads),
        cmocka_unit_test(test_mt_proto_decode_tlv_past_payload_is_malformed),
        cmocka_unit_test(test_mt_proto_decode_partial_tlv_header_is_malformed),
        cmocka_unit_test(test_mt_proto_decode_repeated_single_valued_tag_is_malformed),
        cmocka_unit_test(test_mt_proto_decode_svid_response_count_limits_are_enforced),
        cmocka_unit_test(test_mt_proto_decode_missing_required_tag_is_malformed),
        cmocka_unit_test(test_mt_proto_decode_fixed_width_integer_wrong_length_is_malformed),
        cmocka_unit_test(test_mt_proto_decode_empty_required_blob_is_malformed),
        cmocka_unit_test(test_mt_proto_decode_error_empty_message_is_accepted),
        cmocka_unit_test(test_mt_proto_decode_unknown_tags_are_skipped),
        cmocka_unit_test(test_mt_proto_decode_wrong_frame_type_is_unexpected),
        cmocka_unit_test(test_mt_proto_decode_failure_leaves_output_unchanged),
        cmocka_unit_test(test_mt_proto_writer_finish_overflow_never_writes_past_capacity),
        cmocka_unit_test(test_mt_proto_writer_put_after_overflow_stays_failed),
        cmocka_unit_test(test_mt_proto_writer_finish_payload_over_limit_is_too_long),
        cmocka_unit_test(test_mt_proto_writer_put_null_value_fails_the_frame),
        cmocka_unit_test(test_mt_proto_frame_parse_null_arguments_are_invalid),
        cmocka_unit_test(test_mt_proto_error_code_name_known_and_unknown_codes_are_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
