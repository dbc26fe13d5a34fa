/*
 * The agent protocol codec: frames and TLVs (the wire format is described in proto.h).
 *
 * Owns the byte layout only. The parser is incremental and allocation-free: it never reads a byte
 * at or past the length it is given, and decoded values point into the caller's buffer. Bytes
 * come from another process (the agent, or for the agent any local workload), so every length is
 * checked against what remains before it is used, by subtraction so that a 32-bit length near
 * UINT32_MAX cannot wrap an addition. This file must never allocate, do I/O or interpret values
 * beyond their framing (a SPIFFE ID or a certificate is checked by its owner, not here).
 */
#include <string.h>

#include "proto.h"

static const uint8_t frame_magic[2] = {'M', 'T'};

static uint16_t read_u16(const uint8_t *bytes)
{
    return (uint16_t)((unsigned)bytes[0] << 8 | (unsigned)bytes[1]);
}

static uint32_t read_u32(const uint8_t *bytes)
{
    return (uint32_t)bytes[0] << 24 | (uint32_t)bytes[1] << 16 | (uint32_t)bytes[2] << 8 |
           (uint32_t)bytes[3];
}

static uint64_t read_u64(const uint8_t *bytes)
{
    return (uint64_t)read_u32(bytes) << 32 | (uint64_t)read_u32(bytes + 4);
}

static void write_u16(uint8_t *bytes, uint16_t value)
{
    bytes[0] = (uint8_t)(value >> 8);
    bytes[1] = (uint8_t)value;
}

static void write_u32(uint8_t *bytes, uint32_t value)
{
    bytes[0] = (uint8_t)(value >> 24);
    bytes[1] = (uint8_t)(value >> 16);
    bytes[2] = (uint8_t)(value >> 8);
    bytes[3] = (uint8_t)value;
}

static void write_u64(uint8_t *bytes, uint64_t value)
{
    write_u32(bytes, (uint32_t)(value >> 32));
    write_u32(bytes + 4, (uint32_t)value);
}

MT_RESULT mt_proto_frame_parse(const uint8_t *buffer, size_t length, struct mt_proto_frame *frame,
                               size_t *consumed)
{
    MT_ENSURE_REF(frame);
    MT_ENSURE_REF(consumed);
    MT_ENSURE(buffer != NULL || length == 0, MT_ERR_INVALID_ARGUMENT);
    *consumed = 0;

    /*
     * Each header byte is judged as soon as it arrives, so a peer that is not speaking this
     * protocol is rejected on its first bytes instead of after a timeout waiting for eight.
     */
    for (size_t i = 0; i < sizeof(frame_magic) && i < length; i++)
        MT_ENSURE(buffer[i] == frame_magic[i], MT_ERR_PROTO_MALFORMED);
    if (length > 2)
        MT_ENSURE(buffer[2] >= MT_PROTO_VERSION && buffer[2] <= MT_PROTO_VERSION_MAX,
                  MT_ERR_PROTO_VERSION);
    if (length < MT_PROTO_HEADER_SIZE)
        return MT_OK_RESULT;

    uint32_t payload_length = read_u32(buffer + 4);
    MT_ENSURE(payload_length <= MT_PROTO_MAX_PAYLOAD, MT_ERR_PROTO_OVERSIZED);
    if (length - MT_PROTO_HEADER_SIZE < payload_length)
        return MT_OK_RESULT;

    frame->version = buffer[2];
    frame->type = buffer[3];
    frame->payload = buffer + MT_PROTO_HEADER_SIZE;
    frame->payload_length = payload_length;
    *consumed = MT_PROTO_HEADER_SIZE + (size_t)payload_length;
    return MT_OK_RESULT;
}

/* A cursor over a frame's TLVs; remaining only ever shrinks by amounts already checked. */
struct tlv_reader {
    const uint8_t *cursor;
    size_t remaining;
};

struct tlv {
    uint16_t tag;
    struct mt_proto_blob value;
};

static void tlv_reader_init(struct tlv_reader *reader, const struct mt_proto_frame *frame)
{
    reader->cursor = frame->payload;
    reader->remaining = frame->payload_length;
}

static bool tlv_reader_has_more(const struct tlv_reader *reader)
{
    return reader->remaining > 0;
}

static MT_RESULT tlv_reader_next(struct tlv_reader *reader, struct tlv *tlv)
{
    MT_ENSURE(reader->remaining >= MT_PROTO_TLV_HEADER_SIZE, MT_ERR_PROTO_MALFORMED);
    uint32_t value_length = read_u32(reader->cursor + 2);
    MT_ENSURE(value_length <= reader->remaining - MT_PROTO_TLV_HEADER_SIZE, MT_ERR_PROTO_MALFORMED);

    tlv->tag = read_u16(reader->cursor);
    tlv->value.data = reader->cursor + MT_PROTO_TLV_HEADER_SIZE;
    tlv->value.length = value_length;
    reader->cursor += MT_PROTO_TLV_HEADER_SIZE + (size_t)value_length;
    reader->remaining -= MT_PROTO_TLV_HEADER_SIZE + (size_t)value_length;
    return MT_OK_RESULT;
}

/*
 * Records that a single-valued tag was seen; a second occurrence is malformed because the two
 * values could disagree and each reader of the message might pick a different one.
 */
static MT_RESULT mark_single(unsigned *seen, uint16_t tag)
{
    unsigned bit = 1u << tag;
    MT_ENSURE((*seen & bit) == 0, MT_ERR_PROTO_MALFORMED);
    *seen |= bit;
    return MT_OK_RESULT;
}

static bool was_seen(unsigned seen, uint16_t tag)
{
    return (seen & (1u << tag)) != 0;
}

/* An empty CSR, ID or certificate is never meaningful, so it is rejected with the framing. */
static MT_RESULT take_blob(struct mt_proto_blob *slot, const struct tlv *tlv)
{
    MT_ENSURE(tlv->value.length > 0, MT_ERR_PROTO_MALFORMED);
    *slot = tlv->value;
    return MT_OK_RESULT;
}

static MT_RESULT take_list_item(struct mt_proto_blob *items, size_t *count, size_t max,
                                const struct tlv *tlv)
{
    MT_ENSURE(*count < max, MT_ERR_PROTO_MALFORMED);
    MT_GUARD(take_blob(&items[*count], tlv));
    (*count)++;
    return MT_OK_RESULT;
}

static MT_RESULT take_u32(uint32_t *value, const struct tlv *tlv)
{
    MT_ENSURE(tlv->value.length == 4, MT_ERR_PROTO_MALFORMED);
    *value = read_u32(tlv->value.data);
    return MT_OK_RESULT;
}

static MT_RESULT take_u64(uint64_t *value, const struct tlv *tlv)
{
    MT_ENSURE(tlv->value.length == 8, MT_ERR_PROTO_MALFORMED);
    *value = read_u64(tlv->value.data);
    return MT_OK_RESULT;
}

static MT_RESULT check_frame(const struct mt_proto_frame *frame, enum mt_proto_type expected)
{
    MT_ENSURE_REF(frame);
    MT_ENSURE(frame->payload != NULL || frame->payload_length == 0, MT_ERR_INVALID_ARGUMENT);
    MT_ENSURE(frame->payload_length <= MT_PROTO_MAX_PAYLOAD, MT_ERR_PROTO_OVERSIZED);
    MT_ENSURE(frame->type == expected, MT_ERR_PROTO_UNEXPECTED);
    return MT_OK_RESULT;
}

/*
 * Each decoder fills a local copy and hands it over only when the whole message is valid, so a
 * caller never sees half of a malformed message. Tags that do not belong to the message type are
 * skipped like unknown ones: a newer peer may add fields.
 */
MT_RESULT mt_proto_decode_svid_request(const struct mt_proto_frame *frame,
                                       struct mt_proto_svid_request *request)
{
    MT_ENSURE_REF(request);
    MT_GUARD(check_frame(frame, MT_PROTO_SVID_REQUEST));

    struct mt_proto_svid_request decoded = {0};
    unsigned seen = 0;
    struct tlv_reader reader;
    tlv_reader_init(&reader, frame);
    while (tlv_reader_has_more(&reader)) {
        struct tlv tlv;
        MT_GUARD(tlv_reader_next(&reader, &tlv));
        if (tlv.tag == MT_PROTO_TAG_CSR) {
            MT_GUARD(mark_single(&seen, tlv.tag));
            MT_GUARD(take_blob(&decoded.csr, &tlv));
        }
    }
    MT_ENSURE(was_seen(seen, MT_PROTO_TAG_CSR), MT_ERR_PROTO_MALFORMED);
    *request = decoded;
    return MT_OK_RESULT;
}

MT_RESULT mt_proto_decode_svid_response(const struct mt_proto_frame *frame,
                                        struct mt_proto_svid_response *response)
{
    MT_ENSURE_REF(response);
    MT_GUARD(check_frame(frame, MT_PROTO_SVID_RESPONSE));

    struct mt_proto_svid_response decoded = {0};
    unsigned seen = 0;
    struct tlv_reader reader;
    tlv_reader_init(&reader, frame);
    while (tlv_reader_has_more(&reader)) {
        struct tlv tlv;
        MT_GUARD(tlv_reader_next(&reader, &tlv));
        switch (tlv.tag) {
        case MT_PROTO_TAG_SPIFFE_ID:
            MT_GUARD(mark_single(&seen, tlv.tag));
            MT_GUARD(take_blob(&decoded.spiffe_id, &tlv));
            break;
        case MT_PROTO_TAG_CERT:
            MT_GUARD(take_list_item(decoded.certs, &decoded.cert_count, MT_PROTO_MAX_CERTS, &tlv));
            break;
        case MT_PROTO_TAG_BUNDLE:
            MT_GUARD(
                take_list_item(decoded.anchors, &decoded.anchor_count, MT_PROTO_MAX_ANCHORS, &tlv));
            break;
        case MT_PROTO_TAG_EXPIRY:
            MT_GUARD(mark_single(&seen, tlv.tag));
            MT_GUARD(take_u64(&decoded.expiry, &tlv));
            break;
        default:
            break;
        }
    }
    MT_ENSURE(was_seen(seen, MT_PROTO_TAG_SPIFFE_ID), MT_ERR_PROTO_MALFORMED);
    MT_ENSURE(was_seen(seen, MT_PROTO_TAG_EXPIRY), MT_ERR_PROTO_MALFORMED);
    MT_ENSURE(decoded.cert_count > 0, MT_ERR_PROTO_MALFORMED);
    MT_ENSURE(decoded.anchor_count > 0, MT_ERR_PROTO_MALFORMED);
    *response = decoded;
    return MT_OK_RESULT;
}

MT_RESULT mt_proto_decode_id_response(const struct mt_proto_frame *frame,
                                      struct mt_proto_blob *spiffe_id)
{
    MT_ENSURE_REF(spiffe_id);
    MT_GUARD(check_frame(frame, MT_PROTO_ID_RESPONSE));

    struct mt_proto_blob decoded = {0};
    unsigned seen = 0;
    struct tlv_reader reader;
    tlv_reader_init(&reader, frame);
    while (tlv_reader_has_more(&reader)) {
        struct tlv tlv;
        MT_GUARD(tlv_reader_next(&reader, &tlv));
        if (tlv.tag == MT_PROTO_TAG_SPIFFE_ID) {
            MT_GUARD(mark_single(&seen, tlv.tag));
            MT_GUARD(take_blob(&decoded, &tlv));
        }
    }
    MT_ENSURE(was_seen(seen, MT_PROTO_TAG_SPIFFE_ID), MT_ERR_PROTO_MALFORMED);
    *spiffe_id = decoded;
    return MT_OK_RESULT;
}

MT_RESULT mt_proto_decode_status_response(const struct mt_proto_frame *frame,
                                          struct mt_proto_status_response *response)
{
    MT_ENSURE_REF(response);
    MT_GUARD(check_frame(frame, MT_PROTO_STATUS_RESPONSE));
    size_t count = 0;
    struct tlv_reader reader;
    tlv_reader_init(&reader, frame);
    /* Written straight into response (it is large); the count is set only when all is valid. */
    response->record_count = 0;
    while (tlv_reader_has_more(&reader)) {
        struct tlv tlv;
        MT_GUARD(tlv_reader_next(&reader, &tlv));
        if (tlv.tag == MT_PROTO_TAG_STATUS_RECORD)
            MT_GUARD(take_list_item(response->records, &count, MT_PROTO_MAX_STATUS_RECORDS, &tlv));
    }
    response->record_count = count;
    return MT_OK_RESULT;
}

MT_RESULT mt_proto_decode_membership_response(const struct mt_proto_frame *frame,
                                              uint64_t *generation)
{
    MT_ENSURE_REF(generation);
    MT_GUARD(check_frame(frame, MT_PROTO_MEMBERSHIP_RESPONSE));
    uint64_t decoded = 0;
    unsigned seen = 0;
    struct tlv_reader reader;
    tlv_reader_init(&reader, frame);
    while (tlv_reader_has_more(&reader)) {
        struct tlv tlv;
        MT_GUARD(tlv_reader_next(&reader, &tlv));
        if (tlv.tag != MT_PROTO_TAG_GENERATION)
            continue;
        MT_GUARD(mark_single(&seen, tlv.tag));
        MT_GUARD(take_u64(&decoded, &tlv));
    }
    MT_ENSURE(was_seen(seen, MT_PROTO_TAG_GENERATION), MT_ERR_PROTO_MALFORMED);
    *generation = decoded;
    return MT_OK_RESULT;
}

MT_RESULT mt_proto_decode_metrics_file_response(const struct mt_proto_frame *frame,
                                                struct mt_proto_metrics_file_response *response)
{
    MT_ENSURE_REF(response);
    MT_GUARD(check_frame(frame, MT_PROTO_METRICS_FILE_RESPONSE));

    struct mt_proto_metrics_file_response decoded = {0};
    unsigned seen = 0;
    struct tlv_reader reader;
    tlv_reader_init(&reader, frame);
    while (tlv_reader_has_more(&reader)) {
        struct tlv tlv;
        MT_GUARD(tlv_reader_next(&reader, &tlv));
        switch (tlv.tag) {
        case MT_PROTO_TAG_PID:
            MT_GUARD(mark_single(&seen, tlv.tag));
            MT_GUARD(take_u32(&decoded.pid, &tlv));
            break;
        case MT_PROTO_TAG_START_TIME:
            MT_GUARD(mark_single(&seen, tlv.tag));
            MT_GUARD(take_u64(&decoded.start_time, &tlv));
            break;
        default:
            break;
        }
    }
    MT_ENSURE(was_seen(seen, MT_PROTO_TAG_PID), MT_ERR_PROTO_MALFORMED);
    MT_ENSURE(was_seen(seen, MT_PROTO_TAG_START_TIME), MT_ERR_PROTO_MALFORMED);
    /* A pid the agent could not see is never sent: it refuses such a caller instead. */
    MT_ENSURE(decoded.pid > 0 && decoded.pid <= INT32_MAX, MT_ERR_PROTO_MALFORMED);
    *response = decoded;
    return MT_OK_RESULT;
}

MT_RESULT mt_proto_decode_error(const struct mt_proto_frame *frame,
                                struct mt_proto_error_reply *reply)
{
    MT_ENSURE_REF(reply);
    MT_GUARD(check_frame(frame, MT_PROTO_ERROR));

    struct mt_proto_error_reply decoded = {0};
    unsigned seen = 0;
    struct tlv_reader reader;
    tlv_reader_init(&reader, frame);
    while (tlv_reader_has_more(&reader)) {
        struct tlv tlv;
        MT_GUARD(tlv_reader_next(&reader, &tlv));
        switch (tlv.tag) {
        case MT_PROTO_TAG_ERROR_CODE:
            MT_GUARD(mark_single(&seen, tlv.tag));
            MT_GUARD(take_u32(&decoded.code, &tlv));
            break;
        case MT_PROTO_TAG_MESSAGE:
            /* An empty message is allowed: the code alone says what happened. */
            MT_GUARD(mark_single(&seen, tlv.tag));
            decoded.message = tlv.value;
            break;
        default:
            break;
        }
    }
    MT_ENSURE(was_seen(seen, MT_PROTO_TAG_ERROR_CODE), MT_ERR_PROTO_MALFORMED);
    MT_ENSURE(was_seen(seen, MT_PROTO_TAG_MESSAGE), MT_ERR_PROTO_MALFORMED);
    *reply = decoded;
    return MT_OK_RESULT;
}

MT_RESULT mt_proto_decode_subject(const struct mt_proto_frame *frame, bool *has_subject)
{
    MT_ENSURE_REF(frame);
    MT_ENSURE_REF(has_subject);
    MT_ENSURE(frame->payload != NULL || frame->payload_length == 0, MT_ERR_INVALID_ARGUMENT);
    unsigned seen = 0;
    struct tlv_reader reader;
    tlv_reader_init(&reader, frame);
    while (tlv_reader_has_more(&reader)) {
        struct tlv tlv;
        uint32_t descriptors = 0;
        MT_GUARD(tlv_reader_next(&reader, &tlv));
        if (tlv.tag != MT_PROTO_TAG_SUBJECT)
            continue;
        MT_GUARD(mark_single(&seen, tlv.tag));
        MT_GUARD(take_u32(&descriptors, &tlv));
        MT_ENSURE(descriptors == 1, MT_ERR_PROTO_MALFORMED);
    }
    /* A version 1 writer never knew the tag: whatever put it there is not to be trusted. */
    MT_ENSURE(!was_seen(seen, MT_PROTO_TAG_SUBJECT) || frame->version >= MT_PROTO_VERSION_SUBJECT,
              MT_ERR_PROTO_MALFORMED);
    *has_subject = was_seen(seen, MT_PROTO_TAG_SUBJECT);
    return MT_OK_RESULT;
}

void mt_proto_writer_begin(struct mt_proto_writer *writer, uint8_t *buffer, size_t capacity,
                           enum mt_proto_type type)
{
    if (writer == NULL)
        return;
    writer->buffer = buffer;
    writer->capacity = capacity;
    writer->length = 0;
    writer->overflow = buffer == NULL || capacity < MT_PROTO_HEADER_SIZE;
    if (writer->overflow)
        return;
    writer->buffer[0] = frame_magic[0];
    writer->buffer[1] = frame_magic[1];
    writer->buffer[2] = MT_PROTO_VERSION;
    writer->buffer[3] = (uint8_t)type;
    write_u32(writer->buffer + 4, 0);
    writer->length = MT_PROTO_HEADER_SIZE;
}

/*
 * Reserves room for one TLV and writes its header; NULL when it does not fit, which also makes
 * the writer's failure sticky. Sizes are compared by subtraction so that no sum can wrap.
 */
static uint8_t *writer_reserve(struct mt_proto_writer *writer, enum mt_proto_tag tag, size_t length)
{
    if (writer->overflow)
        return NULL;
    size_t room = writer->capacity - writer->length;
    if (length > UINT32_MAX || room < MT_PROTO_TLV_HEADER_SIZE ||
        length > room - MT_PROTO_TLV_HEADER_SIZE) {
        writer->overflow = true;
        return NULL;
    }
    uint8_t *tlv = writer->buffer + writer->length;
    write_u16(tlv, (uint16_t)tag);
    write_u32(tlv + 2, (uint32_t)length);
    writer->length += MT_PROTO_TLV_HEADER_SIZE + length;
    return tlv + MT_PROTO_TLV_HEADER_SIZE;
}

void mt_proto_writer_put(struct mt_proto_writer *writer, enum mt_proto_tag tag, const void *value,
                         size_t length)
{
    if (writer == NULL)
        return;
    /* A missing value is a caller bug; failing the frame beats sending a TLV of garbage. */
    if (value == NULL && length > 0) {
        writer->overflow = true;
        return;
    }
    uint8_t *destination = writer_reserve(writer, tag, length);
    if (destination != NULL && length > 0)
        memcpy(destination, value, length);
}

void mt_proto_writer_put_u32(struct mt_proto_writer *writer, enum mt_proto_tag tag, uint32_t value)
{
    if (writer == NULL)
        return;
    uint8_t *destination = writer_reserve(writer, tag, 4);
    if (destination != NULL)
        write_u32(destination, value);
}

void mt_proto_writer_put_u64(struct mt_proto_writer *writer, enum mt_proto_tag tag, uint64_t value)
{
    if (writer == NULL)
        return;
    uint8_t *destination = writer_reserve(writer, tag, 8);
    if (destination != NULL)
        write_u64(destination, value);
}

void mt_proto_writer_put_subject(struct mt_proto_writer *writer)
{
    if (writer == NULL)
        return;
    mt_proto_writer_put_u32(writer, MT_PROTO_TAG_SUBJECT, 1);
    if (!writer->overflow)
        writer->buffer[2] = MT_PROTO_VERSION_SUBJECT;
}

MT_RESULT mt_proto_writer_finish(struct mt_proto_writer *writer, size_t *frame_length)
{
    MT_ENSURE_REF(writer);
    MT_ENSURE_REF(frame_length);
    MT_ENSURE(!writer->overflow, MT_ERR_TOO_LONG);
    size_t payload_length = writer->length - MT_PROTO_HEADER_SIZE;
    /* The receiver rejects such a frame from its header alone; refuse to build it. */
    MT_ENSURE(payload_length <= MT_PROTO_MAX_PAYLOAD, MT_ERR_TOO_LONG);
    write_u32(writer->buffer + 4, (uint32_t)payload_length);
    *frame_length = writer->length;
    return MT_OK_RESULT;
}

const char *mt_proto_error_code_name(uint32_t code)
{
    switch (code) {
    case MT_PROTO_ERROR_MALFORMED:
        return "malformed";
    case MT_PROTO_ERROR_UNSUPPORTED:
        return "unsupported";
    case MT_PROTO_ERROR_DENIED:
        return "denied";
    case MT_PROTO_ERROR_BAD_CSR:
        return "bad_csr";
    case MT_PROTO_ERROR_INTERNAL:
        return "internal";
    default:
        return "unknown";
    }
}
