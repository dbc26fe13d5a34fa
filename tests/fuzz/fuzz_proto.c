/*
 * libFuzzer target for the agent protocol codec (identity/proto.c).
 *
 * Reads the input as a stream of frames, as the client and agent do, and runs every decoder on
 * every frame. Whatever a decoder accepts is written again with the writer and decoded a second
 * time; the two decodings must agree, so the fuzzer finds disagreements between the writer and
 * the parser as well as crashes. Must never allocate per input or print: a slow target fuzzes
 * nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "identity/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t rewritten[MT_PROTO_MAX_FRAME];

static bool blobs_equal(struct mt_proto_blob a, struct mt_proto_blob b)
{
    return a.length == b.length && (a.length == 0 || memcmp(a.data, b.data, a.length) == 0);
}

static void require(bool condition)
{
    if (!condition)
        abort();
}

/* Decodes rewritten[0..length) as a single frame; the writer must have produced a whole one. */
static struct mt_proto_frame reparse(size_t length)
{
    struct mt_proto_frame frame;
    size_t consumed = 0;
    require(mt_result_is_ok(mt_proto_frame_parse(rewritten, length, &frame, &consumed)));
    require(consumed == length);
    return frame;
}

static void check_svid_request(const struct mt_proto_frame *frame)
{
    struct mt_proto_svid_request first;
    if (!mt_result_is_ok(mt_proto_decode_svid_request(frame, &first)))
        return;
    struct mt_proto_writer writer;
    mt_proto_writer_begin(&writer, rewritten, sizeof(rewritten), MT_PROTO_SVID_REQUEST);
    mt_proto_writer_put(&writer, MT_PROTO_TAG_CSR, first.csr.data, first.csr.length);
    size_t length = 0;
    require(mt_result_is_ok(mt_proto_writer_finish(&writer, &length)));
    struct mt_proto_frame again = reparse(length);
    struct mt_proto_svid_request second;
    require(mt_result_is_ok(mt_proto_decode_svid_request(&again, &second)));
    require(blobs_equal(first.csr, second.csr));
}

static void check_svid_response(const struct mt_proto_frame *frame)
{
    struct mt_proto_svid_response first;
    if (!mt_result_is_ok(mt_proto_decode_svid_response(frame, &first)))
        return;
    require(first.cert_count >= 1 && first.cert_count <= MT_PROTO_MAX_CERTS);
    require(first.anchor_count >= 1 && first.anchor_count <= MT_PROTO_MAX_ANCHORS);
    struct mt_proto_writer writer;
    mt_proto_writer_begin(&writer, rewritten, sizeof(rewritten), MT_PROTO_SVID_RESPONSE);
    mt_proto_writer_put(&writer, MT_PROTO_TAG_SPIFFE_ID, first.spiffe_id.data,
                        first.spiffe_id.length);
    for (size_t i = 0; i < first.cert_count; i++)
        mt_proto_writer_put(&writer, MT_PROTO_TAG_CERT, first.certs[i].data, first.certs[i].length);
    for (size_t i = 0; i < first.anchor_count; i++)
        mt_proto_writer_put(&writer, MT_PROTO_TAG_BUNDLE, first.anchors[i].data,
                            first.anchors[i].length);
    mt_proto_writer_put_u64(&writer, MT_PROTO_TAG_EXPIRY, first.expiry);
    size_t length = 0;
    /* Unknown tags were dropped, so the rewritten frame is never larger than the input. */
    require(mt_result_is_ok(mt_proto_writer_finish(&writer, &length)));
    struct mt_proto_frame again = reparse(length);
    struct mt_proto_svid_response second;
    require(mt_result_is_ok(mt_proto_decode_svid_response(&again, &second)));
    require(blobs_equal(first.spiffe_id, second.spiffe_id));
    require(first.cert_count == second.cert_count && first.anchor_count == second.anchor_count);
    for (size_t i = 0; i < first.cert_count; i++)
        require(blobs_equal(first.certs[i], second.certs[i]));
    for (size_t i = 0; i < first.anchor_count; i++)
        require(blobs_equal(first.anchors[i], second.anchors[i]));
    require(first.expiry == second.expiry);
}

static void check_id_response(const struct mt_proto_frame *frame)
{
    struct mt_proto_blob first;
    if (!mt_result_is_ok(mt_proto_decode_id_response(frame, &first)))
        return;
    struct mt_proto_writer writer;
    mt_proto_writer_begin(&writer, rewritten, sizeof(rewritten), MT_PROTO_ID_RESPONSE);
    mt_proto_writer_put(&writer, MT_PROTO_TAG_SPIFFE_ID, first.data, first.length);
    size_t length = 0;
    require(mt_result_is_ok(mt_proto_writer_finish(&writer, &length)));
    struct mt_proto_frame again = reparse(length);
    struct mt_proto_blob second;
    require(mt_result_is_ok(mt_proto_decode_id_response(&again, &second)));
    require(blobs_equal(first, second));
}

static void check_error(const struct mt_proto_frame *frame)
{
    struct mt_proto_error_reply first;
    if (!mt_result_is_ok(mt_proto_decode_error(frame, &first)))
        return;
    require(mt_proto_error_code_name(first.code) != NULL);
    struct mt_proto_writer writer;
    mt_proto_writer_begin(&writer, rewritten, sizeof(rewritten), MT_PROTO_ERROR);
    mt_proto_writer_put_u32(&writer, MT_PROTO_TAG_ERROR_CODE, first.code);
    mt_proto_writer_put(&writer, MT_PROTO_TAG_MESSAGE, first.message.data, first.message.length);
    size_t length = 0;
    require(mt_result_is_ok(mt_proto_writer_finish(&writer, &length)));
    struct mt_proto_frame again = reparse(length);
    struct mt_proto_error_reply second;
    require(mt_result_is_ok(mt_proto_decode_error(&again, &second)));
    require(first.code == second.code && blobs_equal(first.message, second.message));
}

static void check_metrics_file_response(const struct mt_proto_frame *frame)
{
    struct mt_proto_metrics_file_response first;
    if (!mt_result_is_ok(mt_proto_decode_metrics_file_response(frame, &first)))
        return;
    require(first.pid > 0 && first.pid <= INT32_MAX);
    struct mt_proto_writer writer;
    mt_proto_writer_begin(&writer, rewritten, sizeof(rewritten), MT_PROTO_METRICS_FILE_RESPONSE);
    mt_proto_writer_put_u32(&writer, MT_PROTO_TAG_PID, first.pid);
    mt_proto_writer_put_u64(&writer, MT_PROTO_TAG_START_TIME, first.start_time);
    size_t length = 0;
    require(mt_result_is_ok(mt_proto_writer_finish(&writer, &length)));
    struct mt_proto_frame again = reparse(length);
    struct mt_proto_metrics_file_response second;
    require(mt_result_is_ok(mt_proto_decode_metrics_file_response(&again, &second)));
    require(first.pid == second.pid && first.start_time == second.start_time);
}

/* A SUBJECT the decoder accepts comes only with version 2, and survives being written again. */
static void check_subject(const struct mt_proto_frame *frame)
{
    bool has_subject = false;
    if (!mt_result_is_ok(mt_proto_decode_subject(frame, &has_subject)) || !has_subject)
        return;
    require(frame->version == MT_PROTO_VERSION_SUBJECT);
    struct mt_proto_writer writer;
    mt_proto_writer_begin(&writer, rewritten, sizeof(rewritten), (enum mt_proto_type)frame->type);
    mt_proto_writer_put_subject(&writer);
    size_t length = 0;
    require(mt_result_is_ok(mt_proto_writer_finish(&writer, &length)));
    struct mt_proto_frame again = reparse(length);
    bool again_has_subject = false;
    require(mt_result_is_ok(mt_proto_decode_subject(&again, &again_has_subject)));
    require(again_has_subject && again.version == MT_PROTO_VERSION_SUBJECT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t offset = 0;
    while (offset < size) {
        struct mt_proto_frame frame;
        size_t consumed = 0;
        if (!mt_result_is_ok(mt_proto_frame_parse(data + offset, size - offset, &frame, &consumed)))
            break;
        if (consumed == 0)
            break;
        require(consumed >= MT_PROTO_HEADER_SIZE && consumed <= size - offset);
        require(frame.payload_length == consumed - MT_PROTO_HEADER_SIZE);
        check_svid_request(&frame);
        check_svid_response(&frame);
        check_id_response(&frame);
        check_error(&frame);
        check_metrics_file_response(&frame);
        check_subject(&frame);
        offset += consumed;
    }
    return 0;
}
